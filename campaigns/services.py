"""Campaign services: create, edit, preview, test-send, launch, pause, resume, cancel, stats, bounces.

No `request` here: services take plain data, raise core.errors domain errors, commit, and enqueue
after the commit. Status changes go through campaigns.states.transition (one conditional UPDATE).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from campaigns import audience, kinds, samples
from campaigns.bounce_models import complaint_count
from campaigns.compose import compile_contents
from campaigns.engine import enqueue_pending
from campaigns.lint import lint_content, spamassassin_score
from campaigns.models import (
    Campaign,
    CampaignContent,
    CampaignKind,
    CampaignStatus,
    Delivery,
    DeliveryStatus,
    SkipReason,
)
from campaigns.outcomes import suppress_hashes
from campaigns.render import check_placeholders, parse_message_id
from campaigns.states import transition
from core import metrics, stopmarks
from core.accounts import record_audit
from core.addresses import INVALID_ADDRESS, parse_sender
from core.db import utcnow
from core.errors import Conflict, NotFound, ValidationFailed
from core.extensions import db
from core.headers import check_header_text
from core.mail import SMTPUTF8_MISSING
from core.org_settings import current_org
from supporters.models import LANGUAGES, Supporter, SuppressionReason, email_hash

S = CampaignStatus
EDITABLE = (S.DRAFT,)


def _audit(action: str, campaign_id: int, actor: dict | None, **fields) -> None:
    """Record who did what to a campaign, in the caller's transaction; `actor` as for record_audit."""
    record_audit(action, object_type="campaign", object_id=campaign_id, **{"actor_type": "system", **(actor or {})},
                 **fields)


def get_campaign(campaign_id: int) -> Campaign:
    campaign = db.session.get(Campaign, campaign_id)
    if campaign is None:
        raise NotFound(f"campaign {campaign_id} does not exist")
    return campaign


def _validate_send_at(send_at: datetime | None) -> None:
    if send_at is not None and send_at <= utcnow():
        raise ValidationFailed({"send_at": ["must be in the future"]})


def _validate_contents(contents: dict[str, dict[str, str]]) -> None:
    errors: dict[str, list[str]] = {}
    for language, content in contents.items():
        if language not in LANGUAGES:
            errors[f"contents.{language}"] = [f"unknown language; use one of {', '.join(LANGUAGES)}"]
            continue
        try:
            check_header_text({f"contents.{language}.subject": content["subject"]})
            check_placeholders({f"contents.{language}.subject": content["subject"],
                                f"contents.{language}.body": content["body"]})
        except ValidationFailed as exc:
            errors.update(exc.errors)
    if errors:
        raise ValidationFailed(errors)


def _apply(campaign: Campaign, data: dict[str, Any]) -> None:
    if "audience" in data:
        aud = data["audience"] or {}
        audience.validate_audience(aud.get("filter"), aud.get("exclude"))
        audience.validate_segment(aud.get("segment_id"))
        campaign.audience_filter = aud.get("filter")
        campaign.exclude_filter = aud.get("exclude")
        campaign.segment_id = aud.get("segment_id")
    if "contents" in data:
        _validate_contents(data["contents"])
        by_language = {c.language: c for c in campaign.contents}
        for language, content in data["contents"].items():
            row = by_language.pop(language, None)
            if row is None:
                campaign.contents.append(CampaignContent(language=language, **content))
            else:
                row.subject, row.body = content["subject"], content["body"]
        for row in by_language.values():
            campaign.contents.remove(row)
    if "send_at" in data:
        _validate_send_at(data["send_at"])
        campaign.send_at = data["send_at"]
    if data.get("sender") is not None:
        data = {**data, "sender": parse_sender(data["sender"])}
    for field in ("name", "sender", "rate_per_minute", "respect_quiet_hours"):
        if field in data:
            setattr(campaign, field, data[field])
    if "kind" in data:
        campaign.kind = CampaignKind(data["kind"])


