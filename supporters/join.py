"""Join, confirm, choose and leave: the rules of the public supporter flow (no `request` in here).

Status semantics other parts rely on: `active` means effective consent for the purpose
"campaigns" (set on confirmation); withdrawing (preferences or unsubscribe) sets `unsubscribed`
and `unsubscribed_at`. The ConsentEvent ledger is the proof of each step. Unsubscribing does not
touch the suppression list: joining again through a new double opt-in stays possible.
"""

from __future__ import annotations

import enum
import functools
import logging
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import redis
import sqlalchemy as sa
from flask import current_app
from rq import Retry
from sqlalchemy.exc import IntegrityError

from core import stopmarks
from core.db import utcnow
from core.errors import ValidationFailed
from core.extensions import db
from core.mail import PermanentMailError
from core.queues import job
from core.redis import get_redis
from core.signing import ExpiredToken, InvalidToken, read_token
from supporters import consent, links
from supporters.models import (
    LANGUAGES,
    ConsentAction,
    ConsentEvent,
    Supporter,
    SupporterKind,
    SupporterStatus,
    Suppression,
    SuppressionReason,
    Tag,
    email_hash,
    normalize_email,
    supporter_tags,
)
from supporters.privacy import export_section, on_erase

log = logging.getLogger(__name__)

PURPOSE = consent.PURPOSE
RESEND_THROTTLE_SECONDS = 10 * 60  # at most one repeated mail per supporter per 10 minutes
MAX_INTERESTS = 50
REFERRAL_CODE_BYTES = 6  # 48 random bits -> 8 URL-safe characters
# A confirmation is never sent to these: mailing them again would hurt the sender's reputation.
BLOCKING_SUPPRESSIONS = (SuppressionReason.HARD_BOUNCE, SuppressionReason.COMPLAINT, SuppressionReason.MANUAL)


class JoinOutcome(enum.StrEnum):
    CREATED = "created"
    PENDING_AGAIN = "pending_again"  # still unconfirmed: the confirmation goes out again (throttled)
    REJOINED = "rejoined"  # had left: a new double opt-in starts
    ALREADY_ACTIVE = "already_active"  # gets a "you are already with us" mail instead of a second row


@dataclass(frozen=True)
class JoinResult:
    outcome: JoinOutcome
    supporter_id: int
    mail_enqueued: bool


class ConsentWithdrawn(InvalidToken):
    """The link belongs to a grant that was withdrawn later: it must not bring the consent back."""


@dataclass(frozen=True)
class Requester:
    """Who made a request, for the ledger (the web layer fills it from the request)."""

    ip: str | None = None
    user_agent: str | None = None


# --- join ----------------------------------------------------------------------------------------

def join(*, email: str, kind: str, language: str, consent_language: str, consent_version: str | None = None,
         name: str | None = None,
         interest_ids: list[int] | None = None, ref: str | None = None,
         requester: Requester = Requester()) -> JoinResult:
    """Store a pending supporter with the consent grant, commit, then enqueue the confirmation.

    The caller has validated the input (supporters.forms); the checks here keep the service honest
    for other callers. The answer shown to the person must not depend on the outcome.
    """
    _check_join_input(email, kind, language, name)
    normalized = normalize_email(email)
    # Record the text the page showed: the version it carried, if that is one we know.
    version = consent_version if consent_version in consent.TEXTS else consent.CURRENT_VERSION
    text = consent.consent_text(consent_language, version)
    ref = ref if is_referral_code(ref) else None
    now = utcnow()
    supporter_row = {"email": email.strip(), "email_normalized": normalized, "name": (name or "").strip() or None,
                     "kind": SupporterKind(kind), "language": language, "status": SupporterStatus.PENDING,
                     "source": "web_form", "joined_with_ref": ref, "created_at": now, "updated_at": now}
    grant_row = {"purpose": PURPOSE, "action": ConsentAction.GRANTED, "text_version": text.version,
                 "text_hash": text.hash, "method": "web_form", "occurred_at": now, "ip": requester.ip,
                 "user_agent": (requester.user_agent or "")[:400] or None}
    try:
        # New addresses are the common case: insert first and let the unique index find duplicates
        # (this is also what makes two concurrent submits of one address create one supporter).
        supporter_id = _insert_pending(supporter_row, grant_row, atomic_alone=not interest_ids)
        if interest_ids:
            db.session.execute(supporter_tags.insert(),
                               [{"tag_id": tag_id, "supporter_id": supporter_id} for tag_id in interest_ids])
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        return _join_existing(normalized, text, ref, requester)
    return JoinResult(JoinOutcome.CREATED, supporter_id, _enqueue(send_confirmation, supporter_id))


