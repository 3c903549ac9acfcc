"""Endpoint services: create, change, delete, rotate the secret, replay and test (no HTTP here)."""

from __future__ import annotations

import base64
import json
import re
import secrets
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import current_app

import webhooks.ssrf as ssrf
from core import events
from core.db import utcnow
from core.errors import NotFound, ValidationFailed
from core.events import (
    EVENT_TYPES,
    MessageStatus,
    WebhookEndpoint,
    WebhookEvent,
    WebhookMessage,
    WebhookSubscription,
)
from core.extensions import db

MAX_HEADERS = 20
_HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}")
RESERVED_HEADERS = {"host", "content-type", "content-length", "transfer-encoding", "connection", "user-agent",
                    "webhook-id", "webhook-timestamp", "webhook-signature"}
MAX_OVERLAP = 7 * 86400


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def get_endpoint(endpoint_id: int) -> WebhookEndpoint:
    endpoint = db.session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None:
        raise NotFound(f"no webhook endpoint {endpoint_id}")
    return endpoint


def event_types_of(endpoint: WebhookEndpoint) -> list[str]:
    return sorted(db.session.scalars(sa.select(WebhookSubscription.event_type)
                                     .where(WebhookSubscription.endpoint_id == endpoint.id)))


def check_event_types(types: list[str]) -> list[str]:
    unknown = [t for t in types if t != events.ALL and t not in EVENT_TYPES]
    if unknown:
        raise ValidationFailed({"event_types": [f"unknown event type(s): {', '.join(unknown)[:300]}; "
                                                f"known: {', '.join(EVENT_TYPES)} or * for all"]})
    if not types:
        raise ValidationFailed({"event_types": ["name at least one event type, or * for all"]})
    return [events.ALL] if events.ALL in types else sorted(set(types))


def check_headers(headers: dict[str, Any]) -> dict[str, str]:
    if len(headers) > MAX_HEADERS:
        raise ValidationFailed({"headers": [f"at most {MAX_HEADERS} headers"]})
    for name, value in headers.items():
        if not _HEADER_NAME.fullmatch(name) or name.lower() in RESERVED_HEADERS:
            raise ValidationFailed({f"headers.{name}"[:120]: ["not a header name we may send (token characters; "
                                                               "not Host, Content-*, User-Agent or webhook-*)"]})
        if not isinstance(value, str) or len(value) > 1000 or any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise ValidationFailed({f"headers.{name}": ["a text of at most 1000 characters without control characters"]})
    return headers


def _set_types(endpoint: WebhookEndpoint, types: list[str]) -> None:
    db.session.execute(sa.delete(WebhookSubscription).where(WebhookSubscription.endpoint_id == endpoint.id))
    db.session.add_all([WebhookSubscription(endpoint_id=endpoint.id, event_type=t) for t in types])


def create_endpoint(data: dict[str, Any], owner_email: str | None) -> tuple[WebhookEndpoint, str]:
    """Check and add an endpoint (no commit); return it with its secret, shown once."""
    types = check_event_types(data.get("event_types") or [events.ALL])
    headers = check_headers(data.get("headers") or {})
    ssrf.resolve(data["url"], current_app.config)  # the network last: cheap checks first
    secret = new_secret()
    endpoint = WebhookEndpoint(url=data["url"], description=data.get("description"),
                               active=data.get("active", True), secret=secret,
                               headers=json.dumps(headers, ensure_ascii=False),
                               owner_email=data.get("owner_email") or owner_email)
    db.session.add(endpoint)
    db.session.flush()
    _set_types(endpoint, types)
    return endpoint, secret


def update_endpoint(endpoint: WebhookEndpoint, data: dict[str, Any]) -> list[str]:
    """Apply a partial change (no commit); return the names of the changed fields."""
    changed = []
    if "url" in data and data["url"] != endpoint.url:
        ssrf.resolve(data["url"], current_app.config)
        endpoint.url = data["url"]
        changed.append("url")
    if "event_types" in data:
        types = check_event_types(data["event_types"] or [])
        if types != event_types_of(endpoint):
            _set_types(endpoint, types)
            changed.append("event_types")
    if "headers" in data:
        endpoint.headers = json.dumps(check_headers(data["headers"] or {}), ensure_ascii=False)
        changed.append("headers")
    for name in ("description", "owner_email"):
        if name in data and data[name] != getattr(endpoint, name):
            setattr(endpoint, name, data[name])
            changed.append(name)
    if "active" in data and data["active"] != endpoint.active:
        endpoint.active = data["active"]
        if endpoint.active:  # enabled again: the failure clock starts afresh, pending events follow
            endpoint.failing_since = endpoint.disabled_reason = None
            events.kick_after_commit()
        changed.append("active")
    if changed:
        endpoint.updated_at = utcnow()
    return changed