def create_campaign(data: dict[str, Any], actor: dict | None = None, owner_email: str | None = None) -> Campaign:
    campaign = Campaign(name=data["name"], kind=CampaignKind(data.get("kind", "announcement")), status=S.DRAFT)
    try:
        _apply(campaign, data)
        db.session.add(campaign)
        db.session.flush()
        kinds.apply(campaign, data, owner_email)  # share/review/vote settings and the review rules
        _audit("campaign.create", campaign.id, actor)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return campaign


def update_campaign(campaign_id: int, data: dict[str, Any], actor: dict | None = None) -> Campaign:
    campaign = get_campaign(campaign_id)
    if campaign.status not in EDITABLE:
        raise Conflict(f"only a draft can be edited; this campaign is {campaign.status.value}")
    try:
        _apply(campaign, data)
        kinds.apply(campaign, data)
        _audit("campaign.update", campaign.id, actor)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return campaign


def _languages(campaign: Campaign) -> list[str]:
    return [c.language for c in campaign.contents]


def preview(campaign_id: int) -> dict[str, Any]:
    """How many would receive it now, how many are left out and why, and a rendered sample."""
    campaign = get_campaign(campaign_id)
    counts = audience.breakdown(campaign, _languages(campaign))
    left_out = {r.value: 0 for r in SkipReason if r is not SkipReason.CANCELLED}
    for reason, n in counts.items():
        if reason is not None:
            left_out[reason] = n
    contents = compile_contents(campaign)
    previews = samples.preview_samples(campaign, contents)
    utf8 = samples.needs_smtputf8(campaign)
    org = current_org()
    lint = {}
    for content in campaign.contents:
        lint[content.language] = lint_content(content.subject, content.body, org)
        if content.language in contents:
            score = spamassassin_score(samples.sample_message(contents[content.language], content.language))
            if score is not None:
                previews[content.language]["spamassassin"] = score
    db.session.commit()
    return {"recipients": counts.get(None, 0), "left_out": left_out, "audience": sum(counts.values()),
            "samples": previews, "needs_smtputf8": utf8, "lint": lint}


def send_test(campaign_id: int, to: str, language: str | None = None) -> dict[str, Any]:
    """Send the rendered campaign to one address, now, in the request (not counted anywhere)."""
    campaign = get_campaign(campaign_id)
    return samples.send_test(campaign, compile_contents(campaign), to, language)


def check_launchable(campaign: Campaign, audience_languages: bool = True) -> None:
    """Everything that makes a launch refuse, as 422 naming the problem; changes nothing.

    The audience-language check reads the whole audience; launch does it on the snapshot itself
    instead (`audience_languages=False`), so a launch reads the supporters once.
    """
    languages = _languages(campaign)
    if not languages:
        raise ValidationFailed({"contents": ["the campaign has no content"]})
    for content in campaign.contents:
        check_placeholders({f"contents.{content.language}.subject": content.subject,
                            f"contents.{content.language}.body": content.body})
    audience.validate_audience(campaign.audience_filter, campaign.exclude_filter)
    kinds.check_launchable(campaign)
    if audience_languages:
        _refuse_missing_languages(audience.audience_languages_without_content(campaign, languages))


def _refuse_missing_languages(missing: dict[str, int]) -> None:
    if missing:
        raise ValidationFailed({"contents": [
            "no content for audience language(s) " + ", ".join(f"{lang} ({n} supporters)" for lang, n in sorted(missing.items()))
        ]})


def launch(campaign_id: int, actor: dict | None = None) -> dict[str, Any]:
    """Launch now (or schedule for send_at): validate, flip the status conditionally, snapshot, enqueue."""
    campaign = get_campaign(campaign_id)
    if campaign.status != S.DRAFT:
        raise Conflict(f"cannot launch a campaign that is {campaign.status.value}")
    if campaign.send_at is not None:
        _validate_send_at(campaign.send_at)
        check_launchable(campaign)
        transition(campaign_id, S.SCHEDULED, sources={S.DRAFT})
        _audit("campaign.schedule", campaign_id, actor)
        db.session.commit()
        return {"status": S.SCHEDULED.value, "send_at": campaign.send_at.isoformat()}
    return _start(campaign, {S.DRAFT}, actor)


