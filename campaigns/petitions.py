"""A petition's goal and its official answer: the owner is told when the goal is reached, and the
answer goes to exactly the signers, through the engine.
"""

from __future__ import annotations

from email.utils import parseaddr

import sqlalchemy as sa
from flask import current_app

from campaigns import services
from campaigns.actions import CampaignSettings, Vote
from campaigns.engine import enqueue_pending
from campaigns.models import Campaign, CampaignContent, CampaignKind, CampaignStatus, Delivery, DeliveryStatus
from campaigns.states import transition
from core import events
from core.accounts import record_audit
from core.db import utcnow
from core.errors import Conflict, NotFound, ValidationFailed
from core.extensions import db
from core.mail import build_message, get_transport
from core.queues import job


def signature_count(campaign_id: int) -> int:
    return db.session.execute(sa.select(sa.func.count()).select_from(Vote)
                              .where(Vote.campaign_id == campaign_id)).scalar_one()


def check_goal(campaign_id: int) -> bool:
    """When the goal is first reached: audit event, then (after the commit) a mail to the owner."""
    settings = db.session.get(CampaignSettings, campaign_id)
    goal = settings.config.get("goal") if settings else None
    if not goal or settings.goal_reached_at is not None or signature_count(campaign_id) < goal:
        db.session.commit()
        return False
    # Conditional: of concurrent signers crossing the goal, exactly one gets a row here.
    won = db.session.execute(sa.update(CampaignSettings)
                             .where(CampaignSettings.campaign_id == campaign_id,
                                    CampaignSettings.goal_reached_at.is_(None))
                             .values(goal_reached_at=utcnow()).execution_options(synchronize_session=False)).rowcount
    if not won:
        db.session.rollback()
        return False
    record_audit("petition.goal_reached", actor_type="system", actor_label="petition", object_type="campaign",
                 object_id=campaign_id, detail={"goal": goal})
    events.emit("petition.goal_reached", {"campaign_id": campaign_id, "goal": goal})
    db.session.commit()
    notify_goal_reached.enqueue(campaign_id)
    return True


@job("default")
def notify_goal_reached(campaign_id: int) -> bool:
    """Mail the campaign's owner that the petition reached its goal (safe to run twice: one more mail)."""
    settings = db.session.get(CampaignSettings, campaign_id)
    campaign = db.session.get(Campaign, campaign_id)
    if settings is None or campaign is None or not settings.owner_email:
        return False
    count = signature_count(campaign_id)
    base = current_app.config["PUBLIC_BASE_URL"]
    text = (f"The petition \"{campaign.name}\" (campaign {campaign_id}) reached its goal of "
            f"{settings.config.get('goal')} signatures; it has {count} now.\n\n"
            f"Publish the official answer to everyone who signed:\n"
            f"POST {base}/api/v1/campaigns/{campaign_id}/answer\n")
    message = build_message(current_app.config["MAIL_FROM"], settings.owner_email,
                            f"Petition goal reached: {campaign.name}", text)
    get_transport().send(parseaddr(current_app.config["MAIL_FROM"])[1], [settings.owner_email], message)
    return True


def publish_answer(campaign_id: int, contents: dict[str, dict[str, str]], actor: dict | None = None) -> Campaign:
    """The official answer to a petition: an announcement to exactly the signers, through the engine."""
    petition = services.get_campaign(campaign_id)
    settings = db.session.get(CampaignSettings, campaign_id)
    if petition.kind != CampaignKind.VOTE or settings is None or settings.config.get("type") != "petition":
        raise NotFound(f"campaign {campaign_id} is not a petition")
    if settings.answer_campaign_id is not None:
        raise Conflict(f"the official answer was already published (campaign {settings.answer_campaign_id})")
    services._validate_contents(contents)
    if not contents:
        raise ValidationFailed({"contents": ["the answer needs content"]})
    try:
        answer = Campaign(name=f"Official answer: {petition.name}"[:200], kind=CampaignKind.ANNOUNCEMENT,
                          status=CampaignStatus.DRAFT)
        for language, c in contents.items():
            answer.contents.append(CampaignContent(language=language, subject=c["subject"], body=c["body"]))
        db.session.add(answer)
        db.session.flush()
        taken = db.session.execute(sa.update(CampaignSettings).where(
            CampaignSettings.campaign_id == campaign_id, CampaignSettings.answer_campaign_id.is_(None))
            .values(answer_campaign_id=answer.id).execution_options(synchronize_session=False)).rowcount
        if not taken:
            raise Conflict("the official answer was already published")
        transition(answer.id, CampaignStatus.SENDING, sources={CampaignStatus.DRAFT}, launched_at=utcnow())
        # The audience is the signers, set-based: one INSERT … SELECT. Consent, suppression and
        # language are re-checked by the engine at send time like for every campaign.
        db.session.execute(sa.insert(Delivery).from_select(
            ["campaign_id", "supporter_id", "status", "attempts", "reclaimed"],
            sa.select(sa.literal(answer.id), Vote.supporter_id, sa.literal(DeliveryStatus.QUEUED.value),
                      sa.literal(0), sa.literal(False)).where(Vote.campaign_id == campaign_id)))
        record_audit("petition.answer", **{"actor_type": "system", **(actor or {})}, object_type="campaign",
                     object_id=campaign_id, detail={"answer_campaign_id": answer.id})
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    enqueue_pending(answer.id)
    return answer
