"""Value checks shared by the kinds' settings (campaigns.kinds, campaigns.survey_def)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from core.db import within_bounds


def is_http_url(value: Any, max_length: int = 2000) -> bool:
    if not isinstance(value, str) or not value or len(value) > max_length or any(c.isspace() for c in value):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None and within_bounds(parsed) else None
