"""The dialog API: roles, transitions, bad input (problem+json naming the field, nothing stored),
backing under concurrency, merging, cursor pages by backers, figures, and the CLI."""

from __future__ import annotations

import csv
import io
import json
import threading

import pytest
import sqlalchemy as sa

from core.accounts import AuditEvent
from dialog.models import Backing, Post
from supporters.models import SupporterStatus
from tests.api_support import ApiCaller, assert_problem
from tests.dialog_helpers import counts, make_topic, post_for, set_status
from tests.factories import make_supporter


@pytest.fixture
def settings(migrated):
    return {**migrated, "RATELIMIT_ENABLED": "0"}


@pytest.fixture
def api(app, db):
    return ApiCaller(app, db)


def _rows(db, model) -> int:
    db.session.expire_all()
    n = db.session.scalar(sa.select(sa.func.count()).select_from(model))
    db.session.commit()
    return n


@pytest.mark.parametrize("method, path, needed", [
    ("GET", "/dialog/topics", "viewer"), ("POST", "/dialog/topics", "manager"),
    ("GET", "/dialog/topics/1", "viewer"), ("PATCH", "/dialog/topics/1", "manager"),
    ("GET", "/dialog/topics/1/figures", "viewer"), ("GET", "/dialog/topics/1/posts", "viewer"),
    ("GET", "/dialog/report", "viewer"), ("GET", "/dialog/due", "viewer"),
    ("GET", "/dialog/posts", "viewer"), ("POST", "/dialog/posts", "manager"),
    ("GET", "/dialog/posts/1", "viewer"), ("PATCH", "/dialog/posts/1", "manager"),
    ("GET", "/dialog/posts/1/backers", "viewer"), ("POST", "/dialog/posts/1/status", "manager"),
    ("POST", "/dialog/posts/1/merge", "manager"), ("POST", "/dialog/posts/1/backings", "manager"),
    ("DELETE", "/dialog/posts/1/backings/1", "manager"),
])
def test_every_dialog_operation_checks_the_role_first(api, method, path, needed):
    assert_problem(api.call(method, path, role=None), 401)
    if needed != "viewer":
        assert_problem(api.call(method, path, role="viewer", json={}), 403)
    assert api.call(method, path, role=needed, json={}).status_code not in (401, 403, 500)


def test_transitions_follow_the_rules_and_every_change_is_audited(api, db):
    author = make_supporter()
    topic = make_topic(api)
    post = post_for(api, author.id, topic["id"])
    problem = set_status(api, post["id"], "answered", expect=409, answer="Too early")
    assert "a new post cannot become answered" in problem["detail"]
    body = set_status(api, post["id"], "rejected", expect=422)
    assert [e["field"] for e in body["errors"]] == ["reason"]
    set_status(api, post["id"], "rejected", reason="Off topic")
    problem = set_status(api, post["id"], "answered", expect=409, answer="Answer a rejected post")
    assert "rejected" in problem["detail"] and "none (final)" in problem["detail"]
    other = post_for(api, author.id, topic["id"], body="Another text, long enough to pass.")
    for status, extra in (("published", {}), ("under_review", {}), ("planned", {}),
                          ("answered", {"answer": "Done in May."}), ("done", {})):
        assert set_status(api, other["id"], status, **extra)["status"] == status
    set_status(api, other["id"], "published", expect=409)
    actions = db.session.scalars(sa.select(AuditEvent.detail).where(AuditEvent.action == "dialog.post.status",
                                                                      AuditEvent.object_id == str(other["id"])))
    assert [d["to"] for d in actions] == ["published", "under_review", "planned", "answered", "done"]


@pytest.mark.parametrize("field, value, code", [
    ("title", "", "title"), ("title", "a" * 201, "title"), ("title", "Hi\r\nBcc: x@y", "title"),
    ("title", "<script>alert(1)</script>", "title"), ("body", "short", "body"), ("body", "x" * 5001, "body"),
    ("body", "Text with a NUL \x00 inside it", "body"), ("body", "<b>bold</b> is not our markup", "body"),
    ("body", "see [here](https://evil.example) for more", "body"), ("kind", "rant", "kind"),
    ("topic_id", 0, "topic_id"), ("topic_id", 999, "topic_id"),
])
def test_bad_post_input_is_a_422_naming_the_field_and_stores_nothing(api, db, field, value, code):
    author = make_supporter()
    topic = make_topic(api)
    body = {"supporter_id": author.id, "topic_id": topic["id"], "kind": "idea", "title": "A fine title",
            "body": "A body that is long enough.", field: value}
    assert_problem(api.post("/dialog/posts", json=body, role="manager"), 422, code)
    assert _rows(db, Post) == 0