def _start(campaign: Campaign, sources: set[CampaignStatus], actor: dict | None) -> dict[str, Any]:
    try:
        check_launchable(campaign, audience_languages=False)
        # The conditional UPDATE first: of concurrent launches exactly one gets past this line,
        # and (PostgreSQL row lock / SQLite write lock) the others wait and then see zero rows.
        transition(campaign.id, S.SENDING, sources=sources, launched_at=utcnow())
        counts = audience.snapshot(campaign, _languages(campaign))
        # Checked on the snapshot (rolled back on refusal): would-be recipients without content.
        if counts.get(SkipReason.NO_CONTENT.value):
            _refuse_missing_languages(audience.snapshot_languages_without_content(campaign.id))
        queued = counts.get(None, 0)
        if queued == 0:
            raise ValidationFailed({"audience": ["nobody in the audience can receive this campaign now "
                                                 "(see preview for who is left out and why)"]})
        _audit("campaign.launch", campaign.id, actor, detail={"queued": queued})
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    enqueue_pending(campaign.id, mark_enqueued=False)  # the snapshot already stamped enqueued_at
    return {"status": S.SENDING.value, "queued": queued}


def start_scheduled(campaign_id: int) -> int:
    """Called by the sweeper for a due scheduled campaign; a campaign that cannot start returns to draft."""
    campaign = get_campaign(campaign_id)
    try:
        _start(campaign, {S.SCHEDULED}, {"actor_type": "system", "actor_label": "sweeper"})
        return 1
    except Conflict:
        return 0
    except ValidationFailed as exc:
        transition(campaign_id, S.DRAFT, sources={S.SCHEDULED}, reason=f"could not start: {exc.detail}")
        db.session.commit()
        return 0


def pause(campaign_id: int, actor: dict | None = None, reason: str | None = None) -> Campaign:
    transition(campaign_id, S.PAUSED, sources={S.SENDING}, reason=reason or "paused by a manager")
    _audit("campaign.pause", campaign_id, actor)
    db.session.commit()
    return get_campaign(campaign_id)


def resume(campaign_id: int, actor: dict | None = None) -> Campaign:
    transition(campaign_id, S.SENDING, sources={S.PAUSED})
    _audit("campaign.resume", campaign_id, actor)
    db.session.commit()
    # Everything still queued gets a job again; jobs of before the pause claim nothing twice.
    enqueue_pending(campaign_id)
    return get_campaign(campaign_id)


def cancel(campaign_id: int, actor: dict | None = None) -> Campaign:
    transition(campaign_id, S.CANCELLED, reason="cancelled by a manager")
    db.session.execute(sa.update(Delivery).where(Delivery.campaign_id == campaign_id,
                                                 Delivery.status == DeliveryStatus.QUEUED)
                       .values(status=DeliveryStatus.SKIPPED, skip_reason=SkipReason.CANCELLED)
                       .execution_options(synchronize_session=False))
    _audit("campaign.cancel", campaign_id, actor)
    db.session.commit()
    return get_campaign(campaign_id)


# Failed deliveries by cause: the ones no retry or suppression can fix get their own reason.
# The engine writes a reasoned failure as "<reason>: <message>" (e.g. "smtputf8: server does not …").
_FAILURE_REASON = sa.case(
    (sa.or_(Delivery.error.like("smtputf8:%"), Delivery.error == SMTPUTF8_MISSING), "smtputf8"),
    (sa.or_(Delivery.error.like("invalid_address:%"), Delivery.error.like(f"{INVALID_ADDRESS}%")), "invalid_address"),
    (Delivery.error.like("unsendable:%"), "unsendable"),
    (Delivery.error.like("gave up after%"), "retries_exhausted"),
    else_="refused")