def _insert_pending(supporter_row: dict, grant_row: dict, atomic_alone: bool = False) -> int:
    """Insert the supporter and the grant; return the new id.

    This is the hot path of every signup (see bench/join.py), so it uses one prepared Core
    statement, and on PostgreSQL one round trip: a data-modifying CTE inserts the supporter and
    feeds its id to the ledger insert. One statement is atomic by itself, so when nothing else
    belongs to the transaction (`atomic_alone`) it runs in autocommit mode, which saves the BEGIN
    and COMMIT round trips. SQLite (in-process, no round trips) takes two inserts.
    """
    params = {**{f"s_{k}": v for k, v in supporter_row.items()}, **{f"g_{k}": v for k, v in grant_row.items()}}
    dialect = db.session.get_bind().dialect.name
    statements = _insert_statements(tuple(supporter_row), tuple(grant_row), dialect == "postgresql")
    if len(statements) == 1:
        if atomic_alone and not db.session().in_transaction():
            connection = db.session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
            return connection.execute(statements[0], params).scalar_one()
        return db.session.execute(statements[0], params).scalar_one()
    supporter_id = db.session.execute(statements[0], params).scalar_one()
    db.session.execute(statements[1], {**params, "supporter_id": supporter_id})
    return supporter_id


@functools.cache
def _insert_statements(supporter_columns: tuple[str, ...], grant_columns: tuple[str, ...],
                       single: bool) -> tuple[sa.Insert, ...]:
    """Built once per shape (building SQLAlchemy statements per request costs more than the SQL)."""
    supporters, events = Supporter.__table__, ConsentEvent.__table__
    insert_supporter = sa.insert(supporters).values(
        {c: sa.bindparam(f"s_{c}", type_=supporters.c[c].type) for c in supporter_columns}
    ).returning(supporters.c.id)
    grant_values = [sa.bindparam(f"g_{c}", type_=events.c[c].type) for c in grant_columns]
    if not single:
        insert_grant = sa.insert(events).values(
            {"supporter_id": sa.bindparam("supporter_id"), **dict(zip(grant_columns, grant_values, strict=True))})
        return insert_supporter, insert_grant
    new = insert_supporter.cte("new_supporter")
    insert_both = (sa.insert(events)
                   .from_select(["supporter_id", *grant_columns], sa.select(new.c.id, *grant_values),
                                include_defaults=False)
                   .returning(events.c.supporter_id).add_cte(new, nest_here=True))
    return (insert_both,)


def _join_existing(normalized: str, text: consent.ConsentText, ref: str | None,
                   requester: Requester) -> JoinResult:
    supporter = db.session.scalar(
        sa.select(Supporter).where(Supporter.email_normalized == normalized).with_for_update())
    if supporter is None:  # the IntegrityError was not about the address (e.g. a tag vanished)
        raise ValidationFailed({"interests": ["an interest is no longer offered; please choose again"]})
    if supporter.status is SupporterStatus.ACTIVE:
        db.session.rollback()
        enqueued = _throttle(f"notice:{supporter.id}") and _enqueue(send_already_active, supporter.id)
        return JoinResult(JoinOutcome.ALREADY_ACTIVE, supporter.id, enqueued)
    outcome = JoinOutcome.PENDING_AGAIN if supporter.status is SupporterStatus.PENDING else JoinOutcome.REJOINED
    # The person ticked the consent box again: the ledger records that grant too.
    db.session.add(_grant(supporter, text, requester))
    supporter.status = SupporterStatus.PENDING
    if ref and supporter.joined_with_ref is None and supporter.referred_by_id is None:
        supporter.joined_with_ref = ref
    supporter_id = supporter.id
    db.session.commit()
    enqueued = _throttle(f"confirm:{supporter_id}") and _enqueue(send_confirmation, supporter_id)
    return JoinResult(outcome, supporter_id, enqueued)


def _grant(supporter: Supporter, text: consent.ConsentText, requester: Requester) -> ConsentEvent:
    return ConsentEvent(supporter=supporter, purpose=PURPOSE, action=ConsentAction.GRANTED,
                        text_version=text.version, text_hash=text.hash, method="web_form",
                        ip=requester.ip, user_agent=(requester.user_agent or "")[:400] or None)


