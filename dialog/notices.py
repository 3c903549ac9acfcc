"""Mails about a post (published, rejected, the answer): one notice row per (post, supporter, kind).

The row is written in the transaction that changes the post, so a notice exists exactly when the
change committed, and the unique key makes it at most one per person and kind. `send_notices`
(mail queue) claims rows one by one with a conditional UPDATE and a lease, re-checks the person
right before sending, and records the outcome; a job that dies leaves claimed rows whose lease
expires, and `sweep` (every DIALOG_SWEEP_SECONDS next to the workers, and `flask dialog sweep`)
queues them again.

Consent rule: a notice goes only to an active, unsuppressed supporter who has not paused mail.
Right before the SMTP transaction the per-supporter stop marker (core.stopmarks) is checked too,
like the campaign engine does: once an unsubscribe, pause or erasure is answered, no notice to
that person starts. A paused person's notice is *deferred*, not skipped: it stays `queued` with
`lease_until` = the end of the pause (and `error` = "paused"), and the sweep releases it once the
pause is over (or lifted early, or the person left: then the send-time check skips it).
The monthly frequency limit (contact fatigue) does not apply: these mails answer what the person
wrote or backed themselves, and they are not counted against it either.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from email.utils import parseaddr

import redis
import sqlalchemy as sa
from flask import current_app

from core.accounts import AdminUser
from core.db import utcnow
from core.extensions import db
from core.mail import PermanentMailError, TransientMailError, build_message, get_transport
from core.org_settings import current_org
from core.queues import job
from core.redis import get_redis
from core.stopmarks import MarkersLost, StopCheck
from dialog.models import Backing, Notice, NoticeKind, NoticeStatus, Post
from supporters.models import Supporter, SupporterStatus, Suppression, email_hash

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=120)
MAX_ATTEMPTS = 5
RETRY_SECONDS = 60


def queue_notices(post: Post, kind: NoticeKind) -> None:
    """In the caller's transaction: a notice for the author (and, for the answer, every backer)."""
    recipients = sa.select(Backing.supporter_id.label("sid")).where(
        Backing.post_id == post.id, Backing.supporter_id.is_not(None))
    if post.supporter_id is not None:
        author = sa.select(sa.literal(post.supporter_id).label("sid"))
        recipients = sa.union(author, recipients) if kind is NoticeKind.ANSWER else author
    elif kind is not NoticeKind.ANSWER:
        return
    people = recipients.subquery()
    exists = sa.select(Notice.id).where(Notice.post_id == post.id, Notice.kind == kind,
                                        Notice.supporter_id == people.c.sid).exists()
    db.session.execute(sa.insert(Notice).from_select(
        ["post_id", "supporter_id", "kind", "status", "attempts", "created_at"],
        sa.select(sa.literal(post.id), people.c.sid, sa.literal(kind.value), sa.literal(NoticeStatus.QUEUED.value),
                  sa.literal(0), sa.literal(utcnow(), type_=Notice.__table__.c.created_at.type))
        .where(~exists)))


def enqueue(post_id: int, kind: NoticeKind) -> None:
    """After the commit: queue the sending job (a lost one is found again by `sweep`)."""
    try:
        send_notices.enqueue(post_id, kind.value)
    except redis.exceptions.RedisError:
        log.exception("could not queue dialog notices for post %s; the sweep will", post_id)


def skip_reason(supporter: Supporter | None) -> str | None:
    if supporter is None or supporter.status is SupporterStatus.ERASED:
        return "erased"
    if supporter.status is not SupporterStatus.ACTIVE or not supporter.email:
        return "no_consent"
    if supporter.paused_until is not None and supporter.paused_until > utcnow():
        return "paused"
    digest = email_hash(supporter.email_normalized or supporter.email)
    if db.session.scalar(sa.select(Suppression.id).where(Suppression.email_hash == digest)) is not None:
        return "suppressed"
    return None


