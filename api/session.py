"""Sign in and out with a session cookie (for a browser UI); API tools use bearer tokens instead."""

from __future__ import annotations

from flask import jsonify
from flask_limiter.util import get_remote_address
from flask_login import current_user, login_user, logout_user
from flask_wtf.csrf import generate_csrf
from marshmallow import fields, validate

from api import bp
from api.auth import Principal, current_principal, require, set_principal
from api.conventions import audit, load_json
from api.errors import problem
from api.openapi import doc
from api.schemas import ApiSchema, Text
from core.accounts import authenticate
from core.db import utcnow
from core.extensions import db, limiter


class SignIn(ApiSchema):
    email = Text(required=True, max=254, min=3)
    password = fields.String(required=True, validate=validate.Length(min=1, max=1024))


class SessionOut(ApiSchema):
    user_id = fields.Integer(required=True)
    email = fields.String(required=True)
    role = fields.String(required=True)
    via = fields.String(required=True, metadata={"description": "token or user (session)"})
    csrf_token = fields.String(allow_none=True, metadata={
        "description": "send as X-CSRF-Token on cookie-authenticated writes; null for token callers"})


def _session_out(principal) -> dict:
    return {"user_id": principal.user.id, "email": principal.user.email, "role": principal.role.value,
            "via": principal.kind, "csrf_token": None if principal.token else generate_csrf()}


@bp.post("/session")
@doc("Sign in with email and password (sets the session cookie)", tag="Session", body=SignIn,
     response=SessionOut, public=True, errors=(401, 429))
@limiter.limit("10/minute", key_func=lambda: f"signin:{_remote()}")
def sign_in():
    data = load_json(SignIn())
    user = authenticate(data["email"], data["password"])
    if user is None:
        return problem(401, "Unauthorized", "wrong email or password")
    user.last_login_at = utcnow()
    login_user(user)
    principal = Principal(user=user, role=user.role)
    set_principal(principal)
    audit("session.sign_in", "user", user.id)
    db.session.commit()
    return jsonify(_session_out(principal))


def _remote() -> str:
    return get_remote_address()


@bp.get("/session")
@doc("Who am I: the caller's user, role and (for a session) a fresh CSRF token", tag="Session",
     response=SessionOut)
@require("viewer")
def who_am_i():
    return jsonify(_session_out(current_principal()))


@bp.delete("/session")
@doc("Sign out: ends this user's sessions on every device (the cookie is worthless from now on)",
     tag="Session", status=204, public=True)
def sign_out():
    if current_user.is_authenticated:
        # Clearing the cookie is not enough: a copy of it (another tab, a stolen one) would still work.
        current_user.end_sessions()
        db.session.commit()
    logout_user()
    return "", 204
