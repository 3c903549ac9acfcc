"""Tags, segments, users, tokens, the audit trail and idempotent POSTs through the API."""

import pytest
import sqlalchemy as sa

from core.accounts import ApiToken, AuditEvent
from supporters.models import ConsentAction, ConsentEvent, Segment, Tag
from tests.api_support import ApiCaller, assert_problem
from tests.factories import make_supporter, make_tag


@pytest.fixture
def api(app, db):
    return ApiCaller(app, db)


def test_tags_crud_with_the_public_flag(api, db):
    r = api.post("/tags", {"name": "Climate", "public": True, "label_de": "Klima", "label_en": "Climate"},
                 role="manager")
    assert r.status_code == 201 and r.get_json()["public"] is True
    tag_id = r.get_json()["id"]
    assert_problem(api.post("/tags", {"name": "climate"}, role="manager"), 409)
    assert [t["name"] for t in api.get("/tags?public=true", role="viewer").get_json()["items"]] == ["Climate"]
    assert api.get("/tags?public=false").get_json()["items"] == []
    etag = api.get(f"/tags/{tag_id}").headers["ETag"]
    r = api.patch(f"/tags/{tag_id}", {"public": False}, headers={"If-Match": etag}, role="manager")
    assert r.status_code == 200 and r.get_json()["public"] is False
    assert_problem(api.patch(f"/tags/{tag_id}", {"public": True}, headers={"If-Match": etag}), 412)
    person = make_supporter()
    api.post("/supporters/tagging", {"supporter_ids": [person.id], "add": ["Climate"]})
    assert api.get(f"/tags/{tag_id}").get_json()["members"] == 1
    assert api.delete(f"/tags/{tag_id}", role="manager").status_code == 204
    assert_problem(api.get(f"/tags/{tag_id}"), 404)
    assert api.get(f"/supporters/{person.id}").get_json()["tags"] == []
    for bad, field in (({"name": ""}, "name"), ({"name": "x" * 81}, "name"), ({"name": "a\x00b"}, "name"),
                       ({"name": "ok", "public": "yes please"}, "public"), ({"name": "ok", "owner": 1}, "owner")):
        assert_problem(api.post("/tags", bad), 422, field)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Tag)) == 0


@pytest.fixture
def audience(db):
    press = make_tag("press")
    a = make_supporter("a@example.org", kind="fan", engagement_score=5.0)
    b = make_supporter("b@example.org", kind="fan", referred_by_id=a.id)
    c = make_supporter("c@example.org", kind="supplier", referred_by_id=a.id)
    d = make_supporter("d@example.org", kind="fan", status="pending", consent=False)
    db.session.add(ConsentEvent(supporter=b, purpose="campaigns", action=ConsentAction.WITHDRAWN, method="test"))
    from supporters.models import supporter_tags

    db.session.execute(supporter_tags.insert(), [{"tag_id": press.id, "supporter_id": s.id} for s in (a, b, d)])
    db.session.commit()
    return a, b, c, d


def test_saved_segments_count_and_preview(api, db, audience):
    definition = {"all": [{"field": "kind", "op": "eq", "value": "fan"},
                          {"field": "tags", "op": "has", "value": "press"},
                          {"field": "status", "op": "eq", "value": "active"}]}
    r = api.post("/segments", {"name": "Active press fans", "definition": definition}, role="manager")
    assert r.status_code == 201, r.get_json()
    segment_id = r.get_json()["id"]
    assert api.get(f"/segments/{segment_id}/count", role="viewer").get_json() == {"count": 2}
    preview = api.get(f"/segments/{segment_id}/preview?limit=1", role="viewer").get_json()
    assert preview["count"] == 2 and [s["email"] for s in preview["items"]] == ["a@example.org"]
    assert_problem(api.post("/segments", {"name": "active press FANS", "definition": definition}), 409)
    etag = api.get(f"/segments/{segment_id}").headers["ETag"]
    r = api.patch(f"/segments/{segment_id}", {"definition": {"field": "kind", "op": "eq", "value": "supplier"}},
                  headers={"If-Match": etag})
    assert r.status_code == 200
    assert api.get(f"/segments/{segment_id}/count").get_json() == {"count": 1}
    assert_problem(api.patch(f"/segments/{segment_id}", {"name": "x"}, headers={"If-Match": etag}), 412)
    assert api.delete(f"/segments/{segment_id}").status_code == 204
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Segment)) == 0


@pytest.mark.parametrize("definition, expected", [
    ({"field": "referrals", "op": "gte", "value": 2}, ["a@example.org"]),
    ({"field": "referrals", "op": "eq", "value": 0}, ["b@example.org", "c@example.org", "d@example.org"]),
    ({"field": "consent", "op": "given", "value": "campaigns"}, ["a@example.org", "c@example.org"]),
    ({"field": "consent", "op": "not_given", "value": "campaigns"}, ["b@example.org", "d@example.org"]),
    ({"not": {"field": "tags", "op": "has_any", "value": ["press"]}}, ["c@example.org"]),
    ({"field": "tags", "op": "has_none", "value": ["press"]}, ["c@example.org"]),
    ({"all": [{"field": "kind", "op": "eq", "value": "fan"}, {"field": "tags", "op": "has", "value": "press"}]},
     ["a@example.org", "b@example.org", "d@example.org"]),
    ({"field": "tags", "op": "has_all", "value": ["press"]}, ["a@example.org", "b@example.org", "d@example.org"]),
    ({"all": [{"field": "tags", "op": "has", "value": "press"}, {"field": "status", "op": "eq", "value": "active"},
              {"not": {"field": "consent", "op": "given", "value": "campaigns"}}]}, ["b@example.org"]),
    ({"any": [{"field": "engagement", "op": "gt", "value": 1},
              {"field": "kind", "op": "in", "value": ["supplier"]}]}, ["a@example.org", "c@example.org"]),
])
def test_unsaved_definitions_preview_over_every_field(api, audience, definition, expected):
    r = api.post("/segments/preview", {"definition": definition, "limit": 10}, role="viewer")
    assert r.status_code == 200, r.get_json()
    assert [s["email"] for s in r.get_json()["items"]] == expected
    assert api.post("/segments/count", {"definition": definition}).get_json() == {"count": len(expected)}


