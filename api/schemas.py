"""Base marshmallow schemas and fields shared by every endpoint module (campaigns too).

`ApiSchema` rejects unknown fields (422 naming them); `problem_schema` and `page_of()` describe the
error and list shapes for the OpenAPI document.
"""

from __future__ import annotations

import re
from functools import cache

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from core.db import EARLIEST_YEAR, LATEST_YEAR, within_bounds

# Database ids are positive; bigger numbers than the column holds cannot name a row (and PostgreSQL
# would raise an overflow instead of finding nothing). BigInteger keys (supporters, consent events,
# audit events): 64 bits; Integer keys (tags, segments, users, tokens): 32 bits.
MAX_ID = 2**63 - 1
MAX_INT_ID = 2**31 - 1
ID_RULE = f"int(min=1, max={MAX_ID})"  # URL converter: f"/supporters/<{ID_RULE}:supporter_id>"
INT_ID_RULE = f"int(min=1, max={MAX_INT_ID})"  # for the 32-bit keys: f"/tags/<{INT_ID_RULE}:tag_id>"

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class ApiSchema(Schema):
    """Strict: unknown fields are errors, never silently ignored."""

    class Meta:
        unknown = RAISE


class Text(fields.String):
    """A single-line string: trimmed, without control characters, within `max` characters."""

    def __init__(self, *, max: int, min: int = 0, **kwargs):  # noqa: A002 - mirrors validate.Length
        kwargs.setdefault("validate", [])
        if not isinstance(kwargs["validate"], list):
            kwargs["validate"] = [kwargs["validate"]]
        kwargs["validate"] = [validate.Length(min=min, max=max), *kwargs["validate"]]
        super().__init__(**kwargs)
        self.metadata.setdefault("maxLength", max)

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if _CONTROL.search(text):
            raise ValidationError("must not contain control characters")
        return text.strip()


class Time(fields.AwareDateTime):
    """An ISO 8601 time with a zone (naive ones take `default_timezone`), within the years 1900–2200."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str) and len(value) > 40:
            raise ValidationError("not an ISO 8601 date-time")
        parsed = super()._deserialize(value, attr, data, **kwargs)
        if not within_bounds(parsed):
            raise ValidationError(f"must lie between the years {EARLIEST_YEAR} and {LATEST_YEAR}")
        return parsed


class Id(fields.Integer):
    """A row id in a body or query; `maximum=MAX_INT_ID` for the 32-bit keys."""

    def __init__(self, maximum: int = MAX_ID, **kwargs):
        kwargs.setdefault("strict", True)
        kwargs.setdefault("validate", validate.Range(min=1, max=maximum))
        super().__init__(**kwargs)


class FieldError(ApiSchema):
    field = fields.String(required=True, metadata={"description": "JSON path of the offending input"})
    message = fields.String(required=True)


class Problem(Schema):
    """RFC 9457 problem details."""

    type = fields.String(required=True, metadata={"example": "/api/v1/problems/validation"})
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String()
    errors = fields.List(fields.Nested(FieldError), metadata={"description": "validation errors only"})
    created = fields.Dict(metadata={"description": "secret-shown-once only (410): what the first request "
                                                   "created, without its secret"})


@cache
def page_of(item_schema: type[Schema]) -> type[Schema]:
    """The list shape `{items: [...], next: url|null}` for one item schema (one class per item type)."""
    name = item_schema.__name__.removesuffix("Schema") + "Page"
    return type(name, (Schema,), {
        "items": fields.List(fields.Nested(item_schema), required=True),
        "next": fields.String(required=True, allow_none=True,
                              metadata={"description": "URL of the next page; null on the last page"}),
    })


class PageQuery(ApiSchema):
    """`limit` and `cursor`, shared by every list operation."""

    limit = fields.Integer(load_default=50, strict=False, validate=validate.Range(min=1, max=500))
    cursor = fields.String(validate=validate.Length(max=200),
                           metadata={"description": "opaque, from the `next` link of the previous page"})
