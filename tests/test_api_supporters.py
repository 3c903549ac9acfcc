"""Supporters through the API: list, filter, page, create, change, tag, ledger, export, erase."""

import pytest
import sqlalchemy as sa

from core.accounts import AuditEvent
from core.queues import get_queue
from supporters.models import (
    ConsentEvent,
    Supporter,
    SupporterStatus,
    Suppression,
    email_hash,
    supporter_tags,
)
from tests.api_support import ApiCaller, assert_problem
from tests.factories import make_supporter, make_tag

EVIDENCE = {"obtained_at": "2026-01-15T10:00:00Z", "how": "signed the paper form at the trade fair",
            "text": "Yes, you may ask me to support the company.", "text_version": "v3"}


@pytest.fixture
def api(app, db):
    return ApiCaller(app, db)


def test_creating_with_consent_evidence_makes_an_active_supporter_with_a_ledger_entry(api, db):
    make_tag("press")
    r = api.post("/supporters", {"email": "Ada@Example.org", "name": "Ada", "kind": "supplier",
                                 "tags": ["press"], "consent": EVIDENCE}, role="manager")
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert body["status"] == "active" and body["tags"] == ["press"] and body["kind"] == "supplier"
    assert r.headers["Location"].endswith(f"/api/v1/supporters/{body['id']}") and r.headers["ETag"]
    event = db.session.scalar(sa.select(ConsentEvent))
    assert (event.purpose, event.action, event.method, event.note) == \
        ("campaigns", "granted", "api", EVIDENCE["how"])
    assert event.text_hash and len(event.text_hash) == 64
    assert get_queue("mail").count == 0
    audit = db.session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "supporter.create"))
    assert audit.actor_type == "token" and audit.object_id == str(body["id"])


def test_creating_without_evidence_makes_a_pending_supporter_and_queues_the_opt_in_mail(api, db):
    r = api.post("/supporters", {"email": "bob@example.org"}, role="manager")
    assert r.status_code == 201
    assert r.get_json()["status"] == "pending"
    jobs = get_queue("mail").get_jobs()
    assert [(j.func_name, j.args) for j in jobs] == [("supporters.join.send_confirmation", (r.get_json()["id"],))]
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ConsentEvent)) == 0


def test_a_duplicate_or_suppressed_address_is_a_conflict(api, db):
    make_supporter("taken@example.org")
    assert_problem(api.post("/supporters", {"email": "TAKEN@example.org"}), 409)
    db.session.add(Suppression(email_hash=email_hash("gone@example.org"), reason="erased"))
    db.session.commit()
    assert_problem(api.post("/supporters", {"email": "gone@example.org", "consent": EVIDENCE}), 409)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Supporter)) == 1


def test_bad_bodies_are_problems_naming_the_field_and_change_nothing(api, db):
    cases = [
        ({"email": "not-an-address"}, "email"),
        ({"email": "a@example.org", "colour": "red"}, "colour"),
        ({"email": "a@example.org", "kind": "alien"}, "kind"),
        ({"email": "a@example.org", "name": "x" * 201}, "name"),
        ({"email": "a@example.org", "country": "Germany"}, "country"),
        ({"email": "a@example.org", "timezone": "Mars/Olympus"}, "timezone"),
        ({"email": "a@example.org", "tags": ["nope"]}, "tags"),
        ({"email": "a@example.org", "consent": {"how": "x"}}, "consent.obtained_at"),
        ({"email": "a@example.org", "consent": {**EVIDENCE, "obtained_at": "2999-01-01T00:00:00Z"}},
         "consent.obtained_at"),
        ({"email": 12}, "email"),
        ({"email": "a@example.org", "asks_per_month": "4"}, "asks_per_month"),
    ]
    for body, field in cases:
        assert_problem(api.post("/supporters", body), 422, field)
    assert_problem(api.post("/supporters", data="{not json", content_type="application/json"), 400)
    assert_problem(api.post("/supporters", data="email=a@example.org",
                            content_type="application/x-www-form-urlencoded"), 415)
    assert_problem(api.post("/supporters", [1, 2]), 422, "body")
    assert_problem(api.post("/supporters", data='{"email": NaN}', content_type="application/json"), 400)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Supporter)) == 0