@pytest.mark.parametrize("definition, path", [
    ({"field": "colour", "op": "eq", "value": "x"}, "definition.field"),
    ({"all": [{"field": "kind", "op": "like", "value": "fan"}]}, "definition.all[0].op"),
    ({"field": "referrals", "op": "gt", "value": "1 OR 1=1"}, "definition.value"),
    ({"field": "consent", "op": "given", "value": ""}, "definition.value"),
    ({"field": "tags", "op": "has", "value": "nope"}, "definition.value"),
    ({"not": {"not": {"not": {"not": {"not": {"not": {"not": {"not": {"not": {"field": "kind"}}}}}}}}}},
     "definition.not.not.not.not.not.not.not.not.not"),
])
def test_impossible_definitions_are_422_with_the_path_of_the_node(api, audience, definition, path):
    assert_problem(api.post("/segments/count", {"definition": definition}), 422, path)
    assert_problem(api.post("/segments", {"name": "bad", "definition": definition}), 422, path)


def test_users_and_tokens_are_managed_by_admins_and_secrets_shown_once(api, db):
    r = api.post("/users", {"email": "new@example.com", "password": "a long passphrase here", "role": "manager"})
    assert r.status_code == 201, r.get_json()
    user_id = r.get_json()["id"]
    assert_problem(api.post("/users", {"email": "new@example.com", "password": "a long passphrase here"}), 409)
    assert_problem(api.post("/users", {"email": "weak@example.com", "password": "short"}), 422, "password")
    assert_problem(api.post("/users", {"email": "x@example.com", "password": "a long passphrase here",
                                       "role": "root"}), 422, "role")
    r = api.post("/tokens", {"user_id": user_id, "name": "crm sync", "expires_in_days": 30})
    assert r.status_code == 201
    secret, token_id = r.get_json()["secret"], r.get_json()["id"]
    assert secret.startswith("spk_") and r.get_json()["role"] == "manager"
    assert_problem(api.post("/tokens", {"user_id": user_id, "name": "too much", "role": "admin"}), 422, "role")
    listed = api.get(f"/tokens?user_id={user_id}").get_json()["items"]
    assert [t["id"] for t in listed] == [token_id] and "secret" not in listed[0]
    assert secret not in api.get("/tokens").get_data(as_text=True)
    bearer = {"Authorization": f"Bearer {secret}"}
    assert api.client.get("/api/v1/supporters", headers=bearer).status_code == 200
    assert api.delete(f"/tokens/{token_id}").status_code == 204
    assert_problem(api.client.get("/api/v1/supporters", headers=bearer), 401)
    own = db.session.scalar(sa.select(ApiToken).where(ApiToken.name == "admin token"))
    assert_problem(api.delete(f"/tokens/{own.id}"), 409)
    assert_problem(api.delete("/tokens/424242"), 404)
    users = api.get("/users?active=true").get_json()["items"]
    assert {u["email"] for u in users} == {"admin@example.com", "new@example.com"}


def test_every_write_is_in_the_audit_trail_newest_first(api, db):
    api.post("/tags", {"name": "one"})
    api.post("/tags", {"name": "two"})
    trail = api.get("/audit?limit=1").get_json()
    assert trail["items"][0]["action"] == "tag.create" and trail["items"][0]["detail"] == {"name": "two"}
    older = api.get(trail["next"].split("/api/v1", 1)[1]).get_json()
    assert older["items"][0]["detail"] == {"name": "one"} and older["next"] is None
    assert api.get("/audit?action=tag.delete").get_json()["items"] == []
    item = trail["items"][0]
    assert item["actor_type"] == "token" and item["actor_label"].startswith("admin@example.com (token ")
    assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)) == 2


def test_idempotency_key_replays_the_first_response_and_refuses_a_different_body(api, db):
    headers = {"Idempotency-Key": "3f1c2b9e-create-press"}
    first = api.post("/tags", {"name": "press"}, headers=headers, role="manager")
    again = api.post("/tags", {"name": "press"}, headers=headers, role="manager")
    assert first.status_code == again.status_code == 201
    assert again.get_json() == first.get_json() and again.headers["Idempotent-Replayed"] == "true"
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Tag)) == 1
    assert_problem(api.post("/tags", {"name": "other"}, headers=headers, role="manager"), 422)
    # Keys belong to the caller: another token's identical key is a new request.
    assert_problem(api.post("/tags", {"name": "press"}, headers=headers, role="admin"), 409)
    assert_problem(api.post("/tags", {"name": "x"}, headers={"Idempotency-Key": "has space"}), 400)
    # A failed request releases its key, so the corrected retry goes through.
    key = {"Idempotency-Key": "retry-me"}
    assert_problem(api.post("/tags", {"name": ""}, headers=key), 422)
    assert api.post("/tags", {"name": "fixed"}, headers=key).status_code == 201


def test_a_non_ascii_duplicate_tag_name_is_a_conflict_not_a_500(api):
    # SQLite's lower() folds ASCII only: the duplicate check must still see an exact match.
    name = "Über-Fans À"
    assert api.call("POST", "/tags", json={"name": name}).status_code == 201
    again = api.call("POST", "/tags", json={"name": name})
    assert again.status_code == 409
    assert again.mimetype == "application/problem+json"
