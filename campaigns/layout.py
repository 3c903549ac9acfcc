"""The shared mail layout (supporters.mail_layout) for campaign mails: compiled once per
(campaign, language), with per-supporter slots for the preferences and unsubscribe links and the
date of the consent. The footer is there whatever the content says.

The consent date comes with the send loop's recipient query (`consent_at()`, a correlated
subquery on the ledger's supporter index), never one query per mail.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import sqlalchemy as sa

from core.org_settings import Org, current_org
from supporters import mail_layout
from supporters.consent import PURPOSE
from supporters.i18n import t
from supporters.models import ConsentAction, ConsentEvent, Supporter

SLOTS = ("unsubscribe_url", "preferences_url", "consent_date", "dialog_url")


@dataclass(frozen=True)
class CampaignLayout:
    """The rendered layout plus the accent colour given to the content's links."""

    layout: mail_layout.MailLayout
    link_colour: str

    def wrap(self, text: str, html: str, slot_sentinel) -> tuple[str, str]:
        # The sanitiser writes every link as `<a href=…>` and lets no raw HTML through, so this
        # only ever touches real links.
        html = html.replace("<a ", f'<a style="color:{self.link_colour};" ')
        return self.layout.wrap(text.rstrip("\n"), html, slot_sentinel)


def campaign_layout(org: Org, language: str) -> CampaignLayout:
    why = t("mail.why.campaign", language, date=mail_layout.slot("consent_date"), org=org.name)
    layout = mail_layout.render_layout("campaign", org, language, why=why,
                                       unsubscribe_url=mail_layout.slot("unsubscribe_url"),
                                       preferences_url=mail_layout.slot("preferences_url"),
                                       # "Your idea or concern": the dialog page from the supporter's token
                                       # (supporters.links.dialog_url); campaigns never import dialog/.
                                       dialog_url=mail_layout.slot("dialog_url"))
    return CampaignLayout(layout, mail_layout.colours(org)["accent"])


def campaign_sender(campaign_sender_field: str | None, org: Org) -> str:
    """A campaign's own sender, else the campaign stream's sender from the settings."""
    return campaign_sender_field or org.campaign_sender


def campaign_headers(sender: str, org: Org | None = None) -> dict[str, str]:
    """Headers every mail of the campaign stream carries (List-Id, Reply-To)."""
    return mail_layout.stream_headers(org or current_org(), "campaigns", sender)


def consent_at() -> sa.ColumnElement:
    """When the supporter last gave (or confirmed) consent to campaign mail, for the recipient query.

    Imports and API creations record a grant; web signups a grant and its confirmation. Rows from
    before the ledger fall back to the confirmation, then the creation time.
    """
    latest = (sa.select(sa.func.max(ConsentEvent.occurred_at))
              .where(ConsentEvent.supporter_id == Supporter.id, ConsentEvent.purpose == PURPOSE,
                     ConsentEvent.action.in_((ConsentAction.GRANTED, ConsentAction.CONFIRMED)))
              .correlate(Supporter).scalar_subquery())
    return sa.func.coalesce(latest, Supporter.confirmed_at, Supporter.created_at)


def consent_date(value: datetime | date | str | None, language: str) -> str:
    """The consent date as the footer prints it (SQLite hands a coalesced timestamp back as text)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value[:19])
    day = mail_layout.consent_day(value)
    return mail_layout.format_date(day, language) if day else ""


SAMPLE_CONSENT = date(2026, 3, 5)  # what preview and test mails show in the footer
