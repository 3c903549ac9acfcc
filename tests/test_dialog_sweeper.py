"""The dialog's mails after the fact: the stop markers stop an answer mail that was already on its
way, a paused person's answer waits for the end of the pause and then goes out exactly once, the
workers' sweeper sends due digests by itself (never a period twice), and the supporters' own
changes on the pages are in the audit trail. Real SMTP sink, real Redis, the real unsubscribe."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from core.accounts import AuditEvent
from core.db import utcnow
from core.periodic import try_locked
from dialog import digest, notices
from dialog import sweeper as dialog_sweeper
from dialog.models import Notice, NoticeStatus
from supporters.preferences import update_preferences, withdraw
from tests.api_support import ApiCaller
from tests.dialog_helpers import form_post, make_topic, page_path, post_for, run_mail_jobs, set_status
from tests.factories import make_supporter
from tests.test_stopmarks import withdraw as one_click_unsubscribe


@pytest.fixture
def settings(migrated, smtp_sink):
    return {**migrated, "SMTP_URL": smtp_sink.url, "RATELIMIT_ENABLED": "0"}


@pytest.fixture
def api(app, db):
    return ApiCaller(app, db)


def _recipients(sink) -> list[str]:
    return sorted(rcpts[0] for _sender, rcpts, _content in sink.messages)


def _answer_status(supporter_id: int) -> tuple[NoticeStatus, str | None]:
    from core.extensions import db

    db.session.expire_all()
    row = db.session.execute(sa.select(Notice.status, Notice.error).where(
        Notice.supporter_id == supporter_id, Notice.kind == "answer")).one()
    db.session.commit()
    return tuple(row)


def _pause(supporter, until) -> None:
    """The supporter's own preferences form (which writes or lifts the stop marker)."""
    update_preferences(supporter, name=supporter.name, language="en", interest_ids=[], asks_per_month=None,
                       paused_until=until)


def _published_post_with_backers(api, *backers):
    author = make_supporter("author@example.org")
    topic = make_topic(api)
    post = post_for(api, author.id, topic["id"])
    set_status(api, post["id"], "published")
    for person in backers:
        response = api.post(f"/dialog/posts/{post['id']}/backings", json={"supporter_id": person.id}, role="manager")
        assert response.status_code == 201, response.get_json()
    return post


def test_an_unsubscribe_answered_while_the_answer_mail_is_prepared_stops_it(app, db, api, smtp_sink, monkeypatch):
    leaving, staying = make_supporter("leaving@example.org"), make_supporter("staying@example.org")
    post = _published_post_with_backers(api, leaving, staying)
    run_mail_jobs(app)
    smtp_sink.messages.clear()
    from dialog import mails

    real = mails.notice_mail

    def read_as_active_then_they_leave(supporter, *args, **kwargs):
        message = real(supporter, *args, **kwargs)  # the job read them as active…
        if supporter.email == "leaving@example.org":  # …and their one-click unsubscribe is answered now
            one_click_unsubscribe(app, supporter.id)
        return message

    monkeypatch.setattr(mails, "notice_mail", read_as_active_then_they_leave)
    set_status(api, post["id"], "answered", answer="We open on Saturdays from March on.")
    run_mail_jobs(app)
    assert _recipients(smtp_sink) == ["author@example.org", "staying@example.org"]
    assert _answer_status(leaving.id) == (NoticeStatus.SKIPPED, "no_consent")