def _check_join_input(email: str, kind: str, language: str, name: str | None) -> None:
    errors = {}
    if not email or len(email.strip()) > 254 or "@" not in email:
        errors["email"] = ["must be a valid email address of at most 254 characters"]
    if kind not in {k.value for k in SupporterKind}:
        errors["kind"] = [f"must be one of {', '.join(k.value for k in SupporterKind)}"]
    if language not in LANGUAGES:
        errors["language"] = [f"must be one of {', '.join(LANGUAGES)}"]
    if name is not None and len(name.strip()) > 200:
        errors["name"] = ["must be at most 200 characters"]
    if errors:
        raise ValidationFailed(errors)


def _enqueue(job_function, supporter_id: int) -> bool:
    """Queue a mail job after the commit. If Redis is down the row is kept (the database is the
    source of truth): the person can submit again, and pending supporters whose mail never went
    out are visible as `confirmation_sent_at IS NULL`."""
    try:
        job_function.enqueue(supporter_id)
    except redis.exceptions.RedisError:
        log.exception("could not queue %s for supporter %s", job_function.__name__, supporter_id)
        return False
    return True


def _throttle(key: str) -> bool:
    """True at most once per RESEND_THROTTLE_SECONDS per key: repeated mails cannot flood an inbox."""
    try:
        return bool(get_redis().set(f"sp:join:throttle:{key}", 1, nx=True, ex=RESEND_THROTTLE_SECONDS))
    except redis.exceptions.RedisError:
        log.exception("throttle unavailable; not sending a repeated mail")
        return False


def public_tags() -> list[Tag]:
    return list(db.session.scalars(sa.select(Tag).where(Tag.public.is_(True)).order_by(Tag.name)))


def public_tag_ids(names: list[str]) -> dict[str, int]:
    """Map the given names to public tag ids; names that are not public tags are left out."""
    if not names:
        return {}
    rows = db.session.execute(sa.select(Tag.name, Tag.id).where(Tag.public.is_(True), Tag.name.in_(names)))
    return dict(rows.all())


# --- confirm -------------------------------------------------------------------------------------

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
    return _latest_grant(supporter.id)


def _latest_grant(supporter_id: int) -> ConsentEvent | None:
    return db.session.scalar(
        sa.select(ConsentEvent).where(ConsentEvent.supporter_id == supporter_id, ConsentEvent.purpose == PURPOSE,
                                      ConsentEvent.action == ConsentAction.GRANTED)
        .order_by(ConsentEvent.id.desc()).limit(1))


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
        try:
            db.session.commit()
        except IntegrityError:
            # Two requests confirmed at once, or (2^-48) a referral code collided: look again.
            db.session.rollback()
            if attempt == 2:
                raise
            continue
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
    if not _throttle(f"confirm:{supporter.id}"):
        db.session.rollback()
        return False
    supporter.confirmation_sent_at = None  # lets the job send again for the same grant
    sid = supporter.id
    db.session.commit()
    return _enqueue(send_confirmation, sid)


# --- preferences and leaving ---------------------------------------------------------------------

def supporter_from_token(purpose: str, token: str) -> Supporter:
    """The supporter of a preferences/unsubscribe link; raises InvalidToken (erased counts as unknown)."""
    payload = read_token(purpose, token)
    if not isinstance(payload, dict) or not isinstance(payload.get("s"), int):
        raise InvalidToken("malformed")
    supporter = db.session.get(Supporter, payload["s"])
    if supporter is None or supporter.status is SupporterStatus.ERASED:
        raise InvalidToken("no such supporter")
    return supporter


