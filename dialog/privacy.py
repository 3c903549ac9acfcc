"""What the dialog stores about a person (the export) and how erasure removes it.

Erasure keeps the posts and backings and so every count: the author's posts and the person's
backings lose their `supporter_id` (the link to a person), a post's "show my first name" is
cleared, and notices and the digest subscription, which only ever concern that person, go. The
audit rows of the person's own changes on the dialog pages keep the action and the post but lose
the supporter's id.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from core.accounts import AuditEvent
from core.extensions import db
from dialog.models import Backing, DigestSubscription, Notice, Post
from supporters.privacy import export_section, on_erase


@export_section("dialog")
def export(supporter) -> dict[str, Any]:
    posts = db.session.scalars(sa.select(Post).where(Post.supporter_id == supporter.id).order_by(Post.id))
    backed = db.session.execute(sa.select(Backing.post_id, Backing.created_at)
                                .where(Backing.supporter_id == supporter.id).order_by(Backing.id))
    digest = db.session.get(DigestSubscription, supporter.id)
    return {
        "posts": [{"id": p.id, "topic_id": p.topic_id, "kind": p.kind.value, "title": p.title, "body": p.body,
                   "status": p.status.value, "show_name": p.show_name, "created_at": p.created_at.isoformat()}
                  for p in posts],
        "backings": [{"post_id": post_id, "created_at": created.isoformat()} for post_id, created in backed],
        "digest": {"since": digest.created_at.isoformat()} if digest else None,
    }


@on_erase
def erase(supporter) -> None:
    db.session.execute(sa.update(Post).where(Post.supporter_id == supporter.id)
                       .values(supporter_id=None, show_name=False).execution_options(synchronize_session=False))
    db.session.execute(sa.update(Backing).where(Backing.supporter_id == supporter.id)
                       .values(supporter_id=None).execution_options(synchronize_session=False))
    db.session.execute(sa.delete(Notice).where(Notice.supporter_id == supporter.id)
                       .execution_options(synchronize_session=False))
    db.session.execute(sa.delete(DigestSubscription).where(DigestSubscription.supporter_id == supporter.id)
                       .execution_options(synchronize_session=False))
    db.session.execute(sa.update(AuditEvent).where(AuditEvent.actor_type == "supporter",
                                                   AuditEvent.actor_id == supporter.id)
                       .values(actor_id=None).execution_options(synchronize_session=False))
