"""Periodic duties next to every worker, run by one host per interval (a Redis lock).

Each feature package that has such a duty (the campaign, webhook and dialog sweepers) registers a
`worker_startup` hook that calls `start_locked_loop`. Every worker runs the loop; in each interval
only the process that sets the lock key first runs `sweep`, so N workers on N hosts sweep once per
interval, and a worker that dies simply leaves the next interval to another. The duties must be
safe to run twice anyway (a sweep slower than its interval overlaps the next one).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from flask import Flask

from core.extensions import db
from core.queues import REDIS_DOWN
from core.redis import get_redis

log = logging.getLogger(__name__)

# A restarting database or Redis: one warning line per interval, not a traceback.
OUTAGES = (*REDIS_DOWN, sa.exc.OperationalError, sa.exc.InterfaceError)


def try_locked(app: Flask, lock_key: str, interval: float, sweep: Callable[[], Any]) -> Any | None:
    """Run `sweep()` in an app context unless another process took the lock within `interval`
    seconds; returns its result, or None when skipped."""
    with app.app_context():
        try:
            if not get_redis().set(lock_key, "1", nx=True, ex=max(1, int(interval))):
                return None
            return sweep()
        finally:
            db.session.remove()


def start_locked_loop(app: Flask, name: str, lock_key: str, interval: float, sweep: Callable[[], Any],
                      describe: Callable[[Any], str | None] = lambda result: None) -> threading.Thread:
    """Run `try_locked(...)` every `interval` seconds in a daemon thread named `name`, outliving
    any error; `describe(result)` returns a line worth logging (or None)."""

    def loop() -> None:
        # The first sweep waits a moment: the worker forks its RQ scheduler right after start-up,
        # and the fork must not inherit a database connection of ours (see core.cli).
        time.sleep(max(interval, 3))
        while True:
            try:
                result = try_locked(app, lock_key, interval, sweep)
                line = describe(result) if result is not None else None
                if line:
                    log.info("%s: %s", name, line)
            except OUTAGES as exc:
                log.warning("%s failed, trying again in %s s: %s", name, interval,
                            (str(exc) or repr(exc)).strip().splitlines()[0])
            except Exception:  # noqa: BLE001 - the loop must outlive any hiccup
                log.exception("%s failed; trying again in %s s", name, interval)
            time.sleep(interval)

    thread = threading.Thread(target=loop, name=name, daemon=True)
    thread.start()
    return thread
