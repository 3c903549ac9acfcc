"""Services for managing supporters and tags from the API (no `request` here; callers commit).

Tag membership is written only through `supporter_tags` with set-based SQL; on PostgreSQL the
`supporters.tag_ids` index follows through the table's trigger (migration 0003).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from core import events, stopmarks
from core.addresses import parse_address
from core.db import utcnow
from core.errors import Conflict, NotFound, ValidationFailed
from core.extensions import db
from core.headers import check_header_text
from supporters.models import (
    ConsentAction,
    ConsentEvent,
    Supporter,
    SupporterKind,
    SupporterStatus,
    Suppression,
    Tag,
    email_hash,
    normalize_email,
    supporter_tags,
)

CONSENT_PURPOSE = "campaigns"
PROFILE_FIELDS = ("name", "kind", "language", "country", "timezone", "asks_per_month", "paused_until")


def _valid_address(email: str, field: str = "email") -> str:
    return parse_address(email, field)


def resolve_tags(names: list[str], field: str = "tags") -> list[Tag]:
    """Tags by name; every unknown name is a validation error naming it."""
    wanted = list(dict.fromkeys(names))
    found = {t.name: t for t in db.session.scalars(sa.select(Tag).where(Tag.name.in_(wanted)))} if wanted else {}
    missing = [n for n in wanted if n not in found]
    if missing:
        raise ValidationFailed({field: [f"unknown tag {n!r}" for n in missing]})
    return [found[n] for n in wanted]


def new_referral_code() -> str:
    return secrets.token_urlsafe(9)  # 12 characters, 72 bits


def create_supporter(data: dict[str, Any]) -> Supporter:
    """Create a supporter; with consent evidence it is active, without it pending (double opt-in).

    The caller commits and, for a pending supporter, enqueues the confirmation mail after the commit.
    """
    address = _valid_address(data["email"])
    check_header_text({"name": data.get("name")})  # a name reaches subjects through {{first_name}}
    normalized = normalize_email(address)
    if db.session.scalar(sa.select(Supporter.id).where(Supporter.email_normalized == normalized)) is not None:
        raise Conflict("a supporter with this email address already exists")
    if db.session.scalar(sa.select(Suppression.id).where(Suppression.email_hash == email_hash(normalized))):
        raise Conflict("this address is on the suppression list (unsubscribed, erased or complained); "
                       "the person can rejoin through the join form")
    referred_by_id = data.get("referred_by_id")
    if referred_by_id is not None and db.session.get(Supporter, referred_by_id) is None:
        raise ValidationFailed({"referred_by_id": [f"no supporter {referred_by_id}"]})
    tags = resolve_tags(data.get("tags") or [])
    evidence = data.get("consent")
    now = utcnow()
    if evidence and evidence["obtained_at"] > now + timedelta(minutes=5):
        raise ValidationFailed({"consent.obtained_at": ["must not be in the future"]})
    supporter = Supporter(
        email=address, email_normalized=normalized, name=data.get("name"),
        kind=SupporterKind(data.get("kind") or SupporterKind.FAN), language=data.get("language") or "en",
        country=data.get("country"), timezone=data.get("timezone"), referred_by_id=referred_by_id,
        asks_per_month=data.get("asks_per_month"), referral_code=new_referral_code(), source="api",
        status=SupporterStatus.ACTIVE if evidence else SupporterStatus.PENDING,
        confirmed_at=now if evidence else None,
    )
    db.session.add(supporter)
    if evidence:
        text = evidence.get("text")
        db.session.add(ConsentEvent(
            supporter=supporter, purpose=CONSENT_PURPOSE, action=ConsentAction.GRANTED, method="api",
            occurred_at=evidence["obtained_at"], text_version=evidence.get("text_version"),
            text_hash=hashlib.sha256(text.encode()).hexdigest() if text else None, note=evidence["how"]))
    db.session.flush()
    if tags:
        db.session.execute(supporter_tags.insert(), [{"tag_id": t.id, "supporter_id": supporter.id} for t in tags])
    # Added through the API: pending ones are "joined"; with consent evidence they are confirmed at once.
    data_out = {"kind": supporter.kind.value, "language": supporter.language, "source": "api"}
    if evidence:
        events.emit("supporter.confirmed", {"email": supporter.email, "name": supporter.name, **data_out,
                                            "referred_by_id": referred_by_id}, supporter.id)
    else:
        events.emit("supporter.joined", data_out, supporter.id)
    return supporter


def update_supporter(supporter: Supporter, data: dict[str, Any]) -> list[str]:
    """Change profile fields; returns the names of the fields that changed (for the audit trail)."""
    if supporter.status is SupporterStatus.ERASED:
        raise Conflict("this supporter was erased; there is nothing left to change")
    check_header_text({"name": data.get("name")})
    changed = []
    for field in PROFILE_FIELDS:
        if field in data and getattr(supporter, field) != data[field]:
            value = data[field]
            if field == "kind":
                value = SupporterKind(value)
            if field == "language" and value is None:
                raise ValidationFailed({"language": ["must not be null"]})
            if field == "kind" and value is None:
                raise ValidationFailed({"kind": ["must not be null"]})
            setattr(supporter, field, value)
            changed.append(field)
    if changed:
        supporter.updated_at = utcnow()
        events.emit("supporter.updated", {"changed": {f: getattr(supporter, f) for f in changed}}, supporter.id)
    if "paused_until" in changed:  # a pause stops mail at once, like the supporter's own (core.stopmarks)
        if supporter.paused_until is not None and supporter.paused_until > utcnow():
            stopmarks.stop(supporter.id, "paused", until=supporter.paused_until)
        else:
            stopmarks.clear(supporter.id)
    return changed


def tag_members(tag_ids: list[int], where: sa.ColumnElement[bool]) -> int:
    """Add every tag to every supporter matching `where` (set-based); returns rows added."""
    added = 0
    for tag_id in tag_ids:
        already = sa.exists().where(supporter_tags.c.tag_id == tag_id, supporter_tags.c.supporter_id == Supporter.id)
        select = (sa.select(sa.literal(tag_id, sa.Integer), Supporter.id)
                  .where(where, Supporter.status != SupporterStatus.ERASED, ~already))
        added += _written(supporter_tags.insert().from_select(["tag_id", "supporter_id"], select))
    return added


def _written(statement) -> int:
    """Run an INSERT/DELETE and return how many rows it wrote.

    psycopg reports no rowcount for these statements once the tag trigger has run (-1), so on
    PostgreSQL the statement becomes a data-modifying CTE whose RETURNING rows are counted.
    """
    if db.session.get_bind().dialect.name == "postgresql":
        cte = statement.returning(sa.literal(1)).cte("written")
        return db.session.scalar(sa.select(sa.func.count()).select_from(cte))
    return max(db.session.execute(statement).rowcount or 0, 0)


def untag_members(tag_ids: list[int], where: sa.ColumnElement[bool]) -> int:
    if not tag_ids:
        return 0
    return _written(supporter_tags.delete().where(
        supporter_tags.c.tag_id.in_(tag_ids),
        supporter_tags.c.supporter_id.in_(sa.select(Supporter.id).where(where))))


def get_supporter(supporter_id: int) -> Supporter:
    supporter = db.session.get(Supporter, supporter_id)
    if supporter is None:
        raise NotFound(f"no supporter {supporter_id}")
    return supporter


def create_tag(data: dict[str, Any]) -> Tag:
    check_header_text({"name": data.get("name")})  # tag names may be shown in mails and headers
    _unique_tag_name(data["name"])
    tag = Tag(**data)
    db.session.add(tag)
    try:
        with db.session.begin_nested():  # a concurrent create of the same name loses cleanly
            db.session.flush()
    except IntegrityError:
        raise Conflict(f"a tag named {data['name']!r} already exists") from None
    return tag


def update_tag(tag: Tag, data: dict[str, Any]) -> list[str]:
    check_header_text({"name": data.get("name")})
    if "name" in data and data["name"] != tag.name:
        _unique_tag_name(data["name"], tag.id)
    changed = [k for k, v in data.items() if getattr(tag, k) != v]
    for key in changed:
        setattr(tag, key, data[key])
    return changed


def _unique_tag_name(name: str, own_id: int | None = None) -> None:
    # SQLite's lower() folds ASCII only, so compare the exact name too (the unique index is exact).
    same = sa.or_(Tag.name == name, sa.func.lower(Tag.name) == name.lower())
    clash = db.session.scalar(sa.select(Tag.id).where(same, Tag.id != (own_id or 0)))
    if clash is not None:
        raise Conflict(f"a tag named {name!r} already exists")


def consent_state(supporter: Supporter) -> dict[str, str]:
    """The latest consent action per purpose."""
    state: dict[str, str] = {}
    for event in supporter.consents:
        state[event.purpose] = event.action.value
    return state
