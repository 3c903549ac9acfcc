"""Outgoing webhooks end to end: a real receiver on loopback verifies every signature with
`standardwebhooks`; real RQ jobs (in-process workers) on the real Redis, both engines."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import sqlalchemy as sa

import webhooks.endpoints as endpoints
from core import events
from core.events import MessageStatus, WebhookAttempt, WebhookEndpoint, WebhookEvent, WebhookMessage
from core.queues import get_queue, make_worker
from supporters.confirm import confirm
from supporters.join import join
from supporters.links import confirm_token
from supporters.models import Supporter
from supporters.preferences import withdraw
from supporters.privacy import erase_supporter, person_record
from tests.webhook_receiver import Receiver
from webhooks.dispatch import _take_lease
from webhooks.sweeper import sweep

SCHEDULE = (1, 1, 2)
FAST = {"WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8", "WEBHOOK_RETRY_SCHEDULE": ",".join(map(str, SCHEDULE)),
        "WEBHOOK_TIMEOUT_SECONDS": "1", "WEBHOOK_SWEEP_SECONDS": "1"}


@pytest.fixture
def settings(migrated):
    return {**migrated, **FAST}


@pytest.fixture
def receiver():
    r = Receiver().start()
    yield r
    r.stop()


def add_endpoint(db, receiver, types=("*",), owner="owner@example.org") -> WebhookEndpoint:
    endpoint, secret = endpoints.create_endpoint({"url": receiver.url, "event_types": list(types)}, owner)
    db.session.commit()
    receiver.secrets.append(secret)
    return endpoint


def new_supporter(n: int) -> int:
    result = join(email=f"hook{n}-ñ@example.org", kind="fan", language="en", consent_language="en",
                  name=f"Zoë {n}")
    return result.supporter_id


def run(app, until, limit_seconds=30.0) -> None:
    """Do what the workers do (queued jobs, and the sweeper for due retries) until `until()` holds.
    The limit only keeps a broken build from hanging; no assertion is about speed."""
    deadline = time.monotonic() + limit_seconds
    while True:
        make_worker(app, ["webhooks", "mail"]).work(burst=True)
        if until():
            return
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.2)
        sweep(grace_seconds=0)


def webhook_ids(requests) -> list[str]:
    return [r["headers"]["webhook-id"] for r in requests]


def test_events_arrive_signed_in_order_with_the_event_id_as_webhook_id(app, db, receiver):
    add_endpoint(db, receiver)
    ids = [new_supporter(n) for n in range(3)]
    confirm(confirm_token(ids[0]))
    withdraw(ids[1], method="unsubscribe_link")
    run(app, lambda: len(receiver.delivered()) >= 7)

    got = receiver.delivered()
    assert all(r["verified"] for r in receiver.received)
    assert [(r["json"]["type"], r["json"]["data"]["supporter_id"]) for r in got] == [
        ("supporter.joined", ids[0]), ("supporter.joined", ids[1]), ("supporter.joined", ids[2]),
        ("supporter.confirmed", ids[0]), ("consent.changed", ids[0]),
        ("supporter.unsubscribed", ids[1]), ("consent.changed", ids[1])]
    event_ids = db.session.scalars(sa.select(WebhookEvent.id).order_by(WebhookEvent.id)).all()
    assert webhook_ids(got) == [f"evt_{i}" for i in event_ids]
    assert got[3]["json"]["data"]["email"] == "hook0-ñ@example.org"  # non-ASCII survives signing
    assert got[0]["headers"]["content-type"] == "application/json"
    assert db.session.scalar(sa.select(sa.func.count()).where(WebhookMessage.status != MessageStatus.DELIVERED)) == 0


def test_an_endpoint_gets_only_the_types_it_subscribes_to(app, db, receiver):
    add_endpoint(db, receiver, types=("supporter.unsubscribed",))
    sid = new_supporter(1)
    withdraw(sid, method="unsubscribe_link")
    run(app, lambda: len(receiver.delivered()) >= 1)
    assert [r["json"]["type"] for r in receiver.received] == ["supporter.unsubscribed"]


def test_nothing_is_written_while_no_endpoint_listens(app, db):
    new_supporter(1)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(WebhookEvent)) == 0


def test_a_failing_receiver_is_retried_as_scheduled_and_later_events_wait_their_turn(app, db, receiver):
    endpoint = add_endpoint(db, receiver)
    receiver.plan.extend(["500", "timeout", "drop"])
    first, second = new_supporter(1), new_supporter(2)
    run(app, lambda: len(receiver.delivered()) >= 2)

    requests = receiver.received
    assert [r["answer"] for r in requests] == ["500", "timeout", "drop", "ok", "ok"]
    assert all(r["verified"] for r in requests)
    # The same webhook-id on every attempt; the second event only after the first got through.
    first_id = requests[0]["headers"]["webhook-id"]
    assert webhook_ids(requests[:4]) == [first_id] * 4
    assert [r["json"]["data"]["supporter_id"] for r in requests] == [first] * 4 + [second]
    # Retries are spaced at least as configured (the jitter only adds).
    gaps = [b["at"] - a["at"] for a, b in zip(requests[:3], requests[1:4], strict=True)]
    assert all(gap >= delay - 0.05 for gap, delay in zip(gaps, SCHEDULE, strict=True)), gaps
    log = db.session.scalars(sa.select(WebhookAttempt).where(WebhookAttempt.endpoint_id == endpoint.id)
                             .order_by(WebhookAttempt.id)).all()
    assert [a.status_code for a in log] == [500, None, None, 200, 200]
    assert "timed out" in log[1].error and "closed" in log[2].error
    assert len(log[0].response_excerpt) == 500 and log[0].latency_ms is not None


def test_a_message_is_failed_after_the_last_retry_and_the_line_moves_on(app, db, receiver):
    add_endpoint(db, receiver)
    receiver.plan.extend(["500"] * (len(SCHEDULE) + 1))
    new_supporter(1)
    second = new_supporter(2)
    run(app, lambda: len(receiver.delivered()) >= 1)
    assert receiver.delivered()[0]["json"]["data"]["supporter_id"] == second
    statuses = db.session.scalars(sa.select(WebhookMessage.status).order_by(WebhookMessage.event_id)).all()
    assert statuses == [MessageStatus.FAILED, MessageStatus.DELIVERED]


def test_an_endpoint_failing_too_long_is_disabled_and_its_owner_mailed(app, db, receiver):
    app.config["WEBHOOK_DISABLE_AFTER"] = 1
    endpoint = add_endpoint(db, receiver, owner="crm-owner@example.org")
    receiver.default = "500"
    new_supporter(1)
    run(app, lambda: not db.session.get(WebhookEndpoint, endpoint.id).active or db.session.rollback())
    db.session.expire_all()
    assert db.session.get(WebhookEndpoint, endpoint.id).disabled_reason.startswith("failing since")
    make_worker(app, ["mail"]).work(burst=True)
    mails = [p.read_text() for p in Path(app.config["OUTBOX_DIR"]).glob("*.eml")]
    assert any("crm-owner@example.org" in m and f"Webhook endpoint {endpoint.id} disabled" in m for m in mails)
    # Nothing is lost: enabling it again delivers the pending event.
    receiver.default = "ok"
    endpoints.update_endpoint(db.session.get(WebhookEndpoint, endpoint.id), {"active": True})
    db.session.commit()
    run(app, lambda: len(receiver.delivered()) >= 1)


def test_redis_flushall_and_a_dead_workers_lease_lose_nothing(app, db, receiver):
    endpoint = add_endpoint(db, receiver)
    ids = [new_supporter(n) for n in range(5)]
    # The kicked dispatch job is gone with Redis' data, and a worker died holding the endpoint.
    assert get_queue("webhooks").count >= 1
    app.extensions["redis"].flushall()
    assert _take_lease(endpoint.id, "worker-killed-with-kill-9")
    db.session.execute(sa.update(WebhookEndpoint).values(lease_until=sa.func.current_timestamp()))
    db.session.commit()
    time.sleep(1.1)  # past the dead worker's lease (a lease is never renewed by the dead)
    run(app, lambda: len(receiver.delivered()) >= 5)
    assert sorted(r["json"]["data"]["supporter_id"] for r in receiver.delivered()) == ids


def test_replay_sends_again_with_the_same_webhook_id(app, db, receiver):
    endpoint = add_endpoint(db, receiver)
    new_supporter(1)
    run(app, lambda: len(receiver.delivered()) >= 1)
    event_id = db.session.scalar(sa.select(WebhookEvent.id))
    assert endpoints.replay(db.session.get(WebhookEndpoint, endpoint.id), event_id=event_id) == 1
    db.session.commit()
    run(app, lambda: len(receiver.delivered()) >= 2)
    first, again = receiver.delivered()
    assert first["headers"]["webhook-id"] == again["headers"]["webhook-id"] == f"evt_{event_id}"
    assert first["body"] == again["body"] and again["verified"]


def test_during_a_rotation_both_secrets_sign_and_after_it_only_the_new_one(app, db, receiver):
    endpoint = add_endpoint(db, receiver)
    old = receiver.secrets[0]
    new = endpoints.rotate_secret(db.session.get(WebhookEndpoint, endpoint.id), overlap_seconds=3600)
    db.session.commit()
    new_supporter(1)
    run(app, lambda: len(receiver.delivered()) >= 1)
    request = receiver.delivered()[0]
    assert len(request["headers"]["webhook-signature"].split(" ")) == 2
    assert receiver.verified_by(request, old) and receiver.verified_by(request, new)
    newer = endpoints.rotate_secret(db.session.get(WebhookEndpoint, endpoint.id), overlap_seconds=0)
    db.session.commit()
    new_supporter(2)
    run(app, lambda: len(receiver.delivered()) >= 2)
    request = receiver.delivered()[1]
    assert receiver.verified_by(request, newer) and not receiver.verified_by(request, new)


def test_a_private_address_is_refused_at_delivery_when_the_allow_list_no_longer_permits_it(app, db, receiver):
    endpoint = add_endpoint(db, receiver)
    app.config["WEBHOOK_ALLOWED_NETWORKS"] = ()
    new_supporter(1)
    make_worker(app, ["webhooks"]).work(burst=True)
    attempt = db.session.scalar(sa.select(WebhookAttempt).where(WebhookAttempt.endpoint_id == endpoint.id))
    assert attempt is not None and attempt.error.startswith("refused: resolves to a loopback address")
    assert receiver.received == []
    assert db.session.scalar(sa.select(WebhookMessage.status)) == MessageStatus.PENDING


def test_erasure_redacts_undelivered_events_and_announces_only_the_id(app, db, receiver):
    add_endpoint(db, receiver)
    sid = new_supporter(1)
    confirm(confirm_token(sid))  # supporter.confirmed carries the address, not yet delivered
    supporter = db.session.get(Supporter, sid)
    erase_supporter(supporter)
    db.session.commit()
    run(app, lambda: len(receiver.delivered()) >= 1)
    got = receiver.delivered()
    assert [r["json"] for r in got] == [{"type": "supporter.erased", "timestamp": got[0]["json"]["timestamp"],
                                         "data": {"supporter_id": sid}}]
    assert all(b"example.org" not in r["body"] for r in receiver.received)
    stored = db.session.scalars(sa.select(WebhookEvent.payload).where(WebhookEvent.type != "supporter.erased")).all()
    assert stored and set(stored) == {"{}"}
    skipped = db.session.scalar(sa.select(sa.func.count()).where(WebhookMessage.status == MessageStatus.SKIPPED))
    assert skipped == 3  # joined, confirmed, consent.changed


def test_the_data_access_export_lists_the_endpoints_that_received_the_persons_events(app, db, receiver):
    endpoint = add_endpoint(db, receiver)
    sid = new_supporter(1)
    run(app, lambda: len(receiver.delivered()) >= 1)
    section = person_record(db.session.get(Supporter, sid))["webhooks"]
    assert [(s["endpoint_id"], s["url"], s["events_delivered"]) for s in section] == [(endpoint.id, receiver.url, 1)]
    assert person_record(db.session.get(Supporter, new_supporter(2)))["webhooks"] == []


def test_the_purge_command_removes_events_older_than_the_retention(app, db, runner, receiver):
    add_endpoint(db, receiver)
    new_supporter(1)
    db.session.execute(sa.update(WebhookEvent).values(occurred_at=sa.func.current_timestamp()))
    old = events.utcnow().replace(year=2020)
    db.session.execute(sa.update(WebhookEvent).values(occurred_at=old))
    db.session.commit()
    new_supporter(2)
    dry = runner.invoke(args=["supporters", "purge", "--inactive-for", "10y"])
    assert "1 webhook events older than 30 days" in dry.output, dry.output
    result = runner.invoke(args=["supporters", "purge", "--inactive-for", "10y", "--execute"])
    assert result.exit_code == 0, result.output
    assert db.session.scalar(sa.select(sa.func.count()).select_from(WebhookEvent)) == 1
    assert db.session.scalar(sa.select(sa.func.count()).select_from(WebhookMessage)) == 1


def test_the_cli_lists_tests_and_replays(app, db, runner, receiver):
    endpoint = add_endpoint(db, receiver)
    result = runner.invoke(args=["webhooks", "test", str(endpoint.id)])
    assert result.exit_code == 0 and "evt_" in result.output, result.output
    run(app, lambda: len(receiver.delivered()) >= 1)
    assert receiver.delivered()[0]["json"]["type"] == "webhook.test"
    listing = runner.invoke(args=["webhooks", "list"])
    assert receiver.url in listing.output and "pending 0" in listing.output
    replay = runner.invoke(args=["webhooks", "replay", str(endpoint.id), "--since", "2000-01-01"])
    assert replay.exit_code == 0 and "Queued 1 events" in replay.output
    missing = runner.invoke(args=["webhooks", "replay", "999", "--event", "1"])
    assert missing.exit_code == 1 and "no webhook endpoint 999" in missing.output
