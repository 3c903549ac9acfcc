"""Survey results: NPS arithmetic, distributions, breakdowns, text paging, CSV export, segments, privacy."""

import csv
import io
import json

import pytest
import sqlalchemy as sa

from campaigns.survey_results import nps
from campaigns.surveys import SurveyAnswer
from supporters.models import Supporter
from tests.actions_helpers import act_path, auth, create, launch, mails, results
from tests.factories import make_supporter

NPS = {"key": "nps", "type": "nps", "required": True, "label": {"en": "Recommend?", "de": "Empfehlen?"}}
WHY = {"key": "why", "type": "long_text", "label": {"en": "Why?", "de": "Warum?"}}
PICK = {"key": "pick", "type": "single", "label": {"en": "Shop", "de": "Laden"},
        "options": {"en": ["North", "South"], "de": ["Nord", "Süd"]}}
SURVEY = {"questions": [NPS, WHY, PICK]}


@pytest.fixture
def settings(migrated, smtp_sink):
    return {**migrated, "SMTP_URL": smtp_sink.url, "RATELIMIT_ENABLED": "0"}


@pytest.fixture
def manager(db):
    return auth("manager", "owner@example.com")


def test_nps_matches_hand_computed_values():
    # 5 promoters, 3 passives, 2 detractors of 10: NPS 30; var = (0.5 + 0.2 - 0.09) / 10 = 0.061,
    # half-width 1.96 * sqrt(0.061) = 0.48408… -> [-18.4, 78.4].
    result = nps({10: 3, 9: 2, 8: 2, 7: 1, 6: 1, 0: 1})
    assert result == {"answers": 10, "promoters": 5, "passives": 3, "detractors": 2, "score": 30.0,
                      "ci95": [-18.4, 78.4]}
    # 1 promoter, 1 detractor: 0 ± 1.96 * sqrt(1/2) = ±138.6, clipped to the scale.
    assert nps({10: 1, 3: 1})["ci95"] == [-100.0, 100.0]
    assert nps({}) == {"answers": 0, "promoters": 0, "passives": 0, "detractors": 0, "score": None, "ci95": None}
    assert nps({6: 4})["score"] == -100.0 and nps({7: 2, 8: 2})["score"] == 0.0


def _answer_all(app, client, manager, smtp_sink, people):
    """people: [(email, kind, language, {form data})]; returns the campaign."""
    for email, kind, lang, _data in people:
        make_supporter(email, kind=kind, language=lang)
    make_supporter("silent@example.org")
    campaign = create(client, manager, "survey", SURVEY)
    launch(client, manager, campaign["id"], app)
    sent = mails(smtp_sink)
    for email, _kind, _lang, data in people:
        response = client.post(act_path(sent[email]), data={"shown": ["nps", "why", "pick"], "action": "submit", **data})
        assert response.status_code == 200, response.get_data(as_text=True)
    return campaign


PEOPLE = [
    ("ada@example.org", "fan", "en", {"q_nps": "10", "q_pick": "0"}),
    ("bea@example.org", "fan", "de", {"q_nps": "9", "q_why": "=HYPERLINK(\"http://evil\")", "q_pick": "1"}),
    ("cem@example.org", "former_employee", "en", {"q_nps": "7"}),
    ("dan@example.org", "supplier", "de", {"q_nps": "2", "q_why": "Slow delivery"}),
]


