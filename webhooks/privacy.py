"""Data access: which endpoints received a person's events (the erasure side is core.events)."""

from __future__ import annotations

import sqlalchemy as sa

from core.events import MessageStatus, WebhookEndpoint, WebhookEvent, WebhookMessage
from core.extensions import db
from supporters.models import Supporter
from supporters.privacy import export_section


@export_section("webhooks")
def _export_webhooks(supporter: Supporter) -> list[dict]:
    rows = db.session.execute(
        sa.select(WebhookEndpoint.id, WebhookEndpoint.url, WebhookEndpoint.description,
                  sa.func.count(WebhookMessage.id), sa.func.max(WebhookMessage.delivered_at))
        .join(WebhookMessage, WebhookMessage.endpoint_id == WebhookEndpoint.id)
        .join(WebhookEvent, WebhookEvent.id == WebhookMessage.event_id)
        .where(WebhookEvent.supporter_id == supporter.id, WebhookMessage.status == MessageStatus.DELIVERED)
        .group_by(WebhookEndpoint.id, WebhookEndpoint.url, WebhookEndpoint.description)
        .order_by(WebhookEndpoint.id)).all()
    return [{"endpoint_id": i, "url": url, "description": description, "events_delivered": n,
             "last_delivered_at": last.isoformat() if last else None}
            for i, url, description, n, last in rows]
