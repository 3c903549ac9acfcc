"""`Idempotency-Key` on POST: a retried request gets the first response, not a second write.

The key is scoped to the caller (token or user). The first request claims the key in its own
transaction before it runs, so a concurrent duplicate sees the claim and gets 409; a reuse of the
key with a different body gets 422; a replay carries `Idempotent-Replayed: true`. Keys live 24 h.
Server errors release the key so the client may retry.

A response that carries a secret (`withhold_from_replay("secret")`: a new API token) is stored
without it, and its replay is a 410 problem saying the secret was shown once: the plaintext never
reaches the database.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from datetime import timedelta

import sqlalchemy as sa
from flask import Response, request
from sqlalchemy.exc import IntegrityError

from api.auth import current_principal
from api.errors import problem
from api.models import IdempotencyKey
from core.db import utcnow
from core.extensions import db

KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,200}$")  # printable ASCII, no spaces
LIFETIME = timedelta(hours=24)
WITHHELD_KEY = "api.idempotency.withheld"


def withhold_from_replay(*fields: str) -> None:
    """Declare that this response's top-level `fields` are secrets: never stored, never replayed."""
    request.environ[WITHHELD_KEY] = fields


def _scope() -> str:
    principal = current_principal()
    return f"token:{principal.token.id}" if principal.token else f"user:{principal.user.id}"


def _request_hash() -> str:
    digest = hashlib.sha256()
    digest.update(f"{request.method} {request.path}\n".encode())
    digest.update(request.get_data(cache=True))
    return digest.hexdigest()


def idempotent(view):
    """Decorator for POST views (inside `require`, so the caller is known)."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        key = request.headers.get("Idempotency-Key")
        if key is None:
            return view(*args, **kwargs)
        if not KEY_PATTERN.match(key):
            return problem(400, "Bad Idempotency-Key", "use 1–200 printable ASCII characters, e.g. a UUID",
                           type_="/api/v1/problems/idempotency")
        scope, fingerprint = _scope(), _request_hash()
        db.session.execute(sa.delete(IdempotencyKey).where(IdempotencyKey.created_at < utcnow() - LIFETIME))
        row = db.session.scalar(sa.select(IdempotencyKey).where(IdempotencyKey.scope == scope,
                                                                 IdempotencyKey.key == key))
        if row is None:
            row = IdempotencyKey(scope=scope, key=key, request_hash=fingerprint)
            db.session.add(row)
            try:
                db.session.commit()
            except IntegrityError:  # a concurrent request claimed it first
                db.session.rollback()
                return problem(409, "Request in progress", "a request with this Idempotency-Key is still running",
                               type_="/api/v1/problems/idempotency")
        else:
            db.session.commit()
            if row.request_hash != fingerprint:
                return problem(422, "Idempotency-Key reused", "this key was used for a different request",
                               type_="/api/v1/problems/idempotency")
            if row.status_code is None:
                return problem(409, "Request in progress", "a request with this Idempotency-Key is still running",
                               type_="/api/v1/problems/idempotency")
            if row.secret_withheld:
                return _secret_gone(row)
            replay = Response(row.response_body or "", status=row.status_code,
                              mimetype="application/problem+json" if row.status_code >= 400 else "application/json")
            if row.location:
                replay.headers["Location"] = row.location
            replay.headers["Idempotent-Replayed"] = "true"
            return replay

        row_id = row.id
        try:
            response = view(*args, **kwargs)
        except Exception:
            db.session.rollback()
            db.session.execute(sa.delete(IdempotencyKey).where(IdempotencyKey.id == row_id))
            db.session.commit()
            raise
        response = _as_response(response)
        if response.status_code >= 500:
            db.session.execute(sa.delete(IdempotencyKey).where(IdempotencyKey.id == row_id))
        else:
            body, withheld = _storable(response)
            db.session.execute(sa.update(IdempotencyKey).where(IdempotencyKey.id == row_id).values(
                status_code=response.status_code, response_body=body, secret_withheld=withheld,
                location=response.headers.get("Location")))
        db.session.commit()
        return response

    return wrapper


def _storable(response: Response) -> tuple[str, bool]:
    """The body to keep for replays, without the fields the view declared secret."""
    secrets = request.environ.get(WITHHELD_KEY)
    if not secrets:
        return response.get_data(as_text=True), False
    try:
        body = json.loads(response.get_data())
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return "", True
    return json.dumps({k: v for k, v in body.items() if k not in secrets}), True


def _secret_gone(row: IdempotencyKey) -> Response:
    try:
        created = json.loads(row.response_body or "null")
    except ValueError:
        created = None
    response = problem(410, "Secret shown once",
                       "the first request with this Idempotency-Key succeeded and its response held a secret, "
                       "which is shown only once; if it was lost, revoke what was created and create a new one",
                       type_="/api/v1/problems/secret-shown-once", created=created)
    if row.location:
        response.headers["Location"] = row.location
    response.headers["Idempotent-Replayed"] = "true"
    return response


def _as_response(value) -> Response:
    from flask import current_app

    return current_app.make_response(value)
