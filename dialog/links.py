"""The personal dialog link: a signed, purpose-bound token (`dialog`) naming the supporter.

supporters.links builds it (every campaign mail and the preferences page carry it); this module
reads it. A token for another purpose (preferences, unsubscribe, …) never verifies here, and one
older than DIALOG_LINK_MAX_AGE_DAYS is expired: the next mail brings a fresh one.
"""

from __future__ import annotations

from flask import current_app

from core.extensions import db
from core.signing import InvalidToken, read_token
from supporters.links import dialog_token
from supporters.models import Supporter, SupporterStatus


def supporter_from_token(token: str) -> Supporter:
    """The supporter of a dialog link; raises InvalidToken / ExpiredToken (erased counts as unknown)."""
    max_age = current_app.config["DIALOG_LINK_MAX_AGE_DAYS"] * 86400
    payload = read_token("dialog", token, max_age=max_age)
    if not isinstance(payload, dict) or not isinstance(payload.get("s"), int) or isinstance(payload["s"], bool):
        raise InvalidToken("malformed")
    supporter = db.session.get(Supporter, payload["s"])
    if supporter is None or supporter.status is SupporterStatus.ERASED:
        raise InvalidToken("no such supporter")
    return supporter


def post_url(supporter_id: int, post_id: int) -> str:
    return f"{current_app.config['PUBLIC_BASE_URL']}/dialog/{dialog_token(supporter_id)}/posts/{post_id}"
