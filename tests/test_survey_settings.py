"""Survey definitions: validated with the path of every problem; review gating refused everywhere."""

import pytest

from tests.actions_helpers import auth, create

NPS = {"key": "nps", "type": "nps", "required": True,
       "label": {"en": "How likely are you to recommend us?", "de": "Wie wahrscheinlich empfehlen Sie uns?"}}
WHY = {"key": "why", "type": "long_text", "label": {"en": "What should we improve?", "de": "Was verbessern?"},
       "show_if": {"question": "nps", "op": "lte", "value": 6}}
PICK = {"key": "pick", "type": "single", "label": {"en": "Which shop?", "de": "Welcher Laden?"},
        "options": {"en": ["North", "South"], "de": ["Nord", "Süd"]}}
SURVEY = {"questions": [NPS, WHY, PICK]}


@pytest.fixture
def manager(db):
    return auth("manager", "owner@example.com")


def _fields(response) -> dict[str, str]:
    assert response.status_code == 422, response.get_json()
    assert response.content_type.startswith("application/problem+json")
    return {e["field"]: e["message"] for e in response.get_json()["errors"]}


def _post(client, manager, settings, languages=("en", "de"), kind="survey", **extra):
    contents = {lang: {"subject": "s", "body": "[go]({{action_url}})"} for lang in languages}
    return client.post("/api/v1/campaigns", headers=manager,
                       json={"name": "Survey", "kind": kind, "settings": settings, "contents": contents, **extra})


def test_a_valid_survey_is_created_and_shown_as_stored(client, manager):
    campaign = create(client, manager, "survey", SURVEY)
    assert campaign["kind"] == "survey" and campaign["settings"]["questions"][1]["show_if"]["value"] == 6


@pytest.mark.parametrize(("settings_", "field"), [
    ({"questions": []}, "settings.questions"),
    ({"questions": [NPS] * 21}, "settings.questions"),
    ({"questions": [NPS, {**PICK, "key": "nps"}]}, "settings.questions[1].key"),
    ({"questions": [{**NPS, "key": "Bad Key"}]}, "settings.questions[0].key"),
    ({"questions": [{**NPS, "type": "stars"}]}, "settings.questions[0].type"),
    ({"questions": [{**NPS, "label": {"en": "only English"}}]}, "settings.questions[0].label"),
    ({"questions": [{**NPS, "label": {"en": "a\x00b", "de": "x"}}]}, "settings.questions[0].label.en"),
    ({"questions": [{**NPS, "label": {"en": "x" * 301, "de": "x"}}]}, "settings.questions[0].label.en"),
    ({"questions": [NPS, {**PICK, "options": {"en": ["a"], "de": ["b"]}}]}, "settings.questions[1].options.en"),
    ({"questions": [NPS, {**PICK, "options": {"en": ["a", "b", "c"], "de": ["x", "y"]}}]},
     "settings.questions[1].options"),
    ({"questions": [NPS, {**PICK, "options": {"en": ["a", "A"], "de": ["x", "y"]}}]},
     "settings.questions[1].options.en"),
    ({"questions": [NPS, {**PICK, "options": None}]}, "settings.questions[1].options"),
    ({"questions": [NPS, {**PICK, "options": {"en": ["a", "b"]}}]}, "settings.questions[1].options"),
    ({"questions": [{**WHY, "show_if": {"question": "nps", "op": "lte", "value": 6}}, NPS]},
     "settings.questions[0].show_if.question"),  # a condition on a later question
    ({"questions": [NPS, {**WHY, "show_if": {"question": "nps", "op": "about", "value": 6}}]},
     "settings.questions[1].show_if.op"),
    ({"questions": [NPS, {**WHY, "show_if": {"question": "nps", "op": "lte", "value": 11}}]},
     "settings.questions[1].show_if.value"),
    ({"questions": [NPS, {**WHY, "max_length": 5000}]}, "settings.questions[1].max_length"),
    ({"questions": [{**NPS, "max_length": 5}]}, "settings.questions[0].max_length"),
    ({"questions": [{**NPS, "required": "yes"}]}, "settings.questions[0].required"),
    ({"questions": [{**NPS, "colour": "red"}]}, "settings.questions[0].colour"),
    ({**SURVEY, "closes_at": "tomorrow"}, "settings.closes_at"),
    ({**SURVEY, "review_invite": {"url": "javascript:alert(1)"}}, "settings.review_invite.url"),
    ({**SURVEY, "thank_you": {"fr": "merci"}}, "settings.thank_you.fr"),
    ({**SURVEY, "tone": "happy"}, "settings.tone"),
])
def test_bad_survey_definitions_are_refused_naming_the_path(client, manager, settings_, field):
    assert field in _fields(_post(client, manager, settings_))


def test_labels_are_only_needed_in_the_campaigns_content_languages(client, manager):
    english = {"questions": [{**NPS, "label": {"en": "How likely…?"}}]}
    assert _post(client, manager, english, languages=("en",)).status_code == 201
    assert "settings.questions[0].label" in _fields(_post(client, manager, english, languages=("en", "de")))