def update_preferences(supporter: Supporter, *, name: str | None, language: str, interest_ids: list[int],
                       asks_per_month: int | None, paused_until: datetime | None) -> None:
    """Apply the preferences form and commit. Only public interests are touched; tags the company
    assigned itself stay. `asks_per_month` may only lower the company default (None = default)."""
    default = current_app.config["DEFAULT_ASKS_PER_MONTH"]
    errors = {}
    if language not in LANGUAGES:
        errors["language"] = [f"must be one of {', '.join(LANGUAGES)}"]
    if asks_per_month is not None and not 1 <= asks_per_month <= default:
        errors["asks_per_month"] = [f"must be between 1 and {default}"]
    if name is not None and len(name) > 200:
        errors["name"] = ["must be at most 200 characters"]
    if errors:
        raise ValidationFailed(errors)
    supporter.name = (name or "").strip() or None
    supporter.language = language
    supporter.asks_per_month = None if asks_per_month in (None, default) else asks_per_month
    if paused_until is not None and paused_until > utcnow():
        stopmarks.stop(supporter.id, "paused", until=paused_until)
    elif supporter.paused_until is not None:
        stopmarks.clear(supporter.id)
    supporter.paused_until = paused_until
    public_ids = sa.select(Tag.id).where(Tag.public.is_(True)).scalar_subquery()
    db.session.execute(supporter_tags.delete().where(
        supporter_tags.c.supporter_id == supporter.id, supporter_tags.c.tag_id.in_(public_ids),
        supporter_tags.c.tag_id.not_in(interest_ids or [-1])))
    current = set(db.session.scalars(sa.select(supporter_tags.c.tag_id)
                                     .where(supporter_tags.c.supporter_id == supporter.id)))
    new = [tag_id for tag_id in interest_ids if tag_id not in current]
    if new:
        db.session.execute(supporter_tags.insert(), [{"tag_id": t, "supporter_id": supporter.id} for t in new])
    supporter.updated_at = utcnow()
    db.session.commit()


def withdraw(supporter_id: int, *, method: str, requester: Requester = Requester()) -> Supporter | None:
    """Withdraw consent for "campaigns" and leave, at once; idempotent (no second ledger entry)."""
    supporter = db.session.scalar(sa.select(Supporter).where(Supporter.id == supporter_id).with_for_update())
    if supporter is None or supporter.status is SupporterStatus.ERASED:
        db.session.rollback()
        return None
    if supporter.status in (SupporterStatus.ACTIVE, SupporterStatus.PENDING):
        now = utcnow()
        supporter.status = SupporterStatus.UNSUBSCRIBED
        supporter.unsubscribed_at = now
        db.session.add(ConsentEvent(supporter=supporter, purpose=PURPOSE, action=ConsentAction.WITHDRAWN,
                                    method=method, occurred_at=now, ip=requester.ip,
                                    user_agent=(requester.user_agent or "")[:400] or None))
        stopmarks.stop(supporter.id, "unsubscribed")  # written by the commit, before we answer
        db.session.commit()
    else:
        db.session.rollback()
    return supporter


# --- data protection -----------------------------------------------------------------------------

@export_section("join")
def _export_join(supporter: Supporter) -> dict:
    return {"joined_with_referral_code": supporter.joined_with_ref,
            "confirmation_sent_at": supporter.confirmation_sent_at.isoformat()
            if supporter.confirmation_sent_at else None}


@on_erase
def _erase_join(supporter: Supporter) -> None:
    supporter.joined_with_ref = None


# --- jobs ----------------------------------------------------------------------------------------

_RETRY = Retry(max=3, interval=[10, 60, 300])


@job("mail", retry=_RETRY)
def send_confirmation(supporter_id: int) -> bool:
    """Send the double-opt-in mail to a pending supporter (nothing for any other status).

    Safe to run twice: it sends once per grant (`confirmation_sent_at` newer than the latest grant
    means this grant's mail went out) unless a new link was requested.
    """
    from supporters import mails

    supporter = db.session.get(Supporter, supporter_id)
    if supporter is None or supporter.status is not SupporterStatus.PENDING or not supporter.email:
        return False
    grant = _latest_grant(supporter.id)
    sent = supporter.confirmation_sent_at
    if sent is not None and (grant is None or sent >= grant.occurred_at):
        return False
    if _blocked(supporter):
        log.info("confirmation for supporter %s not sent: address is suppressed", supporter.id)
        return False
    try:
        mails.send_confirmation_mail(supporter, grant.id if grant else None)
    except PermanentMailError as exc:
        log.warning("confirmation for supporter %s refused permanently: %s", supporter.id, exc)
        return False
    supporter.confirmation_sent_at = utcnow()
    db.session.commit()
    return True


OPT_IN_BATCH = 500  # supporters per `send_confirmations` job: a million-row import queues 2,000 jobs
OPT_IN_JOB_SECONDS = 120.0  # a job that has run, or would wait, this long hands the rest to a new job


