"""The mail jobs of the join flow: the double-opt-in mail (one, or an import's batch at the shared
rates), the "already with us" notice, and the sweep for signups whose mail never went out.

Jobs take ids, re-read the supporter and are safe to run twice. RQ finds them by dotted path
(`supporters.mail_jobs.send_confirmation`); supporters.join re-exports the old paths for jobs
queued before they moved here.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

import redis
import sqlalchemy as sa
from flask import current_app
from rq import Retry

from core.db import utcnow
from core.extensions import db
from core.mail import PermanentMailError
from core.queues import job
from core.redis import get_redis
from core.throttle import Throttle
from supporters import consent, links
from supporters.models import (
    ConsentAction,
    ConsentEvent,
    Supporter,
    SupporterStatus,
    Suppression,
    SuppressionReason,
    email_hash,
)

log = logging.getLogger(__name__)

RESEND_THROTTLE_SECONDS = 10 * 60  # at most one repeated mail per supporter per 10 minutes
# A confirmation is never sent to these: mailing them again would hurt the sender's reputation.
BLOCKING_SUPPRESSIONS = (SuppressionReason.HARD_BOUNCE, SuppressionReason.COMPLAINT, SuppressionReason.MANUAL)


def enqueue_mail(job_function, supporter_id: int) -> bool:
    """Queue a mail job after the commit. If Redis is down the row is kept (the database is the
    source of truth): the person can submit again, and pending supporters whose mail never went
    out are visible as `confirmation_sent_at IS NULL`."""
    try:
        job_function.enqueue(supporter_id)
    except redis.exceptions.RedisError:
        log.exception("could not queue %s for supporter %s", job_function.__name__, supporter_id)
        return False
    return True


def throttle_once(key: str) -> bool:
    """True at most once per RESEND_THROTTLE_SECONDS per key: repeated mails cannot flood an inbox."""
    try:
        return bool(get_redis().set(f"sp:join:throttle:{key}", 1, nx=True, ex=RESEND_THROTTLE_SECONDS))
    except redis.exceptions.RedisError:
        log.exception("throttle unavailable; not sending a repeated mail")
        return False


def latest_grant(supporter_id: int) -> ConsentEvent | None:
    return db.session.scalar(
        sa.select(ConsentEvent).where(ConsentEvent.supporter_id == supporter_id,
                                      ConsentEvent.purpose == consent.PURPOSE,
                                      ConsentEvent.action == ConsentAction.GRANTED)
        .order_by(ConsentEvent.id.desc()).limit(1))


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
    grant = latest_grant(supporter.id)
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
