"""What a campaign achieved: the funnel, per-kind figures, time buckets, k-factor and referral depth.

All counts are aggregate SQL (GROUP BY), so they stay cheap for large campaigns, and "live": they
read the tables the action pages write.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from campaigns import kinds
from campaigns.actions import (
    Action,
    ActionKind,
    CampaignReferral,
    CampaignSettings,
    Click,
    Link,
    LinkPurpose,
    Vote,
    VoteChoice,
)
from campaigns.models import Campaign, CampaignKind, Delivery, DeliveryStatus
from core.errors import NotFound, ValidationFailed
from core.extensions import db
from supporters.models import Supporter

BUCKETS = ("hour", "day", "week")
MAX_DEPTH = 20


def _bucket(column, bucket: str):
    if db.engine.dialect.name == "postgresql":
        # In UTC whatever the session's time zone, so the label's "Z" is true.
        return sa.func.to_char(sa.func.date_trunc(bucket, sa.func.timezone("UTC", column)),
                               'YYYY-MM-DD"T"HH24:00:00"Z"')
    fmt = {"hour": "%Y-%m-%dT%H:00:00Z", "day": "%Y-%m-%dT00:00:00Z"}.get(bucket)
    if fmt is None:  # weeks start on Monday, like PostgreSQL's date_trunc('week')
        return sa.func.strftime("%Y-%m-%dT00:00:00Z", sa.func.date(column, "-6 days", "weekday 1"))
    return sa.func.strftime(fmt, column)


def newcomers_query(campaign_id: int):
    """Confirmed newcomers credited to this campaign (and, by the join flow, to their referrer)."""
    newcomer = sa.orm.aliased(Supporter)
    return (sa.select(CampaignReferral.supporter_id)
            .join(newcomer, newcomer.id == CampaignReferral.supporter_id)
            .where(CampaignReferral.campaign_id == campaign_id, newcomer.confirmed_at.is_not(None),
                   newcomer.referred_by_id == CampaignReferral.referrer_id))


def referral_depth(campaign_id: int) -> int:
    """How many generations the campaign's newcomers carried on: 1 = they joined, 2 = they brought others…"""
    first = newcomers_query(campaign_id).subquery()
    if not db.session.execute(sa.select(sa.func.count()).select_from(first)).scalar_one():
        return 0
    tree = sa.select(first.c.supporter_id.label("id"), sa.literal(1).label("depth")).cte("tree", recursive=True)
    child = sa.orm.aliased(Supporter)
    tree = tree.union_all(sa.select(child.id, tree.c.depth + 1).join(tree, child.referred_by_id == tree.c.id)
                          .where(child.confirmed_at.is_not(None), tree.c.depth < MAX_DEPTH))
    return int(db.session.execute(sa.select(sa.func.max(tree.c.depth))).scalar_one() or 0)


def referral_generations(campaign_id: int) -> list[int]:
    """Newcomers per generation of the campaign's referral tree: [joined through it, brought by those, …].

    Each person counts once, in the nearest generation they belong to.
    """
    first = newcomers_query(campaign_id).subquery()
    tree = sa.select(first.c.supporter_id.label("id"), sa.literal(1).label("depth")).cte("gens", recursive=True)
    child = sa.orm.aliased(Supporter)
    tree = tree.union_all(sa.select(child.id, tree.c.depth + 1).join(tree, child.referred_by_id == tree.c.id)
                          .where(child.confirmed_at.is_not(None), tree.c.depth < MAX_DEPTH))
    nearest = sa.select(tree.c.id, sa.func.min(tree.c.depth).label("depth")).group_by(tree.c.id).subquery()
    counts = dict(db.session.execute(sa.select(nearest.c.depth, sa.func.count()).group_by(nearest.c.depth)).all())
    return [counts.get(depth, 0) for depth in range(1, max(counts, default=0) + 1)]


