"""Every text of the action pages exists in German and English, with the same placeholders."""

import re
from pathlib import Path

from campaigns.i18n import CATALOG
from supporters.i18n import CATALOG as SUPPORTERS
from tests.test_join_i18n import placeholders

TEMPLATES = Path(__file__).resolve().parents[1] / "campaigns" / "templates"


def test_german_and_english_action_texts_match():
    assert set(CATALOG["de"]) == set(CATALOG["en"])
    for key in CATALOG["en"]:
        assert placeholders(CATALOG["de"][key]) == placeholders(CATALOG["en"][key]), key


def test_every_message_the_action_templates_use_exists():
    used = set()
    for path in TEMPLATES.rglob("*.html"):
        used |= set(re.findall(r"""_\(\s*["']([a-z_.]+)["']""", path.read_text()))
    used -= {"kind.", "share.network."}
    assert used and used <= set(CATALOG["en"]) | set(SUPPORTERS["en"]), used - set(CATALOG["en"])