def test_results_show_distributions_nps_breakdowns_and_the_response_rate(app, client, db, smtp_sink, manager):
    campaign = _answer_all(app, client, manager, smtp_sink, PEOPLE)
    survey = results(client, manager, campaign["id"])["survey"]
    assert survey["sent"] == 5 and survey["responses"] == 4 and survey["response_rate"] == 0.8
    by_key = {q["key"]: q for q in survey["questions"]}
    assert by_key["nps"]["distribution"] == {**{str(i): 0 for i in range(11)}, "10": 1, "9": 1, "7": 1, "2": 1}
    assert by_key["nps"]["mean"] == 7.0 and by_key["why"]["answers"] == 2
    assert by_key["pick"]["options"] == [{"option": 0, "label": "North", "count": 1},
                                         {"option": 1, "label": "South", "count": 1}]
    assert survey["nps"]["score"] == 25.0 and (survey["nps"]["promoters"], survey["nps"]["detractors"]) == (2, 1)
    kinds = {row["kind"]: row for row in survey["breakdown"]["kind"]}
    assert kinds["fan"]["responses"] == 2 and kinds["fan"]["nps"]["score"] == 100.0
    assert kinds["supplier"]["nps"]["score"] == -100.0
    languages = {row["language"]: row["responses"] for row in survey["breakdown"]["language"]}
    assert languages == {"de": 2, "en": 2}


def test_text_answers_page_by_cursor_and_export_defuses_formulas(app, client, db, smtp_sink, manager):
    campaign = _answer_all(app, client, manager, smtp_sink, PEOPLE)
    base = f"/api/v1/campaigns/{campaign['id']}/survey/answers"
    first = client.get(f"{base}?limit=1&question=why", headers=manager).get_json()
    assert [i["text"] for i in first["items"]] == ['=HYPERLINK("http://evil")'] and first["next_after"]
    second = client.get(f"{base}?limit=1&after={first['next_after']}", headers=manager).get_json()
    assert [i["text"] for i in second["items"]] == ["Slow delivery"]
    last = client.get(f"{base}?limit=1&after={second['next_after']}", headers=manager).get_json()
    assert last == {"items": [], "next_after": None}
    for bad in ("?question=nps", "?question=", "?limit=0", "?after=-1", "?limit=x"):
        response = client.get(base + bad, headers=manager)
        assert response.status_code == 422 and response.content_type.startswith("application/problem+json"), bad

    exported = client.get(f"/api/v1/campaigns/{campaign['id']}/survey/export", headers=manager)
    assert exported.status_code == 200 and exported.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(exported.get_data(as_text=True))))
    texts = {r["text"] for r in rows if r["text"]}
    assert texts == {"'=HYPERLINK(\"http://evil\")", "Slow delivery"}
    assert len(rows) == 4 + 2 + 2  # four scores, two texts, two choices
    lines = client.get(f"/api/v1/campaigns/{campaign['id']}/survey/export?format=jsonl", headers=manager)
    assert '=HYPERLINK("http://evil")' in {json.loads(x)["text"] for x in lines.get_data(as_text=True).splitlines()}
    vote = create(client, manager, "vote", {"type": "poll", "question": "Q?", "options": ["a", "b"]})
    assert client.get(f"/api/v1/campaigns/{vote['id']}/survey/export", headers=manager).status_code == 404
    assert client.get(f"/api/v1/campaigns/{campaign['id']}/survey/export?format=xls",
                      headers=manager).status_code == 422


def test_a_segment_of_detractors_finds_exactly_them(app, client, db, smtp_sink, manager):
    campaign = _answer_all(app, client, manager, smtp_sink, PEOPLE)
    cid = campaign["id"]

    def emails(definition):
        response = client.post("/api/v1/segments/preview", headers=manager, json={"definition": definition})
        assert response.status_code == 200, response.get_json()
        return sorted(i["email"] for i in response.get_json()["items"])

    cond = {"field": "survey_answer", "op": "lte", "value": {"campaign": cid, "question": "nps", "value": 6}}
    assert emails(cond) == ["dan@example.org"]
    assert emails({"field": "survey_answer", "op": "gte",
                   "value": {"campaign": cid, "question": "nps", "value": 9}}) == ["ada@example.org", "bea@example.org"]
    assert emails({"field": "survey_answer", "op": "answered",
                   "value": {"campaign": cid, "question": "why"}}) == ["bea@example.org", "dan@example.org"]
    # Not a detractor: also the fan who did not answer.
    assert emails({"all": [{"field": "kind", "op": "eq", "value": "fan"}, {"not": cond}]}) == [
        "ada@example.org", "bea@example.org", "silent@example.org"]
    assert emails({"field": "survey_answer", "op": "eq",
                   "value": {"campaign": cid, "question": "pick", "value": 1}}) == ["bea@example.org"]


