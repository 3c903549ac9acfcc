"""Composition root: the extension singletons and `create_app()`.

Everything else registers itself through an `init_app(app)` function or a blueprint. `flask`
finds this module on its own from the repository root; gunicorn serves `wsgi:create_app()`.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from flask import Flask
from werkzeug.routing import IntegerConverter

import config

# The singletons live in core.extensions (which imports nothing above core), so no module has to
# import this composition root; they are re-exported here for scripts and tests.
from core.extensions import csrf, db, limiter, login_manager, migrate

__all__ = ["create_app", "csrf", "db", "limiter", "login_manager", "migrate"]

ROOT = Path(__file__).resolve().parent
# The Alembic scripts: a top-level package next to this module, in a checkout and in an installed
# wheel alike (pyproject.toml ships it as package data), so `flask db upgrade` works from either.
MIGRATIONS = ROOT / "migrations"

# Modules that define models: imported before anything needs the full metadata (Alembic too).
MODEL_MODULES = ("core.accounts", "core.org_settings", "core.blobs", "core.events", "supporters.models", "supporters.transfer_jobs",
                 "campaigns.models", "campaigns.actions", "campaigns.bounce_models",
                 "campaigns.surveys", "dialog.models")

# Feature modules, each with an `init_app(app)` that registers its blueprints and CLI groups.
FEATURE_MODULES = (
    "core.health",
    "core.scrape",
    "core.cli",
    "core.deliverability",
    "supporters.web",
    "supporters.pages",
    "supporters.cli",
    "api",
    "campaigns.web",
    "campaigns.cli",
    "campaigns.cli_bounces",
    "webhooks",
    "dialog.web",
    "dialog.cli",
    "reports",
)


class BoundedIntConverter(IntegerConverter):
    """`<int:…>` never matches a number a 32-bit key cannot hold: a 404, not a database error.

    Routes over 64-bit keys say so explicitly (`api.schemas.ID_RULE`).
    """

    def __init__(self, map, fixed_digits=0, min=None, max=2**31 - 1, signed=False):  # noqa: A002
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)


def create_app(overrides: dict | None = None) -> Flask:
    """Build the application; `overrides` replace environment settings (tests use this)."""
    # Read and validate the configuration: a bad setting stops here with one clear line.
    try:
        settings = config.load(overrides)
    except config.ConfigError as exc:
        print(f"Configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None

    app = Flask(__name__, instance_path=settings["INSTANCE_PATH"])
    app.url_map.converters["int"] = BoundedIntConverter
    app.config.update(settings)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    if app.config["TRUSTED_PROXIES"]:
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)

    # Headers every response gets, and tokens kept out of the request log: registered before the
    # extensions, so its after-request hook runs last and sees their headers too.
    from core import hygiene

    hygiene.init_app(app)

    # Request ids and structured logs, then the request metrics: their timers start before any
    # extension's hook and their after-request hooks see the final status.
    from core import logs, metrics

    logs.init_app(app)
    metrics.init_app(app)

    # Infrastructure: Redis first, since the rate limiter stores its counters there.
    from core import redis as core_redis

    core_redis.init_app(app)
    app.config.setdefault("RATELIMIT_STORAGE_URI", core_redis.limiter_storage_uri(app.config["REDIS_URL"]))
    app.config.setdefault("RATELIMIT_KEY_PREFIX", "sp-limits")

    for name in MODEL_MODULES:
        importlib.import_module(name)
    db.init_app(app)
    migrate.init_app(app, db, directory=str(MIGRATIONS), render_as_batch=True, compare_type=True)
    login_manager.init_app(app)
    csrf.init_app(app)
    limiter.init_app(app)

    # Features: blueprints and CLI groups.
    for name in FEATURE_MODULES:
        importlib.import_module(name).init_app(app)
    return app

