"""The audience filter language: small, validated JSON compiled to SQLAlchemy expressions.

A node is one of
  {"all": [node, …]}   {"any": [node, …]}   {"not": node}
  {"field": NAME, "op": OP, "value": VALUE}
Never string-built SQL: every value becomes a bound parameter. Invalid input raises
`ValidationFailed` whose field is the JSON path of the offending node (e.g. `filter.all[1].op`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm

from core.db import EARLIEST_YEAR, LATEST_YEAR, within_bounds
from core.errors import ValidationFailed
from supporters.models import (
    LANGUAGES,
    ConsentAction,
    ConsentEvent,
    Supporter,
    SupporterKind,
    SupporterStatus,
    Tag,
    supporter_tags,
)

MAX_DEPTH = 8
MAX_NODES = 100
MAX_LIST = 500

_EQUALITY_OPS = ("eq", "ne", "in", "not_in")
_ORDER_OPS = ("gt", "gte", "lt", "lte")


class _Compiler:
    def __init__(self):
        self.nodes = 0

    def fail(self, path: str, message: str):
        raise ValidationFailed({path: [message]})

    def compile(self, node: Any, path: str, depth: int = 0) -> sa.ColumnElement[bool]:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            self.fail(path, f"a filter may have at most {MAX_NODES} nodes")
        if depth > MAX_DEPTH:
            self.fail(path, f"a filter may nest at most {MAX_DEPTH} levels")
        if not isinstance(node, dict):
            self.fail(path, "must be an object")
        keys = set(node)
        if keys & {"all", "any"}:
            if len(keys) != 1:
                self.fail(path, "'all'/'any' must be the only key of its node")
            key = next(iter(keys))
            items = node[key]
            if not isinstance(items, list) or not items:
                self.fail(f"{path}.{key}", "must be a non-empty list")
            parts = [self.compile(item, f"{path}.{key}[{i}]", depth + 1) for i, item in enumerate(items)]
            return sa.and_(*parts) if key == "all" else sa.or_(*parts)
        if "not" in keys:
            if len(keys) != 1:
                self.fail(path, "'not' must be the only key of its node")
            return sa.not_(self.compile(node["not"], f"{path}.not", depth + 1))
        if "field" in keys:
            unknown = keys - {"field", "op", "value"}
            if unknown:
                self.fail(f"{path}.{sorted(unknown)[0]}", "unknown key")
            field = node["field"]
            handler = FIELDS.get(field) if isinstance(field, str) else None
            if handler is None:
                self.fail(f"{path}.field", f"unknown field {field!r}; known: {', '.join(FIELDS)}")
            return handler(self, node.get("op"), node.get("value"), path)
        self.fail(path, "expected one of the keys all, any, not, field")


def _choice_field(column, allowed: tuple[str, ...] | None):
    def compile_(c: _Compiler, op, value, path):
        if op not in _EQUALITY_OPS:
            c.fail(f"{path}.op", f"unknown operator {op!r} for this field; use one of {', '.join(_EQUALITY_OPS)}")
        values = value if op in ("in", "not_in") else [value]
        if op in ("in", "not_in") and (not isinstance(value, list) or not value or len(value) > MAX_LIST):
            c.fail(f"{path}.value", f"must be a non-empty list of at most {MAX_LIST} values")
        for v in values:
            if not isinstance(v, str) or (allowed is not None and v not in allowed) or len(v) > 64:
                hint = f"; one of {', '.join(allowed)}" if allowed else ""
                c.fail(f"{path}.value", f"invalid value {v!r}{hint}")
        return {"eq": column == value, "ne": column != value, "in": column.in_(values),
                "not_in": column.not_in(values)}[op]
    return compile_


def _tag_ids(c: _Compiler, value, path) -> list[int]:
    names = value if isinstance(value, list) else [value]
    if not names or len(names) > MAX_LIST or not all(isinstance(n, str | int) and not isinstance(n, bool) for n in names):
        c.fail(f"{path}.value", "must be a tag name or id, or a non-empty list of them")
    from core.extensions import db

    ids = {n for n in names if isinstance(n, int)}
    if any(not 1 <= i <= 2**31 - 1 for i in ids):  # tags.id is a 32-bit key
        c.fail(f"{path}.value", "a tag id must be between 1 and 2147483647")
    by_name = [n for n in names if isinstance(n, str)]
    found = dict(db.session.execute(sa.select(Tag.name, Tag.id).where(Tag.name.in_(by_name))).all()) if by_name else {}
    missing = [n for n in by_name if n not in found]
    if ids:
        known = set(db.session.scalars(sa.select(Tag.id).where(Tag.id.in_(ids))))
        missing += [i for i in ids if i not in known]
    if missing:
        c.fail(f"{path}.value", f"unknown tag {missing[0]!r}")
    return sorted(ids | set(found.values()))


def _tagged(ids: list[int]) -> sa.ColumnElement[bool]:
    # IN (subquery) rather than a correlated EXISTS: SQLite then reads the tag's range of the
    # WITHOUT ROWID (tag_id, supporter_id) key once and looks supporters up by primary key.
    return Supporter.id.in_(sa.select(supporter_tags.c.supporter_id).where(supporter_tags.c.tag_id.in_(ids)))


def _has_tag(tag_id: int) -> sa.ColumnElement[bool]:
    return _tagged([tag_id])


def _on_postgresql() -> bool:
    from core.extensions import db

    return db.session.get_bind().dialect.name == "postgresql"


def _tags(c: _Compiler, op, value, path):
    ops = ("has", "has_any", "has_all", "has_none")
    if op not in ops:
        c.fail(f"{path}.op", f"unknown operator {op!r} for tags; use one of {', '.join(ops)}")
    ids = _tag_ids(c, value, path)
    if _on_postgresql():
        # The trigger-maintained integer[] with its GIN index (see supporters.models): one bitmap
        # scan instead of a semi-join; bench/api.py measures the two forms against each other.
        array = sa.cast(sa.literal(ids, sa.ARRAY(sa.Integer)), sa.ARRAY(sa.Integer))
        column = Supporter.tag_ids.expression
        if op in ("has", "has_any"):
            return column.op("&&", is_comparison=True)(array) if len(ids) > 1 else column.op("@>", is_comparison=True)(array)
        if op == "has_all":
            return column.op("@>", is_comparison=True)(array)
        return sa.not_(sa.func.coalesce(column.op("&&", is_comparison=True)(array), sa.false()))
    if op in ("has", "has_any"):
        return _tagged(ids)
    if op == "has_all":
        return sa.and_(*[_has_tag(i) for i in ids])
    return sa.not_(_tagged(ids))


def _parse_datetime(c: _Compiler, value, path) -> datetime:
    if not isinstance(value, str) or len(value) > 40:
        c.fail(f"{path}.value", "must be an ISO 8601 date or date-time")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        c.fail(f"{path}.value", f"not an ISO 8601 date or date-time: {value!r}")
    if not within_bounds(parsed):  # also at use: a segment saved before this check gives a 422, not a 500
        c.fail(f"{path}.value", f"must lie between the years {EARLIEST_YEAR} and {LATEST_YEAR}")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _joined(c: _Compiler, op, value, path):
    if op == "between":
        if not isinstance(value, list) or len(value) != 2:
            c.fail(f"{path}.value", "must be a list of two dates")
        start, end = (_parse_datetime(c, v, path) for v in value)
        return Supporter.created_at.between(start, end)
    if op not in ("before", "after"):
        c.fail(f"{path}.op", f"unknown operator {op!r} for joined; use before, after or between")
    when = _parse_datetime(c, value, path)
    return Supporter.created_at < when if op == "before" else Supporter.created_at >= when


def _number_field(column, minimum: float, maximum: float):
    def compile_(c: _Compiler, op, value, path):
        ops = {"gt": column > value, "gte": column >= value, "lt": column < value, "lte": column <= value,
               "eq": column == value} if isinstance(value, int | float) and not isinstance(value, bool) else None
        if op not in (*_ORDER_OPS, "eq"):
            c.fail(f"{path}.op", f"unknown operator {op!r}; use one of gt, gte, lt, lte, eq")
        if ops is None or not (minimum <= value <= maximum):
            c.fail(f"{path}.value", f"must be a number between {minimum:g} and {maximum:g}")
        return ops[op]
    return compile_


_PURPOSE_MAX = 40


def _referrals(c: _Compiler, op, value, path):
    """How many supporters this one brought (people who joined through the personal link)."""
    referred = sa.orm.aliased(Supporter)
    count = (sa.select(sa.func.count()).select_from(referred)
             .where(referred.referred_by_id == Supporter.id).scalar_subquery())
    return _number_field(count, 0, 1e9)(c, op, value, path)


def _consent(c: _Compiler, op, value, path):
    """Whether the latest consent event for a purpose grants it (granted/confirmed, not withdrawn)."""
    if op not in ("given", "not_given"):
        c.fail(f"{path}.op", f"unknown operator {op!r} for consent; use given or not_given")
    if not isinstance(value, str) or not value or len(value) > _PURPOSE_MAX:
        c.fail(f"{path}.value", f"must be a purpose name of at most {_PURPOSE_MAX} characters")
    latest = (sa.select(ConsentEvent.action)
              .where(ConsentEvent.supporter_id == Supporter.id, ConsentEvent.purpose == value)
              .order_by(ConsentEvent.id.desc()).limit(1).scalar_subquery())
    given = latest.in_([ConsentAction.GRANTED.value, ConsentAction.CONFIRMED.value])
    return given if op == "given" else sa.not_(sa.func.coalesce(given, sa.false()))


FIELDS = {
    "status": _choice_field(Supporter.status, tuple(s.value for s in SupporterStatus)),
    "kind": _choice_field(Supporter.kind, tuple(k.value for k in SupporterKind)),
    "language": _choice_field(Supporter.language, LANGUAGES),
    "country": _choice_field(Supporter.country, None),
    "tags": _tags,
    "joined": _joined,
    "engagement": _number_field(Supporter.engagement_score, 0, 1e9),
    "referrals": _referrals,
    "consent": _consent,
}

# Operators per field, for documentation and the OpenAPI description.
OPERATORS = {
    "status": _EQUALITY_OPS, "kind": _EQUALITY_OPS, "language": _EQUALITY_OPS, "country": _EQUALITY_OPS,
    "tags": ("has", "has_any", "has_all", "has_none"), "joined": ("before", "after", "between"),
    "engagement": (*_ORDER_OPS, "eq"), "referrals": (*_ORDER_OPS, "eq"), "consent": ("given", "not_given"),
}


def register_field(name: str, handler, operators: tuple[str, ...]) -> None:
    """Let a higher layer add a condition (e.g. campaigns' `survey_answer`) without an upward import.

    `handler(compiler, op, value, path)` returns a WHERE clause over `Supporter` and reports bad
    input through `compiler.fail(path, message)`.
    """
    FIELDS[name] = handler
    OPERATORS[name] = operators


def compile_filter(definition: Any, path: str = "filter") -> sa.ColumnElement[bool]:
    """Validate a filter definition and return a WHERE clause over `Supporter`."""
    return _Compiler().compile(definition, path)


def _driving_tag(definition: Any) -> tuple[Any, list] | None:
    """For an `all` (or a lone condition) holding a one-tag `has`: that condition and the others."""
    items = definition["all"] if isinstance(definition, dict) and set(definition) == {"all"} else [definition]
    if not isinstance(items, list):
        return None
    for i, item in enumerate(items):
        if (isinstance(item, dict) and item.get("field") == "tags" and item.get("op") in ("has", "has_any", "has_all")
                and (not isinstance(item.get("value"), list) or len(item["value"]) == 1)):
            return item, items[:i] + items[i + 1:]
    return None


def count_matching(definition: Any, path: str = "filter") -> int:
    """How many supporters match a definition (validated like `compile_filter`).

    On SQLite a one-tag condition at the top drives the count from the tag's range of the
    WITHOUT ROWID (tag_id, supporter_id) key, joined to supporters by primary key: the form a
    person would write by hand (bench/api.py), where `IN (subquery)` first copies the tag's ids
    into a temporary index (~1.4x). PostgreSQL counts through the GIN-indexed tag array.
    """
    from core.extensions import db

    where = compile_filter(definition, path)  # validates the whole tree; errors carry its paths
    split = None if _on_postgresql() else _driving_tag(definition)
    if split is None:
        return db.session.scalar(sa.select(sa.func.count()).select_from(Supporter).where(where))
    condition, rest = split
    tag_id = _tag_ids(_Compiler(), condition["value"], path)[0]
    others = _Compiler().compile({"all": rest}, path) if rest else sa.true()
    return db.session.scalar(
        sa.select(sa.func.count())
        .select_from(supporter_tags.join(Supporter, Supporter.id == supporter_tags.c.supporter_id))
        .where(supporter_tags.c.tag_id == tag_id, others))
