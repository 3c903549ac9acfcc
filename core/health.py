"""GET /healthz: the database and Redis, each checked for real, 503 naming what is down; and how
many RQ workers are registered (reported, never failing: web and workers are deployed apart)."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, jsonify
from rq.worker_registration import REDIS_WORKER_KEYS

from core.extensions import db
from core.redis import get_redis

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    checks = {}
    try:
        db.session.execute(sa.text("SELECT 1"))
        checks["database"] = {"ok": True, "engine": db.engine.dialect.name}
    except Exception as exc:  # noqa: BLE001 - any failure means "down"; the reason is reported
        db.session.rollback()
        checks["database"] = {"ok": False, "engine": db.engine.dialect.name, "error": type(exc).__name__}
    workers = None
    try:
        with get_redis().pipeline(transaction=False) as pipe:  # one round trip for both
            _pong, workers = pipe.ping().scard(REDIS_WORKER_KEYS).execute()
        checks["redis"] = {"ok": True}
    except Exception as exc:  # noqa: BLE001
        checks["redis"] = {"ok": False, "error": type(exc).__name__}
    failing = [name for name, check in checks.items() if not check["ok"]]
    # Workers ride out a Redis restart and register again (core.queues); None: Redis is down.
    checks["workers"] = {"registered": workers}
    body = {"status": "ok" if not failing else "unavailable", "failing": failing, **checks}
    response = jsonify(body)
    response.status_code = 503 if failing else 200
    response.headers["Cache-Control"] = "no-store"
    return response


def init_app(app) -> None:
    app.register_blueprint(bp)
