"""Short leases renewed by a heartbeat thread while a job holds them.

A job that claims rows for a while (a campaign batch) holds them under a lease in the database. A
short lease lets the sweeper recover the rows of a killed worker within seconds; the heartbeat
keeps a live job's lease from expiring however long one step takes (a slow SMTP answer, a rate
limit). The holder asks `holds()` before each irreversible step: once a renewal has failed for
too long (the database is down) the lease may have lapsed, and someone else may take the rows.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class LeaseKeeper:
    """Calls `renew()` every `lease / 3` seconds in a thread until `close()`.

    `holds()` is True while the last successful renewal (counted from before it was issued)
    is younger than the lease minus a safety margin for clocks and slow commits.
    """

    def __init__(self, renew: Callable[[], None], lease: float, name: str = "lease-keeper"):
        self.renew, self.lease = renew, lease
        self.margin = min(5.0, lease / 4)
        self.renewed_at = time.monotonic()  # the caller has just taken the lease
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def holds(self) -> bool:
        return time.monotonic() < self.renewed_at + self.lease - self.margin

    def renewed(self) -> None:
        """The holder renewed the lease itself (e.g. with a fresh claim)."""
        self.renewed_at = time.monotonic()

    def _run(self) -> None:
        wait = self.lease / 3
        while not self._stop.wait(wait):
            started = time.monotonic()
            try:
                self.renew()
            except Exception as exc:  # noqa: BLE001 - a database hiccup: holds() turns False in time
                log.warning("lease renewal failed, retrying in 1 s: %s", (str(exc) or repr(exc)).splitlines()[0])
                wait = min(1.0, self.lease / 3)
                continue
            self.renewed_at = started
            wait = self.lease / 3

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.lease)
