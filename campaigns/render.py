"""Content rendering: Markdown with a fixed set of placeholders → sanitised HTML + plain text + bytes.

Managers write Markdown with `{{first_name}}`, `{{preferences_url}}`, `{{unsubscribe_url}}` and
`{{action_url}}`; there is no template language, so no manager-written code ever runs.
`{{first_name|there}}` gives a fallback for supporters without a name; a bare `{{first_name}}` falls
back to the language's default salutation word (FIRST_NAME_FALLBACK), so no mail says "Hallo !". Each
(campaign, language) is compiled once into literal pieces and placeholder slots; a message for one
supporter is then a join of strings plus two base64 encodings (MEASURED.md: building an
`EmailMessage` per mail would cost more than the SMTP exchange itself).
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate
from typing import Protocol

import nh3
from markdown_it import MarkdownIt

from core.addresses import from_header, wire_address
from core.errors import ValidationFailed
from core.headers import defuse, header_line, header_text_problem

PLACEHOLDERS = ("first_name", "preferences_url", "unsubscribe_url", "action_url")
# `{{name}}` or `{{name|fallback}}`; group 1 the name, group 2 the fallback (None without a bar).
_PLACEHOLDER = re.compile(r"\{\{\s*([^{}|]*?)\s*(?:\|([^{}]*?))?\s*\}\}")
WITH_FALLBACK = ("first_name",)  # the URLs are always there
# What a bare {{first_name}} says for a supporter without a name, per content language.
FIRST_NAME_FALLBACK = {"en": "there", "de": "du"}
FALLBACK_MAX = 40
# A sentinel that Markdown and the sanitiser pass through untouched (letters and digits only).
_SENTINEL = "zqzph{}zqz"
_SENTINEL_RE = re.compile(r"zqzph(\d+)zqz")
# A link's URL may hold balanced parentheses, as CommonMark allows (https://en.wikipedia.org/wiki/X_(y)).
URL_IN_PARENS = r"(?:[^()\s]|\([^()\s]*\))+"
_LINK = re.compile(r"!?\[([^\]]*)\]\((" + URL_IN_PARENS + r")(?:\s+\"[^\"]*\")?\)")
# Inline Markdown links `[label](https://… "title")` and autolinks `<https://…>`.
_INLINE = re.compile(r"(\]\()(https?://" + URL_IN_PARENS + r")((?:\s+\"[^\"]*\")?\))")
_AUTOLINK = re.compile(r"<(https?://[^>\s]+)>")

_md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
_ALLOWED_TAGS = {"a", "p", "br", "strong", "em", "b", "i", "ul", "ol", "li", "blockquote", "code", "pre",
                 "h1", "h2", "h3", "h4", "hr"}


def unknown_placeholders(text: str) -> list[str]:
    return sorted({m.group(1) for m in _PLACEHOLDER.finditer(text) if m.group(1) not in PLACEHOLDERS})


def _fallback_problems(text: str) -> list[str]:
    problems = []
    for m in _PLACEHOLDER.finditer(text):
        name, fallback = m.group(1), m.group(2)
        if fallback is None or name not in PLACEHOLDERS:
            continue
        if name not in WITH_FALLBACK:
            problems.append(f"{{{{{name}}}}} takes no fallback (only {', '.join('{{' + p + '}}' for p in WITH_FALLBACK)})")
        elif len(fallback.strip()) > FALLBACK_MAX:
            problems.append(f"the fallback of {{{{{name}}}}} must be at most {FALLBACK_MAX} characters")
        elif header_text_problem(fallback):
            problems.append(f"the fallback of {{{{{name}}}}} {header_text_problem(fallback)}")
    return problems


def check_placeholders(fields: dict[str, str]) -> None:
    """Raise ValidationFailed naming every unknown placeholder or bad fallback, per field."""
    errors = {}
    for field, text in fields.items():
        unknown = unknown_placeholders(text or "")
        if unknown:
            errors[field] = [f"unknown placeholder(s) {', '.join('{{' + u + '}}' for u in unknown)}; "
                             f"known: {', '.join('{{' + p + '}}' for p in PLACEHOLDERS)}"]
        elif problems := _fallback_problems(text or ""):
            errors[field] = problems
    if errors:
        raise ValidationFailed(errors)


def body_urls(body: str) -> list[str]:
    return [m.group(2) for m in _INLINE.finditer(body)] + [m.group(1) for m in _AUTOLINK.finditer(body)]


def link_sentinels(body: str, links: dict[str, str], first: int, sentinel: str) -> tuple[str, dict[str, str]]:
    """Replace each tracked URL in the Markdown by a slot sentinel; return the body and {url: slot}."""
    order = list(links)

    def slot(url: str) -> str:
        return sentinel.format(first + order.index(url))

    body = _INLINE.sub(lambda m: m.group(1) + slot(m.group(2)) + m.group(3) if m.group(2) in links else m.group(0), body)
    body = _AUTOLINK.sub(lambda m: f"[{m.group(1)}]({slot(m.group(1))})" if m.group(1) in links else m.group(0), body)
    return body, {url: links[url] for url in order}


def fill_placeholders(text: str, values: dict[str, str], language: str = "en") -> str:
    """`text` with each placeholder replaced by its value, or its fallback when the value is empty."""
    def one(m: re.Match) -> str:
        value = values.get(m.group(1), "")
        if value or m.group(1) not in WITH_FALLBACK:
            return value
        return (m.group(2) or "").strip() if m.group(2) is not None else FIRST_NAME_FALLBACK.get(language, "")
    return _PLACEHOLDER.sub(one, text)


class _Slots:
    """Sentinel numbering: the placeholders, then tracked links, then one slot per distinct fallback."""

    def __init__(self, first_free: int, language: str):
        self.next = first_free
        self.default = FIRST_NAME_FALLBACK.get(language, "")
        self.fallbacks: dict[tuple[int, str], int] = {}

    def __call__(self, m: re.Match) -> str:
        index = PLACEHOLDERS.index(m.group(1))
        if m.group(1) not in WITH_FALLBACK:
            return _SENTINEL.format(index)
        fallback = (m.group(2) or "").strip() if m.group(2) is not None else self.default
        key = (index, defuse(fallback))
        if key not in self.fallbacks:
            self.fallbacks[key] = self.next
            self.next += 1
        return _SENTINEL.format(self.fallbacks[key])


def _split(text: str) -> tuple[str | int, ...]:
    """Split sentinel-bearing text into literal strings and placeholder indexes."""
    parts: list[str | int] = []
    pos = 0
    for m in _SENTINEL_RE.finditer(text):
        if m.start() > pos:
            parts.append(text[pos:m.start()])
        parts.append(int(m.group(1)))
        pos = m.end()
    if pos < len(text):
        parts.append(text[pos:])
    return tuple(parts)


def markdown_to_html(body: str) -> str:
    raw = _md.render(body)
    return nh3.clean(raw, tags=_ALLOWED_TAGS, attributes={"a": {"href", "title"}},
                     url_schemes={"http", "https", "mailto"}, link_rel="noopener")


def markdown_to_text(body: str) -> str:
    # Markdown is already readable as text; only links become "label (url)".
    return _LINK.sub(lambda m: f"{m.group(1)} ({m.group(2)})" if m.group(1) else m.group(2), body)


def _fill(parts: tuple[str | int, ...], values: tuple[str, ...]) -> str:
    return "".join(p if isinstance(p, str) else values[p] for p in parts)


def _b64(text: str) -> bytes:
    # encodebytes ends its 76-character lines with a bare LF; SMTP wants CRLF (strict servers refuse LF).
    return base64.encodebytes(text.encode("utf-8")).replace(b"\n", b"\r\n")


class Layout(Protocol):
    def wrap(self, text: str, html: str, slot_sentinel: Callable[[str], str]) -> tuple[str, str]:
        """The content inside the layout; `slot_sentinel(name)` marks a per-supporter value."""


# Fallback slots are numbered from here while the layout may still add named slots, then moved to
# just after the last named slot (CompiledContent._values appends their values there).
_FALLBACK_BASE = 100_000
@dataclass(frozen=True)
class CompiledContent:
    """One language of one campaign, compiled once and filled in per supporter."""

    sender: str  # the folded `From:` line
    envelope_from: str
    domain: str
    subject: tuple[str | int, ...]
    text: tuple[str | int, ...]
    html: tuple[str | int, ...]
    subject_static: str | None  # the finished `Subject:` line when it has no placeholders
    # Slot names: PLACEHOLDERS, then one "link:<id>" per tracked link (campaigns.tracking); the
    # defaults are used when a value is missing (preview and test mails show the original URL).
    slots: tuple[str, ...] = PLACEHOLDERS
    defaults: tuple[str, ...] = ("",) * len(PLACEHOLDERS)
    # After the slots: one derived value per (placeholder index, fallback) in use, in this order.
    fallbacks: tuple[tuple[int, str], ...] = ()
    used: frozenset[str] = frozenset()  # the placeholders the content uses

    @classmethod
    def compile(cls, sender: str, subject: str, body: str, links: dict[str, str] | None = None,
                *, language: str = "en", layout: Layout | None = None) -> CompiledContent:
        """`links` maps each URL to track to its slot name: those links in the body are rewritten.
        `layout` wraps the body (campaigns.layout: the frame and the footer, with slots of its own)."""
        check_placeholders({"subject": subject, "body": body})
        slots, defaults = PLACEHOLDERS, ("",) * len(PLACEHOLDERS)
        if links:
            body, extra = link_sentinels(body, links, len(PLACEHOLDERS), _SENTINEL)
            slots, defaults = slots + tuple(extra.values()), defaults + tuple(extra)
        numbering = _Slots(_FALLBACK_BASE, language)
        requested: set[str] = set()  # slots the layout fills (its footer links are placeholders too)
        subject_text = _PLACEHOLDER.sub(numbering, defuse(subject))
        text = markdown_to_text(_PLACEHOLDER.sub(numbering, body))
        html_body = markdown_to_html(_PLACEHOLDER.sub(numbering, body))
        if layout is not None:
            named = list(slots)

            def sentinel(name: str) -> str:
                requested.add(name)
                if name not in named:
                    named.append(name)
                return _SENTINEL.format(named.index(name))

            text, html_body = layout.wrap(text, html_body, sentinel)
            defaults += ("",) * (len(named) - len(slots))
            slots = tuple(named)
        shift = len(slots) - _FALLBACK_BASE

        def renumbered(value: str) -> tuple[str | int, ...]:
            return _split(_SENTINEL_RE.sub(lambda m: _SENTINEL.format(int(m.group(1)) + shift)
                                           if int(m.group(1)) >= _FALLBACK_BASE else m.group(0), value))

        subject_parts = renumbered(subject_text)
        from_line, envelope_from = from_header(sender)
        static = header_line("Subject", "".join(subject_parts)) if all(isinstance(p, str) for p in subject_parts) else None
        used = frozenset({m.group(1) for text_ in (subject, body) for m in _PLACEHOLDER.finditer(text_)}
                         | (requested & set(PLACEHOLDERS)))
        return cls(sender=from_line, envelope_from=envelope_from, domain=envelope_from.rpartition("@")[2] or "localhost",
                   subject=subject_parts, text=renumbered(text), html=renumbered(html_body), subject_static=static,
                   slots=slots, defaults=defaults, fallbacks=tuple(numbering.fallbacks), used=used)

    def _values(self, values: dict[str, str]) -> tuple[str, ...]:
        base = tuple(values.get(p, d) for p, d in zip(self.slots, self.defaults, strict=True))
        if not self.fallbacks:
            return base
        return base + tuple([base[i].strip() or fallback for i, fallback in self.fallbacks])

    def render(self, values: dict[str, str]) -> tuple[str, str, str]:
        """Subject, plain text and HTML for one supporter (values by placeholder name)."""
        plain = self._values(values)
        escaped = tuple(html.escape(v, quote=True) for v in plain)
        return defuse(_fill(self.subject, plain)), _fill(self.text, plain), _fill(self.html, escaped)

    def message(self, to: str, message_id: str, values: dict[str, str], headers: dict[str, str],
                subject_prefix: str = "") -> bytes:
        """The finished RFC 5322 message as bytes, CRLF only.

        Every header line is built by `header_line` (defused, encoded, folded) or was at compile
        time; `to` goes out with its domain in A-labels and raises InvalidAddress when it cannot
        be an address at all.
        """
        plain = self._values(values)
        escaped = tuple(html.escape(v, quote=True) for v in plain)
        if self.subject_static and not subject_prefix:
            subject = self.subject_static
        else:
            subject = header_line("Subject", subject_prefix + _fill(self.subject, plain))
        boundary = "=_sp_" + message_id.strip("<>").replace("@", "_")
        head = [self.sender, f"To: {wire_address(to)}", subject, f"Date: {formatdate()}",
                header_line("Message-ID", message_id), "MIME-Version: 1.0"]
        head += [header_line(k, v) for k, v in headers.items()]
        head.append(f'Content-Type: multipart/alternative; boundary="{boundary}"')
        text_part = _b64(_fill(self.text, plain))
        html_part = _b64(_fill(self.html, escaped))
        return b"".join((
            "\r\n".join(head).encode(), b"\r\n\r\n",
            f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Transfer-Encoding: base64\r\n\r\n".encode(), text_part,
            f"--{boundary}\r\nContent-Type: text/html; charset=utf-8\r\n"
            f"Content-Transfer-Encoding: base64\r\n\r\n".encode(), html_part,
            f"--{boundary}--\r\n".encode(),
        ))


def message_id(delivery_id: int, campaign_id: int, domain: str) -> str:
    """Derived from the delivery, so a duplicate send is byte-identical in its Message-ID."""
    return f"<d{delivery_id}.c{campaign_id}@{domain}>"


_MESSAGE_ID = re.compile(r"^<?d(\d+)\.c(\d+)@[^>]+>?$")


def parse_message_id(value: str) -> tuple[int, int] | None:
    """(delivery id, campaign id) from one of our Message-IDs, or None."""
    m = _MESSAGE_ID.match(value.strip())
    return (int(m.group(1)), int(m.group(2))) if m else None
