"""Campaigns, their content per language, and deliveries: one row per campaign × supporter.

Deliveries are the source of truth for sending: Redis only carries batches of their ids, so a lost
job or a killed worker loses nothing (see campaigns/engine.py).
"""

from __future__ import annotations

import enum
import hashlib
import sqlite3
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.db import BigIntPK, str_enum, utcnow
from core.extensions import db
from core.stopmarks import on_stop
from supporters.privacy import export_section


class CampaignKind(enum.StrEnum):
    ANNOUNCEMENT = "announcement"
    SHARE = "share"
    REVIEW = "review"
    VOTE = "vote"
    SURVEY = "survey"


class CampaignStatus(enum.StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    SENDING = "sending"
    PAUSED = "paused"
    SENT = "sent"
    CANCELLED = "cancelled"


class DeliveryStatus(enum.StrEnum):
    QUEUED = "queued"  # waiting for a worker (maybe until next_attempt_at)
    SENDING = "sending"  # claimed by a worker until lease_until
    SENT = "sent"
    FAILED = "failed"  # permanent SMTP error or retries exhausted
    BOUNCED = "bounced"  # reported back after it was sent
    SKIPPED = "skipped"  # left out; skip_reason says why


class SkipReason(enum.StrEnum):
    EXCLUDED = "excluded"  # matched the campaign's exclusion filter
    NO_CONSENT = "no_consent"  # pending, erased or without an address
    UNSUBSCRIBED = "unsubscribed"
    SUPPRESSED = "suppressed"
    PAUSED = "paused"  # the supporter paused all mail (paused_until)
    FREQUENCY_LIMIT = "frequency_limit"
    NO_CONTENT = "no_content"  # no content in the supporter's language
    CANCELLED = "cancelled"  # the campaign was cancelled before this was sent


class Campaign(db.Model):
    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    kind: Mapped[CampaignKind] = mapped_column(str_enum(CampaignKind, "campaign_kind"), default=CampaignKind.ANNOUNCEMENT)
    status: Mapped[CampaignStatus] = mapped_column(
        str_enum(CampaignStatus, "campaign_status"), default=CampaignStatus.DRAFT, index=True)
    # Audience: a saved segment's current definition AND an inline filter (supporters.segments
    # language; either may be NULL, both NULL = everybody) minus an exclusion filter. Launch freezes
    # the audience in the deliveries snapshot, so later segment edits only affect unlaunched campaigns;
    # deleting a segment that an unlaunched campaign uses is refused (api.segments), the FK's SET NULL
    # only ever clears it on campaigns whose audience is already frozen.
    audience_filter: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    exclude_filter: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    segment_id: Mapped[int | None] = mapped_column(sa.ForeignKey("segments.id", ondelete="SET NULL"))
    sender: Mapped[str | None] = mapped_column(sa.String(254))  # NULL = MAIL_FROM
    send_at: Mapped[datetime | None]
    rate_per_minute: Mapped[int | None] = mapped_column(sa.Integer)  # NULL = as fast as the global rate allows
    respect_quiet_hours: Mapped[bool] = mapped_column(sa.Boolean, default=False, server_default=sa.false())
    status_reason: Mapped[str | None] = mapped_column(sa.String(500))  # why it paused itself, etc.
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    launched_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    contents: Mapped[list[CampaignContent]] = relationship(
        back_populates="campaign", cascade="all, delete-orphan", order_by="CampaignContent.language")

    def audience_definition(self) -> dict[str, Any] | None:
        """The saved segment's current definition AND the inline filter (None = everybody)."""
        from supporters.models import Segment  # local: keeps the model modules' import order free

        parts = []
        if self.segment_id is not None:
            segment = db.session.get(Segment, self.segment_id)
            if segment is not None:  # gone only after launch (see segment_id above)
                parts.append(segment.definition)
        if self.audience_filter is not None:
            parts.append(self.audience_filter)
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else {"all": parts}

    def content_for(self, language: str) -> CampaignContent | None:
        return next((c for c in self.contents if c.language == language), None)


class CampaignContent(db.Model):
    __tablename__ = "campaign_contents"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(sa.ForeignKey("campaigns.id", ondelete="CASCADE"))
    language: Mapped[str] = mapped_column(sa.String(8))
    subject: Mapped[str] = mapped_column(sa.String(300))
    body: Mapped[str] = mapped_column(sa.Text)  # Markdown with {{placeholders}}

    campaign: Mapped[Campaign] = relationship(back_populates="contents")

    __table_args__ = (sa.UniqueConstraint("campaign_id", "language", name="uq_campaign_contents_campaign_language"),)


class Delivery(db.Model):
    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(sa.ForeignKey("campaigns.id", ondelete="CASCADE"))
    supporter_id: Mapped[int] = mapped_column(BigIntPK, sa.ForeignKey("supporters.id", ondelete="CASCADE"))
    status: Mapped[DeliveryStatus] = mapped_column(str_enum(DeliveryStatus, "delivery_status"))
    skip_reason: Mapped[SkipReason | None] = mapped_column(str_enum(SkipReason, "skip_reason"))
    attempts: Mapped[int] = mapped_column(sa.SmallInteger, default=0, server_default="0")
    enqueued_at: Mapped[datetime | None]  # when a job for it was last queued (the sweeper's clue)
    next_attempt_at: Mapped[datetime | None]  # retry backoff, quiet hours, domain throttle
    lease_until: Mapped[datetime | None]
    # Possibly duplicated: set when a lease expired and the delivery went back to the queue, or
    # when the server dropped the connection after the whole message (it may have kept it) and the
    # delivery is retried. The only cases where the same message (same Message-ID) may reach the
    # server twice.
    reclaimed: Mapped[bool] = mapped_column(sa.Boolean, default=False, server_default=sa.false())
    # The supporter withdrew (core.stopmarks) while a worker held this delivery: if it was sent,
    # its SMTP transaction had begun before the withdrawal was answered (counted in stats).
    in_flight_at_stop: Mapped[bool] = mapped_column(sa.Boolean, default=False, server_default=sa.false())
    sent_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(sa.String(500))

    __table_args__ = (
        sa.UniqueConstraint("campaign_id", "supporter_id", name="uq_deliveries_campaign_supporter"),
        # Claims, flushes and the sweeper select (campaign, status, id range): with id in the key,
        # a claim reads its own 200 rows, not every queued row of the campaign.
        sa.Index("ix_deliveries_campaign_status", "campaign_id", "status", "id"),
        # The frequency limit counts a supporter's recent sends across all campaigns.
        sa.Index("ix_deliveries_supporter_sent", "supporter_id", "sent_at"),
    )


def _sha256_hex(value: str | None) -> str | None:
    return None if value is None else hashlib.sha256(value.encode()).hexdigest()


@sa.event.listens_for(sa.engine.Engine, "connect")
def _sqlite_functions(dbapi_connection, _record) -> None:
    """SQLite has no SHA-256: the snapshot matches suppressions through this function."""
    if isinstance(dbapi_connection, sqlite3.Connection):
        dbapi_connection.create_function("sp_sha256_hex", 1, _sha256_hex, deterministic=True)


@on_stop
def _flag_in_flight(supporter_ids: list[int]) -> None:
    """In the withdrawing transaction: mark the supporters' deliveries a worker holds right now."""
    db.session.execute(sa.update(Delivery).where(Delivery.supporter_id.in_(supporter_ids),
                                                 Delivery.status == DeliveryStatus.SENDING)
                       .values(in_flight_at_stop=True).execution_options(synchronize_session=False))


@export_section("deliveries")
def _export_deliveries(supporter) -> list[dict[str, Any]]:
    rows = db.session.execute(
        sa.select(Delivery.campaign_id, Campaign.name, Delivery.status, Delivery.sent_at)
        .join(Campaign, Campaign.id == Delivery.campaign_id)
        .where(Delivery.supporter_id == supporter.id).order_by(Delivery.id))
    return [{"campaign_id": c, "campaign": n, "status": s.value, "sent_at": t.isoformat() if t else None}
            for c, n, s, t in rows]
