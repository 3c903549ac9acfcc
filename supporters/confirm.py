"""Confirm: the double-opt-in link activates a pending supporter, and who brought whom is recorded."""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from core import events, metrics, stopmarks
from core.db import utcnow
from core.extensions import db
from core.signing import ExpiredToken, InvalidToken, read_token
from supporters import consent, links
from supporters.consent import PURPOSE, Requester
from supporters.mail_jobs import enqueue_mail, latest_grant, send_confirmation, throttle_once
from supporters.models import (
    ConsentAction,
    ConsentEvent,
    Supporter,
    SupporterStatus,
    Suppression,
    SuppressionReason,
    email_hash,
    normalize_email,
)

REFERRAL_CODE_BYTES = 6  # 48 random bits -> 8 URL-safe characters


class ConsentWithdrawn(InvalidToken):
    """The link belongs to a grant that was withdrawn later: it must not bring the consent back."""


def read_confirm_token(token: str) -> tuple[int, int | None]:
    """(supporter id, grant id) from a confirm link; raises InvalidToken or ExpiredToken."""
    payload = read_token("confirm", token, max_age=links.CONFIRM_MAX_AGE)
    return _confirm_payload(payload)


def _confirm_payload(payload) -> tuple[int, int | None]:
    if not isinstance(payload, dict) or not isinstance(payload.get("s"), int):
        raise InvalidToken("malformed")
    grant = payload.get("g")
    if grant is not None and not isinstance(grant, int):
        raise InvalidToken("malformed")
    return payload["s"], grant


def expired_confirm_supporter_id(exc: ExpiredToken) -> int | None:
    try:
        return _confirm_payload(exc.payload)[0]
    except InvalidToken:
        return None


def grant_for_confirmation(supporter: Supporter, grant_id: int | None) -> ConsentEvent | None:
    """The grant a confirm link stands for; raises ConsentWithdrawn if it was withdrawn since."""
    events = ConsentEvent.__table__
    if grant_id is not None:
        withdrawn_since = db.session.scalar(
            sa.select(events.c.id).where(events.c.supporter_id == supporter.id, events.c.purpose == PURPOSE,
                                         events.c.action == ConsentAction.WITHDRAWN.value,
                                         events.c.id > grant_id).limit(1))
        if withdrawn_since is not None:
            raise ConsentWithdrawn("withdrawn after this link was sent")
        grant = db.session.get(ConsentEvent, grant_id)
        if grant is not None and grant.supporter_id == supporter.id and grant.action is ConsentAction.GRANTED:
            return grant
        raise InvalidToken("grant does not belong to this supporter")
    return latest_grant(supporter.id)


def confirm(token: str, requester: Requester = Requester()) -> tuple[Supporter, bool]:
    """Activate the supporter of a confirm link; return (supporter, newly_confirmed). Idempotent.

    Raises InvalidToken (tampered, foreign, unknown), ExpiredToken, or ConsentWithdrawn.
    """
    supporter_id, grant_id = read_confirm_token(token)
    for attempt in range(3):
        supporter = db.session.scalar(sa.select(Supporter).where(Supporter.id == supporter_id).with_for_update())
        if supporter is None or supporter.status is SupporterStatus.ERASED:
            raise InvalidToken("no such supporter")
        if supporter.status is SupporterStatus.ACTIVE:
            return supporter, False
        if supporter.status is SupporterStatus.UNSUBSCRIBED:
            raise ConsentWithdrawn("the supporter left after this link was sent")
        grant = grant_for_confirmation(supporter, grant_id)
        # The confirmation refers to the text of the grant it confirms (or, for a supporter created
        # without a recorded grant, the current text, which the confirm page shows).
        current = consent.consent_text(supporter.language)
        version, digest = (grant.text_version, grant.text_hash) if grant else (current.version, current.hash)
        now = utcnow()
        supporter.status = SupporterStatus.ACTIVE
        supporter.confirmed_at = now
        if supporter.referral_code is None:
            supporter.referral_code = new_referral_code()
        _resolve_referral(supporter)
        db.session.add(ConsentEvent(
            supporter=supporter, purpose=PURPOSE, action=ConsentAction.CONFIRMED,
            text_version=version, text_hash=digest,
            method="confirm_link", occurred_at=now, ip=requester.ip,
            user_agent=(requester.user_agent or "")[:400] or None,
            note=f"confirms grant {grant.id}" if grant else None))
        # A confirmed new opt-in outweighs an old unsubscribe or erasure of the same address.
        if supporter.email_normalized:
            db.session.execute(sa.delete(Suppression).where(
                Suppression.email_hash == email_hash(supporter.email_normalized),
                Suppression.reason.in_([SuppressionReason.ERASED, SuppressionReason.UNSUBSCRIBED])))
        stopmarks.clear(supporter.id)  # an earlier unsubscribe's marker must not outlive the new opt-in
        events.emit("supporter.confirmed", {
            "email": supporter.email, "name": supporter.name, "kind": supporter.kind.value,
            "language": supporter.language, "referred_by_id": supporter.referred_by_id}, supporter.id, occurred_at=now)
        events.emit("consent.changed", {"purpose": PURPOSE, "action": "confirmed", "method": "confirm_link"},
                    supporter.id, occurred_at=now)
        try:
            db.session.commit()
        except IntegrityError:
            # Two requests confirmed at once, or (2^-48) a referral code collided: look again.
            db.session.rollback()
            if attempt == 2:
                raise
            continue
        metrics.CONFIRMATIONS.inc()
        return supporter, True
    raise AssertionError("unreachable")


def _resolve_referral(supporter: Supporter) -> None:
    """Record who brought whom, once, at confirmation; self-referral and unknown codes are ignored."""
    code, supporter.joined_with_ref = supporter.joined_with_ref, None
    if not code or supporter.referred_by_id is not None:
        return
    referrer_id = db.session.scalar(sa.select(Supporter.id).where(Supporter.referral_code == code))
    if referrer_id is not None and referrer_id != supporter.id:
        supporter.referred_by_id = referrer_id


def new_referral_code() -> str:
    return secrets.token_urlsafe(REFERRAL_CODE_BYTES)


def is_referral_code(value: str | None) -> bool:
    return bool(value) and len(value) <= 16 and all(c.isascii() and (c.isalnum() or c in "-_") for c in value)


def is_known_referral_code(code: str | None) -> bool:
    """Whether a referral code belongs to an active supporter (for the welcome line on /join)."""
    if not is_referral_code(code):
        return False
    return db.session.scalar(sa.select(Supporter.id).where(Supporter.referral_code == code,
                                                           Supporter.status == SupporterStatus.ACTIVE)) is not None


def request_new_confirmation(*, supporter_id: int | None = None, email: str | None = None) -> bool:
    """Send a fresh confirmation link to a pending supporter (by id or address); throttled.

    Returns whether a mail was queued; the page shown must not depend on it (no enumeration).
    """
    query = sa.select(Supporter).with_for_update()
    if supporter_id is not None:
        query = query.where(Supporter.id == supporter_id)
    elif email:
        query = query.where(Supporter.email_normalized == normalize_email(email)[:254])
    else:
        return False
    supporter = db.session.scalar(query)
    if supporter is None or supporter.status is not SupporterStatus.PENDING:
        db.session.rollback()
        return False
    if not throttle_once(f"confirm:{supporter.id}"):
        db.session.rollback()
        return False
    supporter.confirmation_sent_at = None  # lets the job send again for the same grant
    sid = supporter.id
    db.session.commit()
    return enqueue_mail(send_confirmation, sid)
