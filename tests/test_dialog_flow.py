"""Dialog end to end without a browser: the personal link in real mail, posting on the page,
moderation through the API, backing, the threshold making a post due, the answer mailed exactly
once to the author and every backer (real SMTP sink), and erasure keeping the counts."""

from __future__ import annotations

from email import message_from_bytes

import pytest
import sqlalchemy as sa

from dialog.models import Notice, NoticeStatus, Post, PostStatus
from supporters.links import preferences_token
from supporters.models import SupporterKind
from tests.api_support import ApiCaller
from tests.dialog_helpers import (
    DIALOG_RE,
    counts,
    form_post,
    make_topic,
    page_path,
    post_for,
    run_mail_jobs,
    set_status,
)
from tests.factories import make_supporter


@pytest.fixture
def settings(migrated, smtp_sink):
    return {**migrated, "SMTP_URL": smtp_sink.url, "RATELIMIT_ENABLED": "0"}


@pytest.fixture
def api(app, db):
    return ApiCaller(app, db)


def _inbox(sink) -> dict[str, list[tuple[str, str]]]:
    """{recipient: [(subject, plain text), …]} of every message the sink received."""
    out: dict[str, list[tuple[str, str]]] = {}
    for _sender, rcpts, content in sink.messages:
        msg = message_from_bytes(content)
        plain = next(p.get_payload(decode=True).decode() for p in msg.walk() if p.get_content_type() == "text/plain")
        out.setdefault(rcpts[0], []).append((str(msg["Subject"]), plain))
    return out


def test_a_post_from_the_preferences_link_is_pending_until_published_and_the_author_hears_of_it(
        app, client, db, api, smtp_sink):
    ada = make_supporter("ada@example.org", name="Ada Lovelace")
    topic = make_topic(api)
    prefs = client.get(f"/preferences/{preferences_token(ada.id)}")
    path = DIALOG_RE.search(prefs.get_data(as_text=True)).group(1)
    page = form_post(client, path, {"topic_id": str(topic["id"]), "kind": "concern", "title": "Packaging waste",
                                    "body": "The boxes are **far** too big for what is in them.", "show_name": "1"})
    assert page.status_code == 200
    assert 'id="sent"' in page.get_data(as_text=True)
    post = db.session.scalar(sa.select(Post))
    assert (post.status, post.supporter_id, post.show_name) == (PostStatus.NEW, ada.id, True)
    assert "waiting for moderation" in client.get(path).get_data(as_text=True)
    set_status(api, post.id, "published")
    run_mail_jobs(app)
    [(subject, text)] = _inbox(smtp_sink)["ada@example.org"]
    assert subject == "Your post is published" and "Packaging waste" in text
    assert f"/posts/{post.id}" in text and "/unsubscribe/" in text


def test_threshold_makes_a_post_due_and_the_answer_reaches_author_and_backers_exactly_once(
        app, client, db, api, smtp_sink):
    author = make_supporter("author@example.org")
    backers = [make_supporter(f"b{i}@example.org") for i in range(3)]
    topic = make_topic(api, answer_threshold=3, answer_deadline_days=14)
    post = post_for(api, author.id, topic["id"])
    set_status(api, post["id"], "published")
    for i, backer in enumerate(backers):
        page = form_post(client, page_path(backer.id, post["id"]), {"action": "back"})
        assert page.status_code == 200, page.get_data(as_text=True)
        due = api.get("/dialog/due", role="viewer").get_json()["items"]
        assert [d["id"] for d in due] == ([post["id"]] if i == 2 else [])
    assert due[0]["deadline_at"] and due[0]["overdue"] is False
    assert api.get("/dialog/due?overdue=true", role="viewer").get_json()["items"] == []
    answered = set_status(api, post["id"], "answered", answer="Yes: from March we open on Saturdays.")
    assert answered["status"] == "answered"
    set_status(api, post["id"], "answered", expect=409, answer="Again")  # answered → answered is no transition
    run_mail_jobs(app)
    run_mail_jobs(app)  # a second run sends nothing more
    inbox = _inbox(smtp_sink)
    for person in [author, *backers]:
        answers = [m for m in inbox.get(person.email, []) if m[0].startswith("An answer")]
        assert len(answers) == 1, person.email
        assert "from March we open on Saturdays" in answers[0][1]
    assert "You raised" in [m for m in inbox[author.email] if m[0].startswith("An answer")][0][1]
    assert api.get("/dialog/due", role="viewer").get_json()["items"] == []
    page = client.get(page_path(backers[0].id, post["id"])).get_data(as_text=True)
    assert "from March we open on Saturdays" in page and 'id="answer"' in page


