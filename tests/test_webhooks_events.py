"""The changes that matter emit their webhook events in their own transaction: API-managed
supporters, campaign status changes, actions (a petition signature) and a petition's goal."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

import webhooks.endpoints as endpoints
from core.events import WebhookEvent, WebhookMessage
from tests.actions_helpers import act_path, auth, create, launch, mails
from tests.factories import make_supporter

PETITION = {"type": "petition", "statement": "Keep the library open on Sundays.", "goal": 1}


@pytest.fixture
def settings(migrated, smtp_sink):
    return {**migrated, "SMTP_URL": smtp_sink.url, "RATELIMIT_ENABLED": "0",
            "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8"}


def listen(db, types=("*",)) -> int:
    endpoint, _secret = endpoints.create_endpoint({"url": "http://127.0.0.1:9/hook", "event_types": list(types)}, None)
    db.session.commit()
    return endpoint.id


def emitted(db) -> list[tuple[str, int | None, dict]]:
    db.session.expire_all()
    rows = db.session.execute(sa.select(WebhookEvent.type, WebhookEvent.supporter_id, WebhookEvent.payload)
                              .order_by(WebhookEvent.id)).all()
    db.session.commit()
    return [(t, s, json.loads(p)) for t, s, p in rows]


def test_a_campaign_launch_a_signature_and_the_goal_emit_their_events(app, client, db, smtp_sink):
    manager = auth("manager", "owner@example.com")
    ada = make_supporter("ada@example.org")
    listen(db)
    campaign = create(client, manager, "vote", PETITION)
    launch(client, manager, campaign["id"], app)
    page = act_path(mails(smtp_sink)[ada.email])
    assert client.post(page, data={"sign": "1"}).status_code == 200
    got = emitted(db)
    assert ("campaign.status_changed", None, {"campaign_id": campaign["id"], "status": "sending", "reason": None}) in got
    assert ("action.recorded", ada.id, {"campaign_id": campaign["id"], "kind": "sign", "detail": "signed"}) in got
    assert ("petition.goal_reached", None, {"campaign_id": campaign["id"], "goal": 1}) in got
    # Every event has a message for the endpoint, written with it.
    assert db.session.scalar(sa.select(sa.func.count()).select_from(WebhookMessage)) == len(got)


def test_a_refused_signature_emits_nothing(app, client, db, smtp_sink):
    manager = auth("manager", "owner@example.com")
    ada = make_supporter("ada@example.org")
    campaign = create(client, manager, "vote", {**PETITION, "goal": 5})
    launch(client, manager, campaign["id"], app)
    listen(db, ("action.recorded",))
    page = act_path(mails(smtp_sink)[ada.email])
    assert client.post(page, data={"sign": "1"}).status_code == 200
    assert client.post(page, data={"sign": "1"}).status_code == 409  # rolled back: no second event
    assert [t for t, *_ in emitted(db)] == ["action.recorded"]


def test_supporters_managed_through_the_api_emit_joined_confirmed_and_updated(app, client, db):
    admin = auth("admin")
    listen(db)
    pending = client.post("/api/v1/supporters", json={"email": "p@example.org", "name": "Pé"}, headers=admin)
    active = client.post("/api/v1/supporters", headers=admin, json={
        "email": "a@example.org", "consent": {"obtained_at": "2026-01-01T00:00:00Z", "how": "paper form"}})
    assert pending.status_code == active.status_code == 201, (pending.get_json(), active.get_json())
    changed = client.patch(f"/api/v1/supporters/{pending.get_json()['id']}", json={"language": "de"}, headers=admin)
    assert changed.status_code == 200, changed.get_json()
    bad = client.patch(f"/api/v1/supporters/{pending.get_json()['id']}", json={"language": None}, headers=admin)
    assert bad.status_code == 422
    got = emitted(db)
    assert [(t, s) for t, s, _ in got] == [("supporter.joined", pending.get_json()["id"]),
                                          ("supporter.confirmed", active.get_json()["id"]),
                                          ("supporter.updated", pending.get_json()["id"])]
    assert got[1][2]["email"] == "a@example.org" and got[2][2] == {"changed": {"language": "de"}}


def test_a_bounce_and_a_complaint_emit_delivery_events_once(app, db, smtp_sink):
    from campaigns import bounces, services
    from campaigns.models import Delivery
    from tests.bounce_mails import arf, dsn
    from tests.engine_helpers import make_campaign, run_worker

    app.config["BOUNCE_ADDRESS"] = "bounces@bounce.example.org"
    gone, complainer = make_supporter(), make_supporter()
    campaign = make_campaign()
    services.launch(campaign.id)
    run_worker(app)
    senders = {m[1][0]: m[0] for m in smtp_sink.messages}
    listen(db, ("delivery.bounced", "delivery.complained"))
    delivery = {d.supporter_id: d.id for d in db.session.scalars(sa.select(Delivery))}
    hard = dsn(gone.email, to=senders[gone.email])
    complaint = arf(complainer.email, original_mail_from=senders[complainer.email],
                    original_message_id=f"<d{delivery[complainer.id]}.c{campaign.id}@example.org>")
    for raw in (hard, complaint, hard, complaint):  # a report processed twice emits nothing twice
        bounces.process(raw)
    assert emitted(db) == [
        ("delivery.bounced", gone.id, {"campaign_id": campaign.id, "delivery_id": delivery[gone.id], "hard": True}),
        ("delivery.complained", complainer.id, {"campaign_id": campaign.id, "delivery_id": delivery[complainer.id]}),
    ]


def test_dialog_posts_emit_published_due_and_answered_with_ids_only(app, db):
    from tests.api_support import ApiCaller
    from tests.dialog_helpers import make_topic, post_for, set_status

    api = ApiCaller(app, db)
    author, fan = make_supporter("author@example.org"), make_supporter("fan@example.org")
    listen(db, ("dialog.post_published", "dialog.post_due", "dialog.post_answered"))
    topic = make_topic(api, answer_threshold=1, answer_deadline_days=7)
    post = post_for(api, author.id, topic["id"])
    set_status(api, post["id"], "published")
    assert api.post(f"/dialog/posts/{post['id']}/backings", json={"supporter_id": fan.id},
                    role="manager").status_code in (200, 201)
    set_status(api, post["id"], "under_review")
    set_status(api, post["id"], "answered", answer="We open on Saturdays from May.")
    got = emitted(db)
    assert [t for t, _s, _d in got] == ["dialog.post_published", "dialog.post_due", "dialog.post_answered"]
    published, due, answered = (d for _t, _s, d in got)
    assert published == {"post_id": post["id"], "topic_id": topic["id"], "status": "published", "backers": 0}
    assert due["post_id"] == post["id"] and due["backers"] == 1 and due["deadline_at"]
    assert answered["status"] == "answered" and answered["backers"] == 1
    # Ids, never the text or who wrote it: the author is linked only for erasure and data access.
    assert [s for _t, s, _d in got] == [author.id, None, author.id]
    assert "Saturdays" not in json.dumps([d for _t, _s, d in got])
