"""What happens when a supporter acts on an action page: share, confirm a review, vote, sign.

No `request` here: the page (campaigns.web) passes plain values; bad input raises core.errors
domain errors and records nothing. One vote or signature per supporter is the database's unique
constraint, not a check-then-insert.
"""

from __future__ import annotations

import logging
import unicodedata
from dataclasses import dataclass
from urllib.parse import quote, urlencode

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from campaigns import kinds
from campaigns.actions import (
    Action,
    ActionKind,
    CampaignReferral,
    CampaignSettings,
    LinkPurpose,
    Vote,
    VoteChoice,
)
from campaigns.models import Campaign, CampaignStatus, Delivery, DeliveryStatus
from campaigns.petitions import (  # noqa: F401 - the page (campaigns.web), api/ and queued jobs use these names here
    check_goal,
    notify_goal_reached,
    publish_answer,
    signature_count,
)
from campaigns.review_rules import accepts
from campaigns.tracking import action_page_link, ensure_links, link_url, read_action_token, record_click
from core import events
from core.db import utcnow
from core.errors import Conflict, ValidationFailed
from core.extensions import db
from core.signing import InvalidToken
from supporters.models import Supporter, SupporterStatus

log = logging.getLogger(__name__)

SHARE_TARGETS = {
    "facebook": lambda url, text: "https://www.facebook.com/sharer/sharer.php?" + urlencode({"u": url}),
    "x": lambda url, text: "https://twitter.com/intent/tweet?" + urlencode({"text": text, "url": url}),
    "linkedin": lambda url, text: "https://www.linkedin.com/sharing/share-offsite/?" + urlencode({"url": url}),
    "xing": lambda url, text: "https://www.xing.com/spi/shares/new?" + urlencode({"url": url}),
    "whatsapp": lambda url, text: "https://wa.me/?" + urlencode({"text": f"{text} {url}"}),
    "email": lambda url, text: "mailto:?body=" + quote(f"{text}\n\n{url}"),
}
MAX_REVIEW_URL = 500


class Closed(Conflict):
    title = "Closed"


class AlreadyDone(Conflict):
    title = "Already recorded"


@dataclass
class ActContext:
    delivery: Delivery
    campaign: Campaign
    supporter: Supporter
    config: dict
    settings: CampaignSettings


def open_page(token: str) -> ActContext:
    """The delivery behind an action token; InvalidToken if tampered, unknown or not an action campaign."""
    delivery_id = read_action_token(token)
    delivery = db.session.get(Delivery, delivery_id)
    if delivery is None or delivery.status not in (DeliveryStatus.SENT, DeliveryStatus.BOUNCED):
        raise InvalidToken("no such delivery")
    campaign = db.session.get(Campaign, delivery.campaign_id)
    supporter = db.session.get(Supporter, delivery.supporter_id)
    settings = db.session.get(CampaignSettings, delivery.campaign_id)
    if (campaign is None or campaign.kind not in kinds.ACTION_KINDS or settings is None or supporter is None
            or supporter.status is SupporterStatus.ERASED):
        raise InvalidToken("no action here")
    return ActContext(delivery, campaign, supporter, dict(settings.config), settings)


def record_open(ctx: ActContext) -> None:
    """Opening the page is a click (the funnel's "clicked"), never an action."""
    link_id = action_page_link(ctx.campaign.id)
    record_click(link_id, ctx.delivery.id)


def clean_text(value: str | None, limit: int, field: str, required: bool = False) -> str | None:
    """Strip control characters; refuse overlong text (the page shows the message, nothing is stored)."""
    value = "".join(c for c in (value or "") if c in "\n\t" or unicodedata.category(c)[0] != "C").strip()
    if not value:
        if required:
            raise ValidationFailed({field: ["required"]})
        return None
    if len(value) > limit:
        raise ValidationFailed({field: [f"at most {limit} characters ({len(value)} given)"]})
    return value


def _action(ctx: ActContext, kind: ActionKind, detail: str, note: str | None = None) -> Action:
    action = Action(campaign_id=ctx.campaign.id, supporter_id=ctx.supporter.id, delivery_id=ctx.delivery.id,
                    kind=kind, detail=detail, note=note)
    db.session.add(action)
    events.emit("action.recorded", {"campaign_id": ctx.campaign.id, "kind": kind.value, "detail": detail},
                ctx.supporter.id)
    return action


# --- share ---------------------------------------------------------------------------------------

def share_text(ctx: ActContext, lang: str) -> str:
    text = ctx.config.get("text")
    if isinstance(text, dict):
        return text.get(lang) or text.get("en") or next(iter(text.values()))
    return text or ""


def shared_url(ctx: ActContext) -> str:
    """The URL the supporter shares: a tracked visit link that adds their referral code on the way."""
    ids = ensure_links(ctx.campaign.id, [ctx.config["url"]], LinkPurpose.VISIT)
    db.session.commit()
    return link_url(ctx.delivery.id, ids[ctx.config["url"]])


