"""Listening figures: how responsive the company is, per topic (API and `flask dialog report`).

- posts: every post on the topic (any status, withdrawn and merged included), and by status;
- backers: all backings of the topic's posts, and the distinct people behind them (erased people
  count as backings, not as people);
- median hours to the first response (the moderation decision) and to the answer (answered or
  declined), over the posts that have one;
- answered within the deadline: of the posts that became due with a deadline and whose deadline
  has passed or which were answered, the share answered on time (None when there are none yet);
- most-backed open posts: listed and not yet answered.
"""

from __future__ import annotations

from statistics import median
from typing import Any

import sqlalchemy as sa

from core.db import utcnow
from core.extensions import db
from dialog.models import Backing, Post, PostStatus, Topic

OPEN = (PostStatus.PUBLISHED, PostStatus.UNDER_REVIEW, PostStatus.PLANNED)


def _hours(pairs) -> float | None:
    values = [(end - start).total_seconds() / 3600 for start, end in pairs if start and end]
    return round(median(values), 2) if values else None


def topic_figures(topic: Topic, top: int = 5) -> dict[str, Any]:
    by_status = dict(db.session.execute(sa.select(Post.status, sa.func.count()).where(Post.topic_id == topic.id)
                                        .group_by(Post.status)).all())
    backings, people = db.session.execute(
        sa.select(sa.func.count(), sa.func.count(sa.distinct(Backing.supporter_id)))
        .join(Post, Post.id == Backing.post_id).where(Post.topic_id == topic.id)).one()
    times = db.session.execute(sa.select(Post.created_at, Post.first_response_at, Post.answered_at, Post.deadline_at)
                               .where(Post.topic_id == topic.id)).all()
    now = utcnow()
    judged = [(answered, deadline) for _c, _f, answered, deadline in times
              if deadline is not None and (answered is not None or deadline < now)]
    on_time = sum(1 for answered, deadline in judged if answered is not None and answered <= deadline)
    leaders = db.session.execute(sa.select(Post.id, Post.title, Post.backers, Post.status)
                                 .where(Post.topic_id == topic.id, Post.status.in_(OPEN))
                                 .order_by(Post.backers.desc(), Post.id.desc()).limit(top)).all()
    return {
        "topic_id": topic.id, "name": topic.name_en,
        "posts": sum(by_status.values()),
        "by_status": {s.value: n for s, n in sorted(by_status.items())},
        "backings": backings, "backers": people,
        "median_hours_to_first_response": _hours((c, f) for c, f, _a, _d in times),
        "median_hours_to_answer": _hours((c, a) for c, _f, a, _d in times),
        "due_judged": len(judged),
        "answered_within_deadline": round(on_time / len(judged), 4) if judged else None,
        "most_backed_open": [{"id": i, "title": t, "backers": b, "status": s.value} for i, t, b, s in leaders],
    }


def report() -> list[dict[str, Any]]:
    return [topic_figures(topic) for topic in db.session.scalars(sa.select(Topic).order_by(Topic.id))]


def due_posts(*, overdue_only: bool = False):
    """The select of posts that owe an answer (due, not settled), earliest deadline first."""
    from dialog.rules import SETTLED

    query = sa.select(Post).where(Post.due_at.is_not(None), Post.status.not_in(SETTLED))
    if overdue_only:
        query = query.where(Post.deadline_at < utcnow())
    return query
