"""Data-protection requests: everything stored about a person, and erasure.

Feature packages register what they store about a supporter with `@export_section(name)` and how
to erase it with `@on_erase`, so the API (`GET /supporters/{id}/export`, `DELETE /supporters/{id}`)
and the CLI (`flask supporters show|erase`) always cover every table.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from core import events, stopmarks
from core.db import utcnow
from core.extensions import db
from supporters.models import (
    ConsentEvent,
    Supporter,
    SupporterStatus,
    Suppression,
    SuppressionReason,
    email_hash,
    supporter_tags,
)

_sections: dict[str, Callable[[Supporter], Any]] = {}
_erasers: list[Callable[[Supporter], None]] = []


def export_section(name: str) -> Callable:
    def register(func: Callable[[Supporter], Any]) -> Callable[[Supporter], Any]:
        _sections[name] = func
        return func
    return register


def on_erase(func: Callable[[Supporter], None]) -> Callable[[Supporter], None]:
    _erasers.append(func)
    return func


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


def person_record(supporter: Supporter) -> dict[str, Any]:
    """Everything stored about one supporter, as JSON-ready data."""
    record = {
        "profile": {
            "id": supporter.id, "email": supporter.email, "name": supporter.name, "kind": supporter.kind.value,
            "language": supporter.language, "country": supporter.country, "timezone": supporter.timezone,
            "status": supporter.status.value, "referral_code": supporter.referral_code,
            "referred_by_id": supporter.referred_by_id, "engagement_score": supporter.engagement_score,
            "asks_per_month": supporter.asks_per_month, "paused_until": _iso(supporter.paused_until),
            "source": supporter.source, "created_at": _iso(supporter.created_at),
            "confirmed_at": _iso(supporter.confirmed_at), "unsubscribed_at": _iso(supporter.unsubscribed_at),
        },
        "tags": sorted(t.name for t in supporter.tags),
        "consents": [
            {"purpose": c.purpose, "action": c.action.value, "text_version": c.text_version,
             "text_hash": c.text_hash, "method": c.method, "occurred_at": _iso(c.occurred_at),
             "ip": c.ip, "user_agent": c.user_agent, "note": c.note}
            for c in supporter.consents
        ],
        "referrals": [
            {"id": s_id, "joined_at": _iso(created)}
            for s_id, created in db.session.execute(
                sa.select(Supporter.id, Supporter.created_at)
                .where(Supporter.referred_by_id == supporter.id).order_by(Supporter.id))
        ],
    }
    for name, section in _sections.items():
        record[name] = section(supporter)
    return record


def erase_supporter(supporter: Supporter) -> None:
    """Remove personal data irreversibly; keep the row (anonymous) so aggregate counts stay the same.

    The address goes onto the suppression list as a hash, so it is never mailed again. The caller
    commits (and records the audit event, without personal data).
    """
    if supporter.status is SupporterStatus.ERASED:
        return
    if supporter.email_normalized:
        digest = email_hash(supporter.email_normalized)
        exists = db.session.scalar(sa.select(Suppression.id).where(Suppression.email_hash == digest))
        if exists is None:
            db.session.add(Suppression(email_hash=digest, reason=SuppressionReason.ERASED))
    for eraser in _erasers:
        eraser(supporter)
    db.session.execute(supporter_tags.delete().where(supporter_tags.c.supporter_id == supporter.id))
    db.session.execute(
        sa.update(ConsentEvent).where(ConsentEvent.supporter_id == supporter.id)
        .values(ip=None, user_agent=None, note=None)
    )
    supporter.email = supporter.email_normalized = supporter.name = None
    supporter.country = supporter.timezone = supporter.referral_code = None
    supporter.paused_until = None
    supporter.status = SupporterStatus.ERASED
    stopmarks.stop(supporter.id, "erased")  # written when the caller commits
    supporter.erased_at = utcnow()
    # Webhooks: the outbox forgets the person's data, nothing undelivered goes out with it, and
    # the subscribers hear of the erasure (the id only).
    events.redact_supporter(supporter.id)
    events.emit("supporter.erased", {}, supporter.id)
    db.session.expire(supporter, ["tags", "consents"])
