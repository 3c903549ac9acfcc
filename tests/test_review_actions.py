"""Review campaigns: the rule table at creation, the disclosure for insiders, confirmations, no reward."""

import pytest
import sqlalchemy as sa

from campaigns.actions import Action
from supporters.models import Supporter
from tests.actions_helpers import act_path, auth, counts, create, launch, mails, r_paths, results
from tests.factories import make_supporter

GOOGLE = {"site": "google", "url": "https://g.page/r/company/review"}
KUNUNU = {"site": "kununu", "url": "https://www.kununu.com/de/company"}
YELP = {"site": "yelp", "url": "https://www.yelp.com/biz/company"}


@pytest.fixture
def settings(migrated, smtp_sink):
    return {**migrated, "SMTP_URL": smtp_sink.url, "RATELIMIT_ENABLED": "0"}


@pytest.fixture
def manager(db):
    return auth("manager")


def _fields(response) -> dict[str, str]:
    return {e["field"]: e["message"] for e in response.get_json()["errors"]}


@pytest.mark.parametrize(("settings_", "audience", "field", "words"), [
    ({"destinations": [YELP]}, None, "settings.destinations", "Yelp forbids"),
    ({"destinations": [GOOGLE], "incentive": True}, None, "settings.destinations", "rewards"),
    ({"destinations": [KUNUNU]}, {"filter": {"field": "kind", "op": "eq", "value": "fan"}},
     "settings.destinations", "only former_employee"),
    ({"destinations": []}, None, "settings.destinations", "1 to 10"),
    ({"destinations": [{"site": "google", "url": "javascript:alert(1)"}]}, None, "settings.destinations[0].url", "http"),
    ({"destinations": [GOOGLE, GOOGLE]}, None, "settings.destinations", "at most once"),
    ({"destinations": [GOOGLE], "reward": "voucher"}, None, "settings.reward", "unknown"),
    (None, None, "settings", "need settings"),
])
def test_review_campaigns_that_break_a_site_rule_are_refused_at_creation(client, db, manager, settings_, audience,
                                                                         field, words):
    from campaigns.models import Campaign

    extra = {"audience": audience} if audience else {}
    response = client.post("/api/v1/campaigns", headers=manager, json={
        "name": "Reviews", "kind": "review", "settings": settings_, **extra,
        "contents": {"en": {"subject": "s", "body": "[go]({{action_url}})"}}})
    assert response.status_code == 422 and response.mimetype == "application/problem+json"
    fields = _fields(response)
    assert field in fields and words in fields[field], fields
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Campaign)) == 0


def test_review_rules_that_depend_on_the_audience_are_warnings(client, manager):
    mixed = create(client, manager, "review", {"destinations": [GOOGLE, KUNUNU]})
    joined = " | ".join(mixed["warnings"])
    assert "kununu: only former_employee may review here; exclude fan, other, partner, supplier" in joined
    assert "insiders in the audience will be asked to disclose" in joined
    unknown = create(client, manager, "review", {"destinations": [{"site": "myforum", "url": "https://f.example"}]})
    assert "not in the rule table" in unknown["warnings"][0]
    fans = create(client, manager, "review", {"destinations": [GOOGLE]},
                  audience={"filter": {"field": "kind", "op": "eq", "value": "fan"}})
    assert fans["warnings"] == []
    # Editing the audience re-checks the rules: a fans-only audience on kununu is refused.
    refused = client.patch(f"/api/v1/campaigns/{mixed['id']}", headers=manager,
                           json={"audience": {"filter": {"field": "kind", "op": "in", "value": ["fan"]}}})
    assert refused.status_code == 422 and "settings.destinations" in _fields(refused)
    assert client.get(f"/api/v1/campaigns/{mixed['id']}", headers=manager).get_json()["audience"]["filter"] is None


