"""Faults with real worker processes: kill -9 mid-send, a flushed Redis; every delivery sent once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa

from campaigns import services
from campaigns.models import Campaign, Delivery, DeliveryStatus
from supporters.models import Supporter
from tests.engine_helpers import make_campaign, statuses

pytestmark = pytest.mark.slow
PEOPLE = 3000


@pytest.fixture
def settings(migrated, smtp_sink):
    return {**migrated, "SMTP_URL": smtp_sink.url}


@pytest.fixture
def worker_env(subprocess_env):
    # Short lease and sweep interval so that recovery happens within seconds in the test.
    return {**subprocess_env, "CAMPAIGN_LEASE_SECONDS": "3", "CAMPAIGN_SWEEP_SECONDS": "1",
            "CAMPAIGN_RETRY_SECONDS": "0"}


@pytest.fixture
def workers(worker_env):
    started: list[subprocess.Popen] = []

    def start(name: str) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "worker", "-q", "campaigns",
                                 "--name", f"{name}-{os.getpid()}"],
                                env=worker_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)  # its own process group: the RQ scheduler child too
        started.append(proc)
        return proc

    yield start
    for proc in started:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        try:  # whatever is left of the group, e.g. the scheduler orphaned by a kill -9
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def add_supporters(db, n: int) -> None:
    rows = [{"email": f"p{i}@example.org", "email_normalized": f"p{i}@example.org", "status": "active",
             "kind": "fan", "language": "en", "name": f"Person {i}"} for i in range(n)]
    db.session.execute(sa.insert(Supporter), rows)
    db.session.commit()


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def campaign_status(db, campaign_id: int) -> str:
    db.session.expire_all()
    status = db.session.scalar(sa.select(Campaign.status).where(Campaign.id == campaign_id)).value
    db.session.commit()
    return status


def test_a_worker_killed_mid_send_loses_nothing_and_duplicates_only_what_was_in_flight(app, db, smtp_sink, workers):
    add_supporters(db, PEOPLE)
    campaign_id = make_campaign().id
    assert services.launch(campaign_id)["queued"] == PEOPLE
    first = workers("doomed")
    wait_for(lambda: statuses(campaign_id).get("sent", 0) >= 400, 60, "the first worker to send")
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    if db.engine.dialect.name == "postgresql":
        # Nothing the dead worker began stays open (its RQ scheduler child inherited no connection).
        wait_for(lambda: not db.session.execute(sa.text(
            "SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in transaction%' "
            "AND pid <> pg_backend_pid()")).scalar(), 10, "the killed worker's transactions to end")
    counts = statuses(campaign_id)
    in_flight = counts.get("sending", 0)
    assert counts.get("sent", 0) < PEOPLE, "the send finished before the kill; make it bigger"
    workers("rescuer")
    wait_for(lambda: campaign_status(db, campaign_id) == "sent", 120, "the campaign to finish")

    assert statuses(campaign_id) == {"sent": PEOPLE}
    ids = smtp_sink.handler.message_ids
    assert len(ids) == PEOPLE  # every delivery reached the server
    duplicates = sum(n - 1 for n in ids.values())
    assert duplicates <= in_flight  # only messages in flight at the kill may arrive twice…
    stats = services.stats(campaign_id)
    assert duplicates <= stats["possible_duplicates"] <= in_flight  # …and they are counted


def test_a_flushed_redis_mid_send_is_recovered_by_the_sweeper(app, db, smtp_sink, workers):
    add_supporters(db, PEOPLE)
    campaign_id = make_campaign().id
    services.launch(campaign_id)
    workers("one")
    workers("two")
    wait_for(lambda: statuses(campaign_id).get("sent", 0) >= 300, 60, "the workers to send")
    app.extensions["redis"].flushdb()  # every queued job is gone
    assert statuses(campaign_id).get("sent", 0) < PEOPLE, "the send finished before the flush"
    wait_for(lambda: campaign_status(db, campaign_id) == "sent", 120, "the sweeper to finish the campaign")

    assert statuses(campaign_id) == {"sent": PEOPLE}
    ids = smtp_sink.handler.message_ids
    assert len(ids) == PEOPLE and set(ids.values()) == {1}


def test_pause_takes_effect_within_seconds_and_resume_finishes_without_those_who_left(app, db, smtp_sink, workers):
    add_supporters(db, PEOPLE)
    campaign_id = make_campaign().id
    services.launch(campaign_id)
    workers("one")
    wait_for(lambda: statuses(campaign_id).get("sent", 0) >= 200, 60, "the worker to send")
    services.pause(campaign_id)
    time.sleep(2.5)
    paused_at = statuses(campaign_id)
    assert paused_at.get("sending", 0) == 0
    time.sleep(1.5)
    assert statuses(campaign_id) == paused_at  # nothing moves while paused
    assert paused_at.get("queued", 0) > 100
    # Some of those still waiting unsubscribe in the middle of the send.
    leaving = db.session.scalars(sa.select(Delivery.supporter_id).where(
        Delivery.campaign_id == campaign_id, Delivery.status == DeliveryStatus.QUEUED).limit(100)).all()
    db.session.execute(sa.update(Supporter).where(Supporter.id.in_(leaving)).values(status="unsubscribed"))
    db.session.commit()
    services.resume(campaign_id)
    wait_for(lambda: campaign_status(db, campaign_id) == "sent", 120, "the campaign to finish")
    assert statuses(campaign_id) == {"sent": PEOPLE - 100, "skipped": 100}
    assert set(smtp_sink.handler.message_ids.values()) == {1}
    left = set(db.session.scalars(sa.select(Delivery.supporter_id).where(Delivery.skip_reason == "unsubscribed")))
    assert left == set(leaving)
    emails = set(db.session.scalars(sa.select(Supporter.email).where(Supporter.id.in_(leaving))))
    assert not emails & {m[1][0] for m in smtp_sink.messages}


def test_two_workers_together_keep_to_the_global_rate(app, db, smtp_sink, workers, worker_env):
    worker_env["CAMPAIGN_RATE_PER_SECOND"] = "50"  # burst of 5
    add_supporters(db, 150)
    campaign_id = make_campaign().id
    workers("one")
    workers("two")
    time.sleep(2)  # let both start and wait on the queue
    started = time.monotonic()
    services.launch(campaign_id)
    wait_for(lambda: statuses(campaign_id) == {"sent": 150}, 60, "the send to finish")
    elapsed = time.monotonic() - started
    assert elapsed >= (150 - 5) / 50 * 0.95, f"150 mails at 50/s took only {elapsed:.2f} s"
    assert len(smtp_sink.handler.message_ids) == 150
