"""The one layout every mail to a supporter shares: frame, colours, and the footer that says who
sends it, why the person gets it and how to leave.

Transactional mails (supporters.mails) render `mail/<name>.html|txt`, which extend the layout,
once per mail. Campaign mails (campaigns.layout) render it once per (campaign, language) with
markers where the content and the per-supporter values go (`CONTENT`, `slot(name)`), and the
compiled template fills them per mail. Both streams carry their own `List-Id`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from email.header import Header
from email.utils import formataddr, parseaddr
from functools import lru_cache

from flask import render_template
from markupsafe import Markup

from core.org_settings import Org
from supporters.i18n import t

CONTENT = "@@content@@"
_SLOT = re.compile(r"@@slot:(\w+)@@")
STREAMS = ("campaigns", "transactional")

# Dark-mode surfaces (the layout's <style> block); text colours are checked against them.
LIGHT_CARD, DARK_CARD = "#ffffff", "#1e1e1e"

_MONTHS = {
    "en": ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"),
    "de": ("Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September", "Oktober",
           "November", "Dezember"),
}


def slot(name: str) -> str:
    """The marker for a per-supporter value in a layout rendered once (campaigns.layout)."""
    return f"@@slot:{name}@@"


@lru_cache(maxsize=4096)
def format_date(day: date, lang: str) -> str:
    """A date as people write it: "5 March 2026", "5. März 2026" (cached: the send loop calls this)."""
    months = _MONTHS.get(lang, _MONTHS["en"])
    if lang == "de":
        return f"{day.day}. {months[day.month - 1]} {day.year}"
    return f"{day.day} {months[day.month - 1]} {day.year}"


def consent_day(value: datetime | date | None) -> date | None:
    return value.date() if isinstance(value, datetime) else value


# --- colours --------------------------------------------------------------------------------------

def _luminance(colour: str) -> float:
    def channel(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast(a: str, b: str) -> float:
    """WCAG contrast ratio of two #rrggbb colours (1 to 21)."""
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def _mix(colour: str, towards: str, share: float) -> str:
    values = [round(int(colour[i:i + 2], 16) * (1 - share) + int(towards[i:i + 2], 16) * share) for i in (1, 3, 5)]
    return "#" + "".join(f"{v:02x}" for v in values)


def readable(accent: str, background: str, minimum: float = 4.5) -> str:
    """The accent, lightened or darkened just enough to be readable as text on `background`."""
    towards = "#ffffff" if _luminance(background) < 0.2 else "#000000"
    share = 0.0
    colour = accent
    while contrast(colour, background) < minimum and share < 1:
        share = min(1.0, share + 0.05)
        colour = _mix(accent, towards, share)
    return colour


def colours(org: Org) -> dict[str, str]:
    button = org.accent_color
    return {"accent": readable(button, LIGHT_CARD), "accent_dark": readable(button, DARK_CARD),
            "button": button, "dark_card": DARK_CARD,
            "button_text": "#ffffff" if contrast("#ffffff", button) >= contrast("#111111", button) else "#111111"}


# --- rendering ------------------------------------------------------------------------------------

def context(org: Org, lang: str, *, why: str, unsubscribe_url: str, preferences_url: str | None = None,
            **extra) -> dict:
    """What `mail/_layout.html` and `mail/_footer.txt` need, besides the mail's own values."""
    return {"_": lambda key, **values: t(key, lang, **values), "lang": lang, "org": org,
            "address_lines": org.postal_address.splitlines(), "why": why, "unsubscribe_url": unsubscribe_url,
            "preferences_url": preferences_url, "website_label": org.website.split("://", 1)[-1],
            **colours(org), **extra}


@dataclass(frozen=True)
class MailLayout:
    """The layout rendered once, with the content and per-supporter values still open."""

    html: str
    text: str

    def wrap(self, text: str, html: str, slot_sentinel) -> tuple[str, str]:
        """Put content into the layout; `slot_sentinel(name)` gives the compiled template's slot."""
        def fill(part: str) -> str:
            return _SLOT.sub(lambda m: slot_sentinel(m.group(1)), part)

        # Markers are replaced in the layout's halves only: content that happens to contain one stays text.
        t_head, t_tail = self.text.split(CONTENT, 1)
        h_head, h_tail = self.html.split(CONTENT, 1)
        return fill(t_head) + text + fill(t_tail), fill(h_head) + html + fill(h_tail)


def render_layout(template: str, org: Org, lang: str, **values) -> MailLayout:
    """`mail/<template>.html|txt` rendered with CONTENT where the content goes."""
    ctx = context(org, lang, content=Markup(CONTENT), **values)
    return MailLayout(html=render_template(f"mail/{template}.html", **ctx),
                      text=render_template(f"mail/{template}.txt", **ctx))


# --- headers -------------------------------------------------------------------------------------

def _phrase(text: str) -> str:
    """A display name as a header phrase: quoted only when it must be, encoded words when not ASCII.

    Never folded here (the message builder folds whole header lines with CRLF, core.headers)."""
    if not text.isascii():
        return Header(text, "utf-8").encode(maxlinelen=10_000)
    return formataddr((text, "x@x")).removesuffix(" <x@x>")


def stream_headers(org: Org, stream: str, sender: str) -> dict[str, str]:
    """List-Id (RFC 2919, one per stream) and Reply-To for every mail of `stream`."""
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    label = {"campaigns": "campaigns", "transactional": "notices"}[stream]
    headers = {"List-Id": f"{_phrase(f'{org.name} {label}')} <{stream}.{domain}>"}
    if org.reply_to:
        name, address = parseaddr(org.reply_to)
        headers["Reply-To"] = f"{_phrase(name)} <{address}>" if name else address
    return headers
