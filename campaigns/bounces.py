"""Bounces and complaints that arrive as mail: attribute each report, act on it once.

Attribution, most certain first:
1. our VERP address (core.verp) in the report's envelope headers, the DSN's X-Postfix-Sender, the
   ARF Original-Mail-From or the returned original's Return-Path. A VERP address of ours with a
   wrong MAC makes the report `forged`: ignored, whatever else it says;
2. our Message-ID (`<d12.c3@…>`) in the returned original, *and* the reported recipient being that
   delivery's address (a Message-ID alone is guessable; an address alone proves nothing).
A report that neither attributes is recorded as `unattributed` and changes nothing.

Effects reuse the services that own them: `campaigns.services.report_bounce` marks a delivery
bounced, `suppress_hashes` suppresses, `supporters.preferences.withdraw` unsubscribes with a consent event
(method "complaint"). They are idempotent, and run before the report's row is written, whose
unique key then makes a second run of the same mail a no-op (see `process`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import IntegrityError

from campaigns import services
from campaigns.bounce_models import BounceReport, ReportKind, complaint_count
from campaigns.bounce_parse import Report, parse
from campaigns.models import Delivery, DeliveryStatus
from campaigns.outcomes import suppress_hashes
from campaigns.render import parse_message_id
from core import events, metrics, verp
from core.db import utcnow
from core.errors import Conflict
from core.extensions import db
from supporters.models import Supporter, SuppressionReason, email_hash
from supporters.preferences import withdraw

log = logging.getLogger(__name__)

ACTING = (ReportKind.HARD, ReportKind.SOFT, ReportKind.DELAYED, ReportKind.COMPLAINT)
SYSTEM_ACTOR = {"actor_type": "system", "actor_label": "bounce processor"}


@dataclass
class Outcome:
    kind: ReportKind
    duplicate: bool = False
    supporter_id: int | None = None
    campaign_id: int | None = None
    suppressed: bool = False
    unsubscribed: bool = False
    paused: bool = False


def process(raw: bytes, source: str = "file", envelope_to: list[str] | None = None) -> Outcome:
    """Process one report mail (bytes as received); safe to run twice on the same mail."""
    report = parse(raw, envelope_to)
    if db.session.scalar(sa.select(BounceReport.id).where(BounceReport.key == report.key)) is not None:
        db.session.rollback()
        return Outcome(report.kind, duplicate=True)
    outcome, delivery = _attribute(report)
    if outcome.kind in ACTING and outcome.supporter_id is not None:
        _act(report, outcome, delivery)
    db.session.add(BounceReport(key=report.key, kind=outcome.kind, source=source[:20],
                                campaign_id=outcome.campaign_id, supporter_id=outcome.supporter_id,
                                delivery_id=delivery.id if delivery is not None else None,
                                detail=report.detail or None))
    if outcome.supporter_id is not None and outcome.kind in (ReportKind.HARD, ReportKind.SOFT, ReportKind.COMPLAINT):
        data = {"campaign_id": outcome.campaign_id, "delivery_id": delivery.id if delivery is not None else None}
        if outcome.kind is ReportKind.COMPLAINT:
            events.emit("delivery.complained", data, outcome.supporter_id)
        else:
            events.emit("delivery.bounced", {**data, "hard": outcome.kind is ReportKind.HARD}, outcome.supporter_id)
    try:
        db.session.commit()
    except IntegrityError:  # the same mail, processed concurrently: the other run recorded it
        db.session.rollback()
        return Outcome(outcome.kind, duplicate=True)
    if outcome.kind is ReportKind.COMPLAINT and outcome.supporter_id is not None:
        metrics.COMPLAINTS.inc()
    if outcome.kind is ReportKind.COMPLAINT and outcome.campaign_id is not None:
        outcome.paused = pause_on_complaints(outcome.campaign_id)
    log.info("bounce report %s: %s supporter=%s campaign=%s %s", report.key[:12], outcome.kind.value,
             outcome.supporter_id, outcome.campaign_id, report.detail)
    return outcome


def _attribute(report: Report) -> tuple[Outcome, Delivery | None]:
    """Who and which mail the report is about (see the module docstring), and its final kind."""
    found = verp.verify(report.verp_texts)
    delivery = supporter_id = None
    if found.forged and not found.found:
        log.warning("bounce report %s carries a forged VERP address; ignored", report.key[:12])
        return Outcome(ReportKind.FORGED), None
    if report.kind not in ACTING:
        return Outcome(report.kind), None
    for kind, ident in found.found:
        if kind == "d" and (delivery := db.session.get(Delivery, ident)) is not None:
            supporter_id = delivery.supporter_id
            break
        if kind == "s" and db.session.get(Supporter, ident) is not None:
            supporter_id = ident
            break
    else:
        delivery = _by_message_id(report)
        supporter_id = delivery.supporter_id if delivery is not None else None
    if supporter_id is None:
        return Outcome(ReportKind.UNATTRIBUTED), None
    return Outcome(report.kind, supporter_id=supporter_id,
                   campaign_id=delivery.campaign_id if delivery is not None else None), delivery


def _by_message_id(report: Report) -> Delivery | None:
    for value in report.message_ids:
        parsed = parse_message_id(value)
        if parsed is None:
            continue
        delivery = db.session.get(Delivery, parsed[0])
        if delivery is None or delivery.campaign_id != parsed[1]:
            continue
        address = db.session.scalar(sa.select(Supporter.email_normalized).where(Supporter.id == delivery.supporter_id))
        if address and address in report.recipients:
            return delivery
    return None


def _act(report: Report, outcome: Outcome, delivery: Delivery | None) -> None:
    """Apply the report; every step is idempotent (the row that records it comes after)."""
    supporter = db.session.get(Supporter, outcome.supporter_id)
    address = supporter.email_normalized if supporter is not None else None
    kind = outcome.kind
    if delivery is not None and kind in (ReportKind.HARD, ReportKind.SOFT) \
            and delivery.status in (DeliveryStatus.SENT, DeliveryStatus.BOUNCED):
        result = services.report_bounce(delivery_id=delivery.id, hard=kind is ReportKind.HARD,
                                        reason=report.detail)
        outcome.suppressed = result["suppressed"]
    if address is None:
        return
    if kind is ReportKind.HARD or (kind is ReportKind.SOFT and _soft_limit_reached(outcome.supporter_id)):
        suppress_hashes([email_hash(address)], SuppressionReason.HARD_BOUNCE)
        outcome.suppressed = True
    elif kind is ReportKind.COMPLAINT:
        withdraw(outcome.supporter_id, method="complaint")  # commits; no second ledger entry on a rerun
        outcome.unsubscribed = True
        suppress_hashes([email_hash(address)], SuppressionReason.COMPLAINT)
        outcome.suppressed = True


def _soft_limit_reached(supporter_id: int) -> bool:
    """This soft bounce and the earlier ones within the window reach BOUNCE_SOFT_LIMIT."""
    since = utcnow() - timedelta(days=current_app.config["BOUNCE_SOFT_WINDOW_DAYS"])
    earlier = db.session.scalar(sa.select(sa.func.count()).where(
        BounceReport.supporter_id == supporter_id, BounceReport.kind == ReportKind.SOFT,
        BounceReport.received_at >= since))
    return earlier + 1 >= current_app.config["BOUNCE_SOFT_LIMIT"]


def pause_on_complaints(campaign_id: int) -> bool:
    """Pause a sending campaign whose complaint rate is above COMPLAINT_PAUSE_PERCENT (from a minimum count)."""
    complaints = complaint_count(campaign_id)
    sent = db.session.scalar(sa.select(sa.func.count()).where(
        Delivery.campaign_id == campaign_id, Delivery.status.in_((DeliveryStatus.SENT, DeliveryStatus.BOUNCED))))
    db.session.commit()
    limit = current_app.config["COMPLAINT_PAUSE_PERCENT"]
    if complaints < current_app.config["COMPLAINT_PAUSE_MIN"] or complaints * 100 <= limit * sent:
        return False
    reason = (f"complaint rate {complaints / max(sent, 1):.2%} ({complaints} complaints for {sent} sent) is "
              f"above {limit}%: check the audience's consent and the content, then resume")
    try:
        services.pause(campaign_id, actor=SYSTEM_ACTOR, reason=reason)
    except Conflict:  # not sending (any more): nothing to pause
        return False
    log.warning("campaign %s paused: %s", campaign_id, reason)
    return True
