"""Hostile input gets a problem+json naming the field, changes nothing, and is never a 500."""


import pytest
import sqlalchemy as sa

from campaigns.models import Campaign
from supporters.models import Segment
from tests.api_support import ApiCaller, assert_problem

CONTENT = {"en": {"subject": "Hello", "body": "Hi {{first_name}}"}}
BAD_TEXT = ["a\x00b", "a\ud800b", "a\x07b", "a\x1bb", "a\x85b"]


@pytest.fixture
def api(app, db):
    return ApiCaller(app, db)


def _count(db, model) -> int:
    db.session.expire_all()
    return db.session.scalar(sa.select(sa.func.count()).select_from(model))


@pytest.mark.parametrize("text", BAD_TEXT)
@pytest.mark.parametrize(("body", "field"), [
    (lambda t: {"name": t, "contents": CONTENT}, "name"),
    (lambda t: {"name": "n", "contents": {"en": {"subject": t, "body": "b"}}}, "contents.en.subject"),
    (lambda t: {"name": "n", "contents": {"en": {"subject": "s", "body": t}}}, "contents.en.body"),
])
def test_control_characters_and_surrogates_in_campaign_text_are_a_422_naming_the_field(api, db, text, body, field):
    assert_problem(api.post("/campaigns", body(text), role="manager"), 422, field)
    assert _count(db, Campaign) == 0


@pytest.mark.parametrize("text", BAD_TEXT)
@pytest.mark.parametrize(("path", "body", "field"), [
    ("/exports/supporters", lambda t: {"tags": [t]}, "tags[0]"),
    ("/tags", lambda t: {"name": t}, "name"),
    ("/segments", lambda t: {"name": t, "definition": {"field": "status", "op": "eq", "value": "active"}}, "name"),
    ("/users", lambda t: {"email": f"x{t}@example.com", "password": "a long password here"}, "email"),
])
def test_control_characters_are_refused_in_every_api_text_field(api, text, path, body, field):
    assert_problem(api.post(path, body(text)), 422, field)


def test_a_petition_answer_is_read_by_the_strict_reader(api):
    r = api.post("/campaigns/1/answer", {"contents": {"en": {"subject": "s", "body": "a\x00b"}}}, role="manager")
    assert_problem(r, 422, "contents.en.body")
    r = api.call("POST", "/campaigns/1/answer", "manager", data="contents=x", content_type="text/plain")
    assert_problem(r, 415)


def test_text_in_query_strings_is_checked_too(api):
    assert_problem(api.get("/supporters?q=a%00b"), 422, "q")


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "1899-12-31"])
def test_dates_outside_1900_to_2200_are_a_422_naming_the_field(api, db, when):
    definition = {"field": "joined", "op": "after", "value": when}
    assert_problem(api.post("/segments", {"name": "old", "definition": definition}), 422, "definition.value")
    assert_problem(api.post("/segments/count", {"definition": definition}), 422, "definition.value")
    between = {"field": "joined", "op": "between", "value": ["2020-01-01", when]}
    assert_problem(api.post("/segments/count", {"definition": between}), 422, "definition.value")
    assert_problem(api.post("/exports/supporters", {"joined_after": when}), 422)
    assert_problem(api.get(f"/supporters?joined_after={when.replace('+', '%2B')}"), 422, "joined_after")
    assert_problem(api.post("/exports/consents", {"since": when if "T" in when else when + "T00:00:00Z"}),
                   422, "since")
    assert_problem(api.post("/campaigns", {"name": "n", "contents": CONTENT, "send_at": when
                                           if "T" in when else when + "T00:00:00Z"}, role="manager"), 422, "send_at")
    assert _count(db, Segment) == 0 and _count(db, Campaign) == 0