def test_free_text_is_in_the_data_access_export_and_gone_after_erasure(app, client, db, smtp_sink, manager):
    from supporters.privacy import erase_supporter, person_record

    campaign = _answer_all(app, client, manager, smtp_sink, PEOPLE)
    dan = db.session.scalar(sa.select(Supporter).where(Supporter.email == "dan@example.org"))
    record = person_record(dan)
    assert record["survey_answers"] == [{"campaign_id": campaign["id"], "answers": {"nps": 2, "why": "Slow delivery"},
                                         "at": record["survey_answers"][0]["at"], "reply_requested": False}]
    erase_supporter(dan)
    db.session.commit()
    db.session.expire_all()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(SurveyAnswer)
                             .where(SurveyAnswer.text == "Slow delivery")) == 0
    survey = results(client, manager, campaign["id"])["survey"]
    assert survey["nps"]["detractors"] == 1 and survey["responses"] == 4  # the anonymous numbers stay
    texts = client.get(f"/api/v1/campaigns/{campaign['id']}/survey/answers", headers=manager).get_json()["items"]
    assert [t["text"] for t in texts] == ['=HYPERLINK("http://evil")']


def test_flask_export_campaign_answers_writes_one_row_per_answer(app, client, db, smtp_sink, manager, runner):
    campaign = _answer_all(app, client, manager, smtp_sink, PEOPLE)
    result = runner.invoke(args=["export", "campaign", str(campaign["id"]), "--answers", "--quiet"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 8 and {r["question"] for r in rows} == {"nps", "why", "pick"}
    assert "'=HYPERLINK(\"http://evil\")" in {r["text"] for r in rows}
    vote = create(client, manager, "vote", {"type": "poll", "question": "Q?", "options": ["a", "b"]})
    refused = runner.invoke(args=["export", "campaign", str(vote["id"]), "--answers"])
    assert refused.exit_code == 1 and "not a survey" in refused.output


def test_survey_charts_draw_the_nps_groups_and_each_question_as_the_results_say(app, client, db, smtp_sink,
                                                                               manager):
    from tests.results_helpers import svg_values

    campaign = _answer_all(app, client, manager, smtp_sink, PEOPLE)
    survey = results(client, manager, campaign["id"])["survey"]
    base = f"/api/v1/campaigns/{campaign['id']}/charts"
    nps_svg = client.get(f"{base}/nps.svg", headers=manager)
    assert nps_svg.status_code == 200 and nps_svg.mimetype == "image/svg+xml"
    groups = survey["nps"]
    # Bars are drawn top-down in the table's order; pygal lists their values bottom-up.
    assert svg_values(nps_svg.get_data(as_text=True))[::-1] == [str(groups[g]) for g in ("promoters", "passives",
                                                                                          "detractors")]
    scale = client.get(f"{base}/question-nps.svg", headers=manager).get_data(as_text=True)
    by_key = {q["key"]: q for q in survey["questions"]}
    distribution = by_key["nps"]["distribution"]  # 0 … 10 (a JSON object may come with its keys sorted as text)
    assert svg_values(scale)[::-1] == [str(distribution[str(score)]) for score in range(11)]
    choice = client.get(f"{base}/question-pick.svg", headers=manager).get_data(as_text=True)
    assert svg_values(choice)[::-1] == [str(o["count"]) for o in by_key["pick"]["options"]]
    # A text question is read in the answers list, not drawn.
    missing = client.get(f"{base}/question-why.svg", headers=manager)
    assert missing.status_code == 404 and "question-pick" in missing.get_json()["detail"]
