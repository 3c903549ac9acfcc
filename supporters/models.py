"""Supporter, the append-only consent ledger, tags and the suppression list."""

from __future__ import annotations

import enum
import hashlib
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.db import BigIntPK, str_enum, utcnow
from core.extensions import db


class SupporterKind(enum.StrEnum):
    FAN = "fan"  # customers and fans
    FORMER_EMPLOYEE = "former_employee"
    SUPPLIER = "supplier"
    PARTNER = "partner"
    OTHER = "other"


class SupporterStatus(enum.StrEnum):
    PENDING = "pending"  # joined, not yet confirmed (double opt-in)
    ACTIVE = "active"
    UNSUBSCRIBED = "unsubscribed"
    ERASED = "erased"  # personal data removed on request; the row keeps aggregates honest


LANGUAGES = ("de", "en")


def normalize_email(email: str) -> str:
    """The key that makes addresses unique case-insensitively."""
    return email.strip().lower()


def email_hash(email: str) -> str:
    """A stable pseudonym for an address, kept on the suppression list after erasure."""
    return hashlib.sha256(normalize_email(email).encode()).hexdigest()


supporter_tags = sa.Table(
    "supporter_tags",
    db.metadata,
    sa.Column("tag_id", sa.Integer, sa.ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("supporter_id", BigIntPK, sa.ForeignKey("supporters.id", ondelete="CASCADE"), primary_key=True),
    sa.Index("ix_supporter_tags_supporter_id", "supporter_id"),
    # (tag_id, supporter_id) is the clustered key on SQLite: counting a tag's members reads one range.
    sqlite_with_rowid=False,
)


class Supporter(db.Model):
    __tablename__ = "supporters"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    email: Mapped[str | None] = mapped_column(sa.String(254))
    email_normalized: Mapped[str | None] = mapped_column(sa.String(254), unique=True)
    name: Mapped[str | None] = mapped_column(sa.String(200))
    kind: Mapped[SupporterKind] = mapped_column(str_enum(SupporterKind, "supporter_kind"), default=SupporterKind.FAN, index=True)
    language: Mapped[str] = mapped_column(sa.String(8), default="en", index=True)
    country: Mapped[str | None] = mapped_column(sa.String(2), index=True)
    timezone: Mapped[str | None] = mapped_column(sa.String(64))
    status: Mapped[SupporterStatus] = mapped_column(
        str_enum(SupporterStatus, "supporter_status"), default=SupporterStatus.PENDING, index=True
    )
    referral_code: Mapped[str | None] = mapped_column(sa.String(16), unique=True)
    referred_by_id: Mapped[int | None] = mapped_column(
        BigIntPK, sa.ForeignKey("supporters.id", ondelete="SET NULL"), index=True
    )
    engagement_score: Mapped[float] = mapped_column(sa.Float, default=0.0, server_default="0")
    # How often the company may ask this person (rolling 30 days); NULL = the company default.
    asks_per_month: Mapped[int | None] = mapped_column(sa.SmallInteger)
    paused_until: Mapped[datetime | None]
    source: Mapped[str | None] = mapped_column(sa.String(40))  # web_form, api, import, …
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    confirmed_at: Mapped[datetime | None]
    unsubscribed_at: Mapped[datetime | None]
    erased_at: Mapped[datetime | None]
    # Join flow (issue 3): the referral code a newcomer arrived with, resolved into referred_by only
    # on confirmation; and when the double-opt-in mail for the latest grant went out (makes the
    # confirmation job safe to run twice).
    joined_with_ref: Mapped[str | None] = mapped_column(sa.String(16))
    confirmation_sent_at: Mapped[datetime | None]
    # Why the confirmation mail was refused for good (the sweeper leaves such rows alone).
    confirmation_error: Mapped[str | None] = mapped_column(sa.String(300))

    referred_by: Mapped[Supporter | None] = relationship(remote_side=[id])
    tags: Mapped[list[Tag]] = relationship(secondary=supporter_tags, back_populates="supporters")
    consents: Mapped[list[ConsentEvent]] = relationship(
        back_populates="supporter", order_by="ConsentEvent.id", passive_deletes=True
    )

    def __repr__(self) -> str:
        return f"<Supporter {self.id} {self.status}>"


class ConsentAction(enum.StrEnum):
    GRANTED = "granted"
    CONFIRMED = "confirmed"  # the double opt-in click that makes a grant effective
    WITHDRAWN = "withdrawn"


class ConsentEvent(db.Model):
    """Append-only ledger: who agreed to what, when, how, and to which exact text."""

    __tablename__ = "consent_events"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    supporter_id: Mapped[int] = mapped_column(BigIntPK, sa.ForeignKey("supporters.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[str] = mapped_column(sa.String(40))  # e.g. "campaigns"
    action: Mapped[ConsentAction] = mapped_column(str_enum(ConsentAction, "consent_action"))
    text_version: Mapped[str | None] = mapped_column(sa.String(40))
    text_hash: Mapped[str | None] = mapped_column(sa.String(64))  # sha256 of the exact text shown
    method: Mapped[str] = mapped_column(sa.String(40))  # web_form, confirm_link, import, api, one_click, …
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)  # indexed below
    ip: Mapped[str | None] = mapped_column(sa.String(45))
    user_agent: Mapped[str | None] = mapped_column(sa.String(400))
    note: Mapped[str | None] = mapped_column(sa.String(500))

    supporter: Mapped[Supporter] = relationship(back_populates="consents")


class Tag(db.Model):
    __tablename__ = "tags"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(80), unique=True)
    # Public tags are offered as interests on the join and preferences pages.
    public: Mapped[bool] = mapped_column(sa.Boolean, default=False, server_default=sa.false())
    label_de: Mapped[str | None] = mapped_column(sa.String(120))
    label_en: Mapped[str | None] = mapped_column(sa.String(120))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    supporters: Mapped[list[Supporter]] = relationship(secondary=supporter_tags, back_populates="tags", viewonly=True)


class SuppressionReason(enum.StrEnum):
    UNSUBSCRIBED = "unsubscribed"
    HARD_BOUNCE = "hard_bounce"
    COMPLAINT = "complaint"
    ERASED = "erased"
    MANUAL = "manual"


class Suppression(db.Model):
    """Addresses never to be mailed again, kept as hashes so erasure leaves no address behind."""

    __tablename__ = "suppressions"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    email_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    reason: Mapped[SuppressionReason] = mapped_column(str_enum(SuppressionReason, "suppression_reason"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# --- Saved audiences and the PostgreSQL tag index (REST API issue) ---------------------------

# PostgreSQL only: the supporter's tag ids, denormalised from `supporter_tags` so that a segment
# such as "kind + tag + status" is one GIN-indexed bitmap scan instead of a join (bench/api.py
# measures both). A statement-level trigger on `supporter_tags` keeps it exact in the same
# transaction, whoever writes the join table (migration 0003). SQLite leaves it NULL: there the
# WITHOUT ROWID join table is the fast form. Added from outside the class so this stays an append.
Supporter.tag_ids = mapped_column(
    "tag_ids", sa.JSON().with_variant(sa.ARRAY(sa.Integer), "postgresql"),
    nullable=True, deferred=True,
)
sa.Index("ix_supporters_tag_ids", Supporter.__table__.c.tag_ids, postgresql_using="gin")
# The ledger is read by supporter (its own index) and, for an auditor's export, by time. On
# PostgreSQL a BRIN index serves the latter for almost nothing per insert, where a B-tree cost
# every consent write (0.6 s per million imported consents); SQLite keeps a B-tree.
sa.Index("ix_consent_events_occurred_at", ConsentEvent.__table__.c.occurred_at, postgresql_using="brin")


class Segment(db.Model):
    """A saved audience: a filter definition (supporters.segments) with a name."""

    __tablename__ = "segments"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(120), unique=True)
    description: Mapped[str | None] = mapped_column(sa.String(500))
    definition: Mapped[dict] = mapped_column(sa.JSON)
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("admin_users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