def rotate_secret(endpoint: WebhookEndpoint, overlap_seconds: int) -> str:
    """A new secret; the old one keeps signing (a second signature) for `overlap_seconds`."""
    if not 0 <= overlap_seconds <= MAX_OVERLAP:
        raise ValidationFailed({"overlap_seconds": [f"must be between 0 and {MAX_OVERLAP}"]})
    endpoint.previous_secret = endpoint.secret if overlap_seconds else None
    endpoint.previous_secret_until = utcnow() + timedelta(seconds=overlap_seconds) if overlap_seconds else None
    endpoint.secret = new_secret()
    endpoint.updated_at = utcnow()
    return endpoint.secret


def replay(endpoint: WebhookEndpoint, *, event_id: int | None = None, since: datetime | None = None,
           until: datetime | None = None) -> int:
    """Send stored events again (the same `webhook-id`), one or a time range (no commit)."""
    query = sa.select(WebhookEvent.id).where(WebhookEvent.redacted.is_(False))
    if event_id is not None:
        if since is not None or until is not None:
            raise ValidationFailed({"event_id": ["give either an event id or a time range, not both"]})
        query = query.where(WebhookEvent.id == event_id)
    elif since is not None:
        until = until or utcnow()
        if until <= since:
            raise ValidationFailed({"until": ["must be after since"]})
        query = query.where(WebhookEvent.occurred_at >= since, WebhookEvent.occurred_at < until)
    else:
        raise ValidationFailed({"event_id": ["give an event id, or a time range with since (and until)"]})
    types = event_types_of(endpoint)
    if events.ALL not in types:
        query = query.where(WebhookEvent.type.in_(types))
    limit = current_app.config["WEBHOOK_REPLAY_MAX"]
    ids = db.session.scalars(query.order_by(WebhookEvent.id).limit(limit + 1)).all()
    if len(ids) > limit:
        raise ValidationFailed({"since": [f"the range holds more than {limit} events; replay a shorter range"]})
    if event_id is not None and not ids:
        raise NotFound(f"no event {event_id} that this endpoint subscribes to (or it was erased or purged)")
    now = utcnow()
    existing = set(db.session.scalars(sa.select(WebhookMessage.event_id).where(
        WebhookMessage.endpoint_id == endpoint.id, WebhookMessage.event_id.in_(ids)))) if ids else set()
    if existing:
        db.session.execute(sa.update(WebhookMessage).where(
            WebhookMessage.endpoint_id == endpoint.id, WebhookMessage.event_id.in_(existing))
            .values(status=MessageStatus.PENDING, attempts=0, next_attempt_at=now)
            .execution_options(synchronize_session=False))
    new = [i for i in ids if i not in existing]
    if new:
        db.session.execute(sa.insert(WebhookMessage), [
            {"endpoint_id": endpoint.id, "event_id": i, "status": MessageStatus.PENDING, "attempts": 0,
             "next_attempt_at": now, "created_at": now} for i in new])
    if ids:
        events.kick_after_commit()
    return len(ids)


def send_test(endpoint: WebhookEndpoint) -> int:
    """A `webhook.test` event for this endpoint alone (no commit); returns the event id."""
    now = utcnow()
    event = WebhookEvent(type="webhook.test", occurred_at=now, supporter_id=None, redacted=False,
                         payload=json.dumps({"endpoint_id": endpoint.id, "message": "a test event"}))
    db.session.add(event)
    db.session.flush()
    db.session.add(WebhookMessage(endpoint_id=endpoint.id, event_id=event.id, status=MessageStatus.PENDING,
                                  attempts=0, next_attempt_at=now, created_at=now))
    events.kick_after_commit()
    return event.id
