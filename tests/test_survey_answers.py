"""Answering a survey from a real mail: conditions, partial saves, changes, bad input, close, concurrency."""

import re
import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

from campaigns.actions import CampaignSettings
from campaigns.surveys import SurveyAnswer, SurveyResponse
from core.db import utcnow
from tests.actions_helpers import act_path, auth, create, launch, mails, results
from tests.factories import make_supporter

NPS = {"key": "nps", "type": "nps", "required": True,
       "label": {"en": "How likely are you to recommend us?", "de": "Wie wahrscheinlich empfehlen Sie uns?"}}
WHY = {"key": "why", "type": "long_text", "required": True, "max_length": 300,
       "label": {"en": "What should we improve?", "de": "Was sollten wir verbessern?"},
       "show_if": {"question": "nps", "op": "lte", "value": 6}}
NAME = {"key": "shop", "type": "short_text", "label": {"en": "Your shop", "de": "Ihr Laden"}}
TOPICS = {"key": "topics", "type": "multiple", "label": {"en": "Topics", "de": "Themen"},
          "options": {"en": ["Price", "Service", "Range"], "de": ["Preis", "Service", "Sortiment"]}}
STARS = {"key": "stars", "type": "rating", "label": {"en": "Service", "de": "Service"}}
SURVEY = {"questions": [NPS, WHY, NAME, TOPICS, STARS]}


@pytest.fixture
def settings(migrated, smtp_sink):
    return {**migrated, "SMTP_URL": smtp_sink.url, "RATELIMIT_ENABLED": "0"}


@pytest.fixture
def manager(db):
    return auth("manager", "owner@example.com")


def _stored(db) -> tuple[int, list[tuple]]:
    db.session.expire_all()
    responses = db.session.scalar(sa.select(sa.func.count()).select_from(SurveyResponse))
    answers = db.session.execute(sa.select(SurveyAnswer.question, SurveyAnswer.value, SurveyAnswer.text)
                                 .order_by(SurveyAnswer.question, SurveyAnswer.value)).all()
    db.session.commit()
    return responses, [tuple(a) for a in answers]


def _survey(app, client, manager, smtp_sink, settings_=SURVEY, people=("ada@example.org",)):
    supporters = [make_supporter(p) for p in people]
    campaign = create(client, manager, "survey", settings_)
    launch(client, manager, campaign["id"], app)
    sent = mails(smtp_sink)
    return campaign, [act_path(sent[s.email]) for s in supporters]


def test_a_detractor_is_asked_why_can_change_answers_and_results_follow(app, client, db, smtp_sink, manager):
    campaign, (page,) = _survey(app, client, manager, smtp_sink)
    html = client.get(page).get_data(as_text=True)
    assert "How likely are you to recommend us?" in html and 'name="q_nps" value="10"' in html
    assert "What should we improve?" not in html  # shown only after a low score
    head = client.head(page)
    assert head.status_code == 200 and _stored(db) == (0, [])  # GET and HEAD never answer

    answered = client.post(page, data={"shown": ["nps", "shop", "topics", "stars"], "q_nps": "3",
                                       "q_topics": ["0", "2"], "action": "submit"})
    html = answered.get_data(as_text=True)
    assert answered.status_code == 200 and "What should we improve?" in html  # the follow-up question appears
    assert 'value="3" checked' in html
    assert _stored(db) == (1, [("nps", 3, None), ("topics", 0, None), ("topics", 2, None)])
    missing = client.post(page, data={"shown": ["nps", "why", "shop", "topics", "stars"], "q_nps": "3",
                                      "q_topics": ["0", "2"], "action": "submit"})
    assert missing.status_code == 422 and 'id="q_why-error"' in missing.get_data(as_text=True)
    done = client.post(page, data={"shown": ["nps", "why", "shop", "topics", "stars"], "q_nps": "3",
                                   "q_why": "Opening hours,\r\nplease. Ünïcödé ✓", "q_topics": ["0", "2"],
                                   "q_stars": "2", "action": "submit"})
    assert done.status_code == 200 and "Thank you for your answers!" in done.get_data(as_text=True)
    figures = results(client, manager, campaign["id"])["survey"]
    assert figures["responses"] == 1 and figures["completed"] == 1 and figures["response_rate"] == 1.0
    assert figures["nps"] == {"answers": 1, "promoters": 0, "passives": 0, "detractors": 1, "score": -100.0,
                              "ci95": [-100.0, -100.0]}

    # Changing the score to a promoter's hides the follow-up question: its answer is dropped.
    changed = client.post(page, data={"shown": ["nps", "why", "shop", "topics", "stars"], "q_nps": "9",
                                      "q_why": "Opening hours,\r\nplease. Ünïcödé ✓", "q_topics": ["1"],
                                      "q_stars": "4", "action": "submit"})
    assert changed.status_code == 200
    assert _stored(db) == (1, [("nps", 9, None), ("stars", 4, None), ("topics", 1, None)])
    figures = results(client, manager, campaign["id"])["survey"]
    assert figures["nps"]["score"] == 100.0 and figures["responses"] == 1
    assert figures["breakdown"]["kind"] == [{"kind": "fan", "responses": 1, "nps": {
        "answers": 1, "promoters": 1, "passives": 0, "detractors": 0, "score": 100.0, "ci95": [100.0, 100.0]}}]
    assert {q["key"]: q["answers"] for q in figures["questions"]} == {"nps": 1, "why": 0, "shop": 0, "topics": 1,
                                                                      "stars": 1}