def test_the_answer_respects_consent_but_not_the_frequency_limit(app, client, db, api, smtp_sink):
    from datetime import timedelta

    from core.db import utcnow

    author = make_supporter("author@example.org", asks_per_month=1)
    left = make_supporter("left@example.org")
    paused = make_supporter("paused@example.org")
    topic = make_topic(api)
    post = post_for(api, author.id, topic["id"])
    set_status(api, post["id"], "published")
    for person in (left, paused):
        api.post(f"/dialog/posts/{post['id']}/backings", json={"supporter_id": person.id}, role="manager")
    from supporters.preferences import withdraw

    withdraw(left.id, method="test")
    paused.paused_until = utcnow() + timedelta(days=3)
    db.session.commit()
    run_mail_jobs(app)
    smtp_sink.messages.clear()
    set_status(api, post["id"], "declined", reason="It would cost more than it saves.")
    run_mail_jobs(app)
    assert list(_inbox(smtp_sink)) == ["author@example.org"]
    rows = dict(db.session.execute(sa.select(Notice.supporter_id, Notice.error).where(Notice.kind == "answer")).all())
    assert rows == {author.id: None, left.id: "no_consent", paused.id: "paused"}


def test_erasing_the_author_and_a_backer_keeps_every_count(app, client, db, api, smtp_sink):
    author = make_supporter("author@example.org", name="Grace Hopper")
    backer, other = make_supporter("backer@example.org"), make_supporter("other@example.org")
    topic = make_topic(api)
    post = post_for(api, author.id, topic["id"], show_name=True)
    set_status(api, post["id"], "published")
    for person in (backer, other):
        assert api.post(f"/dialog/posts/{post['id']}/backings", json={"supporter_id": person.id},
                        role="manager").status_code == 201
    before = api.get(f"/dialog/topics/{topic['id']}/figures", role="viewer").get_json()
    page = client.get(page_path(other.id, post["id"])).get_data(as_text=True)
    assert "by Grace" in page
    for person in (author, backer):
        assert api.delete(f"/supporters/{person.id}", role="manager").status_code == 204
    after = api.get(f"/dialog/topics/{topic['id']}/figures", role="viewer").get_json()
    assert (after["posts"], after["backings"]) == (before["posts"], before["backings"]) == (1, 2)
    assert counts(post["id"])["backers"] == 2
    got = api.get(f"/dialog/posts/{post['id']}", role="viewer").get_json()
    assert got["author"] == {"supporter_id": None, "kind": "fan", "show_name": False}
    page = client.get(page_path(other.id, post["id"])).get_data(as_text=True)
    assert "Grace" not in page and "2 backers" in page
    assert db.session.scalar(sa.select(Notice.id).where(Notice.supporter_id == author.id)) is None