def stats(campaign_id: int) -> dict[str, Any]:
    campaign = get_campaign(campaign_id)
    by_status = {s.value: 0 for s in DeliveryStatus}
    for status, n in db.session.execute(sa.select(Delivery.status, sa.func.count())
                                        .where(Delivery.campaign_id == campaign_id).group_by(Delivery.status)):
        by_status[status.value] = n
    skipped = {reason.value: n for reason, n in db.session.execute(
        sa.select(Delivery.skip_reason, sa.func.count())
        .where(Delivery.campaign_id == campaign_id, Delivery.status == DeliveryStatus.SKIPPED)
        .group_by(Delivery.skip_reason)) if reason is not None}
    failed = {reason: n for reason, n in db.session.execute(
        sa.select(_FAILURE_REASON, sa.func.count())
        .where(Delivery.campaign_id == campaign_id, Delivery.status == DeliveryStatus.FAILED)
        .group_by(_FAILURE_REASON))}
    sent = Delivery.status.in_((DeliveryStatus.SENT, DeliveryStatus.BOUNCED))
    possible_duplicates, sent_after_stop = db.session.execute(
        sa.select(sa.func.count().filter(Delivery.reclaimed.is_(True)),
                  sa.func.count().filter(Delivery.in_flight_at_stop.is_(True)))
        .where(Delivery.campaign_id == campaign_id, sent)).one()
    total = sum(by_status.values())
    done = total - by_status["queued"] - by_status["sending"]
    complaints = complaint_count(campaign_id)
    sent_count = by_status["sent"] + by_status["bounced"]
    db.session.commit()
    return {"id": campaign.id, "status": campaign.status.value, "status_reason": campaign.status_reason,
            "deliveries": by_status, "skipped": skipped, "failed": failed, "total": total,
            "progress": round(done / total, 4) if total else 0.0,
            "possible_duplicates": possible_duplicates,
            "complaints": complaints, "complaint_rate": round(complaints / sent_count, 6) if sent_count else 0.0,
            # sent to someone who withdrew while the mail was in flight (its SMTP transaction had begun)
            "sent_after_stop": sent_after_stop,
            "launched_at": campaign.launched_at.isoformat() if campaign.launched_at else None,
            "finished_at": campaign.finished_at.isoformat() if campaign.finished_at else None}


def report_bounce(message_id: str | None = None, delivery_id: int | None = None, *, hard: bool = True,
                  reason: str | None = None) -> dict[str, Any]:
    """Mark a sent delivery bounced (identified by our Message-ID or its id); a hard bounce suppresses."""
    if message_id:
        parsed = parse_message_id(message_id)
        if parsed is None:
            raise ValidationFailed({"message_id": ["not a Message-ID of a campaign mail (<dID.cID@domain>)"]})
        delivery_id = parsed[0]
    if delivery_id is None:
        raise ValidationFailed({"message_id": ["give message_id or delivery_id"]})
    delivery = db.session.get(Delivery, delivery_id)
    if delivery is None or (message_id and parse_message_id(message_id)[1] != delivery.campaign_id):
        raise NotFound(f"no delivery {delivery_id}")
    if delivery.status not in (DeliveryStatus.SENT, DeliveryStatus.BOUNCED):
        raise Conflict(f"delivery {delivery_id} was not sent (it is {delivery.status.value})")
    first = delivery.status is DeliveryStatus.SENT  # a repeated report is not another bounce
    delivery.status = DeliveryStatus.BOUNCED
    delivery.error = (f"{'hard' if hard else 'soft'} bounce: {reason or ''}").strip()[:500]
    suppressed = False
    if hard:
        supporter = db.session.get(Supporter, delivery.supporter_id)
        if supporter is not None and supporter.email_normalized:
            suppress_hashes([email_hash(supporter.email_normalized)], SuppressionReason.HARD_BOUNCE)
            stopmarks.stop(supporter.id, "suppressed")
            suppressed = True
    db.session.commit()
    if first:
        metrics.BOUNCES.labels("hard" if hard else "soft").inc()
    return {"delivery_id": delivery.id, "campaign_id": delivery.campaign_id, "status": "bounced",
            "suppressed": suppressed}

