"""What a campaign will look like: preview samples and test sends, rendered for real people's data.

Preview renders each language twice: for a supporter *without* a name (the `{{first_name}}`
fallback shows) and for the audience's longest name (the subject is never shown with a made-up
"Alex" that hides both problems). A test send goes to any address, is marked `[TEST]` in the
subject, and carries working links of a sample supporter of the campaign's audience (named in
`X-Campaign-Test`), flagged as test links: a POST through one changes nothing for that person
(supporters.web); it never creates a delivery and never counts in stats.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import current_app

from campaigns.audience import audience_where
from campaigns.compose import stream_headers
from campaigns.layout import SAMPLE_CONSENT, consent_date
from campaigns.models import Campaign, CampaignKind, Delivery
from campaigns.render import CompiledContent
from campaigns.tracking import action_url
from core.addresses import parse_address
from core.db import utcnow
from core.errors import UpstreamFailed, ValidationFailed
from core.extensions import db
from core.mail import SMTPUTF8_MISSING, MailError, PermanentMailError, get_transport
from supporters.links import dialog_url, preferences_url, unsubscribe_headers, unsubscribe_url
from supporters.models import Supporter, SupporterStatus

TEST_PREFIX = "[TEST] "
LONG_NAME_EXAMPLE = "Maximiliane Alexandra-Konstantina von Hohenzollern-Sigmaringen"  # an empty audience


def _first_name(name: str | None) -> str:
    return next(iter((name or "").split()), "")


def longest_name(campaign: Campaign) -> str:
    """The longest first name in the campaign's audience (a long example when nobody has a name)."""
    names = db.session.scalars(
        sa.select(Supporter.name).where(audience_where(campaign), Supporter.name.is_not(None), Supporter.name != "")
        .order_by(sa.func.length(Supporter.name).desc(), Supporter.id).limit(20)).all()
    firsts = sorted((_first_name(n) for n in names), key=len, reverse=True)
    return firsts[0] if firsts and firsts[0] else _first_name(LONG_NAME_EXAMPLE)


def preview_samples(campaign: Campaign, contents: dict[str, CompiledContent]) -> dict[str, Any]:
    """Per language: the sample without a name (top level, as before) and `longest_name`."""
    base = current_app.config["PUBLIC_BASE_URL"]
    links = {"preferences_url": f"{base}/preferences/SAMPLE", "unsubscribe_url": f"{base}/unsubscribe/SAMPLE",
             "action_url": f"{base}/act/SAMPLE", "dialog_url": f"{base}/dialog/SAMPLE"}
    longest = longest_name(campaign)
    samples = {}
    for language, compiled in contents.items():
        footer = {"consent_date": consent_date(SAMPLE_CONSENT, language)}
        subject, text, html = compiled.render({**links, **footer, "first_name": ""})
        l_subject, l_text, l_html = compiled.render({**links, **footer, "first_name": longest})
        samples[language] = {"subject": subject, "text": text, "html": html, "first_name": None,
                             "longest_name": {"first_name": longest, "subject": l_subject, "text": l_text,
                                              "html": l_html}}
    return samples


def sample_message(compiled: CompiledContent, language: str) -> bytes:
    """The whole message for a made-up supporter without a name (what a spam filter would score)."""
    base = current_app.config["PUBLIC_BASE_URL"]
    values = {"first_name": "", "preferences_url": f"{base}/preferences/SAMPLE",
              "unsubscribe_url": f"{base}/unsubscribe/SAMPLE", "action_url": f"{base}/act/SAMPLE",
              "dialog_url": f"{base}/dialog/SAMPLE", "consent_date": consent_date(SAMPLE_CONSENT, language)}
    return compiled.message("sample@example.invalid", "<preview@example.invalid>", values, {})


