"""Outgoing webhooks (admin): endpoints, secret rotation, the delivery log, replay and test events.

The event bodies are documented as components (`WebhookEvent_<type>`, with examples) and listed
under `x-webhooks` (this document is OpenAPI 3.0; 3.1 would call that section `webhooks`).
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from flask import jsonify, url_for
from marshmallow import fields, validate

import webhooks.endpoints as service
from api import bp
from api.auth import current_principal, require
from api.conventions import audit, check_if_match, etag_for, load_json, load_query, with_etag
from api.idempotency import idempotent, withhold_from_replay
from api.openapi import DOCUMENT_HOOKS, doc
from api.pagination import keyset_page
from api.schemas import INT_ID_RULE, ApiSchema, Id, PageQuery, Text, Time, page_of
from core import events
from core.events import WebhookAttempt, WebhookEndpoint
from core.extensions import db
from webhooks.ssrf import MAX_URL

EID = f"<{INT_ID_RULE}:endpoint_id>"
TAG = "Webhooks"
TYPES = sorted([*events.EVENT_TYPES, events.ALL])


class EndpointOut(ApiSchema):
    id = fields.Integer(required=True)
    url = fields.String(required=True)
    description = fields.String(allow_none=True, required=True)
    event_types = fields.List(fields.String(), required=True, metadata={"description": "`*` = every type"})
    active = fields.Boolean(required=True)
    headers = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
    owner_email = fields.String(allow_none=True, required=True,
                                metadata={"description": "mailed when the endpoint is disabled for failing"})
    failing_since = fields.DateTime(allow_none=True, required=True)
    disabled_reason = fields.String(allow_none=True, required=True)
    secret_rotating_until = fields.DateTime(allow_none=True, required=True,
                                            metadata={"description": "the previous secret still signs until then"})
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)


class EndpointWithSecretOut(EndpointOut):
    secret = fields.String(required=True, metadata={"description": "the signing secret (`whsec_…`); shown once"})


class EndpointIn(ApiSchema):
    url = Text(required=True, min=1, max=MAX_URL,
               metadata={"description": "http(s); https required in production; no credentials; public addresses"})
    description = Text(max=500, allow_none=True)
    event_types = fields.List(fields.String(validate=validate.OneOf(TYPES)), validate=validate.Length(min=1, max=50),
                              metadata={"description": "event types, or [\"*\"] (the default) for all"})
    active = fields.Boolean(load_default=True)
    headers = fields.Dict(keys=fields.String(validate=validate.Length(min=1, max=100)),
                          values=fields.String(validate=validate.Length(max=1000)),
                          metadata={"description": "custom headers sent with every delivery (at most 20)"})
    owner_email = fields.Email(allow_none=True, validate=validate.Length(max=320))


class EndpointPatch(EndpointIn):
    url = Text(min=1, max=MAX_URL)
    active = fields.Boolean()


class RotateIn(ApiSchema):
    overlap_seconds = fields.Integer(load_default=86400, strict=True,
                                     validate=validate.Range(min=0, max=service.MAX_OVERLAP),
                                     metadata={"description": "how long the old secret keeps signing (both sent)"})


class ReplayIn(ApiSchema):
    event_id = Id(metadata={"description": "one event (webhook-id evt_<id>)"})
    since = Time(metadata={"description": "start of a time range of events (inclusive)"})
    until = Time(metadata={"description": "end of the range (exclusive; default now)"})


class ReplayOut(ApiSchema):
    queued = fields.Integer(required=True)


class TestOut(ApiSchema):
    event_id = fields.Integer(required=True)
    webhook_id = fields.String(required=True)


class AttemptOut(ApiSchema):
    id = fields.Integer(required=True)
    event_id = fields.Integer(required=True)
    webhook_id = fields.String(required=True)
    attempted_at = fields.DateTime(required=True)
    status_code = fields.Integer(allow_none=True, required=True)
    latency_ms = fields.Integer(allow_none=True, required=True)
    response_excerpt = fields.String(allow_none=True, required=True, metadata={"maxLength": 500})
    error = fields.String(allow_none=True, required=True)


class EventTypeOut(ApiSchema):
    type = fields.String(required=True)
    description = fields.String(required=True)
    example = fields.Dict(required=True)


class EventTypesOut(ApiSchema):
    items = fields.List(fields.Nested(EventTypeOut), required=True)


def _dump(endpoint: WebhookEndpoint, schema=EndpointOut, **extra) -> dict:
    rotating = endpoint.previous_secret_until if endpoint.previous_secret else None
    data = {c: getattr(endpoint, c) for c in ("id", "url", "description", "active", "owner_email",
                                              "failing_since", "disabled_reason", "created_at", "updated_at")}
    data.update(event_types=service.event_types_of(endpoint), headers=json.loads(endpoint.headers or "{}"),
                secret_rotating_until=rotating, **extra)
    return schema().dump(data)


def _etag(endpoint: WebhookEndpoint) -> str:
    return etag_for("webhook_endpoint", endpoint.id, endpoint.updated_at, endpoint.active)


@bp.get("/webhooks/event-types")
@doc("List the webhook event types with an example of each", tag=TAG, response=EventTypesOut)
@require("admin")
def list_event_types():
    return jsonify({"items": [{"type": t, "description": d, "example": e} for t, (d, e) in events.EVENT_TYPES.items()]})


@bp.get("/webhooks/endpoints")
@doc("List webhook endpoints (never their secrets)", tag=TAG, query=PageQuery, response=page_of(EndpointOut))
@require("admin")
def list_endpoints():
    args = load_query(PageQuery())
    return jsonify(keyset_page(sa.select(WebhookEndpoint), WebhookEndpoint.id, args,
                               lambda rows: [_dump(e) for e in rows]))


@bp.post("/webhooks/endpoints")
@doc("Create a webhook endpoint; the response holds its signing secret, once", tag=TAG, body=EndpointIn,
     response=EndpointWithSecretOut, status=201, errors=(409, 410), idempotent=True, description=(
         "The URL must resolve to public addresses only (unless WEBHOOK_ALLOWED_HOSTS/NETWORKS permit it); "
         "a replay with the same `Idempotency-Key` answers 410 instead of showing the secret again."))
@require("admin")
@idempotent
def create_endpoint():
    data = load_json(EndpointIn())
    principal = current_principal()
    endpoint, secret = service.create_endpoint(data, principal.user.email if principal else None)
    audit("webhook_endpoint.create", "webhook_endpoint", endpoint.id,
          {"event_types": service.event_types_of(endpoint)})
    db.session.commit()
    withhold_from_replay("secret")
    response = jsonify(_dump(endpoint, EndpointWithSecretOut, secret=secret))
    response.status_code = 201
    response.headers["Location"] = url_for("api.get_endpoint", endpoint_id=endpoint.id)
    return with_etag(response, _etag(endpoint))


@bp.get(f"/webhooks/endpoints/{EID}")
@doc("Get a webhook endpoint", tag=TAG, response=EndpointOut, etag=True)
@require("admin")
def get_endpoint(endpoint_id: int):
    endpoint = service.get_endpoint(endpoint_id)
    return with_etag(jsonify(_dump(endpoint)), _etag(endpoint))


@bp.patch(f"/webhooks/endpoints/{EID}")
@doc("Change a webhook endpoint (active: true enables a disabled one again)", tag=TAG, body=EndpointPatch,
     response=EndpointOut, etag=True)
@require("admin")
def patch_endpoint(endpoint_id: int):
    endpoint = service.get_endpoint(endpoint_id)
    check_if_match(_etag(endpoint))
    data = load_json(EndpointPatch(), partial=True)
    changed = service.update_endpoint(endpoint, data)
    if changed:
        audit("webhook_endpoint.update", "webhook_endpoint", endpoint.id, {"fields": changed})
    db.session.commit()
    return with_etag(jsonify(_dump(endpoint)), _etag(endpoint))


@bp.delete(f"/webhooks/endpoints/{EID}")
@doc("Delete a webhook endpoint with its pending messages and delivery log", tag=TAG, status=204, etag=True)
@require("admin")
def delete_endpoint(endpoint_id: int):
    endpoint = service.get_endpoint(endpoint_id)
    check_if_match(_etag(endpoint))
    audit("webhook_endpoint.delete", "webhook_endpoint", endpoint.id)
    db.session.delete(endpoint)
    db.session.commit()
    return "", 204


@bp.post(f"/webhooks/endpoints/{EID}/rotate-secret")
@doc("Rotate the signing secret; the old one keeps signing during the overlap", tag=TAG, body=RotateIn,
     body_optional=True, response=EndpointWithSecretOut, errors=(410,), idempotent=True)
@require("admin")
@idempotent
def rotate_secret(endpoint_id: int):
    endpoint = service.get_endpoint(endpoint_id)
    data = load_json(RotateIn(), optional=True)
    secret = service.rotate_secret(endpoint, data["overlap_seconds"])
    audit("webhook_endpoint.rotate_secret", "webhook_endpoint", endpoint.id,
          {"overlap_seconds": data["overlap_seconds"]})
    db.session.commit()
    withhold_from_replay("secret")
    return with_etag(jsonify(_dump(endpoint, EndpointWithSecretOut, secret=secret)), _etag(endpoint))


@bp.get(f"/webhooks/endpoints/{EID}/attempts")
@doc("The delivery log of an endpoint, newest first", tag=TAG, query=PageQuery, response=page_of(AttemptOut))
@require("admin")
def list_attempts(endpoint_id: int):
    service.get_endpoint(endpoint_id)
    args = load_query(PageQuery())
    query = sa.select(WebhookAttempt).where(WebhookAttempt.endpoint_id == endpoint_id)
    return jsonify(keyset_page(query, WebhookAttempt.id, args, lambda rows: [AttemptOut().dump({
        **{c: getattr(a, c) for c in ("id", "event_id", "attempted_at", "status_code", "latency_ms",
                                      "response_excerpt", "error")},
        "webhook_id": f"evt_{a.event_id}"}) for a in rows], descending=True))


@bp.post(f"/webhooks/endpoints/{EID}/replay")
@doc("Send stored events again with their original webhook-id: one event, or a time range", tag=TAG,
     body=ReplayIn, response=ReplayOut, status=202, idempotent=True, description=(
         "A range holding more than WEBHOOK_REPLAY_MAX events (default 10,000) is refused with 422."))
@require("admin")
@idempotent
def replay_events(endpoint_id: int):
    endpoint = service.get_endpoint(endpoint_id)
    data = load_json(ReplayIn())
    count = service.replay(endpoint, event_id=data.get("event_id"), since=data.get("since"),
                           until=data.get("until"))
    audit("webhook_endpoint.replay", "webhook_endpoint", endpoint.id, {"events": count})
    db.session.commit()
    response = jsonify({"queued": count})
    response.status_code = 202
    return response


@bp.post(f"/webhooks/endpoints/{EID}/test")
@doc("Send a webhook.test event to this endpoint", tag=TAG, response=TestOut, status=202, idempotent=True)
@require("admin")
@idempotent
def test_endpoint(endpoint_id: int):
    endpoint = service.get_endpoint(endpoint_id)
    event_id = service.send_test(endpoint)
    audit("webhook_endpoint.test", "webhook_endpoint", endpoint.id, {"event_id": event_id})
    db.session.commit()
    response = jsonify({"event_id": event_id, "webhook_id": f"evt_{event_id}"})
    response.status_code = 202
    return response


def _document_events(document: dict) -> None:
    """Each event body as a component with its example, listed under `x-webhooks`."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    hooks = {}
    for name, (description, example) in events.EVENT_TYPES.items():
        key = "WebhookEvent_" + name.replace(".", "_")
        schemas[key] = {
            "type": "object", "description": description, "required": ["type", "timestamp", "data"],
            "properties": {"type": {"type": "string", "enum": [name]},
                           "timestamp": {"type": "string", "format": "date-time"},
                           "data": {"type": "object", "additionalProperties": True}},
            "example": {"type": name, "timestamp": "2026-12-01T10:00:00Z", "data": example}}
        hooks[name] = {"post": {"summary": description, "requestBody": {"content": {"application/json": {
            "schema": {"$ref": f"#/components/schemas/{key}"}}}}, "responses": {"2XX": {
                "description": "Delivered; anything else is retried (docs/webhooks.md)"}}}}
    document["x-webhooks"] = hooks


DOCUMENT_HOOKS.append(_document_events)
