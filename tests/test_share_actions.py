"""Share campaigns end to end: mail → tracked links → action page → share → visits → newcomers."""

from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa

from campaigns.actions import Click, Link
from supporters import confirm as confirm_service
from supporters import links
from supporters.models import Supporter
from tests.actions_helpers import act_path, auth, counts, create, launch, mails, r_paths, results
from tests.factories import make_supporter
from tests.test_join_support import csrf_token, join_form, run_mail_worker

SHARE = {"url": "https://company.example/story", "text": {"en": "A story worth reading", "de": "Lesenswert"},
         "networks": ["facebook", "x", "linkedin", "xing", "whatsapp", "email", "copy"]}


@pytest.fixture
def settings(migrated, smtp_sink):
    return {**migrated, "SMTP_URL": smtp_sink.url, "RATELIMIT_ENABLED": "0"}


@pytest.fixture
def manager(db):
    return auth("manager")


def test_a_share_goes_from_mail_to_tracked_link_to_action_to_stats(app, client, db, smtp_sink, manager):
    ada = make_supporter("ada@example.org", language="en")
    bea = make_supporter("bea@example.org", language="de")
    campaign = create(client, manager, "share", SHARE)
    assert campaign["settings"]["url"] == SHARE["url"] and campaign["warnings"] == []
    launch(client, manager, campaign["id"], app)
    sent = mails(smtp_sink)
    assert set(sent) == {ada.email, bea.email}
    mail = sent[ada.email]
    # Every link is rewritten: the company's URL appears nowhere as a link target.
    assert 'href="https://company.example/about"' not in mail["text/html"]
    assert "https://company.example/about" not in mail["text/plain"]
    (about,) = r_paths(mail)
    assert counts()["actions"] == 0

    # The tracked link redirects to the stored URL and counts first and total clicks.
    first = client.get(about)
    assert first.status_code == 302 and first.headers["Location"] == "https://company.example/about"
    assert client.get(about).status_code == 302
    click = db.session.scalar(sa.select(Click))
    assert click.count == 2 and click.first_at <= click.last_at

    # GET shows the page in the supporter's language and records nothing but the open.
    page = client.get(act_path(mail))
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "A story worth reading" in html and 'name="network" value="whatsapp"' in html and "<script" not in html
    assert counts()["actions"] == 0
    assert "Lesenswert" in client.get(act_path(sent[bea.email])).get_data(as_text=True)

    # POST shares, with the supporter's own words, through a visit link that carries the referral.
    shared = client.post(act_path(mail), data={"network": "x", "text": "My own words"})
    assert shared.status_code == 303
    target = urlsplit(shared.headers["Location"])
    assert target.netloc == "twitter.com"
    query = parse_qs(target.query)
    assert query["text"] == ["My own words"]
    visit = urlsplit(query["url"][0])
    assert visit.netloc == "supporters.test" and visit.path.startswith("/r/")
    landed = client.get(visit.path)
    assert landed.status_code == 302
    landing = urlsplit(landed.headers["Location"])
    assert landing.netloc == "company.example" and parse_qs(landing.query) == {
        "ref": [ada.referral_code], "c": [str(campaign["id"])]}

    copy = client.post(act_path(mail), data={"network": "copy", "text": "x"})
    assert copy.status_code == 200 and 'id="shared-url"' in copy.get_data(as_text=True)

    stats = results(client, manager, campaign["id"])
    assert stats["funnel"] == {"audience": 2, "sent": 2, "clicked": 2, "acted": 1, "newcomers": 0}
    assert stats["share"]["per_network"]["x"] == 1 and stats["share"]["per_network"]["copy"] == 1
    assert stats["share"]["shares"] == 2 and stats["share"]["visits"] == 1
    assert stats["k_factor"] == 0.0
    assert sum(t.get("share", 0) for t in stats["timeline"]) == 2
    assert client.get(f"/api/v1/campaigns/{campaign['id']}/stats", headers=manager).get_json()["results"]["funnel"][
        "acted"] == 1
    db.session.expire_all()
    assert db.session.get(Supporter, ada.id).engagement_score > 0