def activity(campaign_id: int, bucket: str) -> list[dict[str, Any]]:
    """Per time bucket: mails sent, first clicks (per mail) and first actions (per supporter).

    Each column adds up to the funnel's sent, clicked and acted.
    """
    cid = campaign_id
    rows: dict[str, dict[str, int]] = {}
    sent_at = _bucket(Delivery.sent_at, bucket).label("b")
    first_click = (sa.select(sa.func.min(Click.first_at).label("at")).join(Link, Link.id == Click.link_id)
                   .where(Link.campaign_id == cid, Link.purpose != LinkPurpose.VISIT).group_by(Click.delivery_id)
                   .subquery())
    first_action = (sa.select(sa.func.min(Action.created_at).label("at"))
                    .where(Action.campaign_id == cid, Action.supporter_id.is_not(None))
                    .group_by(Action.supporter_id).subquery())
    clicked_at = _bucket(first_click.c.at, bucket).label("b")
    acted_at = _bucket(first_action.c.at, bucket).label("b")
    for name, query in (
            ("sent", sa.select(sent_at, sa.func.count()).where(
                Delivery.campaign_id == cid, Delivery.status.in_((DeliveryStatus.SENT, DeliveryStatus.BOUNCED)),
                Delivery.sent_at.is_not(None)).group_by(sent_at)),
            ("clicked", sa.select(clicked_at, sa.func.count()).group_by(clicked_at)),
            ("acted", sa.select(acted_at, sa.func.count()).group_by(acted_at))):
        for when, n in db.session.execute(query):
            rows.setdefault(when, {"sent": 0, "clicked": 0, "acted": 0})[name] = n
    return [{"start": k, **v} for k, v in sorted(rows.items())]


def results(campaign_id: int, bucket: str = "day") -> dict[str, Any]:
    if bucket not in BUCKETS:
        raise ValidationFailed({"bucket": [f"use one of {', '.join(BUCKETS)}"]})
    campaign = db.session.get(Campaign, campaign_id)
    if campaign is None:
        raise NotFound(f"campaign {campaign_id} does not exist")
    cid = campaign_id
    audience = db.session.execute(sa.select(sa.func.count()).where(Delivery.campaign_id == cid)).scalar_one()
    sent = db.session.execute(sa.select(sa.func.count()).where(
        Delivery.campaign_id == cid, Delivery.status.in_((DeliveryStatus.SENT, DeliveryStatus.BOUNCED)))).scalar_one()
    mail_links = sa.and_(Link.campaign_id == cid, Link.purpose != LinkPurpose.VISIT)
    clicked = db.session.execute(sa.select(sa.func.count(sa.distinct(Click.delivery_id)))
                                 .join(Link, Link.id == Click.link_id).where(mail_links)).scalar_one()
    acted = db.session.execute(sa.select(sa.func.count(sa.distinct(Action.supporter_id)))
                               .where(Action.campaign_id == cid)).scalar_one()
    newcomers = db.session.execute(sa.select(sa.func.count()).select_from(newcomers_query(cid).subquery())).scalar_one()
    links = [{"url": url, "purpose": purpose.value, "clicks": int(total or 0), "unique": unique}
             for url, purpose, total, unique in db.session.execute(
                 sa.select(Link.url, Link.purpose, sa.func.sum(Click.count), sa.func.count(Click.id))
                 .outerjoin(Click, Click.link_id == Link.id).where(Link.campaign_id == cid)
                 .group_by(Link.id, Link.url, Link.purpose).order_by(Link.id))]
    timeline: dict[str, dict[str, int]] = {}
    b = _bucket(Action.created_at, bucket).label("b")
    for when, kind, n in db.session.execute(sa.select(b, Action.kind, sa.func.count()).where(Action.campaign_id == cid)
                                            .group_by(b, Action.kind).order_by(b)):
        timeline.setdefault(when, {})[kind.value] = n
    figures = _figures(campaign, bucket)
    db.session.commit()
    return {
        "funnel": {"audience": audience, "sent": sent, "clicked": clicked, "acted": acted, "newcomers": newcomers},
        "k_factor": round(newcomers / acted, 4) if acted else None,
        "referral_depth": referral_depth(cid),
        "referral_generations": referral_generations(cid),
        "links": links,
        "bucket": bucket,
        "timeline": [{"start": k, **v} for k, v in sorted(timeline.items())],
        "activity": activity(cid, bucket),
        campaign.kind.value: figures,
    }


