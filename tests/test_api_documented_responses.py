"""Real responses of the campaign, campaign-result and job endpoints match the OpenAPI document.

Schemathesis mostly meets 404s on these (its database has no campaigns or jobs); here each endpoint
answers with real data (a launched, sent campaign; a poll; a finished export) and every body is
validated against the schema the document gives for that status.
"""

import copy

import jsonschema_rs
import pytest
import sqlalchemy as sa

from api.openapi import build_spec
from campaigns.models import Delivery
from core.queues import make_worker
from supporters.models import Segment
from tests.actions_helpers import auth
from tests.engine_helpers import BODY, run_worker
from tests.factories import make_supporter


@pytest.fixture
def settings(migrated, smtp_sink):
    return {**migrated, "SMTP_URL": smtp_sink.url, "RATELIMIT_ENABLED": "0"}


def _json_schema(node):
    """OpenAPI 3.0 `nullable` as JSON Schema (`type: [t, "null"]`), refs pointing at `definitions`."""
    if isinstance(node, list):
        return [_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    node = {k: _json_schema(v) for k, v in node.items()}
    if "$ref" in node:
        node["$ref"] = node["$ref"].replace("#/components/schemas/", "#/definitions/")
    if node.pop("nullable", False):
        if "type" in node:
            node["type"] = [node["type"], "null"]
        if "enum" in node and None not in node["enum"]:
            node["enum"] = [*node["enum"], None]
        if "$ref" in node or "allOf" in node:
            node = {"anyOf": [node, {"type": "null"}]}
    return node


class Checker:
    def __init__(self, app):
        self.document = build_spec(app)
        self.definitions = _json_schema(copy.deepcopy(self.document["components"]["schemas"]))
        self.checked = set()

    def check(self, response, path: str, method: str):
        operation = self.document["paths"][path][method]
        answer = operation["responses"].get(str(response.status_code))
        assert answer is not None, (path, method, response.status_code, response.get_json())
        schema = answer["content"]["application/json"]["schema"]
        jsonschema_rs.validate({**_json_schema(schema), "definitions": self.definitions}, response.get_json())
        self.checked.add((path, method))
        return response.get_json()


def test_campaign_result_and_job_responses_match_their_documented_schemas(app, client, db, smtp_sink):
    docs = Checker(app)
    manager = auth("manager")
    for _ in range(2):
        make_supporter(kind="supplier")
    make_supporter(kind="fan")
    segment = Segment(name="Suppliers", definition={"field": "kind", "op": "eq", "value": "supplier"})
    db.session.add(segment)
    db.session.commit()
    base = "/api/v1/campaigns"
    one = "/api/v1/campaigns/{campaign_id}"
    created = docs.check(client.post(base, headers=manager, json={
        "name": "News", "audience": {"segment_id": segment.id},
        "contents": {"en": {"subject": "Hi {{first_name}}", "body": BODY}}}), base, "post")
    cid = created["id"]
    docs.check(client.patch(f"{base}/{cid}", headers=manager, json={"name": "Supplier news"}), one, "patch")
    docs.check(client.get(base, headers=manager, query_string={"limit": 1}), base, "get")
    docs.check(client.get(f"{base}/{cid}", headers=manager), one, "get")
    docs.check(client.post(f"{base}/{cid}/preview", headers=manager), one + "/preview", "post")
    docs.check(client.post(f"{base}/{cid}/test", headers=manager, json={"to": "me@example.org"}), one + "/test", "post")
    launched = docs.check(client.post(f"{base}/{cid}/launch", headers=manager), one + "/launch", "post")
    assert launched["queued"] == 2
    docs.check(client.post(f"{base}/{cid}/pause", headers=manager), one + "/pause", "post")
    docs.check(client.post(f"{base}/{cid}/resume", headers=manager), one + "/resume", "post")
    run_worker(app)
    stats = docs.check(client.get(f"{base}/{cid}/stats", headers=manager), one + "/stats", "get")
    assert stats["deliveries"]["sent"] == 2
    docs.check(client.get(f"{base}/{cid}/results", headers=manager), one + "/results", "get")
    docs.check(client.get(f"{base}/{cid}/actions", headers=manager), one + "/actions", "get")
    delivery_id = db.session.scalar(sa.select(sa.func.min(Delivery.id)).where(Delivery.campaign_id == cid))
    bounce = docs.check(client.post(f"{base}/bounces", headers=manager, json={"delivery_id": delivery_id}),
                        f"{base}/bounces", "post")
    assert bounce["suppressed"] is True
    poll = docs.check(client.post(base, headers=manager, json={
        "name": "Poll", "kind": "vote",
        "settings": {"type": "poll", "question": "When?", "options": ["Mornings", "Evenings"]},
        "contents": {"en": {"subject": "Vote", "body": "Please [vote]({{action_url}})"}}}), base, "post")
    docs.check(client.get(f"{base}/{poll['id']}/results", headers=manager), one + "/results", "get")
    docs.check(client.post(f"{base}/{poll['id']}/cancel", headers=manager), one + "/cancel", "post")

    job = docs.check(client.post("/api/v1/exports/supporters", headers=manager, json={"kind": ["fan"]}),
                     "/api/v1/exports/supporters", "post")
    docs.check(client.post("/api/v1/exports/consents", headers=manager, json={}), "/api/v1/exports/consents", "post")
    make_worker(app, ["default", "mail"]).work(burst=True)
    done = docs.check(client.get(f"/api/v1/jobs/{job['id']}", headers=manager), "/api/v1/jobs/{job_id}", "get")
    assert done["status"] == "done" and done["download"] is not None, done
    assert len(docs.checked) == 17


def test_the_settings_responses_match_their_documented_schema(app, client, db):
    docs = Checker(app)
    docs.check(client.get("/api/v1/settings", headers=auth("viewer")), "/api/v1/settings", "get")
    changed = docs.check(client.put("/api/v1/settings", headers=auth("admin"), json={
        "organisation_name": "Beispiel GmbH", "postal_address": "Hauptstraße 1\n12345 Musterstadt",
        "accent_color": "#aa3300", "logo_url": None}), "/api/v1/settings", "put")
    assert changed["effective"]["accent_color"] == "#aa3300"
