"""Topics (managers): names per language, audience, visibility, answer threshold and deadline."""

from __future__ import annotations

from typing import Any

from core.db import utcnow
from core.extensions import db
from dialog.models import Topic, Visibility

FIELDS = ("name_en", "name_de", "description_en", "description_de", "is_open", "audience_kinds", "visibility",
          "answer_threshold", "answer_deadline_days")


def create_topic(data: dict[str, Any]) -> Topic:
    topic = Topic(**{k: v for k, v in data.items() if k in FIELDS})
    topic.visibility = Visibility(data.get("visibility") or Visibility.PUBLIC)
    db.session.add(topic)
    db.session.flush()
    return topic


def update_topic(topic: Topic, data: dict[str, Any]) -> list[str]:
    """Apply a partial change (the caller commits); returns the changed field names."""
    changed = []
    for field in FIELDS:
        if field in data:
            value = Visibility(data[field]) if field == "visibility" else data[field]
            if getattr(topic, field) != value:
                setattr(topic, field, value)
                changed.append(field)
    if changed:
        topic.updated_at = utcnow()
    return changed
