"""Moderation and triage (the managers' side): status changes along `rules.TRANSITIONS`, topic,
tags, priority and owner, and merging duplicates. The API audits each change; the services commit
and queue the supporters' mails after the commit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from core import events
from core.accounts import AdminUser
from core.db import utcnow
from core.errors import NotFound
from core.extensions import db
from dialog import notices, text
from dialog.backing import _check_due
from dialog.models import Backing, NoticeKind, Post, PostStatus, Topic
from dialog.rules import (
    BACKABLE,
    MERGEABLE,
    NEEDS_ANSWER,
    NEEDS_REASON,
    DialogConflict,
    DialogInvalid,
    check_transition,
)

NOTICE_FOR = {PostStatus.PUBLISHED: NoticeKind.PUBLISHED, PostStatus.REJECTED: NoticeKind.REJECTED,
              PostStatus.ANSWERED: NoticeKind.ANSWER, PostStatus.DECLINED: NoticeKind.ANSWER}


WEBHOOK_EVENTS = {PostStatus.PUBLISHED: "dialog.post_published", PostStatus.ANSWERED: "dialog.post_answered"}


def get_post(post_id: int) -> Post:
    post = db.session.get(Post, post_id)
    if post is None:
        raise NotFound(f"no dialog post {post_id}")
    return post


def change_status(post: Post, target: PostStatus, *, reason: str | None = None, answer: str | None = None,
                  record: Callable[[], None] | None = None) -> Post:
    """Move the post to `target` if the rules allow it; commits, then queues the mails it owes.

    `record` (the API's audit) runs inside the transaction, only once the change is certain."""
    check_transition(post.status, target)
    codes: dict[str, str] = {}
    if target in NEEDS_REASON:
        reason, code = text.check_body(reason, minimum=3, maximum=text.REASON_MAX)
        if code:
            codes["reason"] = code
    elif reason is not None:
        codes["reason"] = "invalid"
    if target in NEEDS_ANSWER:
        answer, code = text.check_body(answer, minimum=3, maximum=text.ANSWER_MAX)
        if code:
            codes["answer"] = code
    elif answer is not None:
        codes["answer"] = "invalid"
    if codes:
        raise DialogInvalid(codes, {f: "required for this status" for f, c in codes.items() if c == "required"} |
                            {f: "not accepted for this status" for f, c in codes.items() if c == "invalid"})
    now = utcnow()
    values: dict[str, Any] = {"status": target, "updated_at": now}
    if post.first_response_at is None:
        values["first_response_at"] = now
    if target is PostStatus.PUBLISHED:
        values["published_at"] = now
    if target in NEEDS_REASON:
        values["status_reason"] = reason
    if target is PostStatus.ANSWERED:
        values["answer"] = answer
    if target in (PostStatus.ANSWERED, PostStatus.DECLINED):
        values["answered_at"] = now
    # Conditional on the status we checked: of two concurrent changes, the second finds nothing.
    changed = db.session.execute(sa.update(Post).where(Post.id == post.id, Post.status == post.status)
                                 .values(**values).execution_options(synchronize_session=False)).rowcount
    if not changed:
        db.session.rollback()
        raise DialogConflict("transition", "status", "status: the post changed meanwhile; read it again")
    kind = NOTICE_FOR.get(target)
    if kind is not None:
        notices.queue_notices(post, kind)
    if target in WEBHOOK_EVENTS:  # in the same transaction as the change (core.events is the outbox)
        events.emit(WEBHOOK_EVENTS[target], {"post_id": post.id, "topic_id": post.topic_id, "status": target.value,
                                             "backers": post.backers}, post.supporter_id, occurred_at=now)
    if record is not None:
        record()
    db.session.commit()
    db.session.refresh(post)
    if kind is not None:
        notices.enqueue(post.id, kind)
    return post


def triage(post: Post, data: dict[str, Any]) -> list[str]:
    """Set topic, tags, priority and owner (the caller commits); returns the changed field names."""
    changed = []
    if "topic_id" in data and data["topic_id"] != post.topic_id:
        if db.session.get(Topic, data["topic_id"]) is None:
            raise DialogInvalid({"topic_id": "topic_unknown"})
        post.topic_id = data["topic_id"]
        changed.append("topic_id")
    if "owner_id" in data and data["owner_id"] != post.owner_id:
        owner = db.session.get(AdminUser, data["owner_id"]) if data["owner_id"] is not None else None
        if data["owner_id"] is not None and (owner is None or not owner.is_active):
            raise DialogInvalid({"owner_id": "invalid"}, {"owner_id": "no active user with this id"})
        post.owner_id = data["owner_id"]
        changed.append("owner_id")
    if "tags" in data:
        tags = sorted(set(data["tags"] or [])) or None
        if tags != post.tags:
            post.tags = tags
            changed.append("tags")
    if "priority" in data and data["priority"] != post.priority:
        post.priority = data["priority"]
        changed.append("priority")
    if changed:
        post.updated_at = utcnow()
    return changed


def merge(source: Post, target: Post, record: Callable[[], None] | None = None) -> Post:
    """Merge a duplicate into `target`: its backers (and its author) back the target, each once."""
    if source.id == target.id:
        raise DialogConflict("merge_self", "into")
    if source.status not in MERGEABLE:
        raise DialogConflict("merge_source", "status")
    if target.status not in BACKABLE:
        raise DialogConflict("merge_target", "into")
    now = utcnow()
    taken = sa.select(Backing.supporter_id).where(Backing.post_id == target.id, Backing.supporter_id.is_not(None))
    carried = sa.select(sa.literal(target.id), Backing.supporter_id, Backing.created_at).where(
        Backing.post_id == source.id,
        sa.or_(Backing.supporter_id.is_(None),
               sa.and_(Backing.supporter_id.not_in(taken),
                       Backing.supporter_id != (target.supporter_id or -1))))
    try:
        db.session.execute(sa.insert(Backing).from_select(["post_id", "supporter_id", "created_at"], carried))
        if source.supporter_id is not None and source.supporter_id != target.supporter_id:
            already = db.session.scalar(sa.select(Backing.id).where(Backing.post_id == target.id,
                                                                    Backing.supporter_id == source.supporter_id))
            if already is None:
                db.session.add(Backing(post_id=target.id, supporter_id=source.supporter_id,
                                       created_at=source.created_at))
                db.session.flush()
    except IntegrityError:  # someone backed the target at this very moment: nothing merged, try again
        db.session.rollback()
        raise DialogConflict("merge_target", "into", "into: the target changed meanwhile; try again") from None
    db.session.execute(sa.delete(Backing).where(Backing.post_id == source.id))
    count = sa.select(sa.func.count()).select_from(Backing).where(Backing.post_id == target.id).scalar_subquery()
    db.session.execute(sa.update(Post).where(Post.id == target.id).values(backers=count, updated_at=now)
                       .execution_options(synchronize_session=False))
    changed = db.session.execute(sa.update(Post).where(Post.id == source.id, Post.status == source.status)
                                 .values(status=PostStatus.MERGED, merged_into_id=target.id, backers=0, updated_at=now)
                                 .execution_options(synchronize_session=False)).rowcount
    if not changed:
        db.session.rollback()
        raise DialogConflict("merge_source", "status", "status: the post changed meanwhile; read it again")
    became_due = _check_due(target.id)
    if record is not None:
        record()
    db.session.commit()
    if became_due:
        notices.notify_owner_due.enqueue(target.id)
    db.session.refresh(source)
    db.session.refresh(target)
    return target