@pytest.mark.parametrize(("settings_", "field"), [
    ({**SURVEY, "review_invite": {"url": "https://g.page/r/x/review", "show_if": {"question": "nps", "op": "gte",
                                                                                   "value": 9}}},
     "settings.review_invite.show_if"),
    ({**SURVEY, "review_invite": {"url": "https://g.page/r/x/review", "min_score": 9}}, "settings.review_invite.min_score"),
    ({**SURVEY, "review_invite": {"url": "https://g.page/r/x/review", "promoters": True}},
     "settings.review_invite.promoters"),
    ({**SURVEY, "thank_you": {"promoters": "Review us!", "detractors": "Call us"}}, "settings.thank_you"),
    ({"questions": [{**NPS, "review_invite": {"url": "https://g.page/r/x/review"}}]}, "settings.questions[0]"),
    ({**SURVEY, "review_for_promoters": "https://g.page/r/x/review"}, "settings.review_for_promoters"),
])
def test_a_review_invitation_that_depends_on_the_answers_is_refused_citing_the_rules(client, manager, settings_,
                                                                                      field):
    message = _fields(_post(client, manager, settings_))[field]
    assert "review gating" in message and "16 CFR 465" in message and "Google" in message


def test_a_review_invitation_for_everyone_alike_is_accepted(client, manager):
    invite = {"url": "https://g.page/r/x/review", "text": {"en": "Tell others", "de": "Erzählen Sie es"}}
    assert _post(client, manager, {**SURVEY, "review_invite": invite}).status_code == 201


REVIEW = {"destinations": [{"site": "google", "url": "https://g.page/r/x/review"}]}


def _survey_condition(campaign_id: int, op: str = "gte", value: int = 9) -> dict:
    return {"field": "survey_answer", "op": op, "value": {"campaign": campaign_id, "question": "nps", "value": value}}


@pytest.mark.parametrize("shape", ["inline", "nested_any_not", "exclude", "segment", "segment_nested"])
def test_a_review_campaign_whose_audience_depends_on_survey_answers_is_refused(client, manager, shape):
    survey = create(client, manager, "survey", SURVEY)
    cond = _survey_condition(survey["id"])
    extra: dict = {}
    if shape == "inline":
        extra["filter"] = cond
    elif shape == "nested_any_not":
        extra["filter"] = {"all": [{"field": "kind", "op": "eq", "value": "fan"},
                                            {"any": [{"field": "language", "op": "eq", "value": "de"},
                                                     {"not": {"not": cond}}]}]}
    elif shape == "exclude":
        extra["exclude"] = _survey_condition(survey["id"], "lte", 6)
    else:
        definition = cond if shape == "segment" else {"not": {"any": [_survey_condition(survey["id"], "lte", 6)]}}
        segment = client.post("/api/v1/segments", headers=manager, json={"name": f"seg {shape}", "definition": definition})
        assert segment.status_code == 201, segment.get_json()
        extra["segment_id"] = segment.get_json()["id"]
    message = _fields(_post(client, manager, REVIEW, kind="review", audience=extra))["audience"]
    assert "review gating" in message and "16 CFR 465" in message


def test_a_review_campaign_cannot_be_updated_to_a_survey_audience_but_a_share_campaign_may_target_promoters(
        client, manager):
    survey = create(client, manager, "survey", SURVEY)
    review = create(client, manager, "review", REVIEW)
    patched = client.patch(f"/api/v1/campaigns/{review['id']}", headers=manager,
                           json={"audience": {"filter": _survey_condition(survey["id"])}})
    assert "audience" in _fields(patched)
    share = {"url": "https://company.example/", "text": "Have a look"}
    assert _post(client, manager, share, kind="share",
                 audience={"filter": _survey_condition(survey["id"])}).status_code == 201


@pytest.mark.parametrize(("value", "field"), [
    ({"campaign": 999999, "question": "nps", "value": 6}, "definition.value.campaign"),
    ({"campaign": "x", "question": "nps", "value": 6}, "definition.value.campaign"),
    ({"campaign": None, "question": "nope", "value": 6}, "definition.value.campaign"),
    ({"question": "nps"}, "definition.value.campaign"),
    ({"campaign": "SURVEY", "question": "nope", "value": 6}, "definition.value.question"),
    ({"campaign": "SURVEY", "question": "nps", "value": "six"}, "definition.value.value"),
    ({"campaign": "SURVEY", "question": "nps", "value": 6, "extra": 1}, "definition.value"),
])
def test_bad_survey_answer_conditions_name_the_path(client, manager, value, field):
    survey = create(client, manager, "survey", SURVEY)
    if value.get("campaign") == "SURVEY":
        value = {**value, "campaign": survey["id"]}
    response = client.post("/api/v1/segments/preview", headers=manager,
                           json={"definition": {"field": "survey_answer", "op": "lte", "value": value}})
    assert field in _fields(response)


def test_a_segment_edited_to_use_survey_answers_stops_the_review_campaign_at_launch(client, manager, db):
    from tests.factories import make_supporter

    make_supporter("ada@example.org")
    survey = create(client, manager, "survey", SURVEY)
    segment = client.post("/api/v1/segments", headers=manager,
                          json={"name": "fans", "definition": {"field": "kind", "op": "eq", "value": "fan"}}).get_json()
    review = create(client, manager, "review", REVIEW, audience={"segment_id": segment["id"]})
    edited = client.patch(f"/api/v1/segments/{segment['id']}", headers=manager,
                          json={"definition": {"all": [{"field": "kind", "op": "eq", "value": "fan"},
                                                       _survey_condition(survey["id"])]}})
    assert edited.status_code == 200, edited.get_json()
    launched = client.post(f"/api/v1/campaigns/{review['id']}/launch", headers=manager)
    assert "16 CFR 465" in _fields(launched)["audience"]


@pytest.mark.parametrize("site", ["yelp", "amazon"])
def test_a_survey_cannot_invite_to_a_site_that_forbids_asking_for_reviews(client, manager, site):
    invite = {"url": "https://www.example.com/review", "site": site}
    assert "settings.review_invite.site" in _fields(_post(client, manager, {**SURVEY, "review_invite": invite}))
