"""The campaign API: create, validate, preview, test, launch and transitions; bad input changes nothing."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from campaigns import services
from campaigns.models import Campaign, Delivery
from core.accounts import create_token, create_user
from core.errors import Conflict
from supporters.models import SupporterStatus, Suppression, email_hash
from tests.engine_helpers import BODY, run_worker, statuses
from tests.factories import make_supporter


@pytest.fixture
def settings(migrated, smtp_sink):
    return {**migrated, "SMTP_URL": smtp_sink.url, "RATELIMIT_ENABLED": "0"}


def _auth(db, role):
    user = create_user(f"{role}@example.com", "a long enough password", role)
    db.session.flush()
    _token, raw = create_token(user, "tests")
    db.session.commit()
    return {"Authorization": f"Bearer {raw}"}


@pytest.fixture
def manager(db):
    return _auth(db, "manager")


@pytest.fixture
def viewer(db):
    return _auth(db, "viewer")


def payload(**overrides):
    data = {"name": "Spring news", "contents": {"en": {"subject": "News for {{first_name}}", "body": BODY}}}
    data.update(overrides)
    return data


def create(client, manager, **overrides):
    response = client.post("/api/v1/campaigns", json=payload(**overrides), headers=manager)
    assert response.status_code == 201, response.json
    return response.json


def campaign_rows(db):
    db.session.expire_all()
    return db.session.scalar(sa.select(sa.func.count()).select_from(Campaign))


def test_a_manager_creates_a_draft_and_reads_it_back(client, manager):
    body = create(client, manager, audience={"filter": {"field": "language", "op": "eq", "value": "en"}})
    assert body["status"] == "draft"
    assert body["audience"]["filter"] == {"field": "language", "op": "eq", "value": "en"}
    got = client.get(f"/api/v1/campaigns/{body['id']}", headers=manager)
    assert got.status_code == 200 and got.json["contents"]["en"]["subject"] == "News for {{first_name}}"
    listed = client.get("/api/v1/campaigns", headers=manager).json
    assert [c["id"] for c in listed["items"]] == [body["id"]]


def test_a_viewer_may_read_but_not_create(client, viewer, db):
    response = client.post("/api/v1/campaigns", json=payload(), headers=viewer)
    assert response.status_code == 403
    assert client.get("/api/v1/campaigns", headers=viewer).status_code == 200
    assert campaign_rows(db) == 0


@pytest.mark.parametrize(("changes", "field"), [
    ({"contents": {"en": {"subject": "Hi {{nickname}}", "body": "x {{shoe_size}}"}}}, "contents.en.subject"),
    ({"audience": {"filter": {"field": "shoe_size", "op": "eq", "value": 1}}}, "audience.filter.field"),
    ({"audience": {"filter": {"all": []}}}, "audience.filter.all"),
    ({"send_at": "2001-01-01T00:00:00+00:00"}, "send_at"),
    ({"surprise": 1}, "surprise"),
    ({"kind": "vote"}, "settings"),  # a vote campaign needs its settings (campaigns.kinds)
    ({"kind": "poster"}, "kind"),
    ({"contents": {"fr": {"subject": "x", "body": "y"}}}, "contents.fr.key"),
    ({"rate_per_minute": 0}, "rate_per_minute"),
])
def test_bad_campaign_input_is_a_422_naming_the_field_and_nothing_is_stored(client, manager, db, changes, field):
    response = client.post("/api/v1/campaigns", json=payload(**changes), headers=manager)
    assert response.status_code == 422, response.json
    assert response.mimetype == "application/problem+json"
    assert any(e["field"].startswith(field.split(".key")[0]) for e in response.json["errors"]), response.json
    assert campaign_rows(db) == 0


def test_unknown_placeholders_are_named(client, manager):
    response = client.post("/api/v1/campaigns", headers=manager, json=payload(
        contents={"en": {"subject": "Hi", "body": "Dear {{nickname}}, {{first_name}} {{ shoe_size }}"}}))
    assert response.status_code == 422
    assert "{{nickname}}" in response.json["detail"] and "{{shoe_size}}" in response.json["detail"]


def test_preview_counts_who_would_receive_it_and_why_others_are_left_out(client, manager, db, app):
    make_supporter()
    make_supporter()
    make_supporter(status=SupporterStatus.PENDING)
    make_supporter(status=SupporterStatus.UNSUBSCRIBED)
    suppressed = make_supporter()
    db.session.add(Suppression(email_hash=email_hash(suppressed.email), reason="manual"))
    make_supporter(language="de")
    make_supporter(asks_per_month=1, commit=False)
    db.session.commit()
    body = create(client, manager)
    preview = client.post(f"/api/v1/campaigns/{body['id']}/preview", headers=manager)
    assert preview.status_code == 200
    data = preview.json
    assert data["recipients"] == 3
    assert data["left_out"]["no_consent"] == 1
    assert data["left_out"]["unsubscribed"] == 1
    assert data["left_out"]["suppressed"] == 1
    assert data["left_out"]["no_content"] == 1
    assert data["audience"] == 7
    assert "Hello Alex," in data["samples"]["en"]["text"]
    assert "<strong>news</strong>" in data["samples"]["en"]["html"]


def test_launch_refuses_an_audience_language_without_content_and_changes_nothing(client, manager, db):
    make_supporter(language="de")
    make_supporter(language="en")
    body = create(client, manager)
    response = client.post(f"/api/v1/campaigns/{body['id']}/launch", headers=manager)
    assert response.status_code == 422
    assert "de (1 supporters)" in response.json["detail"]
    db.session.expire_all()
    assert db.session.get(Campaign, body["id"]).status.value == "draft"
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Delivery)) == 0


def test_launch_of_an_empty_audience_is_refused_and_changes_nothing(client, manager, db):
    make_supporter(status=SupporterStatus.UNSUBSCRIBED)
    body = create(client, manager)
    response = client.post(f"/api/v1/campaigns/{body['id']}/launch", headers=manager)
    assert response.status_code == 422
    assert response.json["errors"][0]["field"] == "audience"
    db.session.expire_all()
    assert db.session.get(Campaign, body["id"]).status.value == "draft"
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Delivery)) == 0


def test_launch_sends_and_transitions_that_are_not_allowed_are_409(client, manager, db, app, smtp_sink):
    make_supporter()
    make_supporter()
    body = create(client, manager)
    cid = body["id"]
    launched = client.post(f"/api/v1/campaigns/{cid}/launch", headers=manager)
    assert launched.status_code == 202 and launched.json["queued"] == 2
    assert client.post(f"/api/v1/campaigns/{cid}/resume", headers=manager).status_code == 409
    assert client.patch(f"/api/v1/campaigns/{cid}", json={"name": "x"}, headers=manager).status_code == 409
    run_worker(app)
    stats = client.get(f"/api/v1/campaigns/{cid}/stats", headers=manager).json
    assert stats["status"] == "sent" and stats["deliveries"]["sent"] == 2 and stats["progress"] == 1.0
    for verb in ("launch", "pause", "resume", "cancel"):
        response = client.post(f"/api/v1/campaigns/{cid}/{verb}", headers=manager)
        assert response.status_code == 409, verb
        assert "sent" in response.json["detail"]
    assert len(smtp_sink.messages) == 2


def test_pause_stops_sending_and_resume_continues_where_it_stopped(client, manager, db, app, smtp_sink):
    for _ in range(3):
        make_supporter()
    cid = create(client, manager)["id"]
    client.post(f"/api/v1/campaigns/{cid}/launch", headers=manager)
    assert client.post(f"/api/v1/campaigns/{cid}/pause", headers=manager).json["status"] == "paused"
    run_worker(app)
    assert statuses(cid) == {"queued": 3} and smtp_sink.messages == []
    assert client.post(f"/api/v1/campaigns/{cid}/resume", headers=manager).json["status"] == "sending"
    run_worker(app)
    assert statuses(cid) == {"sent": 3}
    assert len(smtp_sink.messages) == 3


def test_cancel_stops_for_good(client, manager, db, app, smtp_sink):
    make_supporter()
    cid = create(client, manager)["id"]
    client.post(f"/api/v1/campaigns/{cid}/launch", headers=manager)
    assert client.post(f"/api/v1/campaigns/{cid}/cancel", headers=manager).json["status"] == "cancelled"
    run_worker(app)
    assert statuses(cid) == {"skipped": 1} and smtp_sink.messages == []
    assert client.post(f"/api/v1/campaigns/{cid}/resume", headers=manager).status_code == 409


def test_send_at_schedules_and_the_sweeper_starts_it_when_due(client, manager, db, app, smtp_sink):
    from campaigns.sweeper import sweep

    make_supporter()
    send_at = datetime.now(UTC) + timedelta(hours=1)
    cid = create(client, manager, send_at=send_at.isoformat())["id"]
    assert client.post(f"/api/v1/campaigns/{cid}/launch", headers=manager).json["status"] == "scheduled"
    assert sweep()["started"] == 0
    assert sweep(now=send_at + timedelta(seconds=1))["started"] == 1
    run_worker(app)
    assert statuses(cid) == {"sent": 1}


def test_test_send_goes_to_the_given_address_only(client, manager, smtp_sink):
    make_supporter()
    cid = create(client, manager)["id"]
    response = client.post(f"/api/v1/campaigns/{cid}/test", json={"to": "me@example.com"}, headers=manager)
    assert response.status_code == 200, response.json
    assert [m[1] for m in smtp_sink.messages] == [["me@example.com"]]
    bad = client.post(f"/api/v1/campaigns/{cid}/test", json={"to": "not an address"}, headers=manager)
    assert bad.status_code == 422


def test_ten_concurrent_launches_send_once(app, db, smtp_sink, settings):
    from wsgi import create_app

    for _ in range(20):
        make_supporter()
    cid = services.create_campaign(payload()).id
    outcomes = []
    barrier = threading.Barrier(10)
    apps = [create_app(settings) for _ in range(10)]

    def launch(own):
        with own.app_context():
            barrier.wait()
            try:
                outcomes.append(services.launch(cid)["queued"])
            except Conflict:
                outcomes.append("conflict")
            finally:
                from core.extensions import db as own_db
                own_db.session.remove()

    threads = [threading.Thread(target=launch, args=(own,)) for own in apps]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes, key=str) == [20] + ["conflict"] * 9
    run_worker(app)
    assert statuses(cid) == {"sent": 20}
    assert len(smtp_sink.messages) == 20
    assert set(smtp_sink.handler.message_ids.values()) == {1}


def test_bounce_reports_mark_the_delivery_and_hard_bounces_suppress(client, manager, db, app, smtp_sink):
    person = make_supporter()
    cid = create(client, manager)["id"]
    client.post(f"/api/v1/campaigns/{cid}/launch", headers=manager)
    run_worker(app)
    message_id = smtp_sink.handler.parsed()[0]["Message-ID"]
    response = client.post("/api/v1/campaigns/bounces", json={"message_id": message_id, "type": "hard",
                                                              "reason": "550 no such user"}, headers=manager)
    assert response.status_code == 200, response.json
    assert response.json["suppressed"] is True
    assert statuses(cid) == {"bounced": 1}
    assert db.session.scalar(sa.select(Suppression.reason).where(Suppression.email_hash == email_hash(person.email))) \
        .value == "hard_bounce"
    assert client.post("/api/v1/campaigns/bounces", json={"message_id": "<nope@x>"}, headers=manager).status_code == 422
    assert client.post("/api/v1/campaigns/bounces", json={"delivery_id": 999999}, headers=manager).status_code == 404
    assert client.post("/api/v1/campaigns/bounces", json={}, headers=manager).status_code == 422


def test_unknown_campaigns_are_404_problems(client, manager):
    response = client.post("/api/v1/campaigns/12345/launch", headers=manager)
    assert response.status_code == 404 and response.mimetype == "application/problem+json"


def test_a_bad_edit_changes_nothing(client, manager, db):
    cid = create(client, manager)["id"]
    response = client.patch(f"/api/v1/campaigns/{cid}", headers=manager, json={
        "name": "Renamed", "contents": {"en": {"subject": "Hi {{nickname}}", "body": "x"}}})
    assert response.status_code == 422
    got = client.get(f"/api/v1/campaigns/{cid}", headers=manager).json
    assert got["name"] == "Spring news"
    assert got["contents"]["en"]["subject"] == "News for {{first_name}}"
    assert client.patch(f"/api/v1/campaigns/{cid}", json={"name": "Renamed"}, headers=manager).json["name"] == "Renamed"


def test_a_send_at_that_has_passed_by_launch_time_is_refused(client, manager, db):
    make_supporter()
    cid = create(client, manager, send_at=(datetime.now(UTC) + timedelta(hours=1)).isoformat())["id"]
    db.session.execute(sa.update(Campaign).values(send_at=datetime.now(UTC) - timedelta(minutes=1)))
    db.session.commit()
    response = client.post(f"/api/v1/campaigns/{cid}/launch", headers=manager)
    assert response.status_code == 422 and response.json["errors"][0]["field"] == "send_at"
    db.session.expire_all()
    assert db.session.get(Campaign, cid).status.value == "draft"


def test_a_body_that_is_not_a_json_object_is_a_422(client, manager, db):
    response = client.post("/api/v1/campaigns", data="[1, 2]", content_type="application/json", headers=manager)
    assert response.status_code == 422
    assert campaign_rows(db) == 0
