"""Mails to one supporter: the double-opt-in confirmation and the "already with us" notice.

Rendered from templates in supporters/templates/mail/ (plain text + HTML, German or English) that
extend the layout shared with campaign mails (supporters.mail_layout): the organisation's frame
and a footer saying who sends the mail, why the person gets it and how to leave. The HTML
templates autoescape, so a name like `<script>` arrives as text. These are the transactional
stream: their own sender and List-Id, and the RFC 8058 unsubscribe headers on every mail.
"""

from __future__ import annotations

from email.utils import parseaddr

from flask import render_template

from core import verp
from core.mail import build_message, get_transport
from core.org_settings import Org, current_org
from supporters import links, mail_layout
from supporters.i18n import t
from supporters.models import Supporter


def render_mail(supporter: Supporter, template: str, subject_key: str, why_key: str, org: Org | None = None,
                **values) -> bytes:
    """Build the message for `template` (.txt and .html) in the supporter's language."""
    org = org or current_org()
    lang = supporter.language
    unsubscribe = links.unsubscribe_url(supporter.id)
    context = mail_layout.context(org, lang, why=t(why_key, lang, org=org.name), unsubscribe_url=unsubscribe,
                                  name=supporter.name, **values)
    text = render_template(f"mail/{template}.txt", **context)
    html = render_template(f"mail/{template}.html", **context)
    sender = org.transactional_sender
    headers = {**mail_layout.stream_headers(org, "transactional", sender),
               **links.unsubscribe_headers(supporter.id)}
    return build_message(sender, supporter.email, t(subject_key, lang), text, html, headers=headers)


def _send(supporter: Supporter, message: bytes, org: Org) -> None:
    sender = verp.return_path("s", supporter.id) or parseaddr(org.transactional_sender)[1]
    get_transport().send(sender, [supporter.email], message)


def confirmation_mail(supporter: Supporter, grant_id: int | None, org: Org | None = None) -> bytes:
    days = links.CONFIRM_MAX_AGE // 86400
    return render_mail(supporter, "confirm", "mail.confirm.subject", "mail.why.signup", org,
                       confirm_url=links.confirm_url(supporter.id, grant_id), days=days)


def send_confirmation_mail(supporter: Supporter, grant_id: int | None) -> None:
    org = current_org()
    _send(supporter, confirmation_mail(supporter, grant_id, org), org)


def send_already_active_mail(supporter: Supporter) -> None:
    org = current_org()
    referral = links.referral_url(supporter.referral_code) if supporter.referral_code else None
    message = render_mail(supporter, "already", "mail.already.subject", "mail.why.supporter", org,
                          preferences_url=links.preferences_url(supporter.id), referral_url=referral)
    _send(supporter, message, org)
