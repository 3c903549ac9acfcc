"""The digest: supporters who opted in (on their dialog page) get, at most every
DIALOG_DIGEST_DAYS, a mail listing the posts published since their last digest on the public
topics open to them, each with a link to the post's page, where one button backs it (a POST:
mail scanners follow links, so a link never backs anything).

`flask dialog digest` (e.g. daily from cron) or the `send_digests` job runs it; it is safe to run
any time: a subscriber's `last_sent_at` moves only after their mail went out. Like the answer
mails, the digest is mail the person asked for: consent, suppressions and pauses apply, the
monthly frequency limit does not.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app

from core.db import utcnow
from core.extensions import db
from core.mail import MailError
from core.org_settings import current_org
from core.queues import job
from dialog.models import DigestSubscription, Post, PostStatus, Topic, Visibility
from dialog.notices import skip_reason
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


@job("default", job_timeout=3600)
def send_digests() -> int:
    """Send every subscriber whose digest is due the posts published since their last one."""
    from dialog import mails

    every = timedelta(days=current_app.config["DIALOG_DIGEST_DAYS"])
    now = utcnow()
    ids = list(db.session.scalars(sa.select(DigestSubscription.supporter_id).where(sa.or_(
        DigestSubscription.last_sent_at.is_(None), DigestSubscription.last_sent_at <= now - every))
        .order_by(DigestSubscription.supporter_id)))
    db.session.commit()
    sent = 0
    for supporter_id in ids:
        row = db.session.get(DigestSubscription, supporter_id)
        supporter = db.session.get(Supporter, supporter_id)
        if row is None or skip_reason(supporter):
            db.session.rollback()
            continue
        items = new_posts_for(supporter, row.last_sent_at or row.created_at)
        if not items:
            db.session.rollback()
            continue
        try:
            mails.send(supporter, mails.digest_mail(supporter, items), current_org())
        except MailError as exc:  # this person only; the next run tries again
            log.warning("digest for supporter %s not sent: %s", supporter_id, exc)
            db.session.rollback()
            continue
        row.last_sent_at = now
        db.session.commit()
        sent += 1
    return sent
