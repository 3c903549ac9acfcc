"""Tracked links and action-page links: signed, purpose-bound tokens per delivery.

Every http(s) link in a campaign mail is stored as a `Link` of the campaign and rewritten to
`/r/<token>`, the token carrying (delivery id, link id). The redirect only ever goes to a stored
Link's URL (no open redirect) and counts the click per (link, delivery): first time, last time
and total. Tokens do not expire: a mail opened a week later still works.
"""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit, urlunsplit

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import IntegrityError

from campaigns.actions import Click, Link, LinkPurpose
from campaigns.models import Campaign, Delivery
from campaigns.render import body_urls
from core.db import utcnow
from core.extensions import db
from core.signing import TEST_FLAG, InvalidToken, make_token, read_token

ACT = "act"
REDIRECT = "r"
ACTION_PAGE_URL = "act:"  # the pseudo-URL of the Link that counts action-page opens


def _base() -> str:
    return current_app.config["PUBLIC_BASE_URL"]


def action_token(delivery_id: int, test: bool = False) -> str:
    return make_token(ACT, {"d": delivery_id, TEST_FLAG: 1} if test else {"d": delivery_id})


def action_url(delivery_id: int, test: bool = False) -> str:
    return f"{_base()}/act/{action_token(delivery_id, test)}"


def read_action_token(token: str) -> int:
    payload = read_token(ACT, token)
    if not isinstance(payload, dict) or not isinstance(payload.get("d"), int):
        raise InvalidToken("malformed")
    return payload["d"]


def link_url(delivery_id: int, link_id: int) -> str:
    return f"{_base()}/r/{make_token(REDIRECT, [delivery_id, link_id])}"


def read_link_token(token: str) -> tuple[int, int]:
    payload = read_token(REDIRECT, token)
    if (not isinstance(payload, list) or len(payload) != 2
            or not all(isinstance(x, int) and not isinstance(x, bool) for x in payload)):
        raise InvalidToken("malformed")
    return payload[0], payload[1]


def ensure_links(campaign_id: int, urls: list[str], purpose: LinkPurpose = LinkPurpose.MAIL) -> dict[str, int]:
    """The Link ids of these URLs, creating missing rows (concurrent workers may race: both win)."""
    # Longer URLs (in UTF-8 bytes: the unique index has a size limit) stay as they are, untracked.
    urls = list(dict.fromkeys(u for u in urls if len(u.encode()) <= 2000))
    if not urls:
        return {}

    def known() -> dict[str, int]:
        return dict(db.session.execute(sa.select(Link.url, Link.id).where(
            Link.campaign_id == campaign_id, Link.purpose == purpose, Link.url.in_(urls))).all())

    found = known()
    for url in urls:
        if url not in found:
            try:
                with db.session.begin_nested():
                    db.session.add(Link(campaign_id=campaign_id, purpose=purpose, url=url))
            except IntegrityError:
                pass  # another process stored it first
    return known() if len(found) < len(urls) else found


def campaign_links(campaign: Campaign) -> dict[str, str]:
    """{url: slot name} for every link in the campaign's contents (rows created; caller commits)."""
    if not campaign.id:
        return {}
    urls = [u for c in campaign.contents for u in body_urls(c.body)]
    ids = ensure_links(campaign.id, urls)
    _settings_links(campaign.id)
    return {url: f"link:{link_id}" for url, link_id in ids.items()}


def _settings_links(campaign_id: int) -> None:
    """The links the action page will show, stored before the first mail: the page's GET only reads."""
    from campaigns.actions import CampaignSettings

    settings = db.session.get(CampaignSettings, campaign_id)
    if settings is None:
        return
    cfg = settings.config or {}
    ensure_links(campaign_id, [d["url"] for d in cfg.get("destinations", []) if isinstance(d, dict) and "url" in d])
    if isinstance(cfg.get("url"), str):
        ensure_links(campaign_id, [cfg["url"]], LinkPurpose.VISIT)
    ensure_links(campaign_id, [ACTION_PAGE_URL], LinkPurpose.ACTION)


def link_values(delivery_id: int, slots: tuple[str, ...]) -> dict[str, str]:
    return {s: link_url(delivery_id, int(s[5:])) for s in slots if s.startswith("link:")}


def record_click(link_id: int, delivery_id: int) -> None:
    """Count one click: the first creates the row, later ones add to it (commits)."""
    now = utcnow()
    bump = (sa.update(Click).where(Click.link_id == link_id, Click.delivery_id == delivery_id)
            .values(count=Click.count + 1, last_at=now).execution_options(synchronize_session=False))
    if db.session.execute(bump).rowcount == 0:
        try:
            with db.session.begin_nested():
                db.session.add(Click(link_id=link_id, delivery_id=delivery_id, count=1, first_at=now, last_at=now))
        except IntegrityError:
            db.session.execute(bump)
    db.session.commit()


def action_page_link(campaign_id: int) -> int:
    return ensure_links(campaign_id, [ACTION_PAGE_URL], LinkPurpose.ACTION)[ACTION_PAGE_URL]


def follow(token: str, count: bool = True) -> str:
    """Resolve a /r/ token to its stored URL and count the click; raise InvalidToken if anything is off."""
    delivery_id, link_id = read_link_token(token)
    link = db.session.get(Link, link_id)
    if link is None or link.purpose == LinkPurpose.ACTION:
        raise InvalidToken("no such link")
    delivery = db.session.get(Delivery, delivery_id)
    # A token is bound to one delivery of the link's campaign; mixing them is a forgery or a bug.
    if delivery is None or delivery.campaign_id != link.campaign_id:
        raise InvalidToken("link and delivery do not belong together")
    url = link.url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise InvalidToken("not a web link")
    if link.purpose == LinkPurpose.VISIT:
        url = with_referral(url, delivery.supporter_id, link.campaign_id)
    if count:
        record_click(link.id, delivery.id)
    return url


def with_referral(url: str, supporter_id: int, campaign_id: int) -> str:
    """The shared URL with the sharer's referral code and the campaign, for attribution on /join."""
    from supporters.models import Supporter

    code = db.session.scalar(sa.select(Supporter.referral_code).where(Supporter.id == supporter_id))
    if not code:
        return url
    parts = urlsplit(url)
    query = (parts.query + "&" if parts.query else "") + urlencode({"ref": code, "c": campaign_id})
    return urlunsplit(parts._replace(query=query))