def _figures(campaign: Campaign, bucket: str) -> dict[str, Any]:
    cid = campaign.id
    settings = db.session.get(CampaignSettings, cid)
    cfg = settings.config if settings else {}
    if campaign.kind == CampaignKind.SURVEY:
        from campaigns.survey_results import figures

        return figures(cid)
    if campaign.kind == CampaignKind.SHARE:
        per = dict(db.session.execute(sa.select(Action.detail, sa.func.count()).where(
            Action.campaign_id == cid, Action.kind == ActionKind.SHARE).group_by(Action.detail)).all())
        visits = db.session.execute(sa.select(sa.func.coalesce(sa.func.sum(Click.count), 0))
                                    .join(Link, Link.id == Click.link_id)
                                    .where(Link.campaign_id == cid, Link.purpose == LinkPurpose.VISIT)).scalar_one()
        return {"shares": sum(per.values()), "per_network": {n: per.get(n, 0) for n in cfg.get("networks", kinds.NETWORKS)},
                "visits": int(visits)}
    if campaign.kind == CampaignKind.REVIEW:
        per = dict(db.session.execute(sa.select(Action.detail, sa.func.count()).where(
            Action.campaign_id == cid, Action.kind == ActionKind.REVIEW).group_by(Action.detail)).all())
        return {"confirmations": sum(per.values()),
                "per_destination": {d["site"]: per.get(d["site"], 0) for d in cfg.get("destinations", [])}}
    if campaign.kind == CampaignKind.VOTE and cfg.get("type") == "petition":
        count = db.session.execute(sa.select(sa.func.count()).where(Vote.campaign_id == cid)).scalar_one()
        return {"type": "petition", "signatures": count, "goal": cfg.get("goal"),
                "goal_reached_at": _iso(settings.goal_reached_at) if settings else None,
                "answer_campaign_id": settings.answer_campaign_id if settings else None}
    if campaign.kind == CampaignKind.VOTE:
        per = dict(db.session.execute(sa.select(VoteChoice.option, sa.func.count()).where(
            VoteChoice.campaign_id == cid).group_by(VoteChoice.option)).all())
        voters = db.session.execute(sa.select(sa.func.count()).where(Vote.campaign_id == cid)).scalar_one()
        # Over time: current votes by when they were last cast or changed.
        b = _bucket(Vote.updated_at, bucket).label("b")
        series: dict[str, dict[int, int]] = {}
        for when, option, n in db.session.execute(
                sa.select(b, VoteChoice.option, sa.func.count()).join(Vote, Vote.id == VoteChoice.vote_id)
                .where(VoteChoice.campaign_id == cid).group_by(b, VoteChoice.option).order_by(b)):
            series.setdefault(when, {})[option] = n
        options = cfg.get("options", [])
        return {"type": "poll", "voters": voters,
                "options": [{"option": i, "label": label, "votes": per.get(i, 0)} for i, label in enumerate(options)],
                "over_time": [{"start": k, "votes": [v.get(i, 0) for i in range(len(options))]}
                              for k, v in sorted(series.items())]}
    return {}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def list_actions(campaign_id: int, after: int = 0, limit: int = 50) -> dict[str, Any]:
    """Keyset pages of the campaign's actions (oldest first); `next_after` continues."""
    if db.session.get(Campaign, campaign_id) is None:
        raise NotFound(f"campaign {campaign_id} does not exist")
    rows = db.session.execute(
        sa.select(Action.id, Action.kind, Action.detail, Action.note, Action.supporter_id, Action.created_at,
                  Vote.comment)
        .outerjoin(Vote, sa.and_(Action.kind == ActionKind.SIGN, Vote.campaign_id == Action.campaign_id,
                                 Vote.supporter_id == Action.supporter_id))
        .where(Action.campaign_id == campaign_id, Action.id > after).order_by(Action.id).limit(limit)).all()
    db.session.commit()
    items = [{"id": i, "kind": k.value, "detail": d, "note": n, "supporter_id": s, "created_at": t.isoformat(),
              **({"comment": c} if k == ActionKind.SIGN else {})} for i, k, d, n, s, t, c in rows]
    return {"items": items, "next_after": items[-1]["id"] if len(items) == limit else None}