def test_a_paused_backer_hears_the_answer_once_after_the_pause_ends(app, db, api, smtp_sink):
    resting = make_supporter("resting@example.org")
    post = _published_post_with_backers(api, resting)
    _pause(resting, utcnow() + timedelta(days=10))
    run_mail_jobs(app)
    smtp_sink.messages.clear()
    set_status(api, post["id"], "answered", answer="We open on Saturdays from March on.")
    run_mail_jobs(app)
    assert _recipients(smtp_sink) == ["author@example.org"]
    assert _answer_status(resting.id) == (NoticeStatus.QUEUED, "paused")  # deferred, not skipped
    assert notices.sweep() == 0  # still paused: nothing to send
    run_mail_jobs(app)
    assert _recipients(smtp_sink) == ["author@example.org"]

    _pause(db.session.merge(resting), None)  # the pause ends (lifted on the preferences page)
    assert notices.sweep() == 1
    assert notices.sweep() == 1  # two sweeps (two hosts, a restart) queue the job twice …
    run_mail_jobs(app)
    assert notices.sweep() == 0
    run_mail_jobs(app)
    assert _recipients(smtp_sink) == ["author@example.org", "resting@example.org"]  # … mailed once
    assert _answer_status(resting.id) == (NoticeStatus.SENT, None)


def test_a_deferred_answer_is_cancelled_when_the_person_unsubscribes_during_the_pause(app, db, api, smtp_sink):
    resting = make_supporter("resting@example.org")
    post = _published_post_with_backers(api, resting)
    _pause(resting, utcnow() + timedelta(days=10))
    set_status(api, post["id"], "declined", reason="It would cost more than it saves.")
    run_mail_jobs(app)
    assert _answer_status(resting.id) == (NoticeStatus.QUEUED, "paused")
    withdraw(resting.id, method="test")
    assert notices.sweep() == 1
    run_mail_jobs(app)
    assert "resting@example.org" not in _recipients(smtp_sink)
    assert _answer_status(resting.id) == (NoticeStatus.SKIPPED, "no_consent")


def _digest_reader_and_new_post(app, client, api, sink):
    """A reader who opted into the digest and a post published since (its notices already sent)."""
    reader, author = make_supporter("reader@example.org"), make_supporter("author@example.org")
    topic = make_topic(api)
    form_post(client, page_path(reader.id), {"action": "digest_on"})
    post = post_for(api, author.id, topic["id"])
    set_status(api, post["id"], "published")
    run_mail_jobs(app)
    sink.messages.clear()
    return reader, post


def test_the_workers_sweeper_sends_a_due_digest_by_itself_and_one_host_per_interval(app, client, db, api, smtp_sink):
    reader, post = _digest_reader_and_new_post(app, client, api, smtp_sink)
    assert dialog_sweeper.try_sweep(app) == {"notice_jobs": 0, "digest_runs": 1}
    assert dialog_sweeper.try_sweep(app) is None  # another worker, same interval: the lock says no
    app.extensions["redis"].delete(dialog_sweeper.SWEEP_LOCK)  # the next interval, and a restart
    with app.app_context():
        dialog_sweeper.sweep()
    run_mail_jobs(app)  # three digest runs queued: the period goes out once
    assert _recipients(smtp_sink) == ["reader@example.org"]
    app.extensions["redis"].delete(dialog_sweeper.SWEEP_LOCK)
    assert dialog_sweeper.try_sweep(app) is not None
    run_mail_jobs(app)
    assert _recipients(smtp_sink) == ["reader@example.org"]  # not again before DIALOG_DIGEST_DAYS


def test_two_digest_runs_at_once_send_a_period_once(app, client, db, api, smtp_sink, monkeypatch):
    reader, post = _digest_reader_and_new_post(app, client, api, smtp_sink)
    from dialog import mails

    real, inner = mails.digest_mail, []

    def another_run_meanwhile(*args, **kwargs):
        if not inner:  # a second worker runs the digest while this one builds its mail
            inner.append(digest.send_digests())
        return real(*args, **kwargs)

    monkeypatch.setattr(mails, "digest_mail", another_run_meanwhile)
    assert digest.send_digests() == 1
    assert inner == [0]
    assert _recipients(smtp_sink) == ["reader@example.org"]