def _waiting(now) -> sa.ColumnElement[bool]:
    """Queued and not deferred (a deferred row's `lease_until` is the end of the person's pause),
    or claimed by a sender whose lease ran out."""
    return sa.or_(sa.and_(Notice.status == NoticeStatus.QUEUED,
                          sa.or_(Notice.lease_until.is_(None), Notice.lease_until <= now)),
                  sa.and_(Notice.status == NoticeStatus.SENDING, Notice.lease_until < now))


def _claim(notice_id: int) -> bool:
    now = utcnow()
    claimable = _waiting(now)
    won = db.session.execute(sa.update(Notice).where(Notice.id == notice_id, claimable)
                             .values(status=NoticeStatus.SENDING, lease_until=now + LEASE,
                                     attempts=Notice.attempts + 1)
                             .execution_options(synchronize_session=False)).rowcount
    db.session.commit()
    return bool(won)


def _finish(notice_id: int, status: NoticeStatus, error: str | None = None) -> None:
    values = {"status": status, "lease_until": None, "error": (error or None) and error[:300]}
    if status is NoticeStatus.SENT:
        values["sent_at"] = utcnow()
    db.session.execute(sa.update(Notice).where(Notice.id == notice_id).values(**values)
                       .execution_options(synchronize_session=False))
    db.session.commit()


def _put_back(notice_id: int, until=None, error: str | None = None) -> None:
    """Return a claimed row to the queue without counting the attempt: deferred until `until`
    (a pause), or at once (the stop markers could not be checked)."""
    db.session.execute(sa.update(Notice).where(Notice.id == notice_id)
                       .values(status=NoticeStatus.QUEUED, lease_until=until, error=error,
                               attempts=sa.case((Notice.attempts > 0, Notice.attempts - 1), else_=0))
                       .execution_options(synchronize_session=False))
    db.session.commit()


def stop_reason(stops: StopCheck, supporter: Supporter) -> str | None:
    """Right before sending: the person's stop marker, confirmed against the database (the
    withdrawal committed before its marker was written, so the row says what and until when).
    Redis errors propagate: a sender that cannot check does not send."""
    try:
        marker = stops.stopped(supporter.id)
    except MarkersLost:  # Redis lost its data: the database alone decides, then watch again
        stops.begin()
        db.session.refresh(supporter)
        return skip_reason(supporter)
    if marker is None:
        return None
    db.session.refresh(supporter)
    return skip_reason(supporter) or marker


class StopAtStart:
    """The `started` check of core.mail: the stop marker, read once the SMTP transaction has begun
    (as the campaign engine does), so no mail starts after an unsubscribe was answered."""

    def __init__(self, stops: StopCheck, supporter: Supporter):
        self.stops, self.supporter, self.reason = stops, supporter, None

    def __call__(self) -> bool:
        self.reason = stop_reason(self.stops, self.supporter)
        return self.reason is None


def _defer_until(supporter: Supporter):
    """The end of the person's pause (a marker may say "paused" a moment before the row does)."""
    now = utcnow()
    return supporter.paused_until if supporter.paused_until and supporter.paused_until > now \
        else now + timedelta(seconds=RETRY_SECONDS)


def _not_sent(notice_id: int, supporter: Supporter | None, reason: str) -> None:
    """A pause defers the notice until it ends; any other reason skips it."""
    if reason == "paused":
        _put_back(notice_id, until=_defer_until(supporter), error="paused")
    else:
        _finish(notice_id, NoticeStatus.SKIPPED, reason)


