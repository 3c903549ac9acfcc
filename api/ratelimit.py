"""Per-caller rate limit on every API route (Flask-Limiter, counters in Redis): 429 + Retry-After.

The key is the token (or the signed-in user); anonymous calls count per IP address. The limit is
`API_RATE_LIMIT` in the app config (default 600 per minute), read per request so tests can lower it.
"""

from __future__ import annotations

from flask import current_app
from flask_limiter.util import get_remote_address

from api import bp
from api.auth import AuthProblem, current_principal
from core.extensions import limiter

DEFAULT_LIMIT = "600/minute"


def caller_key() -> str:
    try:
        principal = current_principal()
    except AuthProblem:
        principal = None
    if principal is None:
        return f"ip:{get_remote_address()}"
    return f"token:{principal.token.id}" if principal.token else f"user:{principal.user.id}"


def api_limit() -> str:
    return current_app.config.get("API_RATE_LIMIT", DEFAULT_LIMIT)


limiter.limit(api_limit, key_func=caller_key)(bp)
