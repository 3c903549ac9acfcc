"""Request/response helpers every endpoint module uses: JSON bodies, query strings, ETags, audit.

Handlers stay three lines: `data = load_json(Schema())` → service call → `dump(...)`.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from typing import Any

from flask import Response, request
from marshmallow import Schema, ValidationError, fields
from werkzeug.datastructures import MultiDict

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


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
MAX_BODY = 1_000_000  # a request body beyond 1 MB is certainly not a supporter or a segment


def json_body() -> Any:
    """The request body parsed as JSON; 415 unless it is JSON, 400 if it does not parse."""
    if not request.is_json:
        raise UnsupportedMediaType("send the body as JSON with 'Content-Type: application/json'")
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise MalformedJson(f"the body is larger than {MAX_BODY} bytes")
    raw = request.get_data(cache=True)
    try:
        # parse_constant: NaN and Infinity are not JSON, though Python's parser accepts them.
        data = json.loads(raw or b"null", parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise MalformedJson(f"the body is not valid JSON: {exc}") from None
    _check_strings(data, "body")
    return data


def _check_strings(value: Any, path: str) -> None:
    """Refuse text no database can store: NUL characters and unpaired UTF-16 surrogates."""
    if isinstance(value, str):
        if _UNSTORABLE.search(value):
            raise ValidationFailed({path: ["must not contain NUL characters or unpaired surrogates"]})
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_strings(key, path)
            _check_strings(item, f"{key}" if path == "body" else f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_strings(item, f"{path}[{i}]")


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a JSON value")


def load_json(schema: Schema, *, partial: bool = False) -> dict[str, Any]:
    """Parse the JSON body and load it through `schema` (422 with every field error)."""
    data = json_body()
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
    return schema.load(data)


def etag_for(*parts: Any) -> str:
    """A strong ETag from the values that change whenever the representation changes."""
    text = "|".join(p.isoformat() if isinstance(p, datetime) else str(p) for p in parts)
    return '"' + hashlib.sha256(text.encode()).hexdigest()[:32] + '"'


def check_if_match(current_etag: str) -> None:
    """Honour `If-Match` on a write: a stale representation is a 412, not a lost update."""
    if_match = request.headers.get("If-Match")
    if if_match is None:
        return
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
