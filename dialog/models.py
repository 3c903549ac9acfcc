"""Dialog (issue 14): topics, posts from supporters, backings, and the notices mailed about them.

A backing is one row per (post, supporter), unique in the database; `posts.backers` is its count,
kept in the same transaction as every insert and delete of a backing, so a listing ordered by
backers is one index scan. Erasure sets `supporter_id` to NULL on the author's posts and backings:
the rows, and so every count, stay.
"""

from __future__ import annotations

import enum
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from core import events
from core.db import BigIntPK, str_enum, utcnow
from core.extensions import db


class PostKind(enum.StrEnum):
    IDEA = "idea"
    CONCERN = "concern"
    QUESTION = "question"


class PostStatus(enum.StrEnum):
    NEW = "new"  # waiting for moderation; only the author and the company see it
    PUBLISHED = "published"
    REJECTED = "rejected"  # with a reason, told to the author
    UNDER_REVIEW = "under_review"
    PLANNED = "planned"
    ANSWERED = "answered"
    DECLINED = "declined"  # with a reason: an answer too ("no, because …")
    DONE = "done"
    WITHDRAWN = "withdrawn"  # by its author
    MERGED = "merged"  # a duplicate: its backers moved to `merged_into_id`


# Statuses in which a post is shown to the topic's audience (and listed by backers).
LISTED = (PostStatus.PUBLISHED, PostStatus.UNDER_REVIEW, PostStatus.PLANNED, PostStatus.ANSWERED,
          PostStatus.DECLINED, PostStatus.DONE)
LISTED_SQL = "status IN ('published', 'under_review', 'planned', 'answered', 'declined', 'done')"


class Visibility(enum.StrEnum):
    PUBLIC = "public"  # published posts are shown to every supporter of the topic's audience
    PRIVATE = "private"  # only the author and the company see a post


class NoticeKind(enum.StrEnum):
    PUBLISHED = "published"
    REJECTED = "rejected"
    ANSWER = "answer"  # answered or declined: to the author and every backer


class NoticeStatus(enum.StrEnum):
    QUEUED = "queued"
    SENDING = "sending"  # claimed until lease_until
    SENT = "sent"
    SKIPPED = "skipped"  # no consent any more, suppressed, paused, erased: `error` says which
    FAILED = "failed"  # refused for good by the mail server


