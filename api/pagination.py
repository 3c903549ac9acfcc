"""Keyset (cursor) pagination: stable order by a unique key, O(limit) at any depth.

A cursor is the last row's key, base64-encoded; a tampered or foreign cursor is a 400, never a 500.
Usage: `page = keyset_page(select, Model.id, args, dump)`; `descending=True` for newest first.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlencode

import sqlalchemy as sa
from flask import request

from api.conventions import public_url
from api.schemas import MAX_ID
from core.errors import DomainError


class BadCursor(DomainError):
    status = 400
    title = "Bad cursor"


def encode_cursor(key: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"k": key}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        key = data["k"]
    except (ValueError, TypeError, KeyError, UnicodeDecodeError):
        raise BadCursor("the cursor is not one this API issued; start again without it") from None
    if not isinstance(key, int) or isinstance(key, bool) or not 0 <= key <= MAX_ID:
        raise BadCursor("the cursor is not one this API issued; start again without it")
    return key


def next_url(cursor: str) -> str:
    """This request's URL with the same filters and the new cursor, on PUBLIC_BASE_URL (never `Host`)."""
    args = [(k, v) for k, v in request.args.items(multi=True) if k != "cursor"]
    args.append(("cursor", cursor))
    return public_url(f"{request.path}?{urlencode(args)}")


def keyset_page(query: sa.Select, key: sa.ColumnElement, args: dict[str, Any],
                dump: Callable[[Sequence[Any]], list[dict]], *, descending: bool = False,
                key_of: Callable[[Any], int] = lambda row: row.id) -> dict[str, Any]:
    """Run one page of `query` ordered by `key` and return `{items, next}`."""
    from core.extensions import db

    limit = args["limit"]
    if args.get("cursor"):
        after = decode_cursor(args["cursor"])
        query = query.where(key < after if descending else key > after)
    query = query.order_by(key.desc() if descending else key.asc()).limit(limit + 1)
    rows = db.session.scalars(query).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": dump(rows), "next": next_url(encode_cursor(key_of(rows[-1]))) if more else None}
