"""The digest: supporters who opted in (on their dialog page) get, at most every
DIALOG_DIGEST_DAYS, a mail listing the posts published since their last digest on the public
topics open to them, each with a link to the post's page, where one button backs it (a POST:
mail scanners follow links, so a link never backs anything).

The workers' dialog sweeper queues the `send_digests` job every DIALOG_SWEEP_SECONDS (one host
per interval; `flask dialog digest` runs it by hand). A period is sent at most once, even by two
runs at once or a re-run after a restart: a run *claims* a subscriber's period by a conditional
UPDATE of `last_sent_at` (from the value it read to now) before the mail, and gives it back if the
mail fails. A worker killed between the claim and the mail loses that one digest (the next one
lists what is new from then on): never twice rather than maybe twice.
Like the answer mails, the digest is mail the person asked for: consent, suppressions, pauses
and the stop markers (core.stopmarks) apply, the monthly frequency limit does not.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import redis
import sqlalchemy as sa
from flask import current_app

from core.db import utcnow
from core.extensions import db
from core.mail import MailError
from core.org_settings import current_org
from core.queues import job
from core.redis import get_redis
from core.stopmarks import StopCheck
from dialog.models import DigestSubscription, Post, PostStatus, Topic, Visibility
from dialog.notices import StopAtStart, skip_reason
from dialog.posts import check_active, topic_admits
from supporters.models import Supporter

log = logging.getLogger(__name__)
MAX_ITEMS = 10


def subscribed(supporter_id: int) -> bool:
    return db.session.get(DigestSubscription, supporter_id) is not None


def set_subscription(supporter: Supporter, on: bool) -> None:
    """Opt in or out (commits); idempotent."""
    check_active(supporter)
    row = db.session.get(DigestSubscription, supporter.id)
    if on and row is None:
        db.session.add(DigestSubscription(supporter_id=supporter.id))
    elif not on and row is not None:
        db.session.delete(row)
    db.session.commit()


def new_posts_for(supporter: Supporter, since) -> list[Post]:
    topics = [t.id for t in db.session.scalars(sa.select(Topic).where(Topic.visibility == Visibility.PUBLIC))
              if topic_admits(t, supporter)]
    if not topics:
        return []
    return list(db.session.scalars(
        sa.select(Post).where(Post.topic_id.in_(topics), Post.status == PostStatus.PUBLISHED,
                              Post.published_at > since, Post.supporter_id.is_distinct_from(supporter.id))
        .order_by(Post.backers.desc(), Post.id.desc()).limit(MAX_ITEMS)))


def _move(supporter_id: int, old, new) -> bool:
    """Move `last_sent_at` from `old` to `new` if nobody moved it since (commits)."""
    moved = db.session.execute(
        sa.update(DigestSubscription).where(DigestSubscription.supporter_id == supporter_id,
                                            DigestSubscription.last_sent_at.is_not_distinct_from(old))
        .values(last_sent_at=new).execution_options(synchronize_session=False)).rowcount
    db.session.commit()
    return bool(moved)


@job("default", job_timeout=3600)
def send_digests() -> int:
    """Send every subscriber whose digest is due the posts published since their last one."""
    from dialog import mails

    every = timedelta(days=current_app.config["DIALOG_DIGEST_DAYS"])
    now = utcnow()
    stops = StopCheck(get_redis())
    stops.begin()  # before reading the supporters; a sender that cannot check does not send
    ids = list(db.session.scalars(sa.select(DigestSubscription.supporter_id).where(sa.or_(
        DigestSubscription.last_sent_at.is_(None), DigestSubscription.last_sent_at <= now - every))
        .order_by(DigestSubscription.supporter_id)))
    db.session.commit()
    sent = 0
    for supporter_id in ids:
        row = db.session.get(DigestSubscription, supporter_id)
        supporter = db.session.get(Supporter, supporter_id)
        if row is None or skip_reason(supporter) or (row.last_sent_at and row.last_sent_at > now - every):
            db.session.rollback()
            continue
        last = row.last_sent_at
        items = new_posts_for(supporter, last or row.created_at)
        if not items:
            db.session.rollback()
            continue
        if not _move(supporter_id, last, now):  # another run claimed this period
            continue
        try:
            message = mails.digest_mail(supporter, items)
            check = StopAtStart(stops, supporter)
            mails.send(supporter, message, current_org(), started=check)
            reason = check.reason
        except (MailError, redis.exceptions.RedisError) as exc:  # this person only; the next run tries again
            log.warning("digest for supporter %s not sent: %s", supporter_id, exc)
            db.session.rollback()
            _move(supporter_id, now, last)
            if isinstance(exc, redis.exceptions.RedisError):
                break
            continue
        if reason is not None:  # withdrawn while this run went: not sent, and not owed any more
            _move(supporter_id, now, last)
            continue
        sent += 1
    return sent