def test_a_restricted_private_topic_shows_posts_to_their_author_only(app, client, db, api):
    insider = make_supporter("insider@example.org", kind=SupporterKind.FORMER_EMPLOYEE)
    fan, colleague = make_supporter("fan@example.org"), make_supporter(
        "colleague@example.org", kind=SupporterKind.FORMER_EMPLOYEE)
    topic = make_topic(api, audience_kinds=["former_employee"], visibility="private")
    page = form_post(client, page_path(fan.id), {"topic_id": str(topic["id"]), "kind": "idea", "title": "Hello there",
                                                 "body": "A fan may not post on an insider topic."})
    # The page offers the fan no form at all (no open topic for them); a forged POST is told why.
    assert page.status_code == 403 and "This topic is not open to you." in page.get_data(as_text=True)
    post = post_for(api, insider.id, topic["id"])
    set_status(api, post["id"], "published")
    assert client.get(page_path(insider.id, post["id"])).status_code == 200
    assert client.get(page_path(colleague.id, post["id"])).status_code == 404
    assert client.get(page_path(fan.id, post["id"])).status_code == 404
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Post)) == 1


def test_notices_left_behind_by_a_lost_job_are_sent_by_the_sweep(app, runner, db, api, smtp_sink):
    author = make_supporter("author@example.org")
    topic = make_topic(api)
    post = post_for(api, author.id, topic["id"])
    app.extensions["redis"].flushdb()  # the job queued after the commit is lost with Redis' data
    set_status(api, post["id"], "rejected", reason="Please keep it about our products.")
    app.extensions["redis"].flushdb()
    run_mail_jobs(app)
    assert smtp_sink.messages == []
    assert "Queued 1 notice jobs." in runner.invoke(args=["dialog", "sweep"]).output
    run_mail_jobs(app)
    [(subject, text)] = _inbox(smtp_sink)["author@example.org"]
    assert "Please keep it about our products." in text
    assert db.session.scalar(sa.select(Notice.status)) is NoticeStatus.SENT


def test_the_owner_hears_when_a_post_becomes_due(app, client, db, api, smtp_sink):
    author, fan = make_supporter("author@example.org"), make_supporter("fan@example.org")
    topic = make_topic(api, answer_threshold=1, answer_deadline_days=3)
    post = post_for(api, author.id, topic["id"])
    set_status(api, post["id"], "published")
    owner = api.users["manager"]  # the manager whose token made the topic
    etag = api.get(f"/dialog/posts/{post['id']}", role="viewer").headers["ETag"]
    patched = api.patch(f"/dialog/posts/{post['id']}", {"owner_id": owner.id, "priority": 2, "tags": ["hours"]},
                        role="manager", headers={"If-Match": etag})
    assert patched.status_code == 200 and patched.get_json()["owner_id"] == owner.id
    assert api.patch(f"/dialog/posts/{post['id']}", {"priority": 3}, role="manager",
                     headers={"If-Match": etag}).status_code == 412
    form_post(client, page_path(fan.id, post["id"]), {"action": "back"})
    run_mail_jobs(app)
    [(subject, text)] = _inbox(smtp_sink)["manager@example.com"]
    assert subject == f"Dialog: an answer is due (post {post['id']})" and "deadline" in text


def test_the_digest_lists_new_posts_of_others_once_and_the_export_names_what_a_person_wrote(
        app, client, db, api, smtp_sink):
    from dialog import digest

    reader, author = make_supporter("reader@example.org"), make_supporter("author@example.org")
    topic = make_topic(api)
    form_post(client, page_path(reader.id), {"action": "digest_on"})
    form_post(client, page_path(author.id), {"action": "digest_on"})
    post = post_for(api, author.id, topic["id"])
    set_status(api, post["id"], "published")
    assert digest.send_digests() == 1  # the author is not sent their own post
    assert digest.send_digests() == 0  # not again before DIALOG_DIGEST_DAYS
    [(subject, text)] = _inbox(smtp_sink)["reader@example.org"]
    assert subject == "New in the supporter dialog" and f"/posts/{post['id']}" in text
    record = api.get(f"/supporters/{author.id}/export", role="manager").get_json()
    assert [p["id"] for p in record["dialog"]["posts"]] == [post["id"]] and record["dialog"]["digest"]
    form_post(client, page_path(reader.id), {"action": "digest_off"})
    assert not digest.subscribed(reader.id)
