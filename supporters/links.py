"""Signed links a supporter receives by mail. The join-flow pages serve these paths.

Tokens are purpose-bound (core.signing): an unsubscribe token never confirms, and so on.
"""

from __future__ import annotations

from flask import current_app

from core.signing import TEST_FLAG, make_token

CONFIRM_MAX_AGE = 7 * 24 * 3600  # the double-opt-in link expires after a week


def _url(path: str) -> str:
    return f"{current_app.config['PUBLIC_BASE_URL']}{path}"


def confirm_token(supporter_id: int, grant_id: int | None = None) -> str:
    """`grant_id` binds the link to one consent grant, so a withdrawal voids links sent before it."""
    payload = {"s": supporter_id} if grant_id is None else {"s": supporter_id, "g": grant_id}
    return make_token("confirm", payload)


# Purposes whose pages change something on a POST: a test mail's links for them carry the test
# flag, and such a POST changes nothing (supporters.web: "this link came from a test mail").
ACTING_PURPOSES = ("preferences", "unsubscribe", "dialog", "act")


def _payload(supporter_id: int, test: bool) -> dict:
    return {"s": supporter_id, TEST_FLAG: 1} if test else {"s": supporter_id}


def preferences_token(supporter_id: int, test: bool = False) -> str:
    return make_token("preferences", _payload(supporter_id, test))


def unsubscribe_token(supporter_id: int, test: bool = False) -> str:
    return make_token("unsubscribe", _payload(supporter_id, test))


def dialog_token(supporter_id: int, test: bool = False) -> str:
    """The personal link to the dialog pages (dialog/): "Your idea or concern" in every campaign mail
    and on the preferences page. This layer only builds it; the dialog package reads it."""
    return make_token("dialog", _payload(supporter_id, test))


def dialog_url(supporter_id: int, test: bool = False) -> str:
    return _url(f"/dialog/{dialog_token(supporter_id, test)}")


def confirm_url(supporter_id: int, grant_id: int | None = None) -> str:
    return _url(f"/confirm/{confirm_token(supporter_id, grant_id)}")


def preferences_url(supporter_id: int, test: bool = False) -> str:
    return _url(f"/preferences/{preferences_token(supporter_id, test)}")


def unsubscribe_url(supporter_id: int, test: bool = False) -> str:
    return _url(f"/unsubscribe/{unsubscribe_token(supporter_id, test)}")


def unsubscribe_headers(supporter_id: int, test: bool = False) -> dict[str, str]:
    """RFC 2369 + RFC 8058 headers: every mail to a supporter carries them."""
    return {
        "List-Unsubscribe": f"<{unsubscribe_url(supporter_id, test)}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


def referral_url(referral_code: str) -> str:
    return _url(f"/join?ref={referral_code}")
