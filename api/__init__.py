"""The campaign managers' REST API under /api/v1 (JSON, bearer tokens, problem+json errors).

Endpoint modules attach their routes to `bp`; each is listed in `ENDPOINT_MODULES`.
"""

import importlib

from flask import Blueprint, Flask

bp = Blueprint("api", __name__, url_prefix="/api/v1")

ENDPOINT_MODULES: tuple[str, ...] = ()


def init_app(app: Flask) -> None:
    from api import errors
    from wsgi import csrf

    for name in ENDPOINT_MODULES:
        importlib.import_module(name)
    # Bearer tokens are not sent by browsers on their own; cookie writes are checked in api.auth.
    csrf.exempt(bp)
    app.register_blueprint(bp)
    errors.init_app(app)
