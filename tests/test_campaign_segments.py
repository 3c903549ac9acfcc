"""Campaigns aimed at a saved segment: audience = segment AND inline filter, minus exclusions."""

import pytest
import sqlalchemy as sa

from campaigns.models import Campaign, Delivery
from supporters.models import Segment
from tests.factories import make_supporter
from tests.test_campaign_api import create, payload


@pytest.fixture
def settings(migrated, smtp_sink):
    return {**migrated, "SMTP_URL": smtp_sink.url, "RATELIMIT_ENABLED": "0"}


@pytest.fixture
def manager(db):
    from tests.test_campaign_api import _auth

    return _auth(db, "manager")


@pytest.fixture
def suppliers(db):
    """Two English suppliers, one German supplier, one English fan; a segment of the suppliers."""
    people = {"en1": make_supporter(kind="supplier", country="GB"), "en2": make_supporter(kind="supplier"),
              "de": make_supporter(kind="supplier", language="de"), "fan": make_supporter(kind="fan")}
    segment = Segment(name="Suppliers", definition={"field": "kind", "op": "eq", "value": "supplier"})
    db.session.add(segment)
    db.session.commit()
    return {"segment": segment, **people}


ENGLISH = {"field": "language", "op": "eq", "value": "en"}


def test_a_campaign_names_a_saved_segment_and_reads_it_back(client, manager, suppliers):
    body = create(client, manager, audience={"segment_id": suppliers["segment"].id})
    assert body["audience"]["segment_id"] == suppliers["segment"].id
    got = client.get(f"/api/v1/campaigns/{body['id']}", headers=manager).json
    assert got["audience"] == {"filter": None, "exclude": None, "segment_id": suppliers["segment"].id}


def test_preview_counts_the_segment_and_the_inline_filter_together(client, manager, suppliers):
    only_segment = create(client, manager, audience={"segment_id": suppliers["segment"].id})
    preview = client.post(f"/api/v1/campaigns/{only_segment['id']}/preview", headers=manager).json
    assert preview["audience"] == 3 and preview["recipients"] == 2 and preview["left_out"]["no_content"] == 1
    both = create(client, manager, audience={"segment_id": suppliers["segment"].id, "filter": ENGLISH})
    preview = client.post(f"/api/v1/campaigns/{both['id']}/preview", headers=manager).json
    assert preview["audience"] == 2 and preview["recipients"] == 2


def test_exclusions_still_apply_to_a_segment_audience(client, manager, suppliers):  # en1 is in GB
    excluded = {"field": "country", "op": "eq", "value": "GB"}
    body = create(client, manager, audience={"segment_id": suppliers["segment"].id, "filter": ENGLISH,
                                             "exclude": excluded})
    preview = client.post(f"/api/v1/campaigns/{body['id']}/preview", headers=manager).json
    assert preview["recipients"] == 1 and preview["left_out"]["excluded"] == 1


def test_launch_snapshots_the_segment_audience_and_later_edits_do_not_change_it(client, manager, suppliers, db):
    segment = suppliers["segment"]
    body = create(client, manager, audience={"segment_id": segment.id, "filter": ENGLISH})
    launched = client.post(f"/api/v1/campaigns/{body['id']}/launch", headers=manager)
    assert launched.status_code == 202 and launched.json["queued"] == 2
    members = set(db.session.scalars(sa.select(Delivery.supporter_id).where(Delivery.campaign_id == body["id"])))
    assert members == {suppliers["en1"].id, suppliers["en2"].id}
    # The segment can now change or go: the snapshot already froze the audience.
    etag = client.get(f"/api/v1/segments/{segment.id}", headers=manager).headers["ETag"]
    deleted = client.delete(f"/api/v1/segments/{segment.id}", headers={**manager, "If-Match": etag})
    assert deleted.status_code == 204
    db.session.expire_all()
    assert db.session.get(Campaign, body["id"]).segment_id is None  # ON DELETE SET NULL
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Delivery)
                             .where(Delivery.campaign_id == body["id"])) == 2


