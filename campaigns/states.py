"""The campaign state machine: every status change goes through `transition()`, here.

draft → scheduled → sending → paused → sent | cancelled. A transition is one conditional UPDATE
(`… WHERE id = :id AND status IN (allowed sources)`), so concurrent callers (ten launch requests,
a pause racing the last batch) cannot both win: the loser sees zero rows and gets a Conflict.
"""

from __future__ import annotations

import sqlalchemy as sa

from campaigns.models import Campaign, CampaignStatus
from core import events
from core.db import utcnow
from core.errors import Conflict, NotFound
from core.extensions import db

S = CampaignStatus

# to-status -> the statuses it may be reached from
ALLOWED: dict[CampaignStatus, frozenset[CampaignStatus]] = {
    S.DRAFT: frozenset({S.SCHEDULED}),  # unschedule to edit again
    S.SCHEDULED: frozenset({S.DRAFT}),
    S.SENDING: frozenset({S.DRAFT, S.SCHEDULED, S.PAUSED}),
    S.PAUSED: frozenset({S.SENDING}),
    S.SENT: frozenset({S.SENDING}),
    S.CANCELLED: frozenset({S.DRAFT, S.SCHEDULED, S.SENDING, S.PAUSED}),
}

VERBS = {S.SENDING: "launch or resume", S.PAUSED: "pause", S.CANCELLED: "cancel", S.SENT: "finish",
         S.SCHEDULED: "schedule", S.DRAFT: "unschedule"}


def can(current: CampaignStatus, to: CampaignStatus, sources: frozenset[CampaignStatus] | None = None) -> bool:
    return current in (sources if sources is not None else ALLOWED[to])


def transition(campaign_id: int, to: CampaignStatus, *, sources: set[CampaignStatus] | None = None,
               reason: str | None = None, **values) -> None:
    """Move the campaign to `to` if its current status allows it, else raise Conflict.

    `sources` narrows the allowed sources (e.g. resume is only paused → sending). Does not
    commit: the caller commits together with whatever else belongs to the change; on Conflict
    the transaction is rolled back.
    """
    allowed = ALLOWED[to] if sources is None else frozenset(sources) & ALLOWED[to]
    now = utcnow()
    values = {"status": to, "status_reason": reason, "updated_at": now, **values}
    if to in (S.SENT, S.CANCELLED):
        values.setdefault("finished_at", now)
    result = db.session.execute(
        sa.update(Campaign).where(Campaign.id == campaign_id, Campaign.status.in_(allowed)).values(**values)
        .execution_options(synchronize_session=False))
    if result.rowcount == 1:
        events.emit("campaign.status_changed", {"campaign_id": campaign_id, "status": to.value, "reason": reason})
        return
    current = db.session.execute(sa.select(Campaign.status).where(Campaign.id == campaign_id)).scalar()
    # The whole operation fails: end the transaction now, so no write lock outlives the refusal.
    db.session.rollback()
    if current is None:
        raise NotFound(f"campaign {campaign_id} does not exist")
    raise Conflict(f"cannot {VERBS[to]} a campaign that is {current.value}"
                   f" (allowed from: {', '.join(sorted(s.value for s in allowed))})")
