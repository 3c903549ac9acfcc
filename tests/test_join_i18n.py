"""Every supporter-facing text exists in German and English, with the same placeholders."""

import re
import string
from pathlib import Path

from supporters.consent import TEXTS, consent_text, find_by_hash, text_hash
from supporters.i18n import CATALOG, t

TEMPLATES = Path(__file__).resolve().parents[1] / "supporters" / "templates"


def placeholders(text: str) -> set[str]:
    return {name for _literal, name, _spec, _conv in string.Formatter().parse(text) if name}


def test_german_and_english_have_the_same_messages_and_placeholders():
    assert set(CATALOG["de"]) == set(CATALOG["en"])
    for key in CATALOG["en"]:
        assert placeholders(CATALOG["de"][key]) == placeholders(CATALOG["en"][key]), key
        assert CATALOG["de"][key].strip() and CATALOG["en"][key].strip()


def test_every_message_the_templates_use_exists():
    used = set()
    for path in TEMPLATES.rglob("*.*"):
        used |= set(re.findall(r"""_\(\s*["']([a-z_.]+)["']""", path.read_text()))
    assert used, "no messages found in the templates"
    used -= {"kind.", "lang."}  # prefixes completed with a kind or language code
    assert used <= set(CATALOG["en"]), used - set(CATALOG["en"])


def test_every_consent_text_version_exists_in_both_languages_and_is_found_by_its_hash():
    for version, texts in TEXTS.items():
        assert set(texts) == {"de", "en"}
        for lang, text in texts.items():
            found = find_by_hash(text_hash(text))
            assert (found.version, found.language) == (version, lang)
    assert consent_text("fr").language == "en"


def test_unknown_languages_fall_back_to_english():
    assert t("join.title", "fr") == "Join our supporters"
    assert t("prefs.asks.n", "de", n=3) == "Höchstens 3-mal im Monat"
