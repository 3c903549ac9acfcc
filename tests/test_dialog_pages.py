"""The dialog pages: broken, expired and foreign links, hostile input beside the field, GET/HEAD/
OPTIONS that change nothing, rate limits per supporter and per IP, the link in campaign mails."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from dialog.models import Backing, Post
from supporters.links import preferences_token
from supporters.models import SupporterStatus
from tests.actions_helpers import auth, launch, mails
from tests.api_support import ApiCaller
from tests.dialog_helpers import CSRF_RE, DIALOG_RE, form_post, make_topic, page_path, post_for, set_status
from tests.factories import make_supporter
from tests.test_confirm import old_token


@pytest.fixture
def settings(migrated):
    return {**migrated, "RATELIMIT_ENABLED": "0"}


@pytest.fixture
def api(app, db):
    return ApiCaller(app, db)


def _posts(db) -> int:
    db.session.expire_all()
    n = db.session.scalar(sa.select(sa.func.count()).select_from(Post))
    db.session.commit()
    return n


def test_foreign_tampered_and_expired_links_are_explained_and_change_nothing(app, client, db):
    ada = make_supporter()
    for token, status in ((preferences_token(ada.id), 400), ("garbage", 400), (page_path(ada.id)[8:] + "x", 400),
                          (old_token(app, "dialog", {"s": ada.id}, 181 * 86400), 410)):
        page = client.get(f"/dialog/{token}")
        assert page.status_code == status, token
        assert page.mimetype == "text/html"
        assert client.post(f"/dialog/{token}", data={"title": "x"}).status_code == 400  # no CSRF token either
    expired = client.get(f"/dialog/{old_token(app, 'dialog', {'s': ada.id}, 181 * 86400)}").get_data(as_text=True)
    assert "This link has expired" in expired
    assert _posts(db) == 0


@pytest.mark.parametrize("field, value, message", [
    ("title", "", "Please fill this in."),
    ("title", "Line\r\nbreak", "Please remove control characters"),
    ("title", "NUL\x00byte", "Please remove control characters"),
    ("title", "<img src=x onerror=alert(1)>", "Please write plain text"),
    ("body", "x" * 5001, "This is too long."),
    ("body", "<script>alert(1)</script> and some more text", "Please write plain text"),
    ("kind", "rant", "Please choose one of the options."),
    ("topic_id", "99999999999999999999", "Please choose a topic."),
])
def test_bad_input_on_the_page_is_shown_beside_the_field_and_stores_nothing(client, db, api, field, value, message):
    ada = make_supporter()
    topic = make_topic(api)
    data = {"topic_id": str(topic["id"]), "kind": "idea", "title": "Ünïcødé title ✓",
            "body": "Ein Text mit Umlauten: äöü — und einem Emoji 🙂.", field: value}
    page = form_post(client, page_path(ada.id), data)
    html = page.get_data(as_text=True)
    assert page.status_code == 422
    assert f'id="{field}-error"' in html and message in html
    assert "<script>alert" not in html and "<img src=x" not in html
    assert _posts(db) == 0
    good = form_post(client, page_path(ada.id), {**data, field: {"kind": "idea", "topic_id": str(topic["id"])}
                                                 .get(field, "A valid replacement text")})
    assert good.status_code == 200 and _posts(db) == 1


def test_text_is_shown_as_text_with_the_tiny_markdown_subset(client, db, api):
    ada, bob = make_supporter(), make_supporter()
    topic = make_topic(api)
    post = post_for(api, ada.id, topic["id"], body="Line one with **bold** & *soft*\n\n- first\n- second")
    set_status(api, post["id"], "published")
    html = client.get(page_path(bob.id, post["id"])).get_data(as_text=True)
    assert "<strong>bold</strong> &amp; <em>soft</em>" in html
    assert "<ul><li>first</li><li>second</li></ul>" in html


def test_inactive_supporters_cannot_post_or_back(client, db, api):
    author = make_supporter()
    left = make_supporter(status=SupporterStatus.UNSUBSCRIBED)
    topic = make_topic(api)
    post = post_for(api, author.id, topic["id"])
    set_status(api, post["id"], "published")
    page = form_post(client, page_path(left.id), {"topic_id": str(topic["id"]), "kind": "idea",
                                                  "title": "From someone who left", "body": "Should not be stored."})
    assert page.status_code == 409 and "Only active supporters" in page.get_data(as_text=True)
    page = form_post(client, page_path(left.id, post["id"]), {"action": "back"})
    assert page.status_code == 409 and "Only active supporters" in page.get_data(as_text=True)
    assert _posts(db) == 1 and db.session.scalar(sa.select(sa.func.count()).select_from(Backing)) == 0


def test_reading_with_any_method_but_post_changes_nothing(client, db, api):
    author, fan = make_supporter(), make_supporter()
    topic = make_topic(api)
    post = post_for(api, author.id, topic["id"])
    set_status(api, post["id"], "published")
    for path in (page_path(fan.id), page_path(fan.id, post["id"]), page_path(author.id, post["id"])):
        for method in ("GET", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE"):
            response = client.open(path, method=method, data={"action": "back", "title": "t", "body": "b" * 20})
            assert response.status_code in (200, 405), (method, path)
    db.session.expire_all()
    assert db.session.scalar(sa.select(Post.backers)) == 0 and _posts(db) == 1
    assert db.session.scalar(sa.select(Post.status)).value == "published"


def test_posting_and_backing_are_rate_limited_per_supporter(app, settings, db):
    from wsgi import create_app

    limited = create_app({**settings, "RATELIMIT_ENABLED": "1", "DIALOG_SUPPORTER_RATE_LIMIT": "3 per minute",
                          "DIALOG_RATE_LIMIT": "100 per minute"})
    with limited.app_context():
        ada = make_supporter()
        client = limited.test_client()
        statuses = [form_post(client, page_path(ada.id), {"title": ""}).status_code for _ in range(4)]
        assert statuses == [422, 422, 422, 429]
        page = form_post(client, page_path(ada.id), {"title": ""})
        assert page.status_code == 429 and "Too many attempts" in page.get_data(as_text=True)
        other = make_supporter()
        assert form_post(client, page_path(other.id), {"title": ""}).status_code == 422  # another supporter


def test_posting_is_rate_limited_per_ip(app, settings, db):
    from wsgi import create_app

    limited = create_app({**settings, "RATELIMIT_ENABLED": "1", "DIALOG_RATE_LIMIT": "2 per minute"})
    with limited.app_context():
        client = limited.test_client()
        people = [make_supporter() for _ in range(3)]
        statuses = [form_post(client, page_path(p.id), {"title": ""}).status_code for p in people]
        assert statuses == [422, 422, 429]


def test_every_campaign_mail_links_to_the_dialog_with_the_supporters_own_token(app, client, db, settings, smtp_sink):
    from wsgi import create_app

    mailing = create_app({**settings, "SMTP_URL": smtp_sink.url})
    with mailing.app_context():
        ada = make_supporter("ada@example.org")
        headers = auth("manager", "camp@example.com")
        web = mailing.test_client()
        data = {"name": "news", "kind": "announcement",
                "contents": {"en": {"subject": "News", "body": "Hello {{first_name}}, we have news."}}}
        campaign = web.post("/api/v1/campaigns", json=data, headers=headers).get_json()
        launch(web, headers, campaign["id"], mailing)
        mail = mails(smtp_sink)["ada@example.org"]
        assert "Your idea or concern" in mail["text/plain"] and "Your idea or concern" in mail["text/html"]
        path = DIALOG_RE.search(mail["text/plain"]).group(1)
        page = web.get(path)
        assert page.status_code == 200 and 'id="digest-on"' in page.get_data(as_text=True)
        from dialog.links import supporter_from_token

        assert supporter_from_token(path.removeprefix("/dialog/")).id == ada.id


def test_a_huge_body_is_refused_before_it_is_read(client, db, api):
    ada = make_supporter()
    topic = make_topic(api)
    page = client.post(page_path(ada.id), data={"topic_id": str(topic["id"]), "kind": "idea", "title": "Huge",
                                                "body": "x" * 2_000_000})
    assert page.status_code == 413
    assert _posts(db) == 0


def test_the_author_withdraws_on_the_page_and_a_backer_takes_the_backing_back(client, db, api):
    author, fan = make_supporter(language="de"), make_supporter()
    topic = make_topic(api)
    post = post_for(api, author.id, topic["id"])
    set_status(api, post["id"], "published")
    assert "Ihre Idee oder Ihr Anliegen" in client.get(page_path(author.id)).get_data(as_text=True)
    assert "Your idea or concern" in client.get(page_path(author.id) + "?lang=en").get_data(as_text=True)
    page = form_post(client, page_path(fan.id, post["id"]), {"action": "withdraw"})
    assert page.status_code == 403 and "Only the author can withdraw a post." in page.get_data(as_text=True)
    assert 'id="unback"' in form_post(client, page_path(fan.id, post["id"]), {"action": "back"}).get_data(as_text=True)
    page = form_post(client, page_path(fan.id, post["id"]), {"action": "unback"})
    assert page.status_code == 200 and 'id="back"' in page.get_data(as_text=True)
    page = form_post(client, page_path(author.id, post["id"]), {"action": "withdraw"})
    assert page.status_code == 200 and "Ihr Beitrag ist zurückgezogen." in page.get_data(as_text=True)
    # The page offers no button any more; a replayed form is told why.
    token = CSRF_RE.search(client.get(page_path(author.id)).get_data(as_text=True)).group(1)
    page = client.post(page_path(author.id, post["id"]), data={"action": "withdraw", "csrf_token": token})
    assert page.status_code == 409 and "nicht mehr zurückgezogen" in page.get_data(as_text=True)
    assert client.get(page_path(fan.id, post["id"])).status_code == 404  # withdrawn: no longer listed
    db.session.expire_all()
    assert db.session.scalar(sa.select(Post.backers)) == 0
