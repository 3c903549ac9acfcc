"""Vote campaigns: polls and petitions end to end, one vote per supporter, goal, official answer."""

import threading
from datetime import timedelta
from email import message_from_bytes

import pytest
import sqlalchemy as sa

from campaigns.actions import Action, CampaignSettings, Vote
from core.accounts import AuditEvent
from core.db import utcnow
from core.queues import make_worker
from tests.actions_helpers import act_path, auth, counts, create, launch, mails, results
from tests.factories import make_supporter

POLL = {"type": "poll", "question": "Which opening hours suit you?", "options": ["Mornings", "Evenings", "Weekends"]}
PETITION = {"type": "petition", "statement": "Keep the library open on Sundays.", "goal": 2, "comment_max": 100}


@pytest.fixture
def settings(migrated, smtp_sink):
    return {**migrated, "SMTP_URL": smtp_sink.url, "RATELIMIT_ENABLED": "0"}


@pytest.fixture
def manager(db):
    return auth("manager", "owner@example.com")


def _vote_rows(db):
    db.session.expire_all()
    return db.session.execute(sa.select(Vote.supporter_id)).scalars().all()


@pytest.mark.parametrize(("settings_", "field"), [
    ({"type": "poll", "question": "Q?", "options": ["only one"]}, "settings.options"),
    ({"type": "poll", "question": "Q?", "options": [str(i) for i in range(11)]}, "settings.options"),
    ({"type": "poll", "question": "Q?", "options": ["a", "A"]}, "settings.options"),
    ({"type": "poll", "question": "", "options": ["a", "b"]}, "settings.question"),
    ({"type": "poll", "question": "Q?", "options": ["a", "b"], "closes_at": "tomorrow"}, "settings.closes_at"),
    ({"type": "petition", "statement": "S", "goal": 0}, "settings.goal"),
    ({"type": "petition", "statement": "S", "comment_max": 5000}, "settings.comment_max"),
    ({"type": "referendum"}, "settings.type"),
])
def test_bad_vote_settings_are_refused_naming_the_field(client, manager, settings_, field):
    response = client.post("/api/v1/campaigns", headers=manager, json={
        "name": "Vote", "kind": "vote", "settings": settings_,
        "contents": {"en": {"subject": "s", "body": "[go]({{action_url}})"}}})
    assert response.status_code == 422
    assert field in {e["field"] for e in response.get_json()["errors"]}


def test_a_poll_goes_from_mail_to_vote_to_results_and_a_vote_can_change_until_close(app, client, db, smtp_sink,
                                                                                    manager):
    ada, bea = make_supporter("ada@example.org"), make_supporter("bea@example.org", language="de")
    campaign = create(client, manager, "vote", POLL)
    launch(client, manager, campaign["id"], app)
    sent = mails(smtp_sink)
    page = act_path(sent[ada.email])
    html = client.get(page).get_data(as_text=True)
    assert "Which opening hours suit you?" in html and 'type="radio" name="option" value="2"' in html
    assert counts()["votes"] == 0  # a GET never votes

    assert client.post(page, data={"option": "1"}).status_code == 200
    assert client.post(act_path(sent[bea.email]), data={"option": "1"}).status_code == 200
    stats = results(client, manager, campaign["id"])
    assert [o["votes"] for o in stats["vote"]["options"]] == [0, 2, 0] and stats["vote"]["voters"] == 2
    assert stats["funnel"]["acted"] == 2 and sum(stats["vote"]["over_time"][0]["votes"]) == 2

    changed = client.post(page, data={"option": "2"})
    assert changed.status_code == 200 and 'value="2" checked' in changed.get_data(as_text=True)
    stats = results(client, manager, campaign["id"])
    assert [o["votes"] for o in stats["vote"]["options"]] == [0, 1, 1] and stats["vote"]["voters"] == 2

    before = counts()
    for data in ({"option": "7"}, {"option": "-1"}, {"option": "x"}, {}, {"option": ["0", "1"]}):
        response = client.post(page, data=data)
        assert response.status_code == 422, data
    assert counts() == before

    settings = db.session.get(CampaignSettings, campaign["id"])
    settings.config = {**settings.config, "closes_at": (utcnow() - timedelta(minutes=1)).isoformat()}
    db.session.commit()
    closed = client.post(page, data={"option": "0"})
    assert closed.status_code == 409 and "nothing was recorded" in closed.get_data(as_text=True)
    assert "This poll is closed" in client.get(page).get_data(as_text=True)
    assert counts() == before
    assert [o["votes"] for o in results(client, manager, campaign["id"])["vote"]["options"]] == [0, 1, 1]


