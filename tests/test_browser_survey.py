"""A survey answered in a real browser on a 360 px phone with JavaScript off, from the mail a real worker
sent through a real SMTP server: a conditional question, a required answer, a change, a reply request."""

from __future__ import annotations

import re
from email import message_from_bytes
from pathlib import Path

import pytest
import sqlalchemy as sa

from campaigns.surveys import SurveyAnswer, SurveyResponse
from tests.actions_helpers import auth, create, launch
from tests.factories import make_supporter
from tests.servers import free_port
from tests.test_browser_join import CHROMIUM, LiveServer, browser  # noqa: F401 - the fixture
from tests.test_browser_pages import _violations

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is not installed"),
]

PHONE = {"viewport": {"width": 360, "height": 740}, "is_mobile": True, "has_touch": True}
SURVEY = {"questions": [
    {"key": "nps", "type": "nps", "required": True,
     "label": {"en": "How likely are you to recommend us to a friend?", "de": "Wie wahrscheinlich empfehlen Sie uns?"}},
    {"key": "why", "type": "long_text", "required": True, "max_length": 500,
     "label": {"en": "What went wrong?", "de": "Was lief schief?"},
     "show_if": {"question": "nps", "op": "lte", "value": 6}},
    {"key": "topics", "type": "multiple", "label": {"en": "What matters to you?", "de": "Was ist Ihnen wichtig?"},
     "options": {"en": ["Price", "Service"], "de": ["Preis", "Service"]}},
], "thank_you": {"en": "We read every answer.", "de": "Wir lesen jede Antwort."}}


def _answers(db) -> dict[str, object]:
    db.session.expire_all()
    rows = db.session.execute(sa.select(SurveyAnswer.question, SurveyAnswer.value, SurveyAnswer.text)
                              .order_by(SurveyAnswer.id)).all()
    db.session.commit()
    return {q: (t if t is not None else v) for q, v, t in rows}


def _fits(page) -> bool:
    # Measured from Python's side: the page itself runs no script (JavaScript is off in the context).
    return page.locator("main").bounding_box()["width"] <= 360


def test_a_survey_is_answered_changed_and_followed_up_on_a_phone_without_javascript(app, db, settings, smtp_sink,
                                                                                     browser):  # noqa: F811
    from wsgi import create_app

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    web = create_app({**settings, "SMTP_URL": smtp_sink.url, "PUBLIC_BASE_URL": base, "RATELIMIT_ENABLED": "0"})
    with web.app_context():
        make_supporter("ada@example.org", language="en")
        manager = auth()
        client = web.test_client()
        campaign = create(client, manager, "survey", SURVEY)
        launch(client, manager, campaign["id"], web)
    (_sender, _rcpts, content), = smtp_sink.messages
    text = next(p.get_payload(decode=True).decode() for p in message_from_bytes(content).walk()
                if p.get_content_type() == "text/plain")
    link = re.search(rf"{re.escape(base)}/act/[A-Za-z0-9_.\-]+", text).group(0)

    with LiveServer(web, port):
        context = browser.new_context(locale="en-GB", java_script_enabled=False, **PHONE)
        page = context.new_page()
        page.goto(link)
        assert _fits(page) and page.locator("text=What went wrong?").count() == 0
        # Submitting without the required score: the message sits beside the question.
        page.get_by_role("button", name="Send my answers").click()
        assert "please answer this question" in page.inner_text("#q_nps-error")
        assert _answers(db) == {}

        page.get_by_role("group", name=re.compile("How likely")).get_by_label("3", exact=True).check()
        page.get_by_label("Service").check()
        page.get_by_role("button", name="Send my answers").click()
        page.wait_for_selector("text=there is one more thing we would like to ask")
        assert page.get_by_role("group", name=re.compile("How likely")).get_by_label("3", exact=True).is_checked()
        page.get_by_label(re.compile("What went wrong")).fill("The delivery took three weeks.")
        page.get_by_role("button", name="Send my answers").click()
        page.wait_for_selector("text=Thank you for your answers!")
        assert "We read every answer." in page.inner_text("main") and _fits(page)
        assert _answers(db) == {"nps": 3, "topics": 1, "why": "The delivery took three weeks."}

        page.get_by_role("button", name="Yes, please contact me").click()
        page.wait_for_selector("text=someone from our team will reply to you personally")

        # Changing the score hides the follow-up question and drops its answer.
        page.get_by_role("link", name="Change my answers").click()
        assert page.get_by_label(re.compile("What went wrong")).input_value() == "The delivery took three weeks."
        page.get_by_role("group", name=re.compile("How likely")).get_by_label("9", exact=True).check()
        page.get_by_role("button", name="Send my answers").click()
        page.wait_for_selector("text=Thank you for your answers!")
        assert _answers(db) == {"nps": 9, "topics": 1}
        context.close()

        # The same page passes axe-core at 360 px (axe runs as a script, so this context allows scripts).
        checked = browser.new_context(locale="en-GB", **PHONE)
        audit = checked.new_page()
        audit.goto(link)
        assert _violations(audit) == []
        checked.close()

    db.session.expire_all()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(SurveyResponse)) == 1
    assert db.session.scalar(sa.select(SurveyResponse.reply_requested_at)) is not None
