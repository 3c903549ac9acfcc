"""Who is calling: a bearer API token or a signed-in manager's session, and what their role allows."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import timedelta

from flask import request
from flask_login import current_user
from flask_wtf.csrf import CSRFError, validate_csrf

from api.errors import problem
from core.accounts import AdminUser, ApiToken, Role, verify_token
from core.db import utcnow
from core.extensions import db

LAST_USED_RESOLUTION = timedelta(minutes=1)  # at most one write per token per minute
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
PRINCIPAL_KEY = "api.principal"


@dataclass(frozen=True)
class Principal:
    user: AdminUser
    role: Role
    token: ApiToken | None = None

    @property
    def kind(self) -> str:
        return "token" if self.token else "user"

    @property
    def label(self) -> str:
        return f"{self.user.email} (token {self.token.prefix})" if self.token else self.user.email


class AuthProblem(Exception):
    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status, self.detail = status, detail


def _from_bearer(header: str) -> Principal:
    scheme, _, raw = header.partition(" ")
    if scheme.lower() != "bearer" or not raw.strip():
        raise AuthProblem(401, "use 'Authorization: Bearer <token>'")
    raw = raw.strip()
    if not raw.isascii() or not raw.isprintable():  # never hand control bytes to the database
        raise AuthProblem(401, "the token is unknown, revoked or expired")
    token = verify_token(raw)
    if token is None:
        raise AuthProblem(401, "the token is unknown, revoked or expired")
    now = utcnow()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        token.last_used_at = now
        db.session.commit()
    return Principal(user=token.user, role=token.effective_role, token=token)


def _from_session() -> Principal | None:
    if not current_user.is_authenticated:
        return None
    if request.method not in SAFE_METHODS:
        # A cookie travels with cross-site requests; the CSRF header proves the page is ours.
        try:
            validate_csrf(request.headers.get("X-CSRF-Token", ""))
        except (CSRFError, Exception):  # noqa: BLE001 - any failure means "not proven"
            raise AuthProblem(403, "cookie-authenticated writes need a valid X-CSRF-Token header") from None
    return Principal(user=current_user._get_current_object(), role=current_user.role)


def current_principal() -> Principal | None:
    """The authenticated caller of this request, or None (cached on the request).

    Cached in the WSGI environ rather than on `g`: `g` belongs to the application context, which
    tests (and CLI code) keep open across several requests.
    """
    if PRINCIPAL_KEY not in request.environ:
        header = request.headers.get("Authorization")
        request.environ[PRINCIPAL_KEY] = _from_bearer(header) if header else _from_session()
    return request.environ[PRINCIPAL_KEY]


def set_principal(principal: Principal | None) -> None:
    """Declare the caller of this request (after signing in)."""
    request.environ[PRINCIPAL_KEY] = principal


def require(role: Role | str):
    """Decorator: the caller must be authenticated with at least `role`."""
    needed = Role(role)

    def decorate(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            try:
                principal = current_principal()
            except AuthProblem as exc:
                return problem(exc.status, "Unauthorized" if exc.status == 401 else "Forbidden", exc.detail,
                               headers={"WWW-Authenticate": 'Bearer realm="api"'} if exc.status == 401 else None)
            if principal is None:
                return problem(401, "Unauthorized", "authentication required",
                               headers={"WWW-Authenticate": 'Bearer realm="api"'})
            if not principal.role.allows(needed):
                return problem(403, "Forbidden", f"this needs the {needed.value} role; you have {principal.role.value}")
            return view(*args, **kwargs)

        wrapper.required_role = needed
        return wrapper

    return decorate