def test_partial_answers_are_saved_without_the_required_ones(app, client, db, smtp_sink, manager):
    _campaign, (page,) = _survey(app, client, manager, smtp_sink)
    saved = client.post(page, data={"shown": ["nps", "shop"], "q_shop": "Berlin Mitte", "action": "save"})
    assert saved.status_code == 200 and "Your answers are saved" in saved.get_data(as_text=True)
    assert _stored(db) == (1, [("shop", None, "Berlin Mitte")])
    db.session.expire_all()
    assert db.session.scalar(sa.select(SurveyResponse.completed_at)) is None
    page_now = client.get(page).get_data(as_text=True)
    assert 'value="Berlin Mitte"' in page_now


@pytest.mark.parametrize(("data", "field"), [
    ({"q_nps": "11"}, "q_nps"),
    ({"q_nps": "-1"}, "q_nps"),
    ({"q_nps": "seven"}, "q_nps"),
    ({"q_nps": ["3", "4"]}, "q_nps"),
    ({"q_nps": "7", "q_stars": "0"}, "q_stars"),
    ({"q_nps": "7", "q_topics": "3"}, "q_topics"),
    ({"q_nps": "7", "q_topics": ["0", "1", "2", "0", "1"]}, "q_topics"),
    ({"q_nps": "7", "q_shop": "a\x00b"}, "q_shop"),
    ({"q_nps": "7", "q_shop": "two\r\nlines"}, "q_shop"),
    ({"q_nps": "7", "q_shop": "x" * 201}, "q_shop"),
    ({"q_nps": "7", "q_shop": "<b>bold</b>"}, "q_shop"),
    ({"q_nps": "9", "q_why": "hidden question"}, "q_why"),
    ({"q_shop": "no score"}, "q_nps"),
])
def test_bad_answers_get_a_message_beside_the_field_and_store_nothing(app, client, db, smtp_sink, manager, data,
                                                                      field):
    _campaign, (page,) = _survey(app, client, manager, smtp_sink)
    response = client.post(page, data={"shown": ["nps", "shop", "topics", "stars"], "action": "submit", **data})
    html = response.get_data(as_text=True)
    assert response.status_code == 422 and f'id="{field}-error"' in html and 'href="#' + field in html
    assert _stored(db) == (0, [])


def test_a_tampered_or_foreign_token_and_a_closed_survey_store_nothing(app, client, db, smtp_sink, manager):
    campaign, (page, other) = _survey(app, client, manager, smtp_sink, people=("ada@example.org", "bea@example.org"))
    assert client.post(page[:-3] + "abc", data={"q_nps": "5", "shown": "nps"}).status_code == 404
    unsubscribe = re.search(r"/unsubscribe/([A-Za-z0-9_.\-]+)", mails(smtp_sink)["ada@example.org"]["text/plain"])
    assert client.post(f"/act/{unsubscribe.group(1)}", data={"q_nps": "5"}).status_code == 404  # another purpose
    assert _stored(db) == (0, [])
    row = db.session.get(CampaignSettings, campaign["id"])
    row.config = {**row.config, "closes_at": (utcnow() - timedelta(minutes=1)).isoformat()}
    db.session.commit()
    closed = client.post(other, data={"q_nps": "5", "shown": "nps", "action": "submit"})
    assert closed.status_code == 409 and _stored(db) == (0, [])
    assert "This survey is closed" in client.get(other).get_data(as_text=True)


