"""Backing a post: one row per (post, supporter), unique in the database, withdrawable.

The INSERT comes first in its transaction and the unique key decides concurrent duplicates; the
post's `backers` count is changed by a conditional UPDATE in the same transaction (the row lock
queues concurrent backers, so the count is exact). When the count first reaches the topic's
threshold the post becomes due: a conditional UPDATE lets exactly one backer win that moment.
Authors cannot back their own post: the threshold measures the support of others.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from core import events
from core.accounts import record_audit
from core.db import utcnow
from core.errors import NotFound
from core.extensions import db
from dialog.models import Backing, Post, Topic, Visibility
from dialog.posts import check_active, topic_admits
from dialog.rules import BACKABLE, DialogConflict, DialogForbidden
from supporters.models import Supporter


def _backable(supporter: Supporter, post_id: int) -> tuple[Post, Topic]:
    row = db.session.execute(sa.select(Post, Topic).join(Topic, Topic.id == Post.topic_id)
                             .where(Post.id == post_id)).one_or_none()
    if row is None:
        raise NotFound(f"no dialog post {post_id}")
    post, topic = row
    if topic.visibility is not Visibility.PUBLIC or not topic_admits(topic, supporter):
        raise DialogForbidden("not_backable", "post_id")
    if post.supporter_id == supporter.id:
        raise DialogConflict("own_post", "post_id")
    if post.status not in BACKABLE:
        raise DialogConflict("not_backable", "post_id")
    return post, topic


def back(supporter: Supporter | None, post_id: int, record: Callable[[], None] | None = None) -> Post:
    """Back the post (commits); a second backing by the same supporter is a 409 and changes nothing.

    The reads before the INSERT hold no snapshot on SQLite (the driver begins the transaction at
    the first write), so the INSERT is the first statement of the write transaction on both engines.
    `record` (the API's audit) runs inside the transaction once the backing is certain."""
    supporter = check_active(supporter)
    post, topic = _backable(supporter, post_id)
    try:
        db.session.execute(sa.insert(Backing).values(post_id=post_id, supporter_id=supporter.id, created_at=utcnow()))
    except IntegrityError:
        db.session.rollback()
        raise DialogConflict("already_backed", "post_id") from None
    counted = db.session.execute(
        sa.update(Post).where(Post.id == post_id, Post.status.in_(BACKABLE))
        .values(backers=Post.backers + 1).execution_options(synchronize_session=False)).rowcount
    if not counted:  # answered or withdrawn in the meantime
        db.session.rollback()
        raise DialogConflict("not_backable", "post_id")
    became_due = bool(topic.answer_threshold) and post.due_at is None and _check_due(post_id)
    if record is not None:
        record()
    db.session.commit()
    if became_due:
        from dialog.notices import notify_owner_due

        notify_owner_due.enqueue(post_id)
    return post  # expired by the commit: the next read loads it once, with the new count


def unback(supporter: Supporter | None, post_id: int, record: Callable[[], None] | None = None) -> Post:
    """Withdraw a backing (commits). A post that was due stays due: the obligation, once owed, stays."""
    supporter = check_active(supporter)
    post = db.session.get(Post, post_id)
    if post is None:
        raise NotFound(f"no dialog post {post_id}")
    removed = db.session.execute(sa.delete(Backing).where(Backing.post_id == post_id,
                                                          Backing.supporter_id == supporter.id)
                                 .execution_options(synchronize_session=False)).rowcount
    if not removed:
        db.session.rollback()
        raise DialogConflict("not_backed", "post_id")
    db.session.execute(sa.update(Post).where(Post.id == post_id).values(backers=Post.backers - 1)
                       .execution_options(synchronize_session=False))
    if record is not None:
        record()
    db.session.commit()
    return post


def _check_due(post_id: int) -> bool:
    """In the backing's transaction: mark the post due if the count reached the threshold first now."""
    row = db.session.execute(sa.select(Post.backers, Post.due_at, Topic.answer_threshold, Topic.answer_deadline_days)
                             .join(Topic, Topic.id == Post.topic_id).where(Post.id == post_id)).one()
    backers, due_at, threshold, days = row
    if not threshold or due_at is not None or backers < threshold:
        return False
    now = utcnow()
    deadline = now + timedelta(days=days) if days else None
    won = db.session.execute(sa.update(Post).where(Post.id == post_id, Post.due_at.is_(None))
                             .values(due_at=now, deadline_at=deadline)
                             .execution_options(synchronize_session=False)).rowcount
    if won:
        topic_id = db.session.scalar(sa.select(Post.topic_id).where(Post.id == post_id))
        events.emit("dialog.post_due", {"post_id": post_id, "topic_id": topic_id, "backers": backers,
                                        "deadline_at": deadline.isoformat() if deadline else None}, occurred_at=now)
        record_audit("dialog.post.due", actor_type="system", actor_label="dialog", object_type="dialog_post",
                     object_id=post_id, detail={"threshold": threshold, "deadline_days": days})
    return bool(won)


def backers_over_time(post_id: int) -> list[dict]:
    """Backings per day (UTC), with the running total: the post's curve of support."""
    day = sa.func.date(Backing.created_at)
    rows = db.session.execute(sa.select(day, sa.func.count()).where(Backing.post_id == post_id)
                              .group_by(day).order_by(day)).all()
    total, out = 0, []
    for value, count in rows:
        total += count
        out.append({"day": str(value)[:10], "new": count, "total": total})
    return out
