"""The action pages in a real browser on a phone-sized screen with JavaScript switched off: one share,
one review and one vote, each from the mail sent by a real worker through a real SMTP server."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import sqlalchemy as sa

from campaigns.actions import Action, Vote
from tests.actions_helpers import auth, create, launch, mails
from tests.factories import make_supporter
from tests.servers import free_port
from tests.test_browser_join import CHROMIUM, LiveServer, browser  # noqa: F401 - the fixture

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is not installed"),
]

FAN, FORMER = "fan@example.org", "former@example.org"
PHONE = {"viewport": {"width": 390, "height": 844}, "java_script_enabled": False, "is_mobile": True,
         "has_touch": True}


def _fits(page) -> bool:
    # Checked from Python's side: the page itself runs no script (JavaScript is off in the context).
    return page.locator("main").bounding_box()["width"] <= 390


def _actions(db) -> list[tuple[str, str]]:
    db.session.expire_all()
    rows = [(a.kind.value, a.detail) for a in db.session.scalars(sa.select(Action).order_by(Action.id))]
    db.session.commit()
    return rows


def test_share_review_and_vote_pages_work_on_a_phone_without_javascript(app, db, settings, smtp_sink, browser):  # noqa: F811
    from wsgi import create_app

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    web = create_app({**settings, "SMTP_URL": smtp_sink.url, "PUBLIC_BASE_URL": base, "RATELIMIT_ENABLED": "0"})
    with web.app_context():
        make_supporter(FAN, language="de")
        make_supporter(FORMER, kind="former_employee", language="en")
        manager = auth()
        client = web.test_client()
        share = create(client, manager, "share", {"url": "https://company.example/story",
                                                  "text": {"de": "Lest das!", "en": "Read this!"},
                                                  "networks": ["x", "whatsapp", "copy"]})
        review = create(client, manager, "review", {"destinations": [{"site": "google",
                                                                      "url": "https://g.page/r/company/review"}]})
        vote = create(client, manager, "vote", {"type": "poll", "question": "Welche Zeit?",
                                                "options": ["Morgens", "Abends"]})
        sent_before: list[int] = []  # how many mails the sink held before each launch
        for c in (share, review, vote):
            sent_before.append(len(smtp_sink.messages))
            launch(client, manager, c["id"], web)

    act = re.compile(rf"{re.escape(base)}/act/[A-Za-z0-9_.\-]+")
    links: dict[tuple[int, str], str] = {}
    campaign_ids = [share["id"], review["id"], vote["id"]]
    for position, (_sender, rcpts, content) in enumerate(smtp_sink.messages):
        index = sum(1 for start in sent_before if position >= start) - 1
        from email import message_from_bytes

        text = next(p.get_payload(decode=True).decode() for p in message_from_bytes(content).walk()
                    if p.get_content_type() == "text/plain")
        links[(campaign_ids[index], rcpts[0])] = act.search(text).group(0)
    assert len(links) == 6 and mails(smtp_sink)

    with LiveServer(web, port):
        context = browser.new_context(locale="de-DE", **PHONE)
        # The share button leads to the network; here the network is a stand-in page.
        context.route("https://twitter.com/**", lambda route: route.fulfill(body="<title>X</title>shared",
                                                                             content_type="text/html"))
        page = context.new_page()

        # Share: edit the suggested text, tap X.
        page.goto(links[(share["id"], FAN)])
        assert page.locator("html").get_attribute("lang") == "de" and _fits(page)
        assert page.input_value("#text") == "Lest das!"
        assert _actions(db) == []
        page.fill("#text", "Meine eigenen Worte")
        page.get_by_role("button", name="X", exact=True).click()
        page.wait_for_url(re.compile(r"https://twitter\.com/intent/tweet\?.*"))
        assert "Meine+eigenen+Worte" in page.url or "Meine%20eigenen%20Worte" in page.url
        assert _actions(db) == [("share", "x")]
        page.goto(links[(share["id"], FAN)])
        page.get_by_role("button", name="Link kopieren").click()
        page.wait_for_selector("#shared-url")
        assert page.input_value("#shared-url").startswith(f"{base}/r/")

        # Review: an insider sees the disclosure reminder; confirming is one tap.
        en = browser.new_context(locale="en-GB", **PHONE)
        insider = en.new_page()
        insider.goto(links[(review["id"], FORMER)])
        assert "Please say so in your review" in insider.inner_text(".disclosure") and _fits(insider)
        assert "no reward of any kind" in insider.inner_text("main")
        insider.fill("#review-url-google", "https://g.page/r/company/review/42")
        insider.get_by_role("button", name="I wrote a review on Google Business Profile").click()
        insider.wait_for_selector("text=Thank you for taking the time")
        page.goto(links[(review["id"], FAN)])
        assert page.locator(".disclosure").count() == 0

        # Vote: choose, tap, change.
        page.goto(links[(vote["id"], FAN)])
        assert _fits(page)
        page.get_by_label("Abends").check()
        page.get_by_role("button", name="Abstimmen").click()
        page.wait_for_selector("text=Ihre Stimme ist gezählt")
        page.get_by_label("Morgens").check()
        page.get_by_role("button", name="Meine Stimme ändern").click()
        page.wait_for_selector("text=Ihre Stimme ist gezählt")
        assert page.locator('input[value="0"]').is_checked()
        en.close()
        context.close()

    assert _actions(db) == [("share", "x"), ("share", "copy"), ("review", "google"), ("vote", "cast"),
                            ("vote", "changed")]
    db.session.expire_all()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Vote)) == 1