def test_rule_refusals_are_409_or_403_and_store_nothing(api, db):
    author, pending = make_supporter(), make_supporter(status=SupporterStatus.PENDING)
    topic = make_topic(api)
    closed = make_topic(api, is_open=False)
    post_for(api, author.id, topic["id"])
    body = "Please open on Saturdays too, many of us work during the week."
    assert "already posted the same text" in post_for(api, author.id, topic["id"], body="  please OPEN on saturdays "
                                                      "too, many of us work during the week. ", status=409)["detail"]
    assert "closed" in post_for(api, author.id, closed["id"], body=body + " 2", status=409)["detail"]
    assert "active supporters" in post_for(api, pending.id, topic["id"], status=409)["detail"]
    for i in range(4):  # DIALOG_POSTS_PER_DAY is 5 by default
        post_for(api, author.id, topic["id"], body=f"{body} variant {i}")
    assert "per supporter and day" in post_for(api, author.id, topic["id"], body=body + " 6", status=409)["detail"]
    assert _rows(db, Post) == 5


def test_backing_is_once_per_supporter_never_ones_own_and_withdrawable(api, db):
    author, fan = make_supporter(), make_supporter()
    topic = make_topic(api)
    post = post_for(api, author.id, topic["id"])
    back = f"/dialog/posts/{post['id']}/backings"
    assert "not yet answered" in assert_problem(api.post(back, json={"supporter_id": fan.id}, role="manager"),
                                                409)["detail"]  # a new post cannot be backed yet
    set_status(api, post["id"], "published")
    assert api.post(back, json={"supporter_id": fan.id}, role="manager").get_json()["backers"] == 1
    assert "already backs" in assert_problem(api.post(back, json={"supporter_id": fan.id}, role="manager"),
                                             409)["detail"]
    assert "own post" in assert_problem(api.post(back, json={"supporter_id": author.id}, role="manager"),
                                        409)["detail"]
    assert counts(post["id"])["backers"] == 1
    assert api.delete(f"{back}/{fan.id}", role="manager").status_code == 204
    assert_problem(api.delete(f"{back}/{fan.id}", role="manager"), 409)
    assert counts(post["id"]) == {"backings": 0, "backers": 0, "notices": 1}  # the author's "published"


