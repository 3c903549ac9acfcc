"""Answering a survey on its action page: parse, check, store (one response per delivery), follow up.

No `request` here: the page passes the form's `getlist`. Bad input raises ValidationFailed keyed by
the form field (`q_<key>`), so the page shows the message beside the field, and stores nothing.
"""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from campaigns import kinds, survey_def
from campaigns.acting import ActContext, Closed, refresh_engagement
from campaigns.actions import Action, ActionKind
from campaigns.surveys import SurveyAnswer, SurveyResponse, answers_of, normalise
from core.db import utcnow
from core.errors import ValidationFailed
from core.extensions import db

MARKUP_RE = re.compile(r"<\s*[A-Za-z!/?]")
DETRACTOR_MAX, LOW_RATING_MAX = 6, 2


def closed(ctx: ActContext) -> bool:
    return kinds.poll_closed(ctx.campaign, ctx.config)


def field(key: str) -> str:
    return f"q_{key}"


def current(ctx: ActContext) -> tuple[SurveyResponse | None, dict[str, Any]]:
    response = db.session.scalar(sa.select(SurveyResponse).where(SurveyResponse.delivery_id == ctx.delivery.id))
    if response is None:
        return None, {}
    return response, normalise(ctx.config["questions"], answers_of(response.id))


def _text(q: dict, raw: str) -> str | None:
    value = raw.replace("\r\n", "\n")
    if any((ord(c) < 32 and c not in "\n\t") or ord(c) == 127 for c in value):
        raise ValueError("control characters are not accepted")
    if q["type"] == "short_text" and "\n" in value:
        raise ValueError("one line only")
    if not value.strip():
        return None
    if MARKUP_RE.search(value):
        raise ValueError("please write plain text, without markup such as <…>")
    limit = survey_def.text_limit(q)
    if len(value.strip()) > limit:
        raise ValueError(f"at most {limit} characters ({len(value.strip())} given)")
    return value.strip()


def _parse(q: dict, raw: list[str]) -> Any:
    """One question's answer from its form values (None = not answered); ValueError says why not."""
    values = [r for r in raw if r != ""]
    if not values:
        return None
    kind = q["type"]
    if kind in survey_def.TEXT_LIMITS:
        if len(values) > 1:
            raise ValueError("one answer only")
        return _text(q, values[0])
    try:
        numbers = [int(v) for v in values if len(v) <= 3]
    except ValueError:
        numbers = []
    if len(numbers) != len(values):
        raise ValueError("not one of the answers offered")
    if kind in survey_def.SCALES:
        lo, hi = survey_def.SCALES[kind]
        if len(numbers) > 1:
            raise ValueError("choose one value")
        if not lo <= numbers[0] <= hi:
            raise ValueError(f"choose a value from {lo} to {hi}")
        return numbers[0]
    count = len(next(iter(q["options"].values())))
    if any(not 0 <= n < count for n in numbers) or len(numbers) > count:
        raise ValueError("not one of the options offered")
    if kind == "single":
        if len(numbers) > 1:
            raise ValueError("choose one option")
        return numbers[0]
    return sorted(set(numbers))


def _empty(value: Any) -> bool:
    return value is None or value == [] or value == ""


def submit(ctx: ActContext, getlist, shown: list[str], final: bool) -> str:
    """Save the answers; return "saved" (partial), "more" (new questions appeared) or "completed".

    `shown`: the question keys the form displayed (a question shown and left empty is cleared).
    """
    if closed(ctx):
        raise Closed("the survey is closed")
    questions = ctx.config["questions"]
    keys = {q["key"] for q in questions}
    shown_keys = {k for k in shown[:survey_def.MAX_QUESTIONS] if k in keys}
    _response, stored = current(ctx)
    db.session.commit()  # end the read; the write below starts its own transaction
    errors: dict[str, list[str]] = {}
    given: dict[str, Any] = {}
    for q in questions:
        raw = getlist(field(q["key"]))
        if q["key"] not in shown_keys and not any(raw):
            continue
        try:
            given[q["key"]] = _parse(q, raw)
        except ValueError as exc:
            errors[field(q["key"])] = [str(exc)]
    merged = {k: v for k, v in {**stored, **given}.items() if not _empty(v)}
    shown_now = {q["key"] for q in survey_def.visible(questions, merged)}
    for key, value in given.items():
        if not _empty(value) and key not in shown_now and value != stored.get(key):
            errors.setdefault(field(key), []).append("this question does not apply to your other answers")
    merged = {k: v for k, v in merged.items() if k in shown_now}
    missing = [q["key"] for q in questions if q["key"] in shown_now and q.get("required") and q["key"] not in merged]
    if final:
        for key in missing:
            if key in shown_keys:
                errors.setdefault(field(key), []).append("please answer this question")
    if errors:
        raise ValidationFailed(errors)
    complete = final and not missing
    first = _store(ctx, merged, complete)
    refresh_engagement(ctx.supporter.id)
    if final and missing:
        return "more"
    return ("completed" if first else "changed") if complete else "saved"


