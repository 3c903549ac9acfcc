"""Engagement: a score per supporter that rises with actions and referrals and decays with time.

score = Σ weight × 0.5^(age in days / HALF_LIFE_DAYS) over the supporter's shares, votes cast,
petitions signed and confirmed newcomers they brought. Reviews weigh nothing: a review must never
earn anything, not even standing. The level is derived from the score (LEVELS); segments filter on
the stored score (`{"field": "engagement", "op": "gte", "value": 5}` = advocates and champions).
The score is refreshed when a supporter acts and for everyone by `flask campaigns engagement`
(run it daily so that the decay shows).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

import sqlalchemy as sa

from campaigns.actions import Action, ActionKind
from core.db import utcnow
from core.extensions import db
from supporters.models import Supporter

HALF_LIFE_DAYS = 90.0
# Answering a survey counts the same whatever the answers: the score must not carry satisfaction.
WEIGHTS = {ActionKind.SHARE: 1.0, ActionKind.VOTE: 1.0, ActionKind.SIGN: 1.0, ActionKind.REVIEW: 0.0,
           ActionKind.SURVEY: 1.0}
REFERRAL_WEIGHT = 3.0
LEVELS = ((15.0, "champion"), (5.0, "advocate"), (1.0, "active"), (0.0, "member"))


def level(score: float | None) -> str:
    return next(name for floor, name in LEVELS if (score or 0.0) >= floor)


def _decay(when: datetime, now: datetime) -> float:
    return 0.5 ** (max((now - when).total_seconds(), 0.0) / 86400 / HALF_LIFE_DAYS)


def scores(supporter_ids: Iterable[int], now: datetime | None = None) -> dict[int, float]:
    ids = list(supporter_ids)
    now = now or utcnow()
    out: dict[int, float] = defaultdict(float)
    for sid in ids:
        out[sid] = 0.0
    rows = db.session.execute(sa.select(Action.supporter_id, Action.kind, Action.created_at).where(
        Action.supporter_id.in_(ids), Action.kind != ActionKind.REVIEW,
        sa.not_(sa.and_(Action.kind.in_((ActionKind.VOTE, ActionKind.SURVEY)), Action.detail == "changed"))))
    for sid, kind, when in rows:
        out[sid] += WEIGHTS[kind] * _decay(when, now)
    newcomer = sa.orm.aliased(Supporter)
    rows = db.session.execute(sa.select(newcomer.referred_by_id, newcomer.confirmed_at).where(
        newcomer.referred_by_id.in_(ids), newcomer.confirmed_at.is_not(None)))
    for sid, when in rows:
        out[sid] += REFERRAL_WEIGHT * _decay(when, now)
    return {sid: round(v, 4) for sid, v in out.items()}


def refresh(supporter_ids: Iterable[int], now: datetime | None = None) -> int:
    """Store fresh scores for these supporters (commits)."""
    computed = scores(supporter_ids, now)
    if computed:
        db.session.execute(sa.update(Supporter), [{"id": sid, "engagement_score": s} for sid, s in computed.items()])
    db.session.commit()
    return len(computed)


def refresh_all(batch: int = 1000, now: datetime | None = None) -> int:
    """Recompute everyone with a score or any activity, in keyset batches (decay needs this daily)."""
    now = now or utcnow()
    done, after = 0, 0
    active = sa.or_(Supporter.engagement_score > 0,
                    sa.exists().where(Action.supporter_id == Supporter.id),
                    sa.exists().where(sa.orm.aliased(Supporter).referred_by_id == Supporter.id))
    while True:
        ids = db.session.scalars(sa.select(Supporter.id).where(Supporter.id > after, active)
                                 .order_by(Supporter.id).limit(batch)).all()
        if not ids:
            db.session.commit()
            return done
        done += refresh(ids, now)
        after = ids[-1]
