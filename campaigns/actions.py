"""What supporters do with share, review and vote campaigns: the rows that record it.

- `CampaignSettings`: the kind-specific settings of a campaign (validated in campaigns.kinds),
  its owner's address and the petition's milestones. A separate table, so the engine's
  `campaigns` table stays as it is.
- `Link` / `Click`: every URL a campaign may redirect to (no open redirect: /r/ only goes to a
  stored Link), and per (link, delivery) the first and last click and the total.
- `Action`: a share (per network), a confirmed review (per destination), a vote cast or changed,
  a petition signed. `Vote` + `VoteChoice`: one vote or signature per supporter and campaign,
  enforced by a unique constraint.
- `CampaignReferral`: a newcomer who joined through a supporter's share link from a campaign.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from core.db import BigIntPK, str_enum, utcnow
from core.extensions import db
from supporters.privacy import export_section, on_erase


class CampaignSettings(db.Model):
    __tablename__ = "campaign_settings"

    campaign_id: Mapped[int] = mapped_column(sa.ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True)
    config: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    owner_email: Mapped[str | None] = mapped_column(sa.String(254))  # who hears that a petition reached its goal
    goal_reached_at: Mapped[datetime | None]
    # The announcement that carried the petition's official answer (one per petition).
    answer_campaign_id: Mapped[int | None] = mapped_column(sa.ForeignKey("campaigns.id", ondelete="SET NULL"))


class LinkPurpose(enum.StrEnum):
    MAIL = "mail"  # a link in the mail or on the action page, tracked per delivery
    ACTION = "action"  # the action page itself (url "act:"): opening it counts as a click
    VISIT = "visit"  # the URL a supporter shared: friends' visits, credited to the sharer


class Link(db.Model):
    __tablename__ = "links"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(sa.ForeignKey("campaigns.id", ondelete="CASCADE"))
    purpose: Mapped[LinkPurpose] = mapped_column(str_enum(LinkPurpose, "link_purpose"), default=LinkPurpose.MAIL)
    url: Mapped[str] = mapped_column(sa.String(2000))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (sa.UniqueConstraint("campaign_id", "purpose", "url", name="uq_links_campaign_purpose_url"),)


class Click(db.Model):
    __tablename__ = "clicks"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    link_id: Mapped[int] = mapped_column(sa.ForeignKey("links.id", ondelete="CASCADE"))
    delivery_id: Mapped[int] = mapped_column(BigIntPK, sa.ForeignKey("deliveries.id", ondelete="CASCADE"), index=True)
    count: Mapped[int] = mapped_column(sa.Integer, default=1, server_default="1")
    first_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (sa.UniqueConstraint("link_id", "delivery_id", name="uq_clicks_link_delivery"),)


class ActionKind(enum.StrEnum):
    SHARE = "share"
    REVIEW = "review"
    VOTE = "vote"
    SIGN = "sign"
    SURVEY = "survey"  # a survey response submitted or changed


class Action(db.Model):
    __tablename__ = "actions"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(sa.ForeignKey("campaigns.id", ondelete="CASCADE"))
    supporter_id: Mapped[int] = mapped_column(BigIntPK, sa.ForeignKey("supporters.id", ondelete="CASCADE"))
    delivery_id: Mapped[int | None] = mapped_column(BigIntPK, sa.ForeignKey("deliveries.id", ondelete="SET NULL"))
    kind: Mapped[ActionKind] = mapped_column(str_enum(ActionKind, "action_kind"))
    detail: Mapped[str] = mapped_column(sa.String(80))  # network, destination, "cast"/"changed", "signed"
    note: Mapped[str | None] = mapped_column(sa.String(500))  # e.g. the link to the review
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        sa.Index("ix_actions_campaign_id_id", "campaign_id", "id"),  # the actions API's keyset pages
        sa.Index("ix_actions_supporter_created", "supporter_id", "created_at"),  # engagement
    )


class Vote(db.Model):
    """One vote (poll) or signature (petition) per supporter and campaign: the unique constraint decides."""

    __tablename__ = "votes"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(sa.ForeignKey("campaigns.id", ondelete="CASCADE"))
    supporter_id: Mapped[int] = mapped_column(BigIntPK, sa.ForeignKey("supporters.id", ondelete="CASCADE"))
    comment: Mapped[str | None] = mapped_column(sa.String(1000))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (sa.UniqueConstraint("campaign_id", "supporter_id", name="uq_votes_campaign_supporter"),)


class VoteChoice(db.Model):
    __tablename__ = "vote_choices"

    vote_id: Mapped[int] = mapped_column(BigIntPK, sa.ForeignKey("votes.id", ondelete="CASCADE"), primary_key=True)
    option: Mapped[int] = mapped_column(sa.SmallInteger, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(sa.ForeignKey("campaigns.id", ondelete="CASCADE"))

    __table_args__ = (sa.Index("ix_vote_choices_campaign_option", "campaign_id", "option"),)


class CampaignReferral(db.Model):
    """A newcomer who joined through a supporter's link shared from a campaign (once per newcomer)."""

    __tablename__ = "campaign_referrals"

    supporter_id: Mapped[int] = mapped_column(BigIntPK, sa.ForeignKey("supporters.id", ondelete="CASCADE"),
                                              primary_key=True)
    referrer_id: Mapped[int | None] = mapped_column(BigIntPK, sa.ForeignKey("supporters.id", ondelete="SET NULL"))
    campaign_id: Mapped[int] = mapped_column(sa.ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


@export_section("actions")
def _export_actions(supporter) -> list[dict[str, Any]]:
    rows = db.session.execute(sa.select(Action.campaign_id, Action.kind, Action.detail, Action.note, Action.created_at)
                              .where(Action.supporter_id == supporter.id).order_by(Action.id))
    return [{"campaign_id": c, "kind": k.value, "detail": d, "note": n, "at": t.isoformat()} for c, k, d, n, t in rows]


@export_section("votes")
def _export_votes(supporter) -> list[dict[str, Any]]:
    votes = db.session.scalars(sa.select(Vote).where(Vote.supporter_id == supporter.id).order_by(Vote.id)).all()
    out = []
    for v in votes:
        options = db.session.scalars(sa.select(VoteChoice.option).where(VoteChoice.vote_id == v.id)
                                     .order_by(VoteChoice.option)).all()
        out.append({"campaign_id": v.campaign_id, "options": list(options), "comment": v.comment,
                    "at": v.updated_at.isoformat()})
    return out


@on_erase
def _erase_actions(supporter) -> None:
    """Keep the anonymous counts (which option, which network); drop free text the person wrote."""
    db.session.execute(sa.update(Vote).where(Vote.supporter_id == supporter.id).values(comment=None)
                       .execution_options(synchronize_session=False))
    db.session.execute(sa.update(Action).where(Action.supporter_id == supporter.id).values(note=None)
                       .execution_options(synchronize_session=False))