@job("mail", job_timeout=600)
def send_notices(post_id: int, kind: str) -> int:
    """Send the queued notices of one post and kind; safe to run twice (returns how many went out)."""
    from dialog import mails

    notice_kind = NoticeKind(kind)
    stops = StopCheck(get_redis())
    try:
        stops.begin()  # before reading the supporters: markers lost after this are noticed
    except redis.exceptions.RedisError as exc:  # the rows stay queued; the sweep queues them again
        log.warning("dialog notices for post %s not sent: stop markers unreadable (%s)", post_id, exc)
        return 0
    ids = list(db.session.scalars(sa.select(Notice.id).where(
        Notice.post_id == post_id, Notice.kind == notice_kind, _waiting(utcnow())).order_by(Notice.id)))
    db.session.commit()
    sent, retry = 0, False
    for notice_id in ids:
        if not _claim(notice_id):
            continue
        notice = db.session.get(Notice, notice_id)
        post = db.session.get(Post, post_id)
        supporter = db.session.get(Supporter, notice.supporter_id)
        reason = skip_reason(supporter) if post is not None else "post_gone"
        if reason:
            _not_sent(notice_id, supporter, reason)
            continue
        message = mails.notice_mail(supporter, post, notice_kind)
        check = StopAtStart(stops, supporter)
        try:
            if not mails.send(supporter, message, current_org(), started=check):
                _not_sent(notice_id, supporter, check.reason or "stopped")
                continue
        except redis.exceptions.RedisError as exc:
            log.warning("dialog notice %s not sent: stop markers unreadable (%s)", notice_id, exc)
            _put_back(notice_id)
            break
        except PermanentMailError as exc:
            _finish(notice_id, NoticeStatus.FAILED, f"{exc.reason}: {exc}" if exc.reason else str(exc))
            continue
        except TransientMailError as exc:
            attempts = notice.attempts
            if attempts >= MAX_ATTEMPTS:
                _finish(notice_id, NoticeStatus.FAILED, f"gave up after {attempts} attempts: {exc}")
            else:
                _finish(notice_id, NoticeStatus.QUEUED, str(exc))
                retry = True
            continue
        _finish(notice_id, NoticeStatus.SENT)
        sent += 1
    if retry:
        send_notices.enqueue_in(timedelta(seconds=RETRY_SECONDS), post_id, kind)
    return sent


def sweep(grace_seconds: float = 0) -> int:
    """Release deferred notices whose pause is over (or whose person left: the send-time check
    skips those), then queue the job again for every (post, kind) with notices waiting longer than
    `grace_seconds` or abandoned; returns how many (post, kind) were queued."""
    now = utcnow()
    pause_over = sa.select(Supporter.id).where(sa.or_(
        Supporter.paused_until.is_(None), Supporter.paused_until <= now, Supporter.status != SupporterStatus.ACTIVE))
    db.session.execute(sa.update(Notice).where(
        Notice.status == NoticeStatus.QUEUED, Notice.lease_until > now, Notice.supporter_id.in_(pause_over))
        .values(lease_until=None).execution_options(synchronize_session=False))
    db.session.commit()
    fresh = now - timedelta(seconds=grace_seconds)
    pairs = db.session.execute(sa.select(Notice.post_id, Notice.kind).where(
        _waiting(now), sa.or_(Notice.created_at <= fresh, Notice.error.is_not(None))).distinct()).all()
    db.session.commit()
    send_notices.enqueue_many([(post_id, kind.value) for post_id, kind in pairs])
    return len(pairs)


@job("mail")
def notify_owner_due(post_id: int) -> bool:
    """Tell the post's owner (an admin user) that an answer is now owed; without an owner, nobody
    is mailed and the post waits in the due queue (`GET /api/v1/dialog/due`)."""
    post = db.session.get(Post, post_id)
    owner = db.session.get(AdminUser, post.owner_id) if post is not None and post.owner_id else None
    if post is None or owner is None or not owner.is_active:
        return False
    base = current_app.config["PUBLIC_BASE_URL"]
    deadline = post.deadline_at.date().isoformat() if post.deadline_at else "none set"
    body = (f"Post {post.id} reached its topic's answer threshold with {post.backers} backers.\n"
            f"An official answer is due (deadline: {deadline}).\n\n"
            f"{base}/api/v1/dialog/posts/{post.id}\n")
    sender = current_app.config["MAIL_FROM"]
    message = build_message(sender, owner.email, f"Dialog: an answer is due (post {post.id})", body)
    get_transport().send(parseaddr(sender)[1], [owner.email], message)
    return True
