"""Mails to one supporter: the double-opt-in confirmation and the "already with us" notice.

Rendered from templates in supporters/templates/mail/ (plain text + HTML, German or English);
the HTML templates autoescape, so a name like `<script>` arrives as text. Every mail carries the
RFC 8058 unsubscribe headers.
"""

from __future__ import annotations

from email.utils import parseaddr

from flask import current_app, render_template

from core import verp
from core.mail import build_message, get_transport
from supporters import links
from supporters.i18n import t
from supporters.models import Supporter


def _translator(lang: str):
    return lambda key, **values: t(key, lang, **values)


def render_mail(supporter: Supporter, template: str, subject_key: str, **context) -> bytes:
    """Build the message for `template` (.txt and .html) in the supporter's language."""
    lang = supporter.language
    context = {"_": _translator(lang), "lang": lang, "name": supporter.name,
               "unsubscribe_url": links.unsubscribe_url(supporter.id), **context}
    text = render_template(f"mail/{template}.txt", **context)
    html = render_template(f"mail/{template}.html", **context)
    sender = current_app.config["MAIL_FROM"]
    return build_message(sender, supporter.email, t(subject_key, lang), text, html,
                         headers=links.unsubscribe_headers(supporter.id))


def _send(supporter: Supporter, message: bytes) -> None:
    sender = verp.return_path("s", supporter.id) or parseaddr(current_app.config["MAIL_FROM"])[1]
    get_transport().send(sender, [supporter.email], message)


def confirmation_mail(supporter: Supporter, grant_id: int | None) -> bytes:
    days = links.CONFIRM_MAX_AGE // 86400
    return render_mail(supporter, "confirm", "mail.confirm.subject",
                       confirm_url=links.confirm_url(supporter.id, grant_id), days=days)


def send_confirmation_mail(supporter: Supporter, grant_id: int | None) -> None:
    _send(supporter, confirmation_mail(supporter, grant_id))


def send_already_active_mail(supporter: Supporter) -> None:
    referral = links.referral_url(supporter.referral_code) if supporter.referral_code else None
    message = render_mail(supporter, "already", "mail.already.subject",
                          preferences_url=links.preferences_url(supporter.id), referral_url=referral)
    _send(supporter, message)
