"""The dialog's rules as data: allowed status changes, and the errors the services raise.

Every error carries a `code`: the API shows the English message (problem+json, naming the field),
the pages translate the code (dialog.i18n) and show it beside the field.
"""

from __future__ import annotations

from core.errors import Conflict, Forbidden, ValidationFailed
from dialog.models import PostStatus as S

# Moderation, then triage; `withdrawn` is the author's, `merged` the duplicate's end.
TRANSITIONS: dict[S, frozenset[S]] = {
    S.NEW: frozenset({S.PUBLISHED, S.REJECTED}),
    S.PUBLISHED: frozenset({S.UNDER_REVIEW, S.ANSWERED, S.DECLINED}),
    S.UNDER_REVIEW: frozenset({S.PLANNED, S.ANSWERED, S.DECLINED}),
    S.PLANNED: frozenset({S.ANSWERED, S.DECLINED, S.DONE}),
    S.ANSWERED: frozenset({S.DONE}),
    S.DECLINED: frozenset({S.DONE}),
    S.REJECTED: frozenset(),
    S.DONE: frozenset(),
    S.WITHDRAWN: frozenset(),
    S.MERGED: frozenset(),
}
# Only these may be withdrawn by their author, merged into another post, or backed.
WITHDRAWABLE = frozenset({S.NEW, S.PUBLISHED, S.UNDER_REVIEW})
MERGEABLE = frozenset({S.NEW, S.PUBLISHED, S.UNDER_REVIEW, S.PLANNED})
BACKABLE = frozenset({S.PUBLISHED, S.UNDER_REVIEW, S.PLANNED})
# The statuses that need a text: the reason for a rejection or a decline, the answer.
NEEDS_REASON = frozenset({S.REJECTED, S.DECLINED})
NEEDS_ANSWER = frozenset({S.ANSWERED})
# An owed answer is settled by these.
SETTLED = frozenset({S.ANSWERED, S.DECLINED, S.DONE, S.REJECTED, S.WITHDRAWN, S.MERGED})

MESSAGES = {
    "required": "is required",
    "control": "must not contain control characters (NUL, line breaks in a single-line field, …)",
    "markup": "must be plain text: no HTML, no links (only **bold**, *italic* and '- ' lists)",
    "too_short": "is too short",
    "too_long": "is too long",
    "invalid": "is not one of the allowed values",
    "topic_unknown": "no such topic",
    "topic_closed": "the topic is closed: it takes no new posts",
    "topic_restricted": "the topic is not open to this supporter",
    "not_active": "only active supporters can post and back (pending, unsubscribed or erased cannot)",
    "daily_limit": "the limit of posts per supporter and day is reached; try again tomorrow",
    "duplicate": "this supporter already posted the same text",
    "already_backed": "this supporter already backs the post",
    "not_backed": "this supporter does not back the post",
    "own_post": "authors cannot back their own post (it counts the support of others)",
    "not_backable": "only published posts that are not yet answered can be backed",
    "not_withdrawable": "the post can no longer be withdrawn",
    "not_author": "only the author can withdraw a post",
    "transition": "this status change is not allowed",
    "merge_self": "a post cannot be merged into itself",
    "merge_target": "the target post cannot take a merge (it is not published, or on another topic)",
    "merge_source": "the post can no longer be merged",
}


def message(code: str) -> str:
    return MESSAGES.get(code, code)


class DialogInvalid(ValidationFailed):
    """Bad input (422): `codes` maps each field to one error code."""

    def __init__(self, codes: dict[str, str], details: dict[str, str] | None = None):
        self.codes = codes
        errors = {field: [(details or {}).get(field) or message(code)] for field, code in codes.items()}
        super().__init__(errors)


class DialogConflict(Conflict):
    """A rule says no (409): closed topic, second backing, a transition not allowed, …"""

    def __init__(self, code: str, field: str | None = None, detail: str | None = None):
        self.code, self.field = code, field
        super().__init__(detail or (f"{field}: {message(code)}" if field else message(code)))


class DialogForbidden(Forbidden):
    """The supporter may not do this here (a restricted topic, someone else's post)."""

    def __init__(self, code: str, field: str | None = None):
        self.code, self.field = code, field
        super().__init__(f"{field}: {message(code)}" if field else message(code))


def check_transition(current: S, target: S) -> None:
    if target not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(s.value for s in TRANSITIONS[current])) or "none (final)"
        raise DialogConflict("transition", "status",
                             f"status: a {current.value} post cannot become {target.value}; allowed: {allowed}")
