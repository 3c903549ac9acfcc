"""The webhooks sweeper: re-dispatch due messages whose job was lost (a killed worker, a flushed
Redis, a kick that failed). It runs every WEBHOOK_SWEEP_SECONDS next to each `flask worker` (one
sweep per interval across all of them, by a Redis lock) and from `flask webhooks sweep`.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from flask import Flask, current_app

from core.db import utcnow
from core.extensions import db
from core.periodic import start_locked_loop, try_locked
from webhooks.dispatch import deliver_endpoint, due_endpoints

log = logging.getLogger(__name__)

SWEEP_LOCK = "sp:webhooks:sweep-lock"


def sweep(now: datetime | None = None, grace_seconds: float | None = None) -> int:
    """Queue a delivery run for endpoints whose due messages waited longer than the grace period
    (fresh ones belong to the kick's job); returns how many were queued."""
    now = now or utcnow()
    grace = current_app.config["WEBHOOK_SWEEP_SECONDS"] if grace_seconds is None else grace_seconds
    ids = due_endpoints(now, due_before=now - timedelta(seconds=grace))
    db.session.commit()
    if ids:
        deliver_endpoint.enqueue_many([(i,) for i in ids])
    return len(ids)


def try_sweep(app: Flask) -> int | None:
    return try_locked(app, SWEEP_LOCK, app.config["WEBHOOK_SWEEP_SECONDS"], sweep)


def start_sweeper_thread(app: Flask, _worker=None) -> threading.Thread:
    """Sweep every WEBHOOK_SWEEP_SECONDS next to a worker (a worker_startup hook)."""
    return start_locked_loop(app, "webhook-sweeper", SWEEP_LOCK, app.config["WEBHOOK_SWEEP_SECONDS"], sweep,
                             describe=lambda queued: f"{queued} endpoints re-dispatched" if queued else None)