def _concurrently(app, path: str, bodies: list[dict], headers: dict) -> list[int]:
    statuses: list[int] = []
    barrier = threading.Barrier(len(bodies))

    def call(body):
        client = app.test_client()
        barrier.wait()
        statuses.append(client.post(f"/api/v1{path}", json=body, headers=headers).status_code)

    threads = [threading.Thread(target=call, args=(b,)) for b in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return statuses


def test_eight_simultaneous_backings_count_eight_by_distinct_supporters_and_one_by_one(app, api, db):
    author = make_supporter()
    fans = [make_supporter() for _ in range(9)]
    topic = make_topic(api)
    post = post_for(api, author.id, topic["id"])
    set_status(api, post["id"], "published")
    headers = {"Authorization": f"Bearer {api.token('manager')}"}
    path = f"/dialog/posts/{post['id']}/backings"
    statuses = _concurrently(app, path, [{"supporter_id": f.id} for f in fans[:8]], headers)
    assert sorted(statuses) == [201] * 8
    assert counts(post["id"])["backers"] == counts(post["id"])["backings"] == 8
    other = post_for(api, author.id, topic["id"], body="A second idea, different from the first.")
    set_status(api, other["id"], "published")
    statuses = _concurrently(app, f"/dialog/posts/{other['id']}/backings", [{"supporter_id": fans[8].id}] * 8, headers)
    assert sorted(statuses) == [201] + [409] * 7
    assert counts(other["id"])["backers"] == counts(other["id"])["backings"] == 1


def test_merging_carries_backers_over_each_counted_once(api, db):
    a, b, both, only_dup, dup_author = (make_supporter() for _ in range(5))
    topic = make_topic(api, answer_threshold=4)
    target = post_for(api, a.id, topic["id"])
    dup = post_for(api, dup_author.id, topic["id"], body="Saturdays please, the week is full of work.")
    for p in (target, dup):
        set_status(api, p["id"], "published")
    for person, p in ((b, target), (both, target), (both, dup), (only_dup, dup)):
        api.post(f"/dialog/posts/{p['id']}/backings", json={"supporter_id": person.id}, role="manager")
    merged = api.post(f"/dialog/posts/{dup['id']}/merge", json={"into": target["id"]}, role="manager").get_json()
    assert merged["backers"] == 4 and merged["due_at"]  # b, both, only_dup and the duplicate's author
    assert api.get(f"/dialog/posts/{dup['id']}", role="viewer").get_json()["status"] == "merged"
    backers = set(db.session.scalars(sa.select(Backing.supporter_id).where(Backing.post_id == target["id"])))
    assert backers == {b.id, both.id, only_dup.id, dup_author.id}
    assert_problem(api.post(f"/dialog/posts/{dup['id']}/merge", json={"into": target["id"]}, role="manager"), 409)
    assert_problem(api.post(f"/dialog/posts/{target['id']}/merge", json={"into": target["id"]}, role="manager"), 409)


def test_a_topics_posts_page_by_backers_with_cursors(api, db):
    topic = make_topic(api)
    people = [make_supporter() for _ in range(4)]
    ids = []
    for i in range(5):
        post = post_for(api, people[0].id, topic["id"], body=f"Idea number {i}, long enough.")
        set_status(api, post["id"], "published")
        ids.append(post["id"])
        for person in people[1:1 + i % 4]:
            api.post(f"/dialog/posts/{post['id']}/backings", json={"supporter_id": person.id}, role="manager")
    hidden = post_for(api, people[1].id, topic["id"], body="Not yet moderated, never listed.")
    seen, url = [], f"/dialog/topics/{topic['id']}/posts?limit=2"
    while url:
        page = api.get(url, role="viewer").get_json()
        seen += [(p["backers"], p["id"]) for p in page["items"]]
        url = page["next"] and page["next"].removeprefix("http://supporters.test/api/v1")
    assert seen == sorted(seen, reverse=True) and len(seen) == 5 and hidden["id"] not in [i for _b, i in seen]
    assert_problem(api.get(f"/dialog/topics/{topic['id']}/posts?cursor=bm9wZQ", role="viewer"), 400)


def test_report_and_export_from_the_cli(api, db, runner):
    author, fan = make_supporter(), make_supporter()
    topic = make_topic(api, answer_threshold=1, answer_deadline_days=7)
    post = post_for(api, author.id, topic["id"], title="=HYPERLINK(\"http://evil\")")
    set_status(api, post["id"], "published")
    api.post(f"/dialog/posts/{post['id']}/backings", json={"supporter_id": fan.id}, role="manager")
    assert str(post["id"]) in runner.invoke(args=["dialog", "due"]).output
    set_status(api, post["id"], "answered", answer="We will.")
    report = json.loads(runner.invoke(args=["dialog", "report", "--json"]).output)
    assert report[0]["posts"] == 1 and report[0]["backings"] == 1 and report[0]["answered_within_deadline"] == 1.0
    assert report[0]["median_hours_to_answer"] is not None
    assert "answered within the deadline 100% of 1 due posts" in runner.invoke(args=["dialog", "report"]).output
    result = runner.invoke(args=["dialog", "export"])
    rows = list(csv.DictReader(io.StringIO(result.output.split("Exported")[0])))
    assert rows[0]["title"].startswith("'=HYPERLINK") and rows[0]["backers"] == "1"
    assert runner.invoke(args=["dialog", "export", "--topic", "999"]).exit_code == 1


def test_a_retried_post_with_the_same_idempotency_key_is_stored_once(api, db):
    author = make_supporter()
    topic = make_topic(api)
    body = {"supporter_id": author.id, "topic_id": topic["id"], "kind": "question", "title": "Why?",
            "body": "Why is the shop closed on Mondays?"}
    headers = {"Idempotency-Key": "6f1c1f0e-dialog"}
    first = api.post("/dialog/posts", json=body, role="manager", headers=headers)
    again = api.post("/dialog/posts", json=body, role="manager", headers=headers)
    assert first.status_code == again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert first.get_json()["id"] == again.get_json()["id"] and _rows(db, Post) == 1


def test_the_hand_built_post_json_is_what_the_documented_schema_dumps(api, db):
    from api.dialog_posts import PostOut, _dump

    author = make_supporter()
    topic = make_topic(api, answer_threshold=1, answer_deadline_days=2)
    post = post_for(api, author.id, topic["id"], show_name=True)
    set_status(api, post["id"], "published")
    api.post(f"/dialog/posts/{post['id']}/backings", json={"supporter_id": make_supporter().id}, role="manager")
    set_status(api, post["id"], "declined", reason="Not now")
    row = db.session.get(Post, post["id"])
    db.session.refresh(row)
    data = {c: getattr(row, c) for c in PostOut().fields if c not in ("author", "kind", "status", "tags")}
    data.update(kind=row.kind.value, status=row.status.value, tags=[],
                author={"supporter_id": row.supporter_id, "kind": row.author_kind, "show_name": row.show_name})
    assert _dump(row) == PostOut().dump(data)
    assert all(_dump(row)[k] for k in ("due_at", "deadline_at", "answered_at", "published_at"))
    # The topic's listing builds its items from plain rows: the same JSON again.
    listed = api.get(f"/dialog/topics/{topic['id']}/posts", role="viewer").get_json()["items"]
    assert listed == [json.loads(json.dumps(_dump(row)))]


def test_eight_simultaneous_identical_posts_store_one(app, api, db):
    author = make_supporter()
    topic = make_topic(api)
    headers = {"Authorization": f"Bearer {api.token('manager')}"}
    body = {"supporter_id": author.id, "topic_id": topic["id"], "kind": "concern", "title": "Twice?",
            "body": "The same text sent eight times at once."}
    statuses = _concurrently(app, "/dialog/posts", [body] * 8, headers)
    assert sorted(statuses) == [201] + [409] * 7
    assert _rows(db, Post) == 1