def test_listing_filters_and_pages_with_a_stable_cursor(api, db):
    press = make_tag("press")
    people = [make_supporter(f"p{i}@example.org", kind="fan" if i % 2 else "supplier", language="de" if i < 4 else "en")
              for i in range(7)]
    db.session.execute(supporter_tags.insert(), [{"tag_id": press.id, "supporter_id": p.id} for p in people[:5]])
    db.session.commit()
    seen, url = [], "/supporters?limit=2&kind=fan&tag=press"
    while url:
        r = api.get(url, role="viewer")
        assert r.status_code == 200, r.get_json()
        seen += [s["email"] for s in r.get_json()["items"]]
        nxt = r.get_json()["next"]
        url = nxt.split("/api/v1", 1)[1] if nxt else None
    assert seen == ["p1@example.org", "p3@example.org"]
    vip = make_tag("vip")
    db.session.execute(supporter_tags.insert(), [{"tag_id": vip.id, "supporter_id": p.id} for p in people[3:]])
    db.session.commit()
    both = api.get("/supporters?tag=vip&tag=press&limit=1").get_json()
    assert "items" in both, both
    assert [s["email"] for s in both["items"]] == ["p3@example.org"]
    rest = api.get(both["next"].split("/api/v1", 1)[1]).get_json()
    assert [s["email"] for s in rest["items"]] == ["p4@example.org"] and rest["next"] is None
    assert [s["email"] for s in api.get("/supporters?language=de&q=P2").get_json()["items"]] == ["p2@example.org"]
    assert api.get("/supporters?status=pending").get_json()["items"] == []
    assert len(api.get("/supporters?joined_after=2000-01-01T00:00:00Z").get_json()["items"]) == 7
    assert api.get("/supporters?joined_before=2000-01-01T00:00:00Z").get_json()["items"] == []
    people[6].referred_by_id = people[0].id
    db.session.commit()
    assert [s["email"] for s in api.get(f"/supporters?referred_by={people[0].id}").get_json()["items"]] == \
        ["p6@example.org"]


def test_bad_query_strings_are_problems(api):
    assert_problem(api.get("/supporters?limit=501"), 422, "limit")
    assert_problem(api.get("/supporters?limit=abc"), 422, "limit")
    assert_problem(api.get("/supporters?cursor=garbage!!"), 400)
    assert_problem(api.get("/supporters?cursor=eyJrIjogImEifQ"), 400)  # {"k": "a"}
    assert_problem(api.get("/supporters?colour=red"), 422, "colour")
    assert_problem(api.get("/supporters?tag=unknown"), 422, "tag")
    assert_problem(api.get("/supporters?joined_after=yesterday"), 422, "joined_after")
    assert_problem(api.get("/supporters/99999999999999999999999"), 404)


def test_text_search_and_filters_cannot_inject_sql(api, db):
    make_supporter("x@example.org")
    for evil in ("' OR 1=1 --", "%", "_", "\\"):
        r = api.get("/supporters", query_string={"q": evil})
        assert r.status_code == 200 and r.get_json()["items"] == []
    r = api.get("/supporters", query_string={"country": "' OR '1'='1"})
    assert_problem(r, 422, "country")
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Supporter)) == 1


def test_patch_honours_if_match_and_records_the_changed_fields(api, db):
    person = make_supporter("p@example.org")
    r = api.get(f"/supporters/{person.id}")
    etag = r.headers["ETag"]
    r = api.patch(f"/supporters/{person.id}", {"name": "New Name", "country": "de"}, headers={"If-Match": etag})
    assert r.status_code == 200 and r.get_json()["country"] == "DE" and r.headers["ETag"] != etag
    assert_problem(api.patch(f"/supporters/{person.id}", {"name": "Lost"}, headers={"If-Match": etag}), 412)
    assert_problem(api.patch(f"/supporters/{person.id}", {"email": "new@example.org"}), 422, "email")
    assert_problem(api.patch(f"/supporters/{person.id}", {"kind": None}), 422, "kind")
    db.session.expire_all()
    assert db.session.get(Supporter, person.id).name == "New Name"
    audit = db.session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "supporter.update"))
    assert audit.detail == {"fields": ["name", "country"]}


def test_bulk_tagging_by_ids_by_filter_and_untagging(api, db):
    make_tag("press"), make_tag("vip")
    a, b, c = (make_supporter(kind=k) for k in ("fan", "fan", "supplier"))
    r = api.post("/supporters/tagging", {"supporter_ids": [a.id, b.id], "add": ["press"]}, role="manager")
    assert r.get_json() == {"added": 2, "removed": 0}
    r = api.post("/supporters/tagging", {"supporter_ids": [a.id, b.id], "add": ["press"]}, role="manager")
    assert r.get_json() == {"added": 0, "removed": 0}  # tagging twice changes nothing
    r = api.post("/supporters/tagging", {"filter": {"field": "kind", "op": "eq", "value": "supplier"},
                                         "add": ["vip"], "remove": ["press"]}, role="manager")
    assert r.get_json() == {"added": 1, "removed": 0}
    r = api.post("/supporters/tagging", {"filter": {"field": "tags", "op": "has", "value": "press"},
                                         "remove": ["press"]}, role="manager")
    assert r.get_json() == {"added": 0, "removed": 2}
    assert api.get(f"/supporters/{c.id}").get_json()["tags"] == ["vip"]
    assert_problem(api.post("/supporters/tagging", {"add": ["vip"]}), 422, "body")
    assert_problem(api.post("/supporters/tagging", {"supporter_ids": [a.id]}), 422, "add")
    assert_problem(api.post("/supporters/tagging", {"supporter_ids": [a.id], "add": ["nope"]}), 422, "add")
    assert_problem(api.post("/supporters/tagging", {"filter": {"field": "x"}, "add": ["vip"]}), 422, "filter.field")


