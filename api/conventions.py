"""Request/response helpers every endpoint module uses: JSON bodies, query strings, ETags, audit.

Handlers stay three lines: `data = load_json(Schema())` → service call → `dump(...)`.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from typing import Any

from flask import Response, current_app, request
from marshmallow import Schema, ValidationError, fields
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import RequestEntityTooLarge

from api.auth import current_principal
from core.accounts import record_audit
from core.errors import DomainError, ValidationFailed


class MalformedJson(DomainError):
    status = 400
    title = "Malformed JSON"


class UnsupportedMediaType(DomainError):
    status = 415
    title = "Unsupported media type"


class PreconditionFailed(DomainError):
    status = 412
    title = "Precondition failed"


# Text no field may hold: NUL and the other control characters (TAB, LF and CR are text) and
# unpaired UTF-16 surrogates, which no database stores and no mail may carry.
_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
FORBIDDEN_TEXT = "must not contain NUL or other control characters, nor unpaired surrogates"
MAX_DEPTH = 32  # nesting of a JSON body: the deepest real one (a segment filter) needs about 20


def json_body(*, optional: bool = False) -> Any:
    """The request body parsed as JSON: the one reader behind every API write.

    415 unless it is JSON (an empty body is None when `optional`), 413 beyond MAX_CONTENT_LENGTH,
    400 if it does not parse or nests deeper than MAX_DEPTH, 422 naming the field of any string
    with control characters or unpaired surrogates.
    """
    if optional and not request.content_length and not request.headers.get("Transfer-Encoding"):
        return None
    if not request.is_json:
        raise UnsupportedMediaType("send the body as JSON with 'Content-Type: application/json'")
    limit = request.max_content_length
    if limit is not None and request.content_length is not None and request.content_length > limit:
        raise RequestEntityTooLarge()
    raw = request.get_data(cache=True)  # raises 413 past the limit, also for a chunked body
    if optional and not raw.strip():
        return None
    try:
        # parse_constant: NaN and Infinity are not JSON, though Python's parser accepts them.
        data = json.loads(raw or b"null", parse_constant=_reject_constant)
    except RecursionError:
        raise MalformedJson(f"the body nests deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:
        raise MalformedJson(f"the body is not valid JSON: {exc}") from None
    check_text(data, "body")
    return data


def check_text(value: Any, path: str, depth: int = 0) -> None:
    """Refuse (422, naming the field) strings no field may hold, anywhere in a parsed body."""
    if depth > MAX_DEPTH:
        raise MalformedJson(f"the body nests deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        if _FORBIDDEN.search(value):
            raise ValidationFailed({path: [FORBIDDEN_TEXT]})
    elif isinstance(value, dict):
        for key, item in value.items():
            inner = f"{key}" if path == "body" else f"{path}.{key}"
            check_text(key, inner, depth + 1)
            check_text(item, inner, depth + 1)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            check_text(item, f"{path}[{i}]", depth + 1)


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a JSON value")


def load_json(schema: Schema, *, partial: bool = False, optional: bool = False) -> dict[str, Any]:
    """Parse the JSON body and load it through `schema` (422 with every field error).

    `optional`: a request without a body loads as `{}` (the schema's defaults).
    """
    data = json_body(optional=optional)
    if data is None and optional:
        data = {}
    if not isinstance(data, dict):
        raise ValidationError({"body": ["must be a JSON object"]})
    return schema.load(data, partial=partial)


def load_query(schema: Schema) -> dict[str, Any]:
    """Load the query string through `schema`; list fields take repeated parameters (`?tag=a&tag=b`)."""
    args: MultiDict = request.args
    data: dict[str, Any] = {}
    for name in args:
        field = schema.fields.get(name)
        data[name] = args.getlist(name) if isinstance(field, fields.List) else args.get(name)
        check_text(data[name], name)
    return schema.load(data)


def public_url(path: str) -> str:
    """An absolute URL for a path of ours: always on PUBLIC_BASE_URL, never on the request's `Host`,
    which the client chooses (a link to `Host: evil.example` would hand our tokens to that site)."""
    return current_app.config["PUBLIC_BASE_URL"] + path


def etag_for(*parts: Any) -> str:
    """A strong ETag from the values that change whenever the representation changes."""
    text = "|".join(p.isoformat() if isinstance(p, datetime) else str(p) for p in parts)
    return '"' + hashlib.sha256(text.encode()).hexdigest()[:32] + '"'


IF_MATCH_MAX = 200


def check_if_match(current_etag: str) -> None:
    """Honour `If-Match` on a write: a stale representation is a 412, not a lost update."""
    if_match = request.headers.get("If-Match")
    if if_match is None:
        return
    if len(if_match) > IF_MATCH_MAX:  # as documented (maxLength): refused, not compared
        raise ValidationError({"If-Match": [f"at most {IF_MATCH_MAX} characters"]})
    candidates = [c.strip() for c in if_match.split(",")]
    if "*" not in candidates and current_etag not in candidates and f"W/{current_etag}" not in candidates:
        raise PreconditionFailed("the resource changed since you read it; GET it again and reapply your change")


def with_etag(response: Response, etag: str) -> Response:
    response.headers["ETag"] = etag
    return response


def audit(action: str, object_type: str | None = None, object_id: Any = None, detail: dict | None = None) -> None:
    """Record who did what through the API; it commits with the change it describes.

    `detail` must never hold personal data (no addresses, no names): ids and field names only.
    """
    principal = current_principal()
    record_audit(action, actor_type=principal.kind if principal else "anonymous",
                 actor_id=(principal.token.id if principal.token else principal.user.id) if principal else None,
                 actor_label=principal.label if principal else None,
                 object_type=object_type, object_id=object_id, detail=detail, ip=request.remote_addr)
