"""Rate limits, engagement (levels, decay, the CLI), link rewriting details and the data export."""

from datetime import timedelta

import pytest
import sqlalchemy as sa

from campaigns.actions import Action, ActionKind, Link
from campaigns.engagement import level, refresh, scores
from core.db import utcnow
from supporters.models import Supporter
from tests.actions_helpers import act_path, auth, counts, create, launch, mails

PETITION = {"type": "petition", "statement": "Keep the library open on Sundays."}


@pytest.fixture
def settings(migrated, smtp_sink):
    return {**migrated, "SMTP_URL": smtp_sink.url}


def test_public_petition_signatures_are_rate_limited(app, client, db, smtp_sink):
    from tests.factories import make_supporter

    manager = auth()
    people = [make_supporter(f"p{i}@example.org") for i in range(4)]
    campaign = create(client, manager, "vote", PETITION)
    launch(client, manager, campaign["id"], app)
    app.config["ACT_RATE_LIMIT"] = "2 per minute"
    sent = mails(smtp_sink)
    answers = [client.post(act_path(sent[p.email]), data={"sign": "1"}).status_code for p in people]
    assert answers == [200, 200, 429, 429]
    assert counts()["votes"] == 2
    limited = client.post(act_path(sent[people[3].email]), data={"sign": "1"})
    assert "Retry-After" in limited.headers and "text/html" in limited.content_type


def _action(supporter_id: int, campaign_id: int, kind: ActionKind, days_ago: float, detail: str = "x") -> None:
    from core.extensions import db

    db.session.add(Action(campaign_id=campaign_id, supporter_id=supporter_id, kind=kind, detail=detail,
                          created_at=utcnow() - timedelta(days=days_ago)))


def test_engagement_rises_with_actions_and_referrals_decays_with_time_and_ignores_reviews(app, client, db, runner):
    from campaigns import services
    from tests.factories import make_supporter

    campaign = services.create_campaign({"name": "x"})
    fresh, old, reviewer, idle = (make_supporter() for _ in range(4))
    for _ in range(6):
        _action(fresh.id, campaign.id, ActionKind.SHARE, 0)
        _action(old.id, campaign.id, ActionKind.SHARE, 180)  # two half-lives ago: a quarter of the weight
    for _ in range(20):
        _action(reviewer.id, campaign.id, ActionKind.REVIEW, 0)
    db.session.commit()
    found = scores([fresh.id, old.id, reviewer.id, idle.id])
    assert found[fresh.id] == pytest.approx(6, abs=0.01) and found[old.id] == pytest.approx(1.5, abs=0.01)
    assert found[reviewer.id] == 0 and found[idle.id] == 0
    assert [level(found[s.id]) for s in (fresh, old, reviewer)] == ["advocate", "active", "member"]
    assert level(15) == "champion"
    newcomers = [make_supporter(referred_by_id=fresh.id, confirmed_at=utcnow()) for _ in range(3)]
    make_supporter(referred_by_id=fresh.id, status="pending")  # not confirmed: not counted
    assert newcomers
    result = runner.invoke(args=["campaigns", "engagement"])
    assert result.exit_code == 0, result.output
    assert "Refreshed the engagement of" in result.output
    db.session.expire_all()
    assert db.session.get(Supporter, fresh.id).engagement_score == pytest.approx(15, abs=0.01)
    assert level(db.session.get(Supporter, fresh.id).engagement_score) == "champion"
    # Segments filter on the stored score: advocates and up.
    from supporters.segments import compile_filter

    where = compile_filter({"field": "engagement", "op": "gte", "value": 5}, "filter")
    assert db.session.scalars(sa.select(Supporter.id).where(where)).all() == [fresh.id]
    refresh([fresh.id], now=utcnow() + timedelta(days=90))
    db.session.expire_all()
    assert db.session.get(Supporter, fresh.id).engagement_score == pytest.approx(7.5, abs=0.01)