class Topic(db.Model):
    __tablename__ = "dialog_topics"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    name_en: Mapped[str] = mapped_column(sa.String(120))
    name_de: Mapped[str | None] = mapped_column(sa.String(120))
    description_en: Mapped[str | None] = mapped_column(sa.String(2000))
    description_de: Mapped[str | None] = mapped_column(sa.String(2000))
    is_open: Mapped[bool] = mapped_column(sa.Boolean, default=True, server_default=sa.true())
    # Supporter kinds that may post and read here (e.g. ["former_employee"]); NULL = everybody.
    audience_kinds: Mapped[list[str] | None] = mapped_column(sa.JSON)
    visibility: Mapped[Visibility] = mapped_column(str_enum(Visibility, "dialog_visibility"),
                                                   default=Visibility.PUBLIC)
    # Backers a post needs before the company owes a public answer, and the days it then has.
    answer_threshold: Mapped[int | None] = mapped_column(sa.Integer)
    answer_deadline_days: Mapped[int | None] = mapped_column(sa.SmallInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    def name(self, language: str) -> str:
        return (self.name_de if language == "de" else None) or self.name_en

    def description(self, language: str) -> str | None:
        return (self.description_de if language == "de" else None) or self.description_en


class Post(db.Model):
    __tablename__ = "dialog_posts"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    topic_id: Mapped[int] = mapped_column(sa.ForeignKey("dialog_topics.id", ondelete="RESTRICT"))
    # NULL once the author is erased: the post stays, without a person behind it.
    supporter_id: Mapped[int | None] = mapped_column(BigIntPK, sa.ForeignKey("supporters.id", ondelete="SET NULL"))
    author_kind: Mapped[str] = mapped_column(sa.String(20))  # for "a supporter from <kind>"
    show_name: Mapped[bool] = mapped_column(sa.Boolean, default=False, server_default=sa.false())
    kind: Mapped[PostKind] = mapped_column(str_enum(PostKind, "dialog_post_kind"))
    language: Mapped[str] = mapped_column(sa.String(8), default="en")
    title: Mapped[str] = mapped_column(sa.String(200))
    body: Mapped[str] = mapped_column(sa.Text)
    # SHA-256 of the normalised text: the same supporter cannot post the same text twice.
    body_hash: Mapped[str] = mapped_column(sa.String(64))
    status: Mapped[PostStatus] = mapped_column(str_enum(PostStatus, "dialog_post_status"), default=PostStatus.NEW)
    status_reason: Mapped[str | None] = mapped_column(sa.String(1000))  # rejected / declined
    answer: Mapped[str | None] = mapped_column(sa.Text)
    tags: Mapped[list[str] | None] = mapped_column(sa.JSON)
    priority: Mapped[int | None] = mapped_column(sa.SmallInteger)
    owner_id: Mapped[int | None] = mapped_column(sa.ForeignKey("admin_users.id", ondelete="SET NULL"))
    merged_into_id: Mapped[int | None] = mapped_column(BigIntPK, sa.ForeignKey("dialog_posts.id", ondelete="SET NULL"))
    backers: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    published_at: Mapped[datetime | None]
    first_response_at: Mapped[datetime | None]  # the first moderation decision (published or rejected)
    due_at: Mapped[datetime | None]  # when the backers reached the topic's threshold
    deadline_at: Mapped[datetime | None]  # due_at + the topic's answer deadline
    answered_at: Mapped[datetime | None]  # answered or declined

    __table_args__ = (
        sa.UniqueConstraint("supporter_id", "body_hash", name="uq_dialog_posts_supporter_body"),
        # A topic's listed posts by backers (the public listing and its cursor pages): partial, so
        # the seek never reads a moderation queue's rows. LISTED_SQL must match LISTED.
        sa.Index("ix_dialog_posts_listed", "topic_id", "backers", "id",
                 postgresql_where=sa.text(LISTED_SQL), sqlite_where=sa.text(LISTED_SQL)),
        sa.Index("ix_dialog_posts_status", "status", "id"),
        sa.Index("ix_dialog_posts_supporter_created", "supporter_id", "created_at"),
        sa.Index("ix_dialog_posts_due", "due_at"),
        sa.CheckConstraint("backers >= 0", name="backers_not_negative"),
    )


def listed() -> sa.ColumnElement[bool]:
    """`status IN (…LISTED…)` with the values as literals, exactly as the partial index says it: a
    statement with bound parameters could not be proven to match the index's predicate, and a
    generic plan on PostgreSQL would ignore the index."""
    return Post.status.in_([sa.literal_column(f"'{s.value}'") for s in LISTED])


class Backing(db.Model):
    __tablename__ = "dialog_backings"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    post_id: Mapped[int] = mapped_column(BigIntPK, sa.ForeignKey("dialog_posts.id", ondelete="CASCADE"))
    supporter_id: Mapped[int | None] = mapped_column(BigIntPK, sa.ForeignKey("supporters.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        # One backing per supporter and post, whoever races (NULLs, the erased, never collide).
        sa.UniqueConstraint("post_id", "supporter_id", name="uq_dialog_backings_post_supporter"),
        sa.Index("ix_dialog_backings_supporter", "supporter_id"),
    )


class Notice(db.Model):
    """One mail about a post to one supporter: the unique key makes it at most one per kind."""

    __tablename__ = "dialog_notices"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    post_id: Mapped[int] = mapped_column(BigIntPK, sa.ForeignKey("dialog_posts.id", ondelete="CASCADE"))
    supporter_id: Mapped[int] = mapped_column(BigIntPK, sa.ForeignKey("supporters.id", ondelete="CASCADE"))
    kind: Mapped[NoticeKind] = mapped_column(str_enum(NoticeKind, "dialog_notice_kind"))
    status: Mapped[NoticeStatus] = mapped_column(str_enum(NoticeStatus, "dialog_notice_status"),
                                                 default=NoticeStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(sa.SmallInteger, default=0, server_default="0")
    lease_until: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(sa.String(300))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        sa.UniqueConstraint("post_id", "supporter_id", "kind", name="uq_dialog_notices_post_supporter_kind"),
        sa.Index("ix_dialog_notices_status", "status", "id"),
    )


class DigestSubscription(db.Model):
    """A supporter who asked for the periodic digest of new posts (their choice, on the dialog page)."""

    __tablename__ = "dialog_digest_subscriptions"

    supporter_id: Mapped[int] = mapped_column(BigIntPK, sa.ForeignKey("supporters.id", ondelete="CASCADE"),
                                              primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_sent_at: Mapped[datetime | None]


# The dialog's webhook event types (issue 16), known wherever the models are (wsgi.MODEL_MODULES).
events.register_type("dialog.post_published", "A dialog post was published: supporters of its topic can back it.",
                     {"post_id": 12, "topic_id": 3, "status": "published", "backers": 0})
events.register_type("dialog.post_answered", "The company answered a dialog post; its author and backers are told.",
                     {"post_id": 12, "topic_id": 3, "status": "answered", "backers": 250})
events.register_type("dialog.post_due", "A dialog post reached its topic's backer threshold: an answer is owed.",
                     {"post_id": 12, "topic_id": 3, "backers": 100, "deadline_at": "2026-12-31T12:00:00Z"})
