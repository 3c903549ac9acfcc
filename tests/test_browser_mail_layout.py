"""The campaign mail's HTML as a phone shows it, in Debian's chromium (Playwright), light and dark:
the footer and its unsubscribe link are visible, nothing is wider than a 390 px screen, and text
and links keep a readable contrast on the background in both colour schemes."""

from __future__ import annotations

import re

import pytest

from campaigns import services
from core.org_settings import update_settings
from supporters.mail_layout import contrast
from tests.engine_helpers import make_campaign, run_worker
from tests.factories import make_supporter
from tests.test_browser_join import CHROMIUM, browser  # noqa: F401 - the fixture
from tests.test_mail_layout import parts

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(not __import__("pathlib").Path(CHROMIUM).exists(), reason="no chromium")]

LONG_URL = "https://example.org/" + "a-very-long-path-segment-" * 8
BODY = (f"Hello {{{{first_name}}}},\n\nour new shop opens on Saturday. Details: <{LONG_URL}>\n\n"
        "- coffee\n- cake\n\n```\nsome preformatted text that is much longer than a phone screen is wide\n```\n")


@pytest.fixture
def settings(migrated, smtp_sink):
    return {**migrated, "SMTP_URL": smtp_sink.url, "CAMPAIGN_RETRY_SECONDS": 0}


def _rgb(css: str) -> str:
    r, g, b = (int(x) for x in re.findall(r"\d+", css)[:3])
    return f"#{r:02x}{g:02x}{b:02x}"


def _styles(page, selector: str) -> dict[str, str]:
    return page.eval_on_selector(selector, "e => { const s = getComputedStyle(e);"
                                           " return {color: s.color, background: s.backgroundColor}; }")


@pytest.fixture
def mail(app, db, smtp_sink):
    update_settings({"organisation_name": "Beispiel GmbH", "postal_address": "Hauptstraße 1\n12345 Musterstadt",
                     "accent_color": "#2e7d32", "privacy_url": "https://example.org/privacy"})
    db.session.commit()
    make_supporter("kim@example.org", name="Kim")
    campaign = make_campaign(contents={"en": {"subject": "Our new shop", "body": BODY}})
    services.launch(campaign.id)
    run_worker(app)
    [msg] = smtp_sink.handler.parsed()
    return msg


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_campaign_mail_reads_well_on_a_phone(browser, mail, scheme, tmp_path):  # noqa: F811
    html, text = parts(mail)["text/html"], parts(mail)["text/plain"]
    unsubscribe = mail["List-Unsubscribe"].strip("<>")
    assert "You receive this email because" in text and f"Unsubscribe: {unsubscribe}" in text

    page = browser.new_page(viewport={"width": 390, "height": 844}, color_scheme=scheme)
    # Mail clients load no remote resources before the reader allows it; neither do we.
    page.route("**/*", lambda route: route.abort())
    page.set_content(html, wait_until="load")
    page.screenshot(path=str(tmp_path / f"campaign-{scheme}.png"), full_page=True)

    footer = page.locator("#sp-footer")
    assert footer.is_visible()
    assert "You receive this email because on" in footer.inner_text() and "Beispiel GmbH" in footer.inner_text()
    link = page.get_by_role("link", name="Unsubscribe")
    assert link.is_visible() and link.get_attribute("href") == unsubscribe
    box = link.bounding_box()
    assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390

    # Nothing scrolls sideways on a 390 px phone, long links and preformatted text included.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390

    card = _rgb(_styles(page, ".sp-card")["background"])
    assert card == ("#1e1e1e" if scheme == "dark" else "#ffffff")
    for selector in (".sp-text p", "#sp-footer p", "#sp-footer a", ".sp-text a"):
        colour = _rgb(_styles(page, selector)["color"])
        assert contrast(colour, card) >= 4.5, (scheme, selector, colour, card)