def needs_smtputf8(campaign: Campaign) -> int:
    """Active audience members whose address has a non-ASCII local part: sent only with SMTPUTF8."""
    email = Supporter.email_normalized
    if db.session.get_bind().dialect.name == "postgresql":
        utf8 = email.op("~")("^[^@]*[^\\x01-\\x7f][^@]*@")
    else:  # SQLite: a local part longer in bytes than in characters
        local = sa.func.substr(email, 1, sa.func.instr(email, "@"))
        utf8 = sa.func.length(local) != sa.func.length(sa.cast(local, sa.LargeBinary))
    return db.session.scalar(sa.select(sa.func.count()).select_from(Supporter).where(
        audience_where(campaign), Supporter.status == SupporterStatus.ACTIVE, utf8)) or 0


def sample_supporter(campaign: Campaign, language: str) -> Supporter | None:
    """An active supporter of the audience, in `language` if there is one."""
    query = (sa.select(Supporter).where(audience_where(campaign), Supporter.status == SupporterStatus.ACTIVE)
             .order_by((Supporter.language != language), Supporter.id).limit(1))
    return db.session.scalars(query).first()


def _values(campaign: Campaign, supporter: Supporter | None) -> tuple[dict[str, str], dict[str, str]]:
    """Placeholder values and headers: the sample supporter's working links, or the bare pages."""
    if supporter is None:
        base = current_app.config["PUBLIC_BASE_URL"]
        return ({"first_name": "", "preferences_url": f"{base}/join", "unsubscribe_url": f"{base}/join",
                 "action_url": f"{base}/join", "dialog_url": f"{base}/join"}, {"X-Campaign-Test": "no supporter in the audience yet"})
    # The links work (they open the sample supporter's pages) but carry the test flag: a tester's
    # click on "unsubscribe", a saved preference or a signature changes nothing for that person.
    action = preferences_url(supporter.id, test=True)
    if campaign.kind != CampaignKind.ANNOUNCEMENT:
        delivery_id = db.session.scalar(sa.select(Delivery.id).where(
            Delivery.campaign_id == campaign.id, Delivery.supporter_id == supporter.id))
        action = action_url(delivery_id, test=True) if delivery_id else action
    headers = unsubscribe_headers(supporter.id, test=True)
    headers["X-Campaign-Test"] = f"test links of sample supporter #{supporter.id}"
    return ({"first_name": _first_name(supporter.name), "preferences_url": preferences_url(supporter.id, test=True),
             "unsubscribe_url": unsubscribe_url(supporter.id, test=True), "action_url": action,
             "dialog_url": dialog_url(supporter.id, test=True)}, headers)


def send_test(campaign: Campaign, contents: dict[str, CompiledContent], to: str, language: str | None) -> dict[str, Any]:
    """Send the campaign to `to` now, marked [TEST]; 422 for a bad address, 502 when the relay fails."""
    to = parse_address(to, "to")
    if not contents:
        raise ValidationFailed({"contents": ["the campaign has no content yet"]})
    language = language or next(iter(contents))
    if language not in contents:
        raise ValidationFailed({"language": [f"no content in {language!r}; have {', '.join(contents)}"]})
    compiled = contents[language]
    supporter = sample_supporter(campaign, language)
    values, headers = _values(campaign, supporter)
    values["consent_date"] = consent_date(SAMPLE_CONSENT, language)
    headers = {**stream_headers(campaign), **headers}
    db.session.commit()  # end the read transaction before talking to the relay
    mid = f"<test.c{campaign.id}.{int(utcnow().timestamp() * 1000)}@{compiled.domain}>"
    data = compiled.message(to, mid, values, headers, subject_prefix=TEST_PREFIX)
    try:
        get_transport().send(compiled.envelope_from, [to], data)
    except PermanentMailError as exc:
        if exc.recipient_refused or exc.reason in ("smtputf8", "invalid_address"):
            detail = SMTPUTF8_MISSING + ": this address needs it" if exc.reason == "smtputf8" else str(exc)
            raise ValidationFailed({"to": [f"the mail server cannot deliver to this address: {detail}"]}) from None
        raise UpstreamFailed(f"the mail server refused the test message: {exc}") from None
    except MailError as exc:
        raise UpstreamFailed(f"the mail server did not take the test message: {exc}") from None
    return {"sent_to": to, "language": language, "message_id": mid,
            "sample_supporter_id": supporter.id if supporter else None}
