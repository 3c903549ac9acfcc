"""The webhooks API (admin): endpoints, secrets shown once, the delivery log, replay, test events,
the OpenAPI event schemas, and bad input that changes nothing."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from core.accounts import AuditEvent
from core.events import WebhookEndpoint, WebhookEvent, WebhookMessage, WebhookSubscription
from core.queues import make_worker
from supporters.join import join
from tests.api_support import ApiCaller, assert_problem
from tests.webhook_receiver import Receiver

ALLOW_LOOPBACK = {"WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8", "WEBHOOK_REPLAY_MAX": "3"}


@pytest.fixture
def settings(migrated):
    return {**migrated, **ALLOW_LOOPBACK}


@pytest.fixture
def api(app, db):
    return ApiCaller(app, db)


@pytest.fixture
def receiver():
    r = Receiver().start()
    yield r
    r.stop()


def create(api, receiver, **fields):
    response = api.post("/webhooks/endpoints", json={"url": receiver.url, **fields})
    assert response.status_code == 201, response.get_data(as_text=True)
    body = response.get_json()
    receiver.secrets.append(body["secret"])
    return body


def snapshot(db) -> tuple:
    db.session.expire_all()
    counts = tuple(db.session.scalar(sa.select(sa.func.count()).select_from(m))
                   for m in (WebhookEndpoint, WebhookSubscription, WebhookEvent, WebhookMessage, AuditEvent))
    urls = tuple(db.session.scalars(sa.select(WebhookEndpoint.url).order_by(WebhookEndpoint.id)))
    secrets = tuple(db.session.scalars(sa.select(WebhookEndpoint.secret).order_by(WebhookEndpoint.id)))
    db.session.commit()
    return counts, urls, secrets


def test_an_admin_creates_reads_changes_and_deletes_an_endpoint_audited(api, db, receiver):
    body = create(api, receiver, description="CRM – Zoë", event_types=["supporter.joined", "action.recorded"],
                  headers={"X-Crm-Key": "k1"})
    assert body["secret"].startswith("whsec_") and body["event_types"] == ["action.recorded", "supporter.joined"]
    assert body["owner_email"] == "admin@example.com" and body["active"] is True
    got = api.get(f"/webhooks/endpoints/{body['id']}")
    assert got.status_code == 200 and "secret" not in got.get_json()
    changed = api.patch(f"/webhooks/endpoints/{body['id']}", json={"event_types": ["*"], "active": False},
                        headers={"If-Match": got.headers["ETag"]})
    assert changed.status_code == 200 and changed.get_json()["event_types"] == ["*"]
    stale = api.patch(f"/webhooks/endpoints/{body['id']}", json={"active": True},
                      headers={"If-Match": got.headers["ETag"]})
    assert_problem(stale, 412)
    listed = api.get("/webhooks/endpoints?limit=1").get_json()
    assert [e["id"] for e in listed["items"]] == [body["id"]] and listed["next"] is None
    assert api.delete(f"/webhooks/endpoints/{body['id']}").status_code == 204
    assert_problem(api.get(f"/webhooks/endpoints/{body['id']}"), 404)
    actions = db.session.scalars(sa.select(AuditEvent.action).order_by(AuditEvent.id)).all()
    assert actions == ["webhook_endpoint.create", "webhook_endpoint.update", "webhook_endpoint.delete"]


def test_only_admins_may_manage_webhooks(api, receiver):
    for role in ("viewer", "manager"):
        assert_problem(api.get("/webhooks/endpoints", role=role), 403)
        assert_problem(api.post("/webhooks/endpoints", json={"url": receiver.url}, role=role), 403)
    assert_problem(api.get("/webhooks/endpoints", role=None), 401)


@pytest.mark.parametrize(("payload", "field"), [
    ({"url": "ftp://example.org/hook"}, "url"),
    ({"url": "javascript:alert(1)"}, "url"),
    ({"url": "https://user:pass@example.org/hook"}, "url"),
    ({"url": "https://example.org/" + "a" * 2000}, "url"),
    ({"url": "https://exa mple.org/"}, "url"),
    ({"url": "http://[::1/hook"}, "url"),
    ({"url": "https://" + "a" * 70 + ".example.org/"}, "url"),
    ({"url": "https://ex\u00e4mple\u2028.org/"}, "url"),
    ({"url": "https://example.org/\r\nX-Injected: 1"}, "url"),
    ({"url": "https://example.org/\x00"}, "url"),
    ({"url": "http://10.0.0.1/hook"}, "url"),
    ({"url": "http://169.254.169.254/latest/meta-data/"}, "url"),
    ({"url": "http://[::1]/hook"}, "url"),
    ({"url": "http://0.0.0.0/hook"}, "url"),
    ({"url": "http://224.0.0.1/hook"}, "url"),
    ({"url": "http://[::ffff:192.168.1.1]/hook"}, "url"),
    ({"url": "https://does-not-exist.invalid/hook"}, "url"),
    ({"url": "https://example.org/h", "event_types": ["supporter.exploded"]}, "event_types.0"),
    ({"url": "https://example.org/h", "event_types": []}, "event_types"),
    ({"url": "https://example.org/h", "description": "line\nbreak"}, "description"),
    ({"url": "https://example.org/h", "headers": {"Host": "evil.example"}}, "headers.Host"),
    ({"url": "https://example.org/h", "headers": {"X-A": "v\r\nX-B: 1"}}, "headers"),
    ({"url": "https://example.org/h", "headers": {"Bad Name": "v"}}, "headers.Bad Name"),
    ({"url": "https://example.org/h", "unknown": 1}, "unknown"),
    ({"url": "https://example.org/h", "owner_email": "a@example.org\r\nBcc: b@example.org"}, "owner_email"),
    ({"url": "https://example.org/h", "description": "nul\x00"}, "description"),
    ({"url": "https://example.org/h", "active": "yes please"}, "active"),
])
def test_bad_endpoints_are_refused_naming_the_field_and_change_nothing(app, api, db, payload, field):
    app.config["WEBHOOK_ALLOWED_NETWORKS"] = ()  # production-like: no internal address allowed
    api.token("admin")
    before = snapshot(db)
    response = api.post("/webhooks/endpoints", json=payload)
    body = assert_problem(response, 422)
    assert any(e["field"].startswith(field) for e in body["errors"]), body
    assert snapshot(db) == before


def test_loopback_is_refused_unless_the_allow_list_permits_it(app, api, db, receiver):
    app.config["WEBHOOK_ALLOWED_NETWORKS"] = ()
    assert_problem(api.post("/webhooks/endpoints", json={"url": receiver.url}), 422, "url")
    app.config["WEBHOOK_ALLOWED_HOSTS"] = ("127.0.0.1",)
    assert api.post("/webhooks/endpoints", json={"url": receiver.url}).status_code == 201


def test_production_requires_https(app, api, receiver):
    app.config["WEBHOOK_REQUIRE_HTTPS"] = True
    body = assert_problem(api.post("/webhooks/endpoints", json={"url": receiver.url}), 422, "url")
    assert "https://" in body["errors"][0]["message"]


def test_a_changed_url_is_checked_too_and_a_refusal_changes_nothing(app, api, db, receiver):
    endpoint = create(api, receiver)
    before = snapshot(db)
    assert_problem(api.patch(f"/webhooks/endpoints/{endpoint['id']}", json={"url": "http://10.1.2.3/"}), 422, "url")
    assert_problem(api.patch(f"/webhooks/endpoints/{endpoint['id']}", json={"event_types": ["nope"]}), 422)
    assert snapshot(db) == before


def test_rotating_shows_the_new_secret_once_and_a_missing_endpoint_is_404(api, db, receiver):
    endpoint = create(api, receiver)
    before = snapshot(db)
    assert_problem(api.post("/webhooks/endpoints/9999/rotate-secret", json={}), 404)
    assert_problem(api.post(f"/webhooks/endpoints/{endpoint['id']}/rotate-secret",
                            json={"overlap_seconds": -1}), 422, "overlap_seconds")
    assert_problem(api.post(f"/webhooks/endpoints/{endpoint['id']}/rotate-secret",
                            json={"overlap_seconds": 10**9}), 422, "overlap_seconds")
    assert snapshot(db) == before
    key = {"Idempotency-Key": "rotate-1"}
    first = api.post(f"/webhooks/endpoints/{endpoint['id']}/rotate-secret", json={"overlap_seconds": 60},
                     headers=key)
    assert first.status_code == 200 and first.get_json()["secret"] != endpoint["secret"]
    assert first.get_json()["secret_rotating_until"] is not None
    again = api.post(f"/webhooks/endpoints/{endpoint['id']}/rotate-secret", json={"overlap_seconds": 60},
                     headers=key)
    assert_problem(again, 410)  # the secret is never shown twice
    assert "whsec_" not in again.get_data(as_text=True)


def test_the_delivery_log_replay_and_test_event_through_the_api(app, api, db, receiver):
    endpoint = create(api, receiver)
    for n in range(4):
        join(email=f"api{n}@example.org", kind="fan", language="de", consent_language="de")
    test = api.post(f"/webhooks/endpoints/{endpoint['id']}/test")
    assert test.status_code == 202 and test.get_json()["webhook_id"].startswith("evt_")
    make_worker(app, ["webhooks"]).work(burst=True)
    assert [r["json"]["type"] for r in receiver.delivered()] == ["supporter.joined"] * 4 + ["webhook.test"]
    log = api.get(f"/webhooks/endpoints/{endpoint['id']}/attempts?limit=2").get_json()
    assert [a["webhook_id"] for a in log["items"]] == [test.get_json()["webhook_id"], log["items"][1]["webhook_id"]]
    assert log["items"][0]["status_code"] == 200 and log["next"]
    assert_problem(api.get("/webhooks/endpoints/9999/attempts"), 404)

    before = snapshot(db)
    too_many = api.post(f"/webhooks/endpoints/{endpoint['id']}/replay", json={"since": "2000-01-01T00:00:00Z"})
    assert_problem(too_many, 422, "since")  # 5 events, WEBHOOK_REPLAY_MAX is 3 here
    assert_problem(api.post(f"/webhooks/endpoints/{endpoint['id']}/replay", json={}), 422, "event_id")
    assert_problem(api.post(f"/webhooks/endpoints/{endpoint['id']}/replay", json={"event_id": 10**6}), 404)
    assert_problem(api.post(f"/webhooks/endpoints/{endpoint['id']}/replay",
                            json={"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}), 422, "until")
    assert_problem(api.post(f"/webhooks/endpoints/{endpoint['id']}/replay", json={"since": "yesterday"}), 422, "since")
    assert_problem(api.post("/webhooks/endpoints/9999/replay", json={"event_id": 1}), 404)
    assert snapshot(db) == before

    first_id = int(receiver.delivered()[0]["headers"]["webhook-id"].removeprefix("evt_"))
    replay = api.post(f"/webhooks/endpoints/{endpoint['id']}/replay", json={"event_id": first_id})
    assert replay.status_code == 202 and replay.get_json() == {"queued": 1}
    make_worker(app, ["webhooks"]).work(burst=True)
    assert receiver.delivered()[-1]["headers"]["webhook-id"] == f"evt_{first_id}"
    assert receiver.delivered()[-1]["body"] == receiver.delivered()[0]["body"]


def test_head_and_options_change_nothing_on_the_webhook_routes(api, db, receiver):
    endpoint = create(api, receiver)
    before = snapshot(db)
    for path in ("/webhooks/endpoints", f"/webhooks/endpoints/{endpoint['id']}",
                 f"/webhooks/endpoints/{endpoint['id']}/rotate-secret", f"/webhooks/endpoints/{endpoint['id']}/test",
                 f"/webhooks/endpoints/{endpoint['id']}/replay", f"/webhooks/endpoints/{endpoint['id']}/attempts"):
        for method in ("HEAD", "OPTIONS"):
            assert api.call(method, path).status_code < 500
    assert snapshot(db) == before


def test_a_huge_body_is_413_and_a_repeated_idempotency_key_creates_one_endpoint(api, db, receiver):
    assert api.post("/webhooks/endpoints", json={"url": receiver.url, "description": "x" * 2_000_000}).status_code == 413
    key = {"Idempotency-Key": "create-crm-1"}
    first = api.post("/webhooks/endpoints", json={"url": receiver.url}, headers=key)
    second = api.post("/webhooks/endpoints", json={"url": receiver.url}, headers=key)
    assert first.status_code == 201 and second.status_code == 410
    assert db.session.scalar(sa.select(sa.func.count()).select_from(WebhookEndpoint)) == 1


def test_the_openapi_document_describes_every_event_with_an_example(api):
    document = api.get("/openapi.json", role=None).get_json()
    for name in ("supporter.joined", "supporter.erased", "action.recorded", "delivery.complained"):
        schema = document["components"]["schemas"]["WebhookEvent_" + name.replace(".", "_")]
        assert schema["example"]["type"] == name and "data" in schema["example"]
        assert name in document["x-webhooks"]
    assert "/api/v1/webhooks/endpoints/{endpoint_id}/replay" in document["paths"]
    types = api.get("/webhooks/event-types").get_json()["items"]
    assert {"supporter.confirmed", "petition.goal_reached"} <= {t["type"] for t in types}
