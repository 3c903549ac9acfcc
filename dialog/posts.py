"""Posting and withdrawing: the supporter's side of the dialog (pages and the API share it).

Rules: only active supporters post, only on open topics whose audience includes their kind, at
most DIALOG_POSTS_PER_DAY posts per supporter and day, never the same text twice (a unique key on
(supporter, text hash) decides races). Nothing is stored when any rule says no.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import IntegrityError

from core.db import utcnow
from core.extensions import db
from dialog import text
from dialog.models import LISTED, Backing, Post, PostKind, PostStatus, Topic, Visibility, listed
from dialog.rules import WITHDRAWABLE, DialogConflict, DialogForbidden, DialogInvalid
from supporters.models import Supporter, SupporterStatus


def get_topic(topic_id: int) -> Topic:
    topic = db.session.get(Topic, topic_id)
    if topic is None:
        raise DialogInvalid({"topic_id": "topic_unknown"})
    return topic


def topic_admits(topic: Topic, supporter: Supporter) -> bool:
    """Whether the supporter belongs to the topic's audience (read and post)."""
    return not topic.audience_kinds or supporter.kind.value in topic.audience_kinds


def check_active(supporter: Supporter | None) -> Supporter:
    if supporter is None or supporter.status is not SupporterStatus.ACTIVE:
        raise DialogConflict("not_active", "supporter_id")
    return supporter


def topics_for(supporter: Supporter, *, open_only: bool = False) -> list[Topic]:
    query = sa.select(Topic).order_by(Topic.id)
    if open_only:
        query = query.where(Topic.is_open.is_(True))
    return [t for t in db.session.scalars(query) if topic_admits(t, supporter)]


def validate(data: dict[str, Any]) -> dict[str, Any]:
    """Check the fields of a new post; raises DialogInvalid naming every bad field."""
    codes: dict[str, str] = {}
    title, code = text.check_line(data.get("title"), minimum=text.TITLE_MIN, maximum=text.TITLE_MAX)
    if code:
        codes["title"] = code
    body, code = text.check_body(data.get("body"))
    if code:
        codes["body"] = code
    kind = data.get("kind")
    if kind not in {k.value for k in PostKind}:
        codes["kind"] = "required" if not kind else "invalid"
    topic_id = data.get("topic_id")
    if not isinstance(topic_id, int) or isinstance(topic_id, bool) or not 1 <= topic_id <= 2**31 - 1:
        codes["topic_id"] = "required" if topic_id in (None, "") else "topic_unknown"
    if codes:
        raise DialogInvalid(codes)
    return {"title": title, "body": body, "kind": PostKind(kind), "topic_id": topic_id,
            "show_name": bool(data.get("show_name"))}


def create_post(supporter: Supporter | None, data: dict[str, Any],
                record: Callable[[Post], None] | None = None) -> Post:
    """Store a new post (status `new`, waiting for moderation) and commit; raises on any rule.
    `record(post)` (an audit) runs inside the transaction once the post has its id."""
    clean = validate(data)
    supporter = check_active(supporter)
    topic = get_topic(clean["topic_id"])
    if not topic_admits(topic, supporter):
        raise DialogForbidden("topic_restricted", "topic_id")
    if not topic.is_open:
        raise DialogConflict("topic_closed", "topic_id")
    limit = current_app.config["DIALOG_POSTS_PER_DAY"]
    today = db.session.scalar(sa.select(sa.func.count()).select_from(Post).where(
        Post.supporter_id == supporter.id, Post.created_at >= utcnow() - timedelta(days=1)))
    if today >= limit:
        raise DialogConflict("daily_limit", "body")
    digest = text.body_hash(clean["body"])
    if db.session.scalar(sa.select(Post.id).where(Post.supporter_id == supporter.id, Post.body_hash == digest)):
        raise DialogConflict("duplicate", "body")
    post = Post(topic_id=topic.id, supporter_id=supporter.id, author_kind=supporter.kind.value,
                show_name=clean["show_name"], kind=clean["kind"], language=supporter.language,
                title=clean["title"], body=clean["body"], body_hash=digest, status=PostStatus.NEW, backers=0)
    db.session.add(post)
    try:
        if record is not None:
            db.session.flush()
            record(post)
        db.session.commit()
    except IntegrityError:  # the same text from the same person, twice at once: the key decides
        db.session.rollback()
        raise DialogConflict("duplicate", "body") from None
    return post


def withdraw_post(supporter: Supporter, post_id: int, record: Callable[[], None] | None = None) -> Post:
    """The author takes their post back (while it is not yet answered); commits. `record` (an
    audit) runs inside the transaction once the change is certain."""
    post = db.session.get(Post, post_id)
    if post is None or post.supporter_id != supporter.id:
        raise DialogForbidden("not_author", "post_id")
    if post.status not in WITHDRAWABLE:
        raise DialogConflict("not_withdrawable", "status")
    changed = db.session.execute(sa.update(Post).where(Post.id == post.id, Post.status == post.status)
                                 .values(status=PostStatus.WITHDRAWN, updated_at=utcnow())
                                 .execution_options(synchronize_session=False)).rowcount
    if not changed:
        db.session.rollback()
        raise DialogConflict("not_withdrawable", "status")
    if record is not None:
        record()
    db.session.commit()
    db.session.refresh(post)
    return post


def visible_to(post: Post, supporter: Supporter) -> bool:
    """Whether this supporter may see the post's page."""
    if post.supporter_id == supporter.id and post.status is not PostStatus.MERGED:
        return True
    topic = db.session.get(Topic, post.topic_id)
    return (topic is not None and topic.visibility is Visibility.PUBLIC and post.status in LISTED
            and topic_admits(topic, supporter))


def author_label(post: Post, language: str) -> dict[str, str | None]:
    """Who wrote it, as readers see it: a first name if the author chose so, else their kind."""
    name = None
    if post.show_name and post.supporter_id is not None:
        full = db.session.scalar(sa.select(Supporter.name).where(Supporter.id == post.supporter_id))
        name = next(iter((full or "").split()), None)
    return {"first_name": name, "kind": post.author_kind}


def listed_posts(topic_id: int, limit: int = 50) -> list[Post]:
    """A topic's listed posts, most backed first (the public page)."""
    return list(db.session.scalars(sa.select(Post).where(Post.topic_id == topic_id, listed())
                                   .order_by(Post.backers.desc(), Post.id.desc()).limit(limit)))


def own_posts(supporter_id: int, limit: int = 50) -> list[Post]:
    return list(db.session.scalars(sa.select(Post).where(Post.supporter_id == supporter_id)
                                   .order_by(Post.id.desc()).limit(limit)))


def backs(supporter_id: int, post_id: int) -> bool:
    return db.session.scalar(sa.select(Backing.id).where(Backing.post_id == post_id,
                                                         Backing.supporter_id == supporter_id)) is not None
