"""A campaign's contents compiled for sending, and the values one delivery fills in.

Used by the engine for every batch and by the services for preview and test mails; it sits below
both, so neither has to import the other.
"""

from __future__ import annotations

from campaigns.layout import campaign_headers, campaign_layout, campaign_sender
from campaigns.models import Campaign
from campaigns.render import CompiledContent
from campaigns.tracking import action_url, campaign_links
from core.headers import defuse
from core.org_settings import current_org
from supporters.links import preferences_url


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
