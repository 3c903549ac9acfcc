"""Who gets a campaign, and why the others do not: one SQL expression used by preview and launch.

`reason_expression()` yields NULL for a supporter who may be mailed now and the skip reason
otherwise. Launch inserts the whole audience with it in ONE `INSERT … SELECT`; preview groups by it.
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from flask import current_app

from campaigns.models import Campaign, Delivery, DeliveryStatus, SkipReason
from core.db import utcnow
from core.errors import ValidationFailed
from core.extensions import db
from supporters.models import Segment, Supporter, SupporterStatus, Suppression
from supporters.segments import compile_filter

FREQUENCY_WINDOW = timedelta(days=30)


def audience_where(campaign: Campaign) -> sa.ColumnElement[bool]:
    """The saved segment (if any) AND the inline filter (if any); exclusions are a skip reason."""
    definition = campaign.audience_definition()
    if definition is None:
        return sa.true()
    return compile_filter(definition, "audience.filter")


def validate_segment(segment_id: int | None) -> None:
    """A campaign may only name a saved segment that exists."""
    if segment_id is not None and db.session.get(Segment, segment_id) is None:
        raise ValidationFailed({"audience.segment_id": [f"no saved segment {segment_id}"]})


def validate_audience(audience_filter, exclude_filter) -> None:
    """Raise ValidationFailed with the JSON path of the first bad node."""
    if audience_filter is not None:
        compile_filter(audience_filter, "audience.filter")
    if exclude_filter is not None:
        compile_filter(exclude_filter, "audience.exclude")


def email_hash_sql(column) -> sa.ColumnElement[str]:
    """SHA-256 hex of the normalised address, in SQL (matches supporters.models.email_hash)."""
    if db.engine.dialect.name == "postgresql":
        return sa.func.encode(sa.func.sha256(sa.func.convert_to(column, "UTF8")), "hex")
    return sa.func.sp_sha256_hex(column)  # registered on every SQLite connection (campaigns.models)


def default_asks() -> int:
    return current_app.config["DEFAULT_ASKS_PER_MONTH"]


def recent_sends_subquery(now, exclude_campaign_id: int | None = None):
    """Sends per supporter in the rolling window, across all campaigns."""
    d = sa.orm.aliased(Delivery)
    q = (sa.select(d.supporter_id.label("supporter_id"), sa.func.count().label("n"))
         .where(d.status.in_((DeliveryStatus.SENT, DeliveryStatus.BOUNCED)), d.sent_at >= now - FREQUENCY_WINDOW))
    if exclude_campaign_id is not None:
        q = q.where(d.campaign_id != exclude_campaign_id)
    return q.group_by(d.supporter_id).subquery("recent")


def reason_expression(campaign: Campaign, languages: list[str] | None, now, recent, suppressed):
    """A CASE giving NULL (send) or the skip reason; `recent` and `suppressed` are outer-joined."""
    whens = []
    if campaign.exclude_filter is not None:
        whens.append((compile_filter(campaign.exclude_filter, "audience.exclude"), SkipReason.EXCLUDED.value))
    whens += [
        (Supporter.status == SupporterStatus.UNSUBSCRIBED, SkipReason.UNSUBSCRIBED.value),
        (sa.or_(Supporter.status != SupporterStatus.ACTIVE, Supporter.email_normalized.is_(None)),
         SkipReason.NO_CONSENT.value),
        (suppressed.email_hash.is_not(None), SkipReason.SUPPRESSED.value),
        (sa.and_(Supporter.paused_until.is_not(None), Supporter.paused_until > now), SkipReason.PAUSED.value),
        (sa.func.coalesce(recent.c.n, 0) >= sa.func.coalesce(Supporter.asks_per_month, default_asks()),
         SkipReason.FREQUENCY_LIMIT.value),
    ]
    if languages is not None:
        whens.append((Supporter.language.not_in(languages), SkipReason.NO_CONTENT.value))
    return sa.case(*whens, else_=sa.null())


def audience_select(campaign: Campaign, languages: list[str] | None, now=None):
    """SELECT supporter id, skip reason for the whole audience (the snapshot's source)."""
    now = now or utcnow()
    recent = recent_sends_subquery(now)
    suppressed = sa.orm.aliased(Suppression)
    reason = reason_expression(campaign, languages, now, recent, suppressed).label("reason")
    return (sa.select(Supporter.id.label("supporter_id"), reason)
            .select_from(Supporter)
            .outerjoin(recent, recent.c.supporter_id == Supporter.id)
            .outerjoin(suppressed, suppressed.email_hash == email_hash_sql(Supporter.email_normalized))
            .where(audience_where(campaign)))


def breakdown(campaign: Campaign, languages: list[str] | None) -> dict[str | None, int]:
    """Count of the audience by skip reason (None = would receive it)."""
    sub = audience_select(campaign, languages).subquery()
    rows = db.session.execute(sa.select(sub.c.reason, sa.func.count()).group_by(sub.c.reason))
    return {reason: n for reason, n in rows}


def snapshot(campaign: Campaign, languages: list[str]) -> dict[str | None, int]:
    """Insert one delivery per audience member in ONE statement; return counts by skip reason."""
    now = utcnow()
    sub = audience_select(campaign, languages, now).subquery()
    status = sa.case((sub.c.reason.is_(None), DeliveryStatus.QUEUED.value), else_=DeliveryStatus.SKIPPED.value)
    select = sa.select(sa.literal(campaign.id), sub.c.supporter_id, status, sub.c.reason, sa.literal(0),
                       sa.literal(False), sa.case((sub.c.reason.is_(None), sa.literal(now, Delivery.enqueued_at.type)),
                                                  else_=sa.null()))
    db.session.execute(sa.insert(Delivery).from_select(
        ["campaign_id", "supporter_id", "status", "skip_reason", "attempts", "reclaimed", "enqueued_at"], select))
    rows = db.session.execute(sa.select(Delivery.skip_reason, sa.func.count())
                              .where(Delivery.campaign_id == campaign.id).group_by(Delivery.skip_reason))
    return {(reason.value if reason is not None else None): n for reason, n in rows}


def snapshot_languages_without_content(campaign_id: int) -> dict[str, int]:
    rows = db.session.execute(
        sa.select(Supporter.language, sa.func.count()).join(Delivery, Delivery.supporter_id == Supporter.id)
        .where(Delivery.campaign_id == campaign_id, Delivery.skip_reason == SkipReason.NO_CONTENT)
        .group_by(Supporter.language))
    return {lang: n for lang, n in rows}


def audience_languages_without_content(campaign: Campaign, languages: list[str]) -> dict[str, int]:
    """Languages of would-be recipients for which the campaign has no content, with counts."""
    sub = audience_select(campaign, None).subquery()
    rows = db.session.execute(
        sa.select(Supporter.language, sa.func.count()).join(sub, sub.c.supporter_id == Supporter.id)
        .where(sub.c.reason.is_(None), Supporter.language.not_in(languages)).group_by(Supporter.language))
    return {lang: n for lang, n in rows}


