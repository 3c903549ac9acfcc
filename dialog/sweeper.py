"""The dialog's periodic duty, next to every worker (one host per DIALOG_SWEEP_SECONDS, by a
Redis lock: core.periodic): queue the digest run, which mails every subscriber whose period is
due, and queue the notice mails that are waiting (a lost job, a deferral whose pause is over).

Both are safe to run twice and from several hosts at once: a digest period is claimed by a
conditional UPDATE before its mail goes out (dialog.digest), a notice by its own (dialog.notices).
"""

from __future__ import annotations

import threading

from flask import Flask, current_app

from core.periodic import start_locked_loop, try_locked
from dialog import digest, notices

SWEEP_LOCK = "sp:dialog:sweep-lock"


def sweep() -> dict[str, int]:
    """Queue due digests and waiting notices; returns what was queued."""
    # Notices younger than an interval belong to the job their commit queued.
    queued = notices.sweep(grace_seconds=current_app.config["DIALOG_SWEEP_SECONDS"])
    digest.send_digests.enqueue()
    return {"notice_jobs": queued, "digest_runs": 1}


def try_sweep(app: Flask) -> dict[str, int] | None:
    """One sweep unless another process swept within the interval; None if skipped."""
    return try_locked(app, SWEEP_LOCK, app.config["DIALOG_SWEEP_SECONDS"], sweep)


def start_sweeper_thread(app: Flask, _worker=None) -> threading.Thread:
    """Sweep every DIALOG_SWEEP_SECONDS next to a worker (a worker_startup hook)."""
    return start_locked_loop(app, "dialog-sweeper", SWEEP_LOCK, app.config["DIALOG_SWEEP_SECONDS"], sweep,
                             describe=lambda report: f"{report['notice_jobs']} notice jobs queued"
                             if report["notice_jobs"] else None)