def _store(ctx: ActContext, answers: dict[str, Any], complete: bool) -> bool:
    """Replace the delivery's answers in one transaction; return whether it was completed for the first time."""
    now = utcnow()
    supporter = ctx.supporter
    try:
        response = SurveyResponse(campaign_id=ctx.campaign.id, delivery_id=ctx.delivery.id, supporter_id=supporter.id,
                                  supporter_kind=supporter.kind.value, language=supporter.language,
                                  created_at=now, updated_at=now)
        db.session.add(response)
        db.session.flush()  # the unique constraint decides who is first, also under concurrent POSTs
        response_id, was_complete = response.id, False
    except IntegrityError:
        db.session.rollback()
        response_id = db.session.scalar(sa.select(SurveyResponse.id)
                                        .where(SurveyResponse.delivery_id == ctx.delivery.id))
        # The UPDATE takes the row lock first, so concurrent changes of one response queue up.
        db.session.execute(sa.update(SurveyResponse).where(SurveyResponse.id == response_id)
                           .values(updated_at=now).execution_options(synchronize_session=False))
        was_complete = db.session.scalar(sa.select(SurveyResponse.completed_at)
                                         .where(SurveyResponse.id == response_id)) is not None
    db.session.execute(sa.delete(SurveyAnswer).where(SurveyAnswer.response_id == response_id)
                       .execution_options(synchronize_session=False))
    rows = []
    for key, value in answers.items():
        for v in value if isinstance(value, list) else [value]:
            rows.append({"response_id": response_id, "campaign_id": ctx.campaign.id, "question": key,
                         "value": v if isinstance(v, int) else None, "text": v if isinstance(v, str) else None})
    if rows:
        db.session.execute(sa.insert(SurveyAnswer), rows)
    first_nps = next((q["key"] for q in ctx.config["questions"] if q["type"] == "nps"), None)
    values: dict[str, Any] = {"nps": answers.get(first_nps) if first_nps else None}
    if complete and not was_complete:
        values["completed_at"] = now
    db.session.execute(sa.update(SurveyResponse).where(SurveyResponse.id == response_id)
                       .values(**values).execution_options(synchronize_session=False))
    if complete:
        db.session.add(Action(campaign_id=ctx.campaign.id, supporter_id=supporter.id, delivery_id=ctx.delivery.id,
                              kind=ActionKind.SURVEY, detail="changed" if was_complete else "completed"))
    db.session.commit()
    return complete and not was_complete


# --- follow-up -----------------------------------------------------------------------------------

def may_ask_reply(ctx: ActContext, answers: dict[str, Any]) -> bool:
    """A detractor (NPS 0–6), a low rating (1–2) or anyone who wrote a long text may ask for a reply."""
    if not ctx.config.get("follow_up", True):
        return False
    for q in ctx.config["questions"]:
        value = answers.get(q["key"])
        if _empty(value):
            continue
        if (q["type"] == "nps" and value <= DETRACTOR_MAX) or (q["type"] == "rating" and value <= LOW_RATING_MAX):
            return True
        if q["type"] == "long_text":
            return True
    return False


def request_reply(ctx: ActContext) -> None:
    """Record that the person would like a personal reply (listed by the API's follow-ups)."""
    if closed(ctx):
        raise Closed("the survey is closed")
    response, answers = current(ctx)
    if response is None or not may_ask_reply(ctx, answers):
        db.session.rollback()
        raise ValidationFailed({"reply": ["a personal reply is offered after a critical answer or a comment"]})
    if response.reply_requested_at is None:
        response.reply_requested_at = utcnow()
    db.session.commit()