@job("mail", retry=_RETRY, job_timeout=OPT_IN_JOB_SECONDS + 120)  # the margin covers the last mail
def send_confirmations(supporter_ids: list[int]) -> int:
    """The double-opt-in mails of an import, at the sending engine's shared rates.

    Each mail first takes its place in the global and per-recipient-domain limits that campaign
    sends use (`CAMPAIGN_RATE_PER_SECOND`, `CAMPAIGN_DOMAIN_RATE_PER_MINUTE`, kept in Redis for
    all workers), so a big import neither floods the relay nor starves a running campaign. A job
    that would wait longer than OPT_IN_JOB_SECONDS schedules the rest as a new job for when the
    rates allow (the workers run RQ's scheduler), and one that has run that long queues the rest
    behind whatever else is waiting, instead of holding a worker or meeting its timeout. Safe to
    run twice, like `send_confirmation`.
    Returns how many mails went out.
    """
    from core.throttle import Throttle  # local: keeps supporters importable without campaigns

    throttle = Throttle(get_redis())
    global_rate = current_app.config["CAMPAIGN_RATE_PER_SECOND"]
    domain_rate = current_app.config["CAMPAIGN_DOMAIN_RATE_PER_MINUTE"]
    started = time.monotonic()
    # One query for the batch; send_confirmation re-checks each person right before sending.
    emails = dict(db.session.execute(sa.select(Supporter.id, Supporter.email).where(
        Supporter.id.in_(supporter_ids), Supporter.status == SupporterStatus.PENDING)).all())
    db.session.rollback()
    sent = 0
    for index, supporter_id in enumerate(supporter_ids):
        if time.monotonic() - started > OPT_IN_JOB_SECONDS:  # a slow relay: stay well inside the job timeout
            send_confirmations.enqueue(supporter_ids[index:])
            return sent
        email = emails.get(supporter_id)
        if not email:
            continue  # confirmed, left or erased meanwhile: send_confirmation would do nothing either
        limits = throttle.limits(0, email.rpartition("@")[2], global_rate, None, domain_rate)
        wait, _ = throttle.acquire_or_wait(limits)
        while wait > 0:
            if time.monotonic() + wait - started > OPT_IN_JOB_SECONDS:
                # Due when the rates allow the next mail (the workers' scheduler queues it then).
                rest = supporter_ids[index:]
                send_confirmations.enqueue_in(timedelta(seconds=wait), rest)
                log.info("opt-in mails throttled: %d handed to a job due in %.0f s", len(rest), wait)
                return sent
            time.sleep(min(wait, 0.5))
            wait, _ = throttle.acquire_or_wait(limits)
        sent += bool(send_confirmation(supporter_id))
    return sent


@job("mail", retry=_RETRY)
def send_already_active(supporter_id: int) -> bool:
    """Tell an active supporter who joined again that nothing changed, with their links."""
    from supporters import mails

    supporter = db.session.get(Supporter, supporter_id)
    if supporter is None or supporter.status is not SupporterStatus.ACTIVE or not supporter.email:
        return False
    if _blocked(supporter):
        return False
    try:
        mails.send_already_active_mail(supporter)
    except PermanentMailError as exc:
        log.warning("notice for supporter %s refused permanently: %s", supporter.id, exc)
        return False
    return True


@job("mail")
def sweep_unsent_confirmations(older_than_seconds: int = 300) -> int:
    """Queue the confirmation again for web signups whose mail never went out (e.g. Redis was
    down right after the commit). Only `source = web_form`: imports choose themselves whether
    to send an opt-in. Safe to run any time (the job it queues sends once per grant)."""
    now = utcnow()
    ids = list(db.session.scalars(
        sa.select(Supporter.id).where(
            Supporter.status == SupporterStatus.PENDING, Supporter.source == "web_form",
            Supporter.confirmation_sent_at.is_(None),
            Supporter.created_at < now - timedelta(seconds=older_than_seconds),
            Supporter.created_at > now - timedelta(seconds=links.CONFIRM_MAX_AGE))
        .order_by(Supporter.id).limit(10_000)))
    send_confirmation.enqueue_many([(supporter_id,) for supporter_id in ids])
    return len(ids)


def _blocked(supporter: Supporter) -> bool:
    return db.session.scalar(sa.select(Suppression.id).where(
        Suppression.email_hash == email_hash(supporter.email_normalized or supporter.email),
        Suppression.reason.in_(BLOCKING_SUPPRESSIONS))) is not None