def test_before_launch_the_current_definition_applies(client, manager, suppliers, db):
    segment = suppliers["segment"]
    body = create(client, manager, audience={"segment_id": segment.id})
    segment.definition = {"field": "kind", "op": "eq", "value": "fan"}
    db.session.commit()
    preview = client.post(f"/api/v1/campaigns/{body['id']}/preview", headers=manager).json
    assert preview["audience"] == 1 and preview["recipients"] == 1


def test_a_segment_used_by_an_unlaunched_campaign_cannot_be_deleted(client, manager, suppliers, db):
    segment = suppliers["segment"]
    create(client, manager, name="Supplier news", audience={"segment_id": segment.id})
    etag = client.get(f"/api/v1/segments/{segment.id}", headers=manager).headers["ETag"]
    refused = client.delete(f"/api/v1/segments/{segment.id}", headers={**manager, "If-Match": etag})
    assert refused.status_code == 409 and "Supplier news" in refused.json["detail"]
    db.session.expire_all()
    assert db.session.get(Segment, segment.id) is not None


@pytest.mark.parametrize("method", ["post", "patch"])
def test_an_unknown_segment_is_a_422_naming_the_field_and_nothing_changes(client, manager, db, method):
    if method == "post":
        response = client.post("/api/v1/campaigns", json=payload(audience={"segment_id": 999}), headers=manager)
        count = db.session.scalar(sa.select(sa.func.count()).select_from(Campaign))
        assert count == 0
    else:
        cid = create(client, manager)["id"]
        response = client.patch(f"/api/v1/campaigns/{cid}", json={"audience": {"segment_id": 999}}, headers=manager)
        db.session.expire_all()
        assert db.session.get(Campaign, cid).segment_id is None
    assert response.status_code == 422, response.json
    assert [e["field"] for e in response.json["errors"]] == ["audience.segment_id"]


def test_listing_campaigns_after_an_id_beyond_any_campaign_is_a_422_not_an_overflow(client, manager):
    response = client.get("/api/v1/campaigns", query_string={"after": 2**33}, headers=manager)
    assert response.status_code == 422 and response.json["errors"][0]["field"] == "after"


def test_review_rules_read_the_saved_segment_at_creation_and_again_at_launch(client, db, manager):
    from tests.actions_helpers import create as create_action

    kununu = {"destinations": [{"site": "kununu", "url": "https://www.kununu.com/de/company"}]}
    make_supporter(kind="former_employee")
    formers = Segment(name="Former staff", definition={"field": "kind", "op": "eq", "value": "former_employee"})
    fans = Segment(name="Fans", definition={"field": "kind", "op": "eq", "value": "fan"})
    db.session.add_all([formers, fans])
    db.session.commit()
    # Only former employees may review on kununu: a segment of them passes without a warning …
    ok = create_action(client, manager, "review", kununu, audience={"segment_id": formers.id})
    assert ok["warnings"] == []
    # … a segment of fans is refused, as the same condition written inline would be.
    refused = create_action(client, manager, "review", kununu, status=422, audience={"segment_id": fans.id})
    assert any("only former_employee" in e["message"] for e in refused["errors"])
    # Someone edits the segment after the campaign was created: the launch checks again.
    etag = client.get(f"/api/v1/segments/{formers.id}", headers=manager).headers["ETag"]
    edited = client.patch(f"/api/v1/segments/{formers.id}", headers={**manager, "If-Match": etag},
                          json={"definition": {"field": "kind", "op": "eq", "value": "fan"}})
    assert edited.status_code == 200, edited.get_json()
    launch = client.post(f"/api/v1/campaigns/{ok['id']}/launch", headers=manager)
    assert launch.status_code == 422, launch.get_json()
    assert "only former_employee" in str(launch.get_json())
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Delivery)) == 0