def test_a_segment_saved_with_such_a_date_before_the_check_gives_a_422_not_a_500(api, db):
    segment = Segment(name="legacy", definition={"field": "joined", "op": "after", "value": "0001-01-01T00:00:00+01:00"})
    db.session.add(segment)
    db.session.commit()
    assert_problem(api.get(f"/segments/{segment.id}/count"), 422, "definition.value")
    assert_problem(api.get(f"/segments/{segment.id}/preview"), 422, "definition.value")


def test_a_poll_closing_in_year_one_is_refused(api):
    settings = {"type": "poll", "question": "Q?", "options": ["a", "b"], "closes_at": "0001-01-01T00:00:00+01:00"}
    r = api.post("/campaigns", {"name": "v", "kind": "vote", "settings": settings,
                                "contents": {"en": {"subject": "s", "body": "[go]({{action_url}})"}}}, role="manager")
    assert_problem(r, 422, "settings.closes_at")


def test_a_body_over_the_limit_is_a_413_problem_before_it_is_read(api, db):
    api.app.config["MAX_CONTENT_LENGTH"] = 10_000
    big = {"name": "x" * 20_000, "contents": CONTENT}
    for path in ("/campaigns", "/tags", "/exports/supporters", "/segments/count"):
        assert_problem(api.post(path, big, role="manager"), 413)
    assert _count(db, Campaign) == 0


def test_the_default_limit_is_one_megabyte(app):
    assert app.config["MAX_CONTENT_LENGTH"] == 1_000_000


def test_deeply_nested_json_is_a_400_not_a_500(api):
    deep = "[" * 100 + "]" * 100
    r = api.call("POST", "/segments/count", "manager", data=f'{{"definition": {deep}}}',
                 content_type="application/json")
    assert_problem(r, 400)
    deeper = "[" * 200_000 + "]" * 200_000
    r = api.call("POST", "/segments/count", "manager", data=deeper, content_type="application/json")
    assert_problem(r, 400)


def test_an_export_without_a_body_still_starts_with_the_defaults(api):
    r = api.call("POST", "/exports/consents", "manager")
    assert r.status_code == 202, r.get_json()
    assert_problem(api.call("POST", "/exports/consents", "manager", data="x=1", content_type="text/plain"), 415)
    assert_problem(api.call("POST", "/exports/consents", "manager", data="{", content_type="application/json"), 400)


def test_the_openapi_document_lists_413_for_bodies_and_410_for_a_replayed_token(app):
    from api.openapi import build_spec

    paths = build_spec(app)["paths"]
    for path, operations in paths.items():
        for method, op in operations.items():
            if "requestBody" in op:
                assert {"413", "415", "422"} <= set(op["responses"]), (method, path)
    assert "410" in paths["/api/v1/tokens"]["post"]["responses"]
    assert "413" in paths["/api/v1/imports/supporters"]["post"]["responses"]
    assert paths["/api/v1/exports/consents"]["post"]["requestBody"]["required"] is False


@pytest.mark.parametrize(("query", "field"), [("limit=0", "limit"), ("limit=201", "limit"), ("limit=1.5", "limit"),
                                              ("after=-1", "after"), ("after=2147483648", "after"),
                                              ("status=nonsense", "status")])
def test_campaign_list_parameters_out_of_the_documented_range_are_a_422_not_clamped(api, query, field):
    assert_problem(api.get(f"/campaigns?{query}"), 422, field)
    assert api.get("/campaigns?limit=1").status_code == 200


def test_an_if_match_longer_than_documented_is_a_422_and_changes_nothing(api, db):
    tag_id = api.post("/tags", {"name": "vip"}).get_json()["id"]
    etag = api.get(f"/tags/{tag_id}").headers["ETag"]
    r = api.patch(f"/tags/{tag_id}", {"name": "renamed"}, headers={"If-Match": etag + ", " + "x" * 200})
    assert_problem(r, 422, "If-Match")
    assert api.get(f"/tags/{tag_id}").get_json()["name"] == "vip"
    assert api.patch(f"/tags/{tag_id}", {"name": "renamed"}, headers={"If-Match": etag}).status_code == 200
