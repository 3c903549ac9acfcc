"""A campaign's contents compiled for sending, and the values one delivery fills in.

Used by the engine for every batch and by the services for preview and test mails; it sits below
both, so neither has to import the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from flask import current_app

from campaigns.layout import campaign_headers, campaign_layout, campaign_sender, consent_date
from campaigns.models import Campaign, CampaignKind, CampaignStatus
from campaigns.render import CompiledContent, message_id
from campaigns.tracking import action_url, campaign_links, link_values
from core.extensions import db
from core.headers import defuse
from core.org_settings import current_org, stored
from supporters.links import dialog_url, preferences_url, unsubscribe_headers


def compile_contents(campaign: Campaign) -> dict[str, CompiledContent]:
    """Each language compiled once, inside the shared layout with its footer (campaigns.layout)."""
    org = current_org()
    sender = campaign_sender(campaign.sender, org)
    links = campaign_links(campaign)  # every link is rewritten to /r/<token> (campaigns.tracking)
    return {c.language: CompiledContent.compile(sender, c.subject, c.body, links, language=c.language,
                                                layout=campaign_layout(org, c.language))
            for c in campaign.contents}


def stream_headers(campaign: Campaign) -> dict[str, str]:
    """The headers every mail of this campaign carries besides its own (List-Id, Reply-To)."""
    org = current_org()
    return campaign_headers(campaign_sender(campaign.sender, org), org)


def used_placeholders(contents: dict[str, CompiledContent]) -> set[str]:
    """The placeholders any of the compiled contents uses (the others are never computed)."""
    return {p for c in contents.values() for p in c.used}


def placeholder_values(used: set[str], supporter_id: int, name: str | None, unsubscribe: str,
                       delivery_id: int, action_page: bool = False) -> dict[str, str]:
    values = {"unsubscribe_url": unsubscribe}
    if "first_name" in used:
        # The first word; control characters (a row that bypassed the edge) never reach a header.
        values["first_name"] = next(iter(defuse(name).split()), "") if name else ""
    if "preferences_url" in used:
        values["preferences_url"] = preferences_url(supporter_id)
    if "action_url" in used:
        # Kinds with an action page (share/review/vote) point this at /act/<token> (campaigns.web).
        values["action_url"] = action_url(delivery_id) if action_page else preferences_url(supporter_id)
    return values


@dataclass(frozen=True)
class Composer:
    """Everything one campaign's mails share, compiled once; `message()` builds one delivery's bytes.

    The engine sends what this builds, and `bench.fanout`'s baselines send the same bytes.
    """

    campaign_id: int
    contents: dict[str, CompiledContent]
    stream: dict[str, str]  # List-Id, Reply-To
    used: frozenset[str]
    action_page: bool

    @classmethod
    def for_campaign(cls, campaign: Campaign) -> Composer:
        contents = compile_contents(campaign)
        return cls(campaign.id, contents, stream_headers(campaign), frozenset(used_placeholders(contents)),
                   campaign.kind != CampaignKind.ANNOUNCEMENT)

    def message(self, delivery_id: int, supporter_id: int, email: str, name: str | None, language: str,
                consented_at: datetime | date | str | None) -> tuple[CompiledContent, bytes]:
        """The content used and the finished message (raises core.addresses.InvalidAddress)."""
        content = self.contents[language]
        headers = {**self.stream, **unsubscribe_headers(supporter_id)}
        values = placeholder_values(self.used, supporter_id, name, headers["List-Unsubscribe"][1:-1],
                                    delivery_id, self.action_page)
        values["consent_date"] = consent_date(consented_at, language)
        values["dialog_url"] = dialog_url(supporter_id)
        values.update(link_values(delivery_id, content.slots))
        return content, content.message(email, message_id(delivery_id, self.campaign_id, content.domain), values,
                                        headers)


_COMPOSERS: dict[tuple, Composer] = {}
_COMPOSERS_MAX = 32


def composer_for(campaign: Campaign) -> Composer:
    """The campaign's Composer, compiled once per process (every batch job used to compile it again).

    Contents can only change while a campaign is a draft, so a launched campaign's compiled form
    is keyed by what else goes into it: the organisation settings (name, address, sender… and
    their `updated_at`) and the configuration; a settings change is picked up by the next job.
    """
    if campaign.status == CampaignStatus.DRAFT:
        return Composer.for_campaign(campaign)
    config = current_app.config
    key = (str(db.engine.url), campaign.id, campaign.created_at, campaign.launched_at, campaign.sender,
           campaign.kind, tuple(sorted(stored().items())), config["PUBLIC_BASE_URL"], config["MAIL_FROM"])
    composer = _COMPOSERS.get(key)
    if composer is None:
        if len(_COMPOSERS) >= _COMPOSERS_MAX:
            _COMPOSERS.clear()
        composer = _COMPOSERS[key] = Composer.for_campaign(campaign)
    return composer
