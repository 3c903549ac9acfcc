"""The webhooks sweeper: re-dispatch due messages whose job was lost (a killed worker, a flushed
Redis, a kick that failed). It runs every WEBHOOK_SWEEP_SECONDS next to each `flask worker` (one
sweep per interval across all of them, by a Redis lock) and from `flask webhooks sweep`.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta

from flask import Flask, current_app

from core.db import utcnow
from core.extensions import db
from core.queues import REDIS_DOWN
from core.redis import get_redis
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
    interval = app.config["WEBHOOK_SWEEP_SECONDS"]
    with app.app_context():
        try:
            if not get_redis().set(SWEEP_LOCK, "1", nx=True, ex=interval):
                return None
            return sweep()
        finally:
            db.session.remove()


def start_sweeper_thread(app: Flask, _worker=None) -> threading.Thread:
    """Sweep every WEBHOOK_SWEEP_SECONDS next to a worker (a worker_startup hook)."""
    interval = app.config["WEBHOOK_SWEEP_SECONDS"]

    def loop() -> None:
        time.sleep(max(interval, 3))  # after the worker forked its scheduler (see core.cli)
        while True:
            try:
                queued = try_sweep(app)
                if queued:
                    log.info("webhook sweep: %s endpoints re-dispatched", queued)
            except REDIS_DOWN as exc:
                log.warning("webhook sweep failed, trying again in %s s: %s", interval, exc)
            except Exception:  # noqa: BLE001 - the sweeper must outlive any hiccup
                log.exception("webhook sweep failed; trying again in %s s", interval)
            time.sleep(interval)

    thread = threading.Thread(target=loop, name="webhook-sweeper", daemon=True)
    thread.start()
    return thread
