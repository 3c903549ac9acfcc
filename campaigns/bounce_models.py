"""Bounce and complaint reports that arrived as mail: one row per report processed.

The row is the processor's memory: its `key` (a hash of the report's Message-ID, or of its bytes)
makes processing the same mail twice a no-op; its kind, campaign and supporter count soft bounces
per address and complaints per campaign. `detail` is a short reason (a DSN status and diagnostic)
and is cleared when the supporter is erased.
"""

from __future__ import annotations

import enum
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from core.db import BigIntPK, str_enum, utcnow
from core.extensions import db
from supporters.privacy import on_erase


class ReportKind(enum.StrEnum):
    HARD = "hard"  # permanent failure of the address: delivery bounced, address suppressed
    SOFT = "soft"  # failed, but not the address's fault (full, too big, refused as spam); counted
    DELAYED = "delayed"  # a warning that delivery is still being tried: recorded, no effect
    COMPLAINT = "complaint"  # ARF feedback-type abuse: unsubscribed, suppressed, consent withdrawn
    UNATTRIBUTED = "unattributed"  # a report, but not of a mail we can identify
    FORGED = "forged"  # carried a VERP address of ours with a wrong MAC: ignored
    IGNORED = "ignored"  # not a bounce or complaint (an auto-reply, spam, a malformed mail)


class BounceReport(db.Model):
    __tablename__ = "bounce_reports"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    key: Mapped[str] = mapped_column(sa.String(64), unique=True)  # sha256 hex, see campaigns.bounces
    kind: Mapped[ReportKind] = mapped_column(str_enum(ReportKind, "bounce_report_kind"))
    source: Mapped[str] = mapped_column(sa.String(20))  # imap, file, …
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    campaign_id: Mapped[int | None] = mapped_column(sa.ForeignKey("campaigns.id", ondelete="SET NULL"))
    delivery_id: Mapped[int | None] = mapped_column(BigIntPK)  # no FK: the report outlives a cleanup
    supporter_id: Mapped[int | None] = mapped_column(BigIntPK, sa.ForeignKey("supporters.id", ondelete="SET NULL"))
    detail: Mapped[str | None] = mapped_column(sa.String(300))

    __table_args__ = (
        # Complaints per campaign (the complaint rate) and soft bounces per supporter in a window.
        sa.Index("ix_bounce_reports_campaign_kind", "campaign_id", "kind"),
        sa.Index("ix_bounce_reports_supporter_kind_received", "supporter_id", "kind", "received_at"),
    )


def complaint_count(campaign_id: int) -> int:
    """Complaints (ARF abuse reports) attributed to the campaign's mails."""
    return db.session.scalar(sa.select(sa.func.count()).where(
        BounceReport.campaign_id == campaign_id, BounceReport.kind == ReportKind.COMPLAINT))


@on_erase
def _erase_bounce_details(supporter) -> None:
    # A diagnostic often quotes the address; the counts stay, the words go.
    db.session.execute(sa.update(BounceReport).where(BounceReport.supporter_id == supporter.id)
                       .values(detail=None).execution_options(synchronize_session=False))