def test_a_multiple_choice_poll_takes_several_options(app, client, db, smtp_sink, manager):
    ada = make_supporter("ada@example.org")
    campaign = create(client, manager, "vote", {**POLL, "multiple": True})
    launch(client, manager, campaign["id"], app)
    page = act_path(mails(smtp_sink)[ada.email])
    assert client.post(page, data={"option": ["0", "2"]}).status_code == 200
    assert [o["votes"] for o in results(client, manager, campaign["id"])["vote"]["options"]] == [1, 0, 1]


def _concurrently(app, path: str, datas: list[dict]) -> list[int]:
    statuses: list[int] = []
    barrier = threading.Barrier(len(datas))

    def post(data):
        client = app.test_client()
        barrier.wait()
        statuses.append(client.post(path, data=data).status_code)

    threads = [threading.Thread(target=post, args=(d,)) for d in datas]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return statuses


def test_one_vote_per_supporter_under_concurrent_posts(app, client, db, smtp_sink, manager):
    ada = make_supporter("ada@example.org")
    campaign = create(client, manager, "vote", POLL)
    launch(client, manager, campaign["id"], app)
    page = act_path(mails(smtp_sink)[ada.email])
    statuses = _concurrently(app, page, [{"option": str(i % 3)} for i in range(8)])
    assert statuses == [200] * 8
    assert _vote_rows(db) == [ada.id]
    options = results(client, manager, campaign["id"])["vote"]["options"]
    assert sum(o["votes"] for o in options) == 1  # one choice survives, whichever came last
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Action).where(Action.detail == "cast")) == 1


def test_one_signature_per_supporter_under_concurrent_posts(app, client, db, smtp_sink, manager):
    ada = make_supporter("ada@example.org")
    campaign = create(client, manager, "vote", {**PETITION, "goal": 100})
    launch(client, manager, campaign["id"], app)
    page = act_path(mails(smtp_sink)[ada.email])
    statuses = _concurrently(app, page, [{"sign": "1", "comment": f"c{i}"} for i in range(8)])
    assert sorted(statuses) == [200] + [409] * 7
    assert _vote_rows(db) == [ada.id]
    assert counts()["actions"] == 1


def test_a_petition_is_signed_once_comments_stay_text_and_the_goal_notifies_the_owner(app, client, db, smtp_sink,
                                                                                     manager):
    ada, bea, cem = (make_supporter(f"{n}@example.org") for n in ("ada", "bea", "cem"))
    campaign = create(client, manager, "vote", PETITION)
    assert campaign["settings"]["owner_email"] == "owner@example.com"  # the creating manager
    launch(client, manager, campaign["id"], app)
    sent = mails(smtp_sink)
    page = act_path(sent[ada.email])
    assert "Keep the library open on Sundays." in client.get(page).get_data(as_text=True)

    too_long = client.post(page, data={"sign": "1", "comment": "x" * 101})
    assert too_long.status_code == 422 and "at most 100 characters" in too_long.get_data(as_text=True)
    assert counts()["votes"] == 0
    signed = client.post(page, data={"sign": "1", "comment": "<script>alert('x')</script> & more"})
    assert signed.status_code == 200
    html = signed.get_data(as_text=True)
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; more" in html and "<script>" not in html
    second = client.post(page, data={"sign": "1"})
    assert second.status_code == 409 and "already signed" in second.get_data(as_text=True)
    assert counts()["votes"] == 1
    actions = client.get(f"/api/v1/campaigns/{campaign['id']}/actions", headers=manager).get_json()
    assert actions["items"][0]["comment"] == "<script>alert('x')</script> & more"

    # The second signature reaches the goal of 2: audit event and a mail to the owner, once.
    before = len(smtp_sink.messages)
    assert client.post(act_path(sent[bea.email]), data={"sign": "1"}).status_code == 200
    assert client.post(act_path(sent[cem.email]), data={"sign": "1"}).status_code == 200
    make_worker(app, ["default"]).work(burst=True)
    owner_mails = [m for m in smtp_sink.messages[before:] if m[1] == ["owner@example.com"]]
    assert len(owner_mails) == 1
    body = message_from_bytes(owner_mails[0][2]).get_payload(decode=True).decode()
    assert "reached its goal of 2" in body
    events = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "petition.goal_reached")).all()
    assert len(events) == 1 and events[0].object_id == str(campaign["id"])
    stats = results(client, manager, campaign["id"])["vote"]
    assert stats["signatures"] == 3 and stats["goal_reached_at"] is not None