def test_a_digest_is_not_sent_to_someone_whose_unsubscribe_was_just_answered(app, client, db, api, smtp_sink,
                                                                            monkeypatch):
    reader, post = _digest_reader_and_new_post(app, client, api, smtp_sink)
    from dialog import mails

    real = mails.digest_mail

    def read_as_active_then_they_leave(supporter, *args, **kwargs):
        message = real(supporter, *args, **kwargs)
        one_click_unsubscribe(app, supporter.id)
        return message

    monkeypatch.setattr(mails, "digest_mail", read_as_active_then_they_leave)
    assert digest.send_digests() == 0
    assert smtp_sink.messages == []


def test_the_locked_loop_runs_a_duty_once_per_interval(app):
    runs = []
    assert try_locked(app, "sp:test:lock", 60, lambda: runs.append(1) or "ran") == "ran"
    assert try_locked(app, "sp:test:lock", 60, lambda: runs.append(1) or "ran") is None
    assert runs == [1]


def test_a_supporters_own_changes_on_the_pages_are_audited_without_their_text(app, client, db, api):
    author, fan = make_supporter("author@example.org"), make_supporter("fan@example.org")
    topic = make_topic(api)
    page = form_post(client, page_path(author.id), {"topic_id": str(topic["id"]), "kind": "idea",
                                                    "title": "Secret title", "body": "A private thought, at length."})
    assert page.status_code == 200
    from dialog.models import Post

    post_id = db.session.scalar(sa.select(Post.id))
    set_status(api, post_id, "published")
    for action in ("back", "unback"):
        assert form_post(client, page_path(fan.id, post_id), {"action": action}).status_code == 200
    assert form_post(client, page_path(author.id, post_id), {"action": "withdraw"}).status_code == 200
    rows = db.session.execute(sa.select(AuditEvent.action, AuditEvent.actor_id, AuditEvent.object_id,
                                        AuditEvent.detail, AuditEvent.ip, AuditEvent.actor_label)
                              .where(AuditEvent.actor_type == "supporter").order_by(AuditEvent.id)).all()
    assert [tuple(r) for r in rows] == [
        ("dialog.post.create", author.id, str(post_id), {"via": "page"}, None, None),
        ("dialog.post.back", fan.id, str(post_id), {"via": "page"}, None, None),
        ("dialog.post.unback", fan.id, str(post_id), {"via": "page"}, None, None),
        ("dialog.post.withdraw", author.id, str(post_id), {"via": "page"}, None, None),
    ]
    trail = api.get("/audit?action=dialog.post.back", role="admin")
    assert trail.status_code == 200, trail.get_json()
    assert "Secret title" not in trail.get_data(as_text=True)
    assert api.delete(f"/supporters/{fan.id}", role="manager").status_code in (200, 204)
    db.session.expire_all()
    assert db.session.scalars(sa.select(AuditEvent.actor_id).where(
        AuditEvent.actor_type == "supporter", AuditEvent.action.in_(("dialog.post.back", "dialog.post.unback")))
    ).all() == [None, None]


def test_two_running_workers_send_a_due_digest_by_themselves_once(app, client, db, api, smtp_sink, subprocess_env):
    import os
    import signal
    import subprocess
    import sys
    import time

    from core.queues import get_queue

    reader, post = _digest_reader_and_new_post(app, client, api, smtp_sink)
    finished = get_queue("default").finished_job_registry
    env = {**subprocess_env, "DIALOG_SWEEP_SECONDS": "1"}
    workers = [subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "worker", "-q", "mail", "-q", "default"],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
               for _ in range(2)]
    try:
        deadline = time.monotonic() + 90
        # Wait for several sweeps' digest runs (each interval, one of the two workers queues one).
        while time.monotonic() < deadline and finished.count < 4:
            time.sleep(0.3)
        assert finished.count >= 4
    finally:
        for proc in workers:
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in workers:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
    assert _recipients(smtp_sink) == ["reader@example.org"]