def share(ctx: ActContext, network: str, text: str | None) -> str | None:
    """Record a share on `network`; return where to send the browser (None for copy-link)."""
    if network not in ctx.config.get("networks", kinds.NETWORKS):
        raise ValidationFailed({"network": ["not offered by this campaign"]})
    text = clean_text(text, kinds.MAX_SHARE_TEXT, "text") or ""
    url = shared_url(ctx)
    _action(ctx, ActionKind.SHARE, network)
    db.session.commit()
    refresh_engagement(ctx.supporter.id)
    return None if network == "copy" else SHARE_TARGETS[network](url, text)


# --- review --------------------------------------------------------------------------------------

def _open_destinations(ctx: ActContext) -> list[dict]:
    """The campaign's destinations that accept a review from this supporter's kind.

    A mixed audience passes the rule check with a warning (e.g. kununu in a campaign to fans and
    former employees): each person is then only offered the sites that accept their review.
    """
    kind = ctx.supporter.kind.value
    return [d for d in ctx.config["destinations"] if accepts(d["site"], kind)]


def review_destinations(ctx: ActContext) -> list[dict]:
    """The destinations open to this supporter, with a tracked link each (the site's own URL is
    stored with the campaign)."""
    dests = _open_destinations(ctx)
    if not dests:
        return []
    ids = ensure_links(ctx.campaign.id, [d["url"] for d in dests])
    db.session.commit()
    done = set(db.session.scalars(sa.select(Action.detail).where(
        Action.campaign_id == ctx.campaign.id, Action.supporter_id == ctx.supporter.id,
        Action.kind == ActionKind.REVIEW)))
    return [{"site": d["site"], "name": d.get("name") or kinds.site_name(d["site"]),
             "url": link_url(ctx.delivery.id, ids[d["url"]]), "done": d["site"] in done} for d in dests]


def confirm_review(ctx: ActContext, site: str, review_url: str | None) -> None:
    """"I wrote a review": recorded once per destination (a second confirmation updates the link)."""
    if site not in {d["site"] for d in ctx.config["destinations"]}:
        raise ValidationFailed({"site": ["not a destination of this campaign"]})
    if site not in {d["site"] for d in _open_destinations(ctx)}:
        raise ValidationFailed({"site": ["this site does not accept reviews from you"]})
    review_url = clean_text(review_url, MAX_REVIEW_URL, "review_url")
    if review_url is not None and not kinds.is_http_url(review_url, MAX_REVIEW_URL):
        raise ValidationFailed({"review_url": ["a web address starting with http:// or https://"]})
    existing = db.session.scalar(sa.select(Action).where(
        Action.campaign_id == ctx.campaign.id, Action.supporter_id == ctx.supporter.id,
        Action.kind == ActionKind.REVIEW, Action.detail == site))
    if existing is not None:
        if review_url:
            existing.note = review_url
    else:
        _action(ctx, ActionKind.REVIEW, site, review_url)
    db.session.commit()
    # Reviews never raise the engagement score: no incentive, not even an implicit one.


# --- vote ----------------------------------------------------------------------------------------

def is_petition(ctx: ActContext) -> bool:
    return ctx.config.get("type") == "petition"


def current_vote(ctx: ActContext) -> tuple[Vote | None, list[int]]:
    vote = db.session.scalar(sa.select(Vote).where(Vote.campaign_id == ctx.campaign.id,
                                                   Vote.supporter_id == ctx.supporter.id))
    if vote is None:
        return None, []
    options = db.session.scalars(sa.select(VoteChoice.option).where(VoteChoice.vote_id == vote.id)
                                 .order_by(VoteChoice.option)).all()
    return vote, list(options)


def _choices(ctx: ActContext, raw: list[str]) -> list[int]:
    options = ctx.config["options"]
    try:
        chosen = sorted({int(x) for x in raw})
    except ValueError:
        raise ValidationFailed({"option": ["not an option of this poll"]}) from None
    if not chosen:
        raise ValidationFailed({"option": ["choose an option"]})
    if any(not 0 <= i < len(options) for i in chosen) or len(raw) > len(options):
        raise ValidationFailed({"option": ["not an option of this poll"]})
    if len(chosen) > 1 and not ctx.config.get("multiple"):
        raise ValidationFailed({"option": ["choose one option"]})
    return chosen