def test_tag_index_follows_the_join_table_on_postgresql(api, db):
    if db.engine.dialect.name != "postgresql":
        return
    press = make_tag("press")
    person = make_supporter()
    api.post("/supporters/tagging", {"supporter_ids": [person.id], "add": ["press"]})
    assert db.session.execute(sa.text("SELECT tag_ids FROM supporters")).scalar() == [press.id]
    api.delete(f"/tags/{press.id}")
    assert db.session.execute(sa.text("SELECT tag_ids FROM supporters")).scalar() == []


def test_consent_ledger_and_export_answer_a_data_access_request(api, db):
    friend = make_supporter("friend@example.org")
    person = make_supporter("me@example.org", referred_by_id=None)
    friend.referred_by_id = person.id
    db.session.commit()
    r = api.get(f"/supporters/{person.id}/consents", role="viewer")
    assert [e["action"] for e in r.get_json()["items"]] == ["granted"]
    assert_problem(api.get(f"/supporters/{person.id}/export", role="viewer"), 403)
    r = api.get(f"/supporters/{person.id}/export", role="manager")
    record = r.get_json()
    assert r.status_code == 200, record
    assert record["profile"]["email"] == "me@example.org" and record["referrals"][0]["id"] == friend.id
    assert db.session.scalar(sa.select(AuditEvent.action).where(AuditEvent.action == "supporter.export"))


def test_delete_erases_the_person_keeps_counts_and_audits_without_personal_data(api, db):
    press = make_tag("press")
    person = make_supporter("erase.me@example.org", name="Erika Mustermann")
    db.session.execute(supporter_tags.insert().values(tag_id=press.id, supporter_id=person.id))
    db.session.commit()
    r = api.delete(f"/supporters/{person.id}", role="manager")
    assert r.status_code == 204
    assert api.delete(f"/supporters/{person.id}", role="manager").status_code == 204  # twice is fine
    body = api.get(f"/supporters/{person.id}").get_json()
    assert body["status"] == "erased" and body["email"] is None and body["name"] is None and body["tags"] == []
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Supporter)) == 1
    assert db.session.scalar(sa.select(Suppression.email_hash)) == email_hash("erase.me@example.org")
    events = db.session.scalars(sa.select(AuditEvent)).all()
    assert "supporter.erase" in [e.action for e in events]
    for e in events:
        text = f"{e.detail} {e.object_id} {e.actor_label}"
        assert "erase.me" not in text and "Mustermann" not in text
    assert_problem(api.patch(f"/supporters/{person.id}", {"name": "Back"}), 409)
    assert_problem(api.post("/supporters", {"email": "erase.me@example.org", "consent": EVIDENCE}), 409)
    assert db.session.get(Supporter, person.id).status is SupporterStatus.ERASED


def test_text_no_database_can_store_is_refused_with_its_path(api, db):
    body = '{"email": "a@example.org", "name": "Ada\\u0000"}'
    assert_problem(api.post("/supporters", data=body, content_type="application/json"), 422, "name")
    body = '{"email": "a@example.org", "consent": {"how": "paper \\ud800 form", "obtained_at": "2026-01-01T00:00:00Z"}}'
    assert_problem(api.post("/supporters", data=body, content_type="application/json"), 422, "consent.how")
    assert_problem(api.get("/supporters/1", headers={"Authorization": "Bearer spk_\x01"}, role=None), 401)
    assert_problem(api.get("/tags/2147483648"), 404)  # beyond the 32-bit key: no row, no overflow
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Supporter)) == 0


def test_the_fast_dump_matches_the_documented_schema(api, db):
    from api.supporters import SupporterOut

    make_supporter("shape@example.org", country="DE")
    item = api.get("/supporters").get_json()["items"][0]
    assert set(item) == set(SupporterOut._declared_fields)
    assert SupporterOut().validate(item) == {}
