"""Versioned consent texts (German and English) and the hash that proves which exact text was shown.

A text is never edited in place: a new wording gets a new version, so every ConsentEvent keeps
pointing at the words the person actually saw. `text_hash` is the SHA-256 of the exact text in
the language shown; the ledger stores version and hash.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

PURPOSE = "campaigns"


@dataclass(frozen=True)
class Requester:
    """Who made a request, for the ledger (the web layer fills it from the request)."""

    ip: str | None = None
    user_agent: str | None = None

# version -> language -> text. Append new versions; never change an old one.
TEXTS: dict[str, dict[str, str]] = {
    "campaigns-2026-11": {
        "en": (
            "Yes, I want to support this company. You may send me emails now and then asking me "
            "to share, review or vote, and telling me what happened with it. At most as often as I "
            "choose in my preferences. I can withdraw this consent at any time with one click in "
            "every email or on my preferences page."
        ),
        "de": (
            "Ja, ich möchte dieses Unternehmen unterstützen. Sie dürfen mir gelegentlich E-Mails "
            "schicken, in denen Sie mich bitten, etwas zu teilen, zu bewerten oder abzustimmen, und "
            "mir berichten, was daraus geworden ist. Höchstens so oft, wie ich es in meinen "
            "Einstellungen festlege. Ich kann diese Einwilligung jederzeit mit einem Klick in jeder "
            "E-Mail oder auf meiner Einstellungsseite widerrufen."
        ),
    },
}
CURRENT_VERSION = "campaigns-2026-11"


@dataclass(frozen=True)
class ConsentText:
    version: str
    language: str
    text: str

    @property
    def hash(self) -> str:
        return text_hash(self.text)


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def consent_text(language: str, version: str = CURRENT_VERSION) -> ConsentText:
    """The consent text of `version` in `language` (English when that language is missing)."""
    texts = TEXTS[version]
    lang = language if language in texts else "en"
    return ConsentText(version, lang, texts[lang])


def find_by_hash(digest: str) -> ConsentText | None:
    """Which text (version and language) a stored hash stands for: for audits of the ledger."""
    for version, texts in TEXTS.items():
        for lang, text in texts.items():
            if text_hash(text) == digest:
                return ConsentText(version, lang, text)
    return None