def test_every_link_in_a_mail_is_rewritten_and_previews_keep_the_original_urls(app, client, db, smtp_sink):
    from campaigns import services
    from tests.factories import make_supporter

    manager = auth()
    ada = make_supporter("ada@example.org")
    body = ("[one](https://a.example/1 \"title\") and <https://b.example/2> and [again](https://a.example/1) "
            "and [mail me](mailto:x@example.org) and [act]({{action_url}})")
    campaign = create(client, manager, "vote", PETITION, body=body)
    preview = services.preview(campaign["id"])["samples"]["en"]
    assert 'href="https://a.example/1"' in preview["html"] and 'href="https://b.example/2"' in preview["html"]
    launch(client, manager, campaign["id"], app)
    mail = mails(smtp_sink)[ada.email]
    assert 'href="https://a.example/1"' not in mail["text/html"]
    assert 'href="https://b.example/2"' not in mail["text/html"]
    assert 'href="mailto:x@example.org"' in mail["text/html"]  # not a web link: left as it is
    urls = sorted(db.session.scalars(sa.select(Link.url).where(Link.campaign_id == campaign["id"],
                                                               Link.purpose == "mail")))
    assert urls == ["https://a.example/1", "https://b.example/2"]
    import re

    hrefs = re.findall(r'href="(http://supporters\.test/r/[^"]+)"', mail["text/html"])
    assert len(hrefs) == 3
    targets = [client.get(h.replace("http://supporters.test", "")).headers["Location"] for h in hrefs]
    assert targets == ["https://a.example/1", "https://b.example/2", "https://a.example/1"]


def test_a_supporters_actions_and_votes_are_in_their_data_export(app, client, db, smtp_sink):
    from supporters.privacy import person_record
    from tests.factories import make_supporter

    manager = auth()
    ada = make_supporter("ada@example.org")
    campaign = create(client, manager, "vote", PETITION)
    launch(client, manager, campaign["id"], app)
    client.post(act_path(mails(smtp_sink)[ada.email]), data={"sign": "1", "comment": "yes"})
    record = person_record(db.session.get(Supporter, ada.id))
    assert record["actions"][0]["kind"] == "sign" and record["votes"][0]["comment"] == "yes"


def test_erasure_keeps_the_counts_and_drops_the_comment(app, client, db, smtp_sink):
    from campaigns.actions import Vote
    from supporters.privacy import erase_supporter
    from tests.factories import make_supporter

    manager = auth()
    ada = make_supporter("ada@example.org")
    campaign = create(client, manager, "vote", PETITION)
    launch(client, manager, campaign["id"], app)
    client.post(act_path(mails(smtp_sink)[ada.email]), data={"sign": "1", "comment": "my words"})
    erase_supporter(db.session.get(Supporter, ada.id))
    db.session.commit()
    db.session.expire_all()
    assert db.session.scalar(sa.select(Vote.comment)) is None
    assert client.get(f"/api/v1/campaigns/{campaign['id']}/results", headers=manager).get_json()["vote"][
        "signatures"] == 1


def test_the_referral_depth_follows_newcomers_who_bring_newcomers(app, client, db):
    from campaigns import services
    from campaigns.actions import CampaignReferral
    from campaigns.results import referral_depth, results
    from tests.factories import make_supporter

    campaign = services.create_campaign({"name": "x"})
    ada = make_supporter()
    newcomer = make_supporter(referred_by_id=ada.id, confirmed_at=utcnow())
    db.session.add(CampaignReferral(supporter_id=newcomer.id, referrer_id=ada.id, campaign_id=campaign.id))
    db.session.commit()
    assert referral_depth(campaign.id) == 1
    child = make_supporter(referred_by_id=newcomer.id, confirmed_at=utcnow())
    make_supporter(referred_by_id=child.id)  # not confirmed: not a generation
    assert referral_depth(campaign.id) == 2
    grandchild = make_supporter(referred_by_id=child.id, confirmed_at=utcnow())
    assert grandchild and referral_depth(campaign.id) == 3
    assert results(campaign.id)["funnel"]["newcomers"] == 1


def test_the_page_title_is_the_mails_subject_with_the_first_name(app, client, db, smtp_sink):
    from tests.factories import make_supporter

    manager = auth()
    ada = make_supporter("ada@example.org", name="Ada Lovelace")
    response = client.post("/api/v1/campaigns", headers=manager, json={
        "name": "p", "kind": "vote", "settings": PETITION,
        "contents": {"en": {"subject": "{{first_name}}, will you sign?", "body": "[sign]({{action_url}})"}}})
    launch(client, manager, response.get_json()["id"], app)
    html = client.get(act_path(mails(smtp_sink)[ada.email])).get_data(as_text=True)
    assert "<h1>Ada, will you sign?</h1>" in html and "{{" not in html
    german = client.get(act_path(mails(smtp_sink)[ada.email]) + "?lang=de").get_data(as_text=True)
    assert '<html lang="de">' in german and "Unterschreiben" in german
