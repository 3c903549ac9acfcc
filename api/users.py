"""Users and API tokens (admin only): the secret of a new token is shown once, in the response."""

from __future__ import annotations

from datetime import UTC, timedelta

import sqlalchemy as sa
from flask import jsonify, url_for
from marshmallow import fields, validate

from api import bp
from api.auth import current_principal, require
from api.conventions import audit, load_json, load_query
from api.idempotency import idempotent, withhold_from_replay
from api.openapi import doc
from api.pagination import keyset_page
from api.schemas import INT_ID_RULE, MAX_INT_ID, ApiSchema, Id, PageQuery, Text, page_of
from core.accounts import AdminUser, ApiToken, Role, create_token, create_user
from core.db import utcnow
from core.errors import Conflict, NotFound, ValidationFailed
from core.extensions import db

ROLES = [r.value for r in Role]
UID = f"<{INT_ID_RULE}:user_id>"
KID = f"<{INT_ID_RULE}:token_id>"


class UserOut(ApiSchema):
    id = fields.Integer(required=True)
    email = fields.String(required=True)
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    active = fields.Boolean(required=True)
    created_at = fields.DateTime(required=True)
    last_login_at = fields.DateTime(allow_none=True, required=True)


class UserIn(ApiSchema):
    email = fields.Email(required=True, validate=validate.Length(max=254), metadata={"maxLength": 254})
    password = fields.String(required=True, validate=validate.Length(min=12, max=1024))
    role = fields.String(load_default="viewer", validate=validate.OneOf(ROLES))


class UserQuery(PageQuery):
    active = fields.Boolean()


class TokenOut(ApiSchema):
    id = fields.Integer(required=True)
    user_id = fields.Integer(required=True)
    name = fields.String(required=True)
    prefix = fields.String(required=True, metadata={"description": "identifies the token; not a secret"})
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    created_at = fields.DateTime(required=True)
    last_used_at = fields.DateTime(allow_none=True, required=True)
    expires_at = fields.DateTime(allow_none=True, required=True)
    revoked_at = fields.DateTime(allow_none=True, required=True)


class NewTokenOut(TokenOut):
    secret = fields.String(required=True, metadata={"description": "the bearer token; shown only this once"})


class TokenIn(ApiSchema):
    user_id = Id(MAX_INT_ID, metadata={"description": "whom the token acts for (default: you)"})
    name = Text(required=True, min=1, max=100)
    role = fields.String(validate=validate.OneOf(ROLES), metadata={"description": "at most the user's role"})
    expires_in_days = fields.Integer(strict=True, validate=validate.Range(min=1, max=3650))


class TokenQuery(PageQuery):
    user_id = Id(MAX_INT_ID, strict=False)
    revoked = fields.Boolean()


def _user_out(user: AdminUser) -> dict:
    return UserOut().dump({c: getattr(user, c) for c in UserOut._declared_fields} | {"role": user.role.value})


def _token_out(token: ApiToken, schema=TokenOut, **extra) -> dict:
    return schema().dump({c: getattr(token, c) for c in TokenOut._declared_fields}
                         | {"role": token.role.value, **extra})


@bp.get("/users")
@doc("List users", tag="Users and tokens", query=UserQuery, response=page_of(UserOut))
@require("admin")
def list_users():
    args = load_query(UserQuery())
    query = sa.select(AdminUser)
    if "active" in args:
        query = query.where(AdminUser.active.is_(args["active"]))
    return jsonify(keyset_page(query, AdminUser.id, args, lambda rows: [_user_out(u) for u in rows]))


@bp.post("/users")
@doc("Create a user", tag="Users and tokens", body=UserIn, response=UserOut, status=201, errors=(409,),
     idempotent=True)
@require("admin")
@idempotent
def create_user_():
    data = load_json(UserIn())
    user = create_user(data["email"], data["password"], data["role"])
    db.session.flush()
    audit("user.create", "user", user.id, {"role": user.role.value})
    db.session.commit()
    response = jsonify(_user_out(user))
    response.status_code = 201
    response.headers["Location"] = url_for("api.get_user", user_id=user.id)
    return response


def _user(user_id: int) -> AdminUser:
    user = db.session.get(AdminUser, user_id)
    if user is None:
        raise NotFound(f"no user {user_id}")
    return user


@bp.get(f"/users/{UID}")
@doc("Get a user", tag="Users and tokens", response=UserOut)
@require("admin")
def get_user(user_id: int):
    return jsonify(_user_out(_user(user_id)))


@bp.post(f"/users/{UID}/deactivate")
@doc("Deactivate a user (their session and tokens stop working)", tag="Users and tokens", response=UserOut,
     errors=(409,))
@require("admin")
def deactivate_user(user_id: int):
    user = _user(user_id)
    if user.id == current_principal().user.id:
        raise Conflict("you cannot deactivate yourself; ask another admin")
    if user.active:
        user.active = False
        audit("user.deactivate", "user", user.id)
        db.session.commit()
    return jsonify(_user_out(user))


@bp.get("/tokens")
@doc("List API tokens (never their secrets)", tag="Users and tokens", query=TokenQuery,
     response=page_of(TokenOut))
@require("admin")
def list_tokens():
    args = load_query(TokenQuery())
    query = sa.select(ApiToken)
    if "user_id" in args:
        query = query.where(ApiToken.user_id == args["user_id"])
    if "revoked" in args:
        query = query.where(ApiToken.revoked_at.is_not(None) if args["revoked"] else ApiToken.revoked_at.is_(None))
    return jsonify(keyset_page(query, ApiToken.id, args, lambda rows: [_token_out(t) for t in rows]))


@bp.post("/tokens")
@doc("Create an API token; the response holds its secret, once", tag="Users and tokens", body=TokenIn,
     response=NewTokenOut, status=201, errors=(409, 410), idempotent=True, description=(
         "With an `Idempotency-Key`, a replay does not show the secret again: it answers 410 "
         "(`/api/v1/problems/secret-shown-once`) with the token's other fields under `created`."))
@require("admin")
@idempotent
def create_token_():
    data = load_json(TokenIn())
    if "user_id" in data:
        user = db.session.get(AdminUser, data["user_id"])
        if user is None:
            raise ValidationFailed({"user_id": [f"no user {data['user_id']}"]})
    else:
        user = current_principal().user
    expires = utcnow().astimezone(UTC) + timedelta(days=data["expires_in_days"]) if "expires_in_days" in data else None
    token, secret = create_token(user, data["name"], data.get("role"), expires)
    db.session.flush()
    audit("token.create", "token", token.id, {"user_id": user.id, "role": token.role.value, "prefix": token.prefix})
    db.session.commit()
    withhold_from_replay("secret")
    response = jsonify(_token_out(token, NewTokenOut, secret=secret))
    response.status_code = 201
    return response


@bp.delete(f"/tokens/{KID}")
@doc("Revoke an API token", tag="Users and tokens", status=204, errors=(409,))
@require("admin")
def revoke_token(token_id: int):
    token = db.session.get(ApiToken, token_id)
    if token is None:
        raise NotFound(f"no token {token_id}")
    principal = current_principal()
    if principal.token is not None and principal.token.id == token.id:
        raise Conflict("this request is authenticated with that token; revoke it with another one")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        audit("token.revoke", "token", token.id, {"prefix": token.prefix})
        db.session.commit()
    return "", 204
