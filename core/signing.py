"""Signed, purpose-bound tokens for links in mails (confirm, preferences, unsubscribe, act, r)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer


class InvalidToken(Exception):
    """The token is tampered, for another purpose, or malformed."""


class ExpiredToken(InvalidToken):
    """The token was valid but is older than allowed; `payload` holds what it carried."""

    def __init__(self, payload: Any = None):
        super().__init__("expired")
        self.payload = payload


def _serializer(purpose: str) -> URLSafeTimedSerializer:
    return _cached_serializer(current_app.config["SECRET_KEY"], purpose)


@lru_cache(maxsize=64)
def _cached_serializer(secret_key: str | bytes, purpose: str) -> URLSafeTimedSerializer:
    # The purpose is the salt: a token made for "unsubscribe" never verifies as "confirm". One
    # serializer per key and purpose (a mail carries two tokens; building them costs ~15 %).
    return URLSafeTimedSerializer(secret_key, salt=f"supporters/{purpose}")


def make_token(purpose: str, payload: Any) -> str:
    return _serializer(purpose).dumps(payload)


def read_token(purpose: str, token: str, max_age: int | None = None) -> Any:
    """Return the payload, or raise InvalidToken / ExpiredToken."""
    serializer = _serializer(purpose)
    if len(token) > 2000:
        raise InvalidToken("too long")
    try:
        return serializer.loads(token, max_age=max_age)
    except SignatureExpired as exc:
        try:
            payload = serializer.load_payload(exc.payload) if exc.payload is not None else None
        except BadSignature:
            payload = None
        raise ExpiredToken(payload) from None
    except BadSignature:
        raise InvalidToken("bad signature") from None