def test_the_official_answer_reaches_exactly_the_signers(app, client, db, smtp_sink, manager):
    signers = [make_supporter(f"s{i}@example.org") for i in range(3)]
    others = [make_supporter(f"o{i}@example.org") for i in range(2)]
    make_supporter("never@example.org", status="pending")
    campaign = create(client, manager, "vote", {**PETITION, "goal": None})
    launch(client, manager, campaign["id"], app)
    sent = mails(smtp_sink)
    assert len(sent) == 5
    for s in signers:
        assert client.post(act_path(sent[s.email]), data={"sign": "1"}).status_code == 200
    smtp_sink.messages.clear()

    bad = client.post(f"/api/v1/campaigns/{campaign['id']}/answer", headers=manager, json={"contents": {}})
    assert bad.status_code == 422
    answer = client.post(f"/api/v1/campaigns/{campaign['id']}/answer", headers=manager, json={
        "contents": {"en": {"subject": "Our answer", "body": "We will open on Sundays. [Details](https://company.example/sundays)"}}})
    assert answer.status_code == 202, answer.get_json()
    assert answer.get_json()["kind"] == "announcement"
    make_worker(app, ["campaigns"]).work(burst=True)
    assert sorted(m[1][0] for m in smtp_sink.messages) == sorted(s.email for s in signers)
    assert not {o.email for o in others} & {m[1][0] for m in smtp_sink.messages}
    again = client.post(f"/api/v1/campaigns/{campaign['id']}/answer", headers=manager,
                        json={"contents": {"en": {"subject": "Again", "body": "x"}}})
    assert again.status_code == 409
    poll = create(client, manager, "vote", POLL)
    assert client.post(f"/api/v1/campaigns/{poll['id']}/answer", headers=manager,
                       json={"contents": {"en": {"subject": "A", "body": "x"}}}).status_code == 404
    assert db.session.get(CampaignSettings, campaign["id"]).answer_campaign_id == answer.get_json()["id"]


def test_actions_are_listed_with_keyset_pages(app, client, db, smtp_sink, manager):
    people = [make_supporter(f"p{i}@example.org") for i in range(5)]
    campaign = create(client, manager, "vote", POLL)
    launch(client, manager, campaign["id"], app)
    sent = mails(smtp_sink)
    for p in people:
        client.post(act_path(sent[p.email]), data={"option": "0"})
    first = client.get(f"/api/v1/campaigns/{campaign['id']}/actions?limit=2", headers=manager).get_json()
    assert len(first["items"]) == 2 and first["next_after"] == first["items"][-1]["id"]
    rest = client.get(f"/api/v1/campaigns/{campaign['id']}/actions?limit=10&after={first['next_after']}",
                      headers=manager).get_json()
    assert len(rest["items"]) == 3 and rest["next_after"] is None
    assert client.get(f"/api/v1/campaigns/{campaign['id']}/actions?limit=0", headers=manager).status_code == 422
    assert client.get("/api/v1/campaigns/999/actions", headers=manager).status_code == 404
    assert client.get(f"/api/v1/campaigns/{campaign['id']}/results?bucket=year", headers=manager).status_code == 422
    week = client.get(f"/api/v1/campaigns/{campaign['id']}/results?bucket=week", headers=manager).get_json()
    assert week["timeline"][0]["vote"] == 5
