"""The dialog in a real browser on a phone-sized screen with JavaScript off, with real mail through a
real SMTP server: a supporter opens "Your idea or concern" from a campaign mail and posts an idea;
a manager publishes it through the API; another supporter backs it from the digest mail; the
threshold makes it due; the answer reaches the author and the backer exactly once; erasing the
author keeps the counts."""

from __future__ import annotations

import re
from email import message_from_bytes
from email.header import decode_header, make_header
from pathlib import Path

import pytest
import sqlalchemy as sa

from dialog import digest
from dialog.models import Post
from tests.actions_helpers import auth, launch
from tests.dialog_helpers import run_mail_jobs
from tests.factories import make_supporter
from tests.servers import free_port
from tests.test_browser_join import CHROMIUM, LiveServer, browser  # noqa: F401 - the fixture

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is not installed"),
]

PHONE = {"viewport": {"width": 390, "height": 844}, "java_script_enabled": False, "is_mobile": True,
         "has_touch": True}
AUTHOR, BACKER = "author@example.org", "backer@example.org"


def _texts(sink, to: str) -> list[tuple[str, str]]:
    out = []
    for _sender, rcpts, content in sink.messages:
        if rcpts[0] == to:
            msg = message_from_bytes(content)
            plain = next(p.get_payload(decode=True).decode() for p in msg.walk()
                         if p.get_content_type() == "text/plain")
            out.append((str(make_header(decode_header(msg["Subject"]))), plain))
    return out


def test_idea_to_answer_in_a_browser_with_real_mail(app, db, settings, smtp_sink, browser):  # noqa: F811
    from wsgi import create_app

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    web = create_app({**settings, "SMTP_URL": smtp_sink.url, "PUBLIC_BASE_URL": base, "RATELIMIT_ENABLED": "0"})
    link = re.compile(rf"{re.escape(base)}/dialog/[A-Za-z0-9_.\-]+(?:/posts/\d+)?")
    with web.app_context():
        author_id = make_supporter(AUTHOR, name="Ada Lovelace").id
        make_supporter(BACKER, language="de")
        manager = auth()
        client = web.test_client()
        topic = client.post("/api/v1/dialog/topics", headers=manager, json={
            "name_en": "Shops", "name_de": "Läden", "answer_threshold": 1, "answer_deadline_days": 10}).get_json()
        news = client.post("/api/v1/campaigns", headers=manager, json={
            "name": "news", "kind": "announcement",
            "contents": {"en": {"subject": "News", "body": "Hello, we have news."},
                         "de": {"subject": "Neues", "body": "Hallo, es gibt Neues."}}}).get_json()
        launch(client, manager, news["id"], web)
    [(_s, author_mail)] = _texts(smtp_sink, AUTHOR)
    [(_s, backer_mail)] = _texts(smtp_sink, BACKER)

    with LiveServer(web, port):
        context = browser.new_context(**PHONE)
        page = context.new_page()
        # 1. The author opens the link from the real campaign mail and posts an idea.
        page.goto(link.search(author_mail).group(0))
        assert page.locator("main").bounding_box()["width"] <= 390
        page.select_option("#topic_id", str(topic["id"]))
        page.check("input[name=kind][value=idea]")
        page.fill("#title", "Open on Saturdays")
        page.fill("#body", "Many of us **work** during the week.\n\n- Saturday mornings\n- or late evenings")
        page.click("#send")
        assert page.locator("#sent").is_visible()
        assert page.locator("#mine").inner_text().count("waiting for moderation") == 1
        # 2. The other supporter asks for the digest (a POST button) from their own mail link.
        other = browser.new_context(**PHONE).new_page()
        other.goto(link.search(backer_mail).group(0))
        other.click("#digest-on")
        assert other.locator("#digest-off").is_visible()
        with web.app_context():
            post_id = db.session.scalar(sa.select(Post.id))
            # 3. The manager publishes it through the API; the author hears of it.
            published = web.test_client().post(f"/api/v1/dialog/posts/{post_id}/status", headers=manager,
                                               json={"status": "published"})
            assert published.status_code == 200, published.get_json()
            assert digest.send_digests() == 1
            run_mail_jobs(web)
        assert [s for s, _t in _texts(smtp_sink, AUTHOR)] == ["News", "Your post is published"]
        [(subject, digest_mail)] = [m for m in _texts(smtp_sink, BACKER) if m[0] != "Neues"]
        assert subject == "Neu im Unterstützer-Dialog" and "Open on Saturdays" in digest_mail
        # 4. The backer opens the post from the digest and backs it: threshold reached, the post is due.
        other.goto(link.search(digest_mail).group(0))
        assert "<strong>work</strong>" in other.inner_html("#post-body")
        other.click("#back")
        assert other.locator("#backed").is_visible() and other.locator("#due").is_visible()
        with web.app_context():
            due = web.test_client().get("/api/v1/dialog/due", headers=manager).get_json()["items"]
            assert [d["id"] for d in due] == [post_id]
            # 5. The answer goes to the author and the backer, once, however often the worker runs.
            answered = web.test_client().post(f"/api/v1/dialog/posts/{post_id}/status", headers=manager,
                                              json={"status": "answered", "answer": "From May we open on Saturdays."})
            assert answered.status_code == 200
            run_mail_jobs(web)
            run_mail_jobs(web)
        for person in (AUTHOR, BACKER):
            answers = [t for s, t in _texts(smtp_sink, person) if "From May we open on Saturdays." in t]
            assert len(answers) == 1, person
        page.goto(link.search(author_mail).group(0))
        assert "answered" in page.locator("#mine").inner_text()
        # 6. Erasing the author keeps the post, its backing and the figures.
        with web.app_context():
            web_client = web.test_client()
            assert web_client.delete(f"/api/v1/supporters/{author_id}", headers=manager).status_code == 204
            figures = web_client.get(f"/api/v1/dialog/topics/{topic['id']}/figures", headers=manager).get_json()
            assert (figures["posts"], figures["backings"], figures["by_status"]) == (1, 1, {"answered": 1})
        other.goto(link.search(digest_mail).group(0))
        assert other.locator("#backers").inner_text().startswith("1 ")
        assert "Ada" not in other.content()
        assert other.locator("#answer").inner_text().endswith("From May we open on Saturdays.")
        context.close()
