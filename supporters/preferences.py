"""Preferences and leaving: what a supporter hears about and how often, and withdrawing consent."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from flask import current_app

from core import events, metrics, stopmarks
from core.db import utcnow
from core.errors import ValidationFailed
from core.extensions import db
from core.signing import InvalidToken, read_token
from supporters.consent import PURPOSE, Requester
from supporters.models import (
    LANGUAGES,
    ConsentAction,
    ConsentEvent,
    Supporter,
    SupporterStatus,
    Tag,
    supporter_tags,
)


def supporter_from_token(purpose: str, token: str) -> Supporter:
    """The supporter of a preferences/unsubscribe link; raises InvalidToken (erased counts as unknown)."""
    payload = read_token(purpose, token)
    if not isinstance(payload, dict) or not isinstance(payload.get("s"), int):
        raise InvalidToken("malformed")
    supporter = db.session.get(Supporter, payload["s"])
    if supporter is None or supporter.status is SupporterStatus.ERASED:
        raise InvalidToken("no such supporter")
    return supporter


def update_preferences(supporter: Supporter, *, name: str | None, language: str, interest_ids: list[int],
                       asks_per_month: int | None, paused_until: datetime | None) -> None:
    """Apply the preferences form and commit. Only public interests are touched; tags the company
    assigned itself stay. `asks_per_month` may only lower the company default (None = default)."""
    default = current_app.config["DEFAULT_ASKS_PER_MONTH"]
    errors = {}
    if language not in LANGUAGES:
        errors["language"] = [f"must be one of {', '.join(LANGUAGES)}"]
    if asks_per_month is not None and not 1 <= asks_per_month <= default:
        errors["asks_per_month"] = [f"must be between 1 and {default}"]
    if name is not None and len(name) > 200:
        errors["name"] = ["must be at most 200 characters"]
    if errors:
        raise ValidationFailed(errors)
    before = {"name": supporter.name, "language": supporter.language, "asks_per_month": supporter.asks_per_month,
              "paused_until": supporter.paused_until}
    supporter.name = (name or "").strip() or None
    supporter.language = language
    supporter.asks_per_month = None if asks_per_month in (None, default) else asks_per_month
    if paused_until is not None and paused_until > utcnow():
        stopmarks.stop(supporter.id, "paused", until=paused_until)
    elif supporter.paused_until is not None:
        stopmarks.clear(supporter.id)
    supporter.paused_until = paused_until
    public_ids = sa.select(Tag.id).where(Tag.public.is_(True)).scalar_subquery()
    removed = db.session.execute(supporter_tags.delete().where(
        supporter_tags.c.supporter_id == supporter.id, supporter_tags.c.tag_id.in_(public_ids),
        supporter_tags.c.tag_id.not_in(interest_ids or [-1]))).rowcount
    current = set(db.session.scalars(sa.select(supporter_tags.c.tag_id)
                                     .where(supporter_tags.c.supporter_id == supporter.id)))
    new = [tag_id for tag_id in interest_ids if tag_id not in current]
    if new:
        db.session.execute(supporter_tags.insert(), [{"tag_id": t, "supporter_id": supporter.id} for t in new])
    supporter.updated_at = utcnow()
    changed = {k: getattr(supporter, k) for k, v in before.items() if getattr(supporter, k) != v}
    if new or removed:
        changed["interests"] = sorted(set(interest_ids))  # the public tag ids chosen now
    if changed:
        events.emit("supporter.updated", {"changed": changed}, supporter.id)
    db.session.commit()


def withdraw(supporter_id: int, *, method: str, requester: Requester = Requester()) -> Supporter | None:
    """Withdraw consent for "campaigns" and leave, at once; idempotent (no second ledger entry)."""
    supporter = db.session.scalar(sa.select(Supporter).where(Supporter.id == supporter_id).with_for_update())
    if supporter is None or supporter.status is SupporterStatus.ERASED:
        db.session.rollback()
        return None
    if supporter.status in (SupporterStatus.ACTIVE, SupporterStatus.PENDING):
        now = utcnow()
        supporter.status = SupporterStatus.UNSUBSCRIBED
        supporter.unsubscribed_at = now
        db.session.add(ConsentEvent(supporter=supporter, purpose=PURPOSE, action=ConsentAction.WITHDRAWN,
                                    method=method, occurred_at=now, ip=requester.ip,
                                    user_agent=(requester.user_agent or "")[:400] or None))
        stopmarks.stop(supporter.id, "unsubscribed")  # written by the commit, before we answer
        events.emit("supporter.unsubscribed", {"method": method}, supporter.id, occurred_at=now)
        events.emit("consent.changed", {"purpose": PURPOSE, "action": "withdrawn", "method": method},
                    supporter.id, occurred_at=now)
        db.session.commit()
        metrics.UNSUBSCRIBES.labels(method).inc()
    else:
        db.session.rollback()
    return supporter