def test_a_review_goes_from_mail_to_destination_to_confirmation_and_insiders_see_the_disclosure(
        app, client, db, smtp_sink, manager):
    fan = make_supporter("fan@example.org", kind="fan")
    former = make_supporter("former@example.org", kind="former_employee", language="de")
    supplier = make_supporter("supplier@example.org", kind="supplier")
    partner = make_supporter("partner@example.org", kind="partner")
    other = make_supporter("other@example.org", kind="other")
    campaign = create(client, manager, "review", {"destinations": [GOOGLE]})
    launch(client, manager, campaign["id"], app)
    sent = mails(smtp_sink)
    assert len(sent) == 5
    pages = {s.kind.value: client.get(act_path(sent[s.email])).get_data(as_text=True)
             for s in (fan, former, supplier, partner, other)}
    for kind in ("former_employee", "supplier", "partner"):
        assert 'class="consent-text disclosure"' in pages[kind], kind
    for kind in ("fan", "other"):
        assert "disclosure" not in pages[kind], kind
    assert "ehemalige:r Mitarbeiter:in" in pages["former_employee"]  # in the supporter's language
    assert "no reward of any kind" in pages["fan"]
    assert counts()["actions"] == 0

    # The destination link on the page is tracked too and goes only to the stored URL.
    dest = next(p for p in r_paths({"text/plain": pages["fan"].replace("&amp;", "&")}))
    assert client.get(dest).headers["Location"] == GOOGLE["url"]

    page = act_path(sent[fan.email])
    bad_url = client.post(page, data={"site": "google", "review_url": "javascript:alert(1)"})
    assert bad_url.status_code == 422
    wrong_site = client.post(page, data={"site": "yelp"})
    assert wrong_site.status_code == 422
    assert counts()["actions"] == 0
    done = client.post(page, data={"site": "google", "review_url": "https://g.page/r/company/review/123"})
    assert done.status_code == 200 and "Thank you for taking the time" in done.get_data(as_text=True)
    again = client.post(page, data={"site": "google", "review_url": ""})
    assert again.status_code == 200
    actions = db.session.scalars(sa.select(Action)).all()
    assert [(a.kind.value, a.detail, a.note) for a in actions] == [
        ("review", "google", "https://g.page/r/company/review/123")]
    stats = results(client, manager, campaign["id"])
    assert stats["review"] == {"confirmations": 1, "per_destination": {"google": 1}}
    assert stats["funnel"]["acted"] == 1 and stats["funnel"]["clicked"] == 5
    # No reward of any kind, not even standing: a review does not raise the engagement score.
    db.session.expire_all()
    assert db.session.get(Supporter, fan.id).engagement_score == 0


def test_a_review_campaign_needs_the_action_link_to_launch(client, db, manager):
    make_supporter()
    campaign = create(client, manager, "review", {"destinations": [GOOGLE]}, body="No link here")
    response = client.post(f"/api/v1/campaigns/{campaign['id']}/launch", headers=manager)
    assert response.status_code == 422 and "action_url" in response.get_json()["detail"]


def test_in_a_mixed_audience_each_supporter_is_offered_only_the_sites_that_accept_their_review(
        app, client, db, smtp_sink, manager):
    fan = make_supporter("fan@example.org", kind="fan")
    former = make_supporter("former@example.org", kind="former_employee")
    both = create(client, manager, "review", {"destinations": [GOOGLE, KUNUNU]})
    assert any("kununu: only former_employee" in w for w in both["warnings"])  # allowed, with a warning
    launch(client, manager, both["id"], app)
    sent = mails(smtp_sink)
    fan_page, former_page = (client.get(act_path(sent[p.email])).get_data(as_text=True) for p in (fan, former))
    assert 'id="dest-google"' in fan_page and 'id="dest-kununu"' not in fan_page
    assert 'id="dest-google"' in former_page and 'id="dest-kununu"' in former_page
    refused = client.post(act_path(sent[fan.email]), data={"site": "kununu"})
    assert refused.status_code == 422 and "does not accept reviews from you" in refused.get_data(as_text=True)
    assert client.post(act_path(sent[former.email]), data={"site": "kununu"}).status_code == 200
    assert [(a.supporter_id, a.detail) for a in db.session.scalars(sa.select(Action))] == [(former.id, "kununu")]


def test_a_supporter_no_destination_accepts_is_told_so_and_can_confirm_nothing(app, client, db, smtp_sink, manager):
    fan = make_supporter("fan@example.org", kind="fan")
    make_supporter("former@example.org", kind="former_employee")
    campaign = create(client, manager, "review", {"destinations": [KUNUNU]})
    launch(client, manager, campaign["id"], app)
    page = client.get(act_path(mails(smtp_sink)[fan.email]))
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and 'id="no-destination"' in html and 'id="dest-kununu"' not in html
    assert client.post(act_path(mails(smtp_sink)[fan.email]), data={"site": "kununu"}).status_code == 422
    assert counts()["actions"] == 0