def vote(ctx: ActContext, raw_options: list[str]) -> str:
    """Cast or change a poll vote; return "cast", "changed" or "unchanged"."""
    if is_petition(ctx):
        raise ValidationFailed({"option": ["this is a petition, not a poll"]})
    if kinds.poll_closed(ctx.campaign, ctx.config):
        raise Closed("the poll is closed")
    chosen = _choices(ctx, raw_options)
    now = utcnow()
    try:
        new = Vote(campaign_id=ctx.campaign.id, supporter_id=ctx.supporter.id, created_at=now, updated_at=now)
        db.session.add(new)
        db.session.flush()  # the unique constraint decides who is first, also under concurrent POSTs
        db.session.add_all([VoteChoice(vote_id=new.id, option=i, campaign_id=ctx.campaign.id) for i in chosen])
        _action(ctx, ActionKind.VOTE, "cast", ",".join(map(str, chosen)))
        db.session.commit()
        refresh_engagement(ctx.supporter.id)
        return "cast"
    except IntegrityError:
        db.session.rollback()
    # A vote exists: change it. The UPDATE takes the row lock first, so concurrent changes queue.
    vote_id = db.session.scalar(sa.select(Vote.id).where(Vote.campaign_id == ctx.campaign.id,
                                                         Vote.supporter_id == ctx.supporter.id))
    db.session.execute(sa.update(Vote).where(Vote.id == vote_id).values(updated_at=now)
                       .execution_options(synchronize_session=False))
    before = sorted(db.session.scalars(sa.select(VoteChoice.option).where(VoteChoice.vote_id == vote_id)))
    if before == chosen:
        db.session.commit()
        return "unchanged"
    db.session.execute(sa.delete(VoteChoice).where(VoteChoice.vote_id == vote_id)
                       .execution_options(synchronize_session=False))
    db.session.add_all([VoteChoice(vote_id=vote_id, option=i, campaign_id=ctx.campaign.id) for i in chosen])
    _action(ctx, ActionKind.VOTE, "changed", ",".join(map(str, chosen)))
    db.session.commit()
    return "changed"


def sign(ctx: ActContext, comment: str | None) -> None:
    """Sign the petition once; a second signature is refused (AlreadyDone), nothing recorded."""
    if not is_petition(ctx):
        raise ValidationFailed({"sign": ["this is a poll, not a petition"]})
    if ctx.campaign.status == CampaignStatus.CANCELLED:
        raise Closed("the petition is closed")
    limit = ctx.config.get("comment_max", kinds.DEFAULT_COMMENT_MAX)
    comment = clean_text(comment, limit, "comment") if limit else None
    try:
        db.session.add(Vote(campaign_id=ctx.campaign.id, supporter_id=ctx.supporter.id, comment=comment))
        db.session.flush()
        _action(ctx, ActionKind.SIGN, "signed")
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise AlreadyDone("you have already signed this petition") from None
    refresh_engagement(ctx.supporter.id)
    check_goal(ctx.campaign.id)


# --- referral attribution ------------------------------------------------------------------------

def note_join(email_normalized: str, ref: str | None, campaign_ref: str | None) -> None:
    """Credit a newcomer who arrived through a campaign's share link to that campaign (once).

    Called by the join page after the join service committed. The person is credited to the
    supporter by the join flow itself (referred_by, set on confirmation); here we only remember the
    campaign, and only if the referrer really received that campaign.
    """
    if not ref or not campaign_ref or not campaign_ref.isdigit() or len(campaign_ref) > 9:
        return
    try:
        _note_join(email_normalized, ref, int(campaign_ref))
    except Exception:  # noqa: BLE001 - the person has joined; a lost campaign credit must not become a 500
        db.session.rollback()
        log.exception("could not credit a join to campaign %s", campaign_ref)


def _note_join(email_normalized: str, ref: str, campaign_id: int) -> None:
    row = db.session.execute(sa.select(Supporter.id, Supporter.joined_with_ref, Supporter.referred_by_id,
                                       Supporter.status)
                             .where(Supporter.email_normalized == email_normalized)).first()
    referrer_id = db.session.scalar(sa.select(Supporter.id).where(Supporter.referral_code == ref))
    if row is None or referrer_id is None or row.id == referrer_id or row.status != SupporterStatus.PENDING:
        db.session.commit()
        return
    if row.joined_with_ref != ref:
        db.session.commit()
        return
    received = db.session.scalar(sa.select(Delivery.id).where(Delivery.campaign_id == campaign_id,
                                                              Delivery.supporter_id == referrer_id).limit(1))
    if received is None:
        db.session.commit()
        return
    try:
        with db.session.begin_nested():
            db.session.add(CampaignReferral(supporter_id=row.id, referrer_id=referrer_id, campaign_id=campaign_id))
        db.session.commit()
    except IntegrityError:
        db.session.rollback()


def refresh_engagement(supporter_id: int) -> None:
    from campaigns.engagement import refresh

    try:
        refresh([supporter_id])
    except Exception:  # noqa: BLE001 - the action is recorded; the score catches up on the next refresh
        db.session.rollback()
        log.exception("engagement refresh failed for supporter %s", supporter_id)
