"""The dialog's mails to supporters, in the shared layout (supporters.mail_layout) and the
transactional stream: published, rejected (with the reason), the answer, and the digest.

Each mail links to the post's page with the supporter's own token, and its footer carries the
preferences and unsubscribe links like every mail.
"""

from __future__ import annotations

from email.utils import parseaddr

from flask import render_template

from core import verp
from core.mail import Started, build_message, get_transport
from core.org_settings import Org, current_org
from dialog import text
from dialog.i18n import t
from dialog.links import post_url
from dialog.models import NoticeKind, Post, PostStatus
from supporters import links, mail_layout
from supporters.models import Supporter


def _build(supporter: Supporter, template: str, subject: str, why_key: str, org: Org, **values) -> bytes:
    lang = supporter.language
    context = mail_layout.context(org, lang, why=t(why_key, lang, org=org.name),
                                  unsubscribe_url=links.unsubscribe_url(supporter.id),
                                  preferences_url=links.preferences_url(supporter.id), name=supporter.name, **values)
    context["_"] = lambda key, **v: t(key, lang, **v)
    plain = render_template(f"mail/{template}.txt", **context)
    html = render_template(f"mail/{template}.html", **context)
    sender = org.transactional_sender
    headers = {**mail_layout.stream_headers(org, "transactional", sender), **links.unsubscribe_headers(supporter.id)}
    return build_message(sender, supporter.email, subject, plain, html, headers=headers)


def send(supporter: Supporter, message: bytes, org: Org, started: Started | None = None) -> bool:
    """Send one mail; `started()` is asked once the SMTP transaction has begun (core.mail): False
    abandons it, and send returns False."""
    sender = verp.return_path("s", supporter.id) or parseaddr(org.transactional_sender)[1]
    return get_transport().send(sender, [supporter.email], message, started=started)


def notice_mail(supporter: Supporter, post: Post, kind: NoticeKind, org: Org | None = None) -> bytes:
    org = org or current_org()
    lang = supporter.language
    title = text.to_plain(post.title)
    if kind is NoticeKind.PUBLISHED:
        subject = t("mail.dialog.subject.published", lang)
        lead, detail = t("mail.dialog.published", lang, title=title), None
    elif kind is NoticeKind.REJECTED:
        subject = t("mail.dialog.subject.rejected", lang)
        lead, detail = t("mail.dialog.rejected", lang, title=title), post.status_reason
    else:
        subject = t("mail.dialog.subject.answer", lang, title=title)
        role = "author" if post.supporter_id == supporter.id else "backer"
        lead = t(f"mail.dialog.answer.{role}", lang, title=title)
        if post.status is PostStatus.DECLINED or (post.answer is None and post.status_reason):
            lead += " " + t("mail.dialog.declined", lang)
            detail = post.status_reason
        else:
            detail = post.answer
    return _build(supporter, "dialog_notice", subject, "mail.why.dialog", org, lead=lead,
                  detail=text.to_plain(detail) if detail else None, post_url=post_url(supporter.id, post.id))


def digest_mail(supporter: Supporter, posts: list[Post], org: Org | None = None) -> bytes:
    org = org or current_org()
    items = [{"title": text.to_plain(p.title), "url": post_url(supporter.id, p.id), "backers": p.backers}
             for p in posts]
    return _build(supporter, "dialog_digest", t("mail.dialog.digest.subject", supporter.language), "mail.why.digest",
                  org, items=items)