def test_eight_concurrent_submits_of_one_delivery_store_one_response(app, client, db, smtp_sink, manager):
    _campaign, (page,) = _survey(app, client, manager, smtp_sink)
    statuses: list[int] = []
    barrier = threading.Barrier(8)

    def post(score: int):
        own = app.test_client()
        barrier.wait()
        statuses.append(own.post(page, data={"shown": ["nps", "shop", "topics", "stars"], "q_nps": str(score),
                                             "action": "submit"}).status_code)

    threads = [threading.Thread(target=post, args=(7 + i % 4,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 8
    responses, answers = _stored(db)
    assert responses == 1 and len(answers) == 1 and answers[0][0] == "nps"


def test_a_detractor_can_ask_for_a_personal_reply_and_the_api_lists_it(app, client, db, smtp_sink, manager):
    campaign, (ada_page, bea_page) = _survey(app, client, manager, smtp_sink,
                                             people=("ada@example.org", "bea@example.org"))
    client.post(ada_page, data={"shown": ["nps"], "q_nps": "2", "action": "submit"})
    client.post(ada_page, data={"shown": ["nps", "why"], "q_nps": "2", "q_why": "Too slow", "action": "submit"})
    thanks = client.get(ada_page + "?done=completed").get_data(as_text=True)
    assert "Would you like a personal reply?" in thanks
    # …or raise it in the dialog (issue 14), through the supporter's own signed link.
    dialog = re.search(r'href="http://supporters\.test(/dialog/[^"]+)">Raise an idea or a concern<', thanks)
    assert dialog and client.get(dialog.group(1)).status_code == 200
    assert client.post(ada_page, data={"reply": "1"}).status_code == 200
    client.post(bea_page, data={"shown": ["nps"], "q_nps": "10", "action": "submit"})
    promoter = client.get(bea_page + "?done=completed").get_data(as_text=True)
    assert "personal reply" not in promoter and "/dialog/" not in promoter.split("<footer")[0]
    refused = client.post(bea_page, data={"reply": "1"})  # a promoter without a comment is not offered it
    assert refused.status_code == 422
    listed = client.get(f"/api/v1/campaigns/{campaign['id']}/survey/follow-ups", headers=manager).get_json()
    assert [i["email"] for i in listed["items"]] == ["ada@example.org"]
    assert listed["items"][0]["answers"] == {"nps": 2, "why": "Too slow"}
    assert results(client, manager, campaign["id"])["survey"]["reply_requests"] == 1


def test_a_review_invitation_is_shown_to_every_respondent_alike(app, client, db, smtp_sink, manager):
    invite = {"url": "https://g.page/r/shop/review", "text": {"en": "Tell others", "de": "Erzählen Sie es"}}
    _campaign, (ada_page, bea_page) = _survey(app, client, manager, smtp_sink, {**SURVEY, "review_invite": invite},
                                              people=("ada@example.org", "bea@example.org"))
    client.post(ada_page, data={"shown": ["nps"], "q_nps": "0", "action": "save"})
    client.post(bea_page, data={"shown": ["nps"], "q_nps": "10", "action": "save"})
    for page in (ada_page, bea_page):
        html = client.get(page + "?done=completed").get_data(as_text=True)
        assert "Tell others" in html and "/r/" in html and "whatever their answers" in html


def test_a_site_that_bars_a_relationship_leaves_those_people_out_of_the_invitation_by_kind_only(
        app, client, db, smtp_sink, manager):
    make_supporter("former@example.org", kind="former_employee")
    make_supporter("fan@example.org", kind="fan")
    invite = {"url": "https://www.kununu.com/de/company", "site": "kununu", "text": {"en": "Rate us", "de": "Bewerten"}}
    campaign = create(client, manager, "survey", {**SURVEY, "review_invite": invite},
                      audience={"filter": {"field": "kind", "op": "in", "value": ["fan", "former_employee"]}})
    launch(client, manager, campaign["id"], app)
    sent = mails(smtp_sink)
    for email, shown in (("former@example.org", True), ("fan@example.org", False)):
        page = act_path(sent[email])
        client.post(page, data={"shown": ["nps"], "q_nps": "10", "action": "save"})
        html = client.get(page + "?done=completed").get_data(as_text=True)
        assert ("Rate us" in html) is shown, email
        assert ('class="disclosure"' in html) is shown  # an insider is reminded to say so


def test_a_german_supporter_sees_the_survey_in_german(app, client, db, smtp_sink, manager):
    make_supporter("bea@example.org", language="de")
    campaign = create(client, manager, "survey", SURVEY)
    launch(client, manager, campaign["id"], app)
    html = client.get(act_path(mails(smtp_sink)["bea@example.org"])).get_data(as_text=True)
    assert '<html lang="de">' in html and "Wie wahrscheinlich empfehlen Sie uns?" in html
    assert "Antworten senden" in html and "Sortiment" in html and "How likely" not in html


def test_a_huge_body_and_many_fields_are_refused_without_storing_anything(app, client, db, smtp_sink, manager):
    _campaign, (page,) = _survey(app, client, manager, smtp_sink)
    huge = client.post(page, data={"shown": ["nps", "why"], "q_nps": "1", "q_why": "x" * 2_000_000,
                                   "action": "submit"})
    assert huge.status_code == 413
    flood = client.post(page, data={"shown": ["nps"] * 500, "q_nps": "5", "q_topics": [str(i) for i in range(300)],
                                    "action": "submit"})
    assert flood.status_code == 422 and 'id="q_topics-error"' in flood.get_data(as_text=True)
    assert _stored(db) == (0, [])