def test_a_newcomer_through_a_share_link_is_credited_to_the_supporter_and_the_campaign(app, client, db, smtp_sink,
                                                                                        manager):
    ada = make_supporter("ada@example.org")
    campaign = create(client, manager, "share", {**SHARE, "url": "http://supporters.test/join"})
    launch(client, manager, campaign["id"], app)
    page = act_path(mails(smtp_sink)[ada.email])
    shared = client.post(page, data={"network": "facebook", "text": "Join us"})
    visit = urlsplit(parse_qs(urlsplit(shared.headers["Location"]).query)["u"][0]).path
    landing = urlsplit(client.get(visit).headers["Location"])
    join_path = f"{landing.path}?{landing.query}"
    form = client.get(join_path).get_data(as_text=True)
    assert f'name="c" value="{campaign["id"]}"' in form
    data = {**join_form(email="newcomer@example.org"), "csrf_token": csrf_token(client, join_path),
            "ref": ada.referral_code, "c": str(campaign["id"])}
    assert client.post(join_path, data=data).status_code == 200
    newcomer = db.session.scalar(sa.select(Supporter).where(Supporter.email_normalized == "newcomer@example.org"))
    # Not credited before confirmation (a pending sign-up is not a newcomer yet).
    assert results(client, manager, campaign["id"])["funnel"]["newcomers"] == 0
    run_mail_worker(app)
    confirm_service.confirm(links.confirm_token(newcomer.id))
    db.session.expire_all()
    assert db.session.get(Supporter, newcomer.id).referred_by_id == ada.id
    stats = results(client, manager, campaign["id"])
    assert stats["funnel"]["newcomers"] == 1 and stats["k_factor"] == 1.0 and stats["referral_depth"] == 1
    # The referral raises the sharer's engagement beyond the share alone.
    from campaigns.engagement import level, refresh

    refresh([ada.id])
    db.session.expire_all()
    assert db.session.get(Supporter, ada.id).engagement_score >= 4 and level(4) == "active"


def test_a_join_with_a_campaign_the_referrer_never_received_credits_no_campaign(app, client, db, smtp_sink, manager):
    ada = make_supporter("ada@example.org")
    other = create(client, manager, "share", SHARE)  # a draft: ada has no delivery of it
    data = {**join_form(email="newcomer@example.org"), "csrf_token": csrf_token(client),
            "ref": ada.referral_code, "c": str(other["id"])}
    assert client.post("/join", data=data).status_code == 200
    assert results(client, manager, other["id"])["funnel"]["newcomers"] == 0
    from campaigns.actions import CampaignReferral

    assert db.session.scalar(sa.select(sa.func.count()).select_from(CampaignReferral)) == 0


def test_tampered_or_foreign_tokens_and_unknown_links_are_refused_and_record_nothing(app, client, db, smtp_sink,
                                                                                       manager):
    from campaigns.tracking import action_token, link_url
    from core.signing import make_token

    make_supporter("ada@example.org")
    first = create(client, manager, "share", SHARE)
    second = create(client, manager, "share", {**SHARE, "url": "https://elsewhere.example/"})
    launch(client, manager, first["id"], app)
    launch(client, manager, second["id"], app)
    db.session.expire_all()
    mail_first = [m for m in smtp_sink.handler.parsed()][0]
    assert mail_first is not None
    (about,) = r_paths(mails(smtp_sink)["ada@example.org"])
    before = counts()
    tampered = about[:-3] + ("aaa" if not about.endswith("aaa") else "bbb")
    for path in (tampered, "/r/not-a-token", "/act/not-a-token", about.replace("/r/", "/act/")):
        response = client.get(path)
        assert response.status_code == 404, path
        assert "not valid" in response.get_data(as_text=True)
    # A correctly signed token for a link of another campaign, or for a link that does not exist.
    from campaigns.models import Delivery

    deliveries = {d.campaign_id: d.id for d in db.session.scalars(sa.select(Delivery))}
    foreign_link = db.session.scalar(sa.select(Link.id).where(Link.campaign_id == second["id"]))
    assert client.get(urlsplit(link_url(deliveries[first["id"]], foreign_link)).path).status_code == 404
    assert client.get(urlsplit(link_url(deliveries[first["id"]], 999999)).path).status_code == 404
    assert client.get("/r/" + make_token("r", ["https://evil.example", 1])).status_code == 404
    # An action token is not a link token and vice versa (purpose-bound).
    assert client.get("/r/" + action_token(deliveries[first["id"]])).status_code == 404
    # An unknown network is refused on the page, nothing recorded.
    act = act_path(mails(smtp_sink)["ada@example.org"])
    bad = client.post(act, data={"network": "myspace", "text": "hi"})
    assert bad.status_code == 422 and "not offered" in bad.get_data(as_text=True)
    long = client.post(act, data={"network": "x", "text": "x" * 1001})
    assert long.status_code == 422
    after = counts()
    assert after["actions"] == before["actions"] == 0 and after["clicks"] == before["clicks"]


def test_campaigns_hear_of_joins_through_the_supporters_signal_for_their_app_only(app):
    from campaigns.web import _credit_join
    from supporters.signals import supporter_joined

    assert _credit_join in supporter_joined.receivers_for(app)
    assert _credit_join not in supporter_joined.receivers_for(object())
