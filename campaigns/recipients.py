"""The send-time re-check: who of a claimed chunk may be mailed now, decided by a pure function.

Between the launch snapshot and the send, people unsubscribe, pause, get suppressed or reach their
frequency limit. `load_recipients` reads a claimed chunk with everything the re-check needs in
three queries; `decide` turns one row into a skip (with its reason), a deferral (until when) or
None: send it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa

from campaigns.audience import FREQUENCY_WINDOW
from campaigns.layout import consent_at
from campaigns.models import Delivery, DeliveryStatus, SkipReason
from campaigns.outcomes import Defer, Skip
from core.db import utcnow
from core.extensions import db
from supporters.models import Supporter, SupporterStatus, Suppression, email_hash

QUIET_START, QUIET_END = 21, 8  # local hours during which quiet-hours campaigns do not send
# A stop marker's reason (core.stopmarks) as the skip it means for a delivery.
STOP_SKIPS = {"unsubscribed": SkipReason.UNSUBSCRIBED.value, "paused": SkipReason.PAUSED.value,
              "suppressed": SkipReason.SUPPRESSED.value, "erased": SkipReason.NO_CONSENT.value}


class Recipient(NamedTuple):
    """A claimed delivery with what the re-check and the message need of its supporter."""

    delivery_id: int
    supporter_id: int
    email: str | None
    email_normalized: str | None
    name: str | None
    language: str | None
    status: SupporterStatus
    timezone: str | None
    asks_per_month: int | None
    paused_until: datetime | None
    email_hash: str | None  # of email_normalized: the suppression list's key
    consented_at: datetime | None = None  # the latest grant or confirmation: the footer prints its date


@dataclass(frozen=True)
class SendChecks:
    """What the re-check knows beyond the row: the chunk's suppressions and recent mails, the campaign."""

    claimed_at: datetime  # pauses and the frequency window are judged at claim time
    suppressed: frozenset[str]  # email hashes
    recent: Mapping[int, int]  # supporter id → mails of other campaigns within FREQUENCY_WINDOW
    asks_default: int
    languages: frozenset[str]  # of the campaign's contents
    quiet_hours: bool


def decide(r: Recipient, checks: SendChecks, now: datetime) -> Skip | Defer | None:
    """Skip the delivery (with the reason), defer it (quiet hours where `r` lives, at `now`), or None: send."""
    if r.status == SupporterStatus.UNSUBSCRIBED:
        return Skip(SkipReason.UNSUBSCRIBED.value)
    if r.status != SupporterStatus.ACTIVE or not r.email or not r.email_normalized:
        return Skip(SkipReason.NO_CONSENT.value)
    if r.email_hash in checks.suppressed:
        return Skip(SkipReason.SUPPRESSED.value)
    if r.paused_until is not None and r.paused_until > checks.claimed_at:
        return Skip(SkipReason.PAUSED.value)
    if checks.recent.get(r.supporter_id, 0) >= (r.asks_per_month if r.asks_per_month is not None
                                                else checks.asks_default):
        return Skip(SkipReason.FREQUENCY_LIMIT.value)
    if r.language not in checks.languages:
        return Skip(SkipReason.NO_CONTENT.value)
    if checks.quiet_hours and (until := quiet_until(r.timezone, now)) is not None:
        return Defer(until, reason="quiet_hours")
    return None


def quiet_until(timezone: str | None, now: datetime) -> datetime | None:
    """If it is quiet hours where the supporter lives, when they end (UTC); else None."""
    try:
        zone = ZoneInfo(timezone) if timezone else None
    except (ZoneInfoNotFoundError, ValueError):
        zone = None
    if zone is None:
        return None
    local = now.astimezone(zone)
    if QUIET_END <= local.hour < QUIET_START:
        return None
    end = local.replace(hour=QUIET_END, minute=0, second=0, microsecond=0)
    if local.hour >= QUIET_START:
        end += timedelta(days=1)
    return end.astimezone(now.tzinfo)


def load_recipients(campaign_id: int, ids: list[int], languages: frozenset[str], asks_default: int,
                    quiet_hours: bool) -> tuple[list[Recipient], SendChecks]:
    """The claimed deliveries still in flight, by id, and the facts to check them against (commits)."""
    now = utcnow()
    rows = db.session.execute(
        sa.select(Delivery.id, Supporter.id, Supporter.email, Supporter.email_normalized, Supporter.name,
                  Supporter.language, Supporter.status, Supporter.timezone, Supporter.asks_per_month,
                  Supporter.paused_until, consent_at())
        .join(Supporter, Supporter.id == Delivery.supporter_id)
        .where(Delivery.id.in_(ids), Delivery.status == DeliveryStatus.SENDING).order_by(Delivery.id)).all()
    recipients = [Recipient(*row[:-1], email_hash(row[3]) if row[3] else None, row[-1]) for row in rows]
    hashes = [r.email_hash for r in recipients if r.email_hash]
    suppressed = frozenset(db.session.scalars(
        sa.select(Suppression.email_hash).where(Suppression.email_hash.in_(hashes))))
    recent = dict(db.session.execute(
        sa.select(Delivery.supporter_id, sa.func.count())
        .where(Delivery.supporter_id.in_([r.supporter_id for r in recipients]), Delivery.campaign_id != campaign_id,
               Delivery.status.in_((DeliveryStatus.SENT, DeliveryStatus.BOUNCED)),
               Delivery.sent_at >= now - FREQUENCY_WINDOW)
        .group_by(Delivery.supporter_id)).all())
    db.session.commit()  # end the read transaction: SQLite writers must not wait on us
    return recipients, SendChecks(now, suppressed, recent, asks_default, languages, quiet_hours)
