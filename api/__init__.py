"""The campaign managers' REST API under /api/v1 (JSON, bearer tokens, problem+json errors).

Every module in this package attaches its routes to `bp`; `init_app` imports them all, so a new
endpoint module needs no registration anywhere else.
"""

import importlib
import pkgutil

from flask import Blueprint, Flask

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def init_app(app: Flask) -> None:
    from api import errors
    from core.extensions import csrf

    extra = []
    for module in pkgutil.iter_modules(__path__):
        # A module may bring a blueprint of its own outside /api/v1 operations (the docs' assets).
        extra += getattr(importlib.import_module(f"{__name__}.{module.name}"), "BLUEPRINTS", ())
    # Bearer tokens are not sent by browsers on their own; cookie writes are checked in api.auth.
    csrf.exempt(bp)
    app.register_blueprint(bp)
    for blueprint in extra:
        app.register_blueprint(blueprint)
    errors.init_app(app)
