"""Survey responses: one per delivery (a unique constraint), answers as rows, changeable until close.

- `SurveyResponse`: the delivery's response, with the supporter's kind and language at answering
  time and the first NPS score (for breakdowns), when it was completed and whether the person
  asked for a personal reply.
- `SurveyAnswer`: one row per answered question (one per chosen option of a multiple choice):
  `value` holds a score, a rating or an option's position, `text` a free-text answer. Results are
  GROUP BY over (campaign_id, question, value) (campaigns.survey_results).

Free text is personal data: it is in the data-access export and removed on erasure (the numbers
stay, anonymous). The segment language gets a `survey_answer` condition from here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from campaigns import survey_def
from campaigns.models import Campaign, CampaignKind
from core.db import BigIntPK, utcnow
from core.extensions import db
from supporters import segments
from supporters.models import Supporter
from supporters.privacy import export_section, on_erase


class SurveyResponse(db.Model):
    __tablename__ = "survey_responses"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(sa.ForeignKey("campaigns.id", ondelete="CASCADE"))
    delivery_id: Mapped[int] = mapped_column(BigIntPK, sa.ForeignKey("deliveries.id", ondelete="CASCADE"))
    supporter_id: Mapped[int] = mapped_column(BigIntPK, sa.ForeignKey("supporters.id", ondelete="CASCADE"),
                                              index=True)
    supporter_kind: Mapped[str] = mapped_column(sa.String(20))
    language: Mapped[str] = mapped_column(sa.String(8))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None]  # every required question shown was answered
    reply_requested_at: Mapped[datetime | None]  # the person asked for a personal reply (follow-up)
    # The first NPS question's score, also here: a breakdown is then one GROUP BY over responses.
    nps: Mapped[int | None] = mapped_column(sa.SmallInteger)

    __table_args__ = (
        sa.UniqueConstraint("delivery_id", name="uq_survey_responses_delivery"),
        sa.Index("ix_survey_responses_campaign_id", "campaign_id", "id"),
    )


class SurveyAnswer(db.Model):
    __tablename__ = "survey_answers"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    response_id: Mapped[int] = mapped_column(BigIntPK, sa.ForeignKey("survey_responses.id", ondelete="CASCADE"),
                                             index=True)
    campaign_id: Mapped[int] = mapped_column(sa.ForeignKey("campaigns.id", ondelete="CASCADE"))
    question: Mapped[str] = mapped_column(sa.String(40))
    value: Mapped[int | None] = mapped_column(sa.SmallInteger)
    text: Mapped[str | None] = mapped_column(sa.String(2000))

    __table_args__ = (
        # Distributions read only this index; text answers page by (question, id).
        sa.Index("ix_survey_answers_campaign_question_value", "campaign_id", "question", "value"),
        sa.Index("ix_survey_answers_campaign_question_id", "campaign_id", "question", "id"),
    )


def answers_of(response_id: int) -> dict[str, Any]:
    """{question: score | option | [options] | text} of one response."""
    out: dict[str, Any] = {}
    multi: dict[str, list[int]] = {}
    for question, value, text in db.session.execute(
            sa.select(SurveyAnswer.question, SurveyAnswer.value, SurveyAnswer.text)
            .where(SurveyAnswer.response_id == response_id).order_by(SurveyAnswer.id)):
        if text is not None:
            out[question] = text
        elif question in multi or question in out:
            multi.setdefault(question, [out.pop(question)] if question in out else []).append(value)
        else:
            out[question] = value
    for question, values in multi.items():
        out[question] = sorted(values)
    return out


def normalise(questions: list[dict], answers: dict[str, Any]) -> dict[str, Any]:
    """Multiple-choice answers as lists (a one-option choice is stored like a single value)."""
    kinds = {q["key"]: q["type"] for q in questions}
    return {k: ([v] if kinds.get(k) == "multiple" and not isinstance(v, list) else v) for k, v in answers.items()}


# --- data protection -----------------------------------------------------------------------------

@export_section("survey_answers")
def _export_answers(supporter) -> list[dict[str, Any]]:
    rows = db.session.execute(sa.select(SurveyResponse.id, SurveyResponse.campaign_id, SurveyResponse.updated_at,
                                        SurveyResponse.reply_requested_at)
                              .where(SurveyResponse.supporter_id == supporter.id).order_by(SurveyResponse.id)).all()
    return [{"campaign_id": c, "answers": answers_of(rid), "at": at.isoformat(),
             "reply_requested": asked is not None} for rid, c, at, asked in rows]


@on_erase
def _erase_answers(supporter) -> None:
    """Keep the anonymous numbers (scores, options); drop every word the person wrote."""
    mine = sa.select(SurveyResponse.id).where(SurveyResponse.supporter_id == supporter.id)
    db.session.execute(sa.delete(SurveyAnswer).where(SurveyAnswer.response_id.in_(mine),
                                                     SurveyAnswer.text.is_not(None))
                       .execution_options(synchronize_session=False))
    db.session.execute(sa.update(SurveyResponse).where(SurveyResponse.supporter_id == supporter.id)
                       .values(reply_requested_at=None).execution_options(synchronize_session=False))


# --- the segment language's `survey_answer` condition ---------------------------------------------

SEGMENT_OPS = ("eq", "ne", "lt", "lte", "gt", "gte", "answered")


def _survey_answer(c, op, value, path):
    """{"field": "survey_answer", "op": "lte", "value": {"campaign": 12, "question": "nps", "value": 6}}"""
    if op not in SEGMENT_OPS:
        c.fail(f"{path}.op", f"unknown operator {op!r} for survey_answer; use one of {', '.join(SEGMENT_OPS)}")
    if not isinstance(value, dict) or set(value) - {"campaign", "question", "value"}:
        c.fail(f"{path}.value", "an object {\"campaign\": ID, \"question\": KEY, \"value\": NUMBER}")
    cid = value.get("campaign")
    campaign = (db.session.get(Campaign, cid) if isinstance(cid, int) and not isinstance(cid, bool)
                and 1 <= cid <= 2**31 - 1 else None)
    if campaign is None or campaign.kind != CampaignKind.SURVEY:
        c.fail(f"{path}.value.campaign", "the id of a survey campaign")
    from campaigns.actions import CampaignSettings

    row = db.session.get(CampaignSettings, campaign.id)
    questions = {q["key"]: q for q in (row.config.get("questions", []) if row else [])}
    question = questions.get(value.get("question")) if isinstance(value.get("question"), str) else None
    if question is None:
        c.fail(f"{path}.value.question", f"one of this survey's questions: {', '.join(questions) or 'none'}")
    where = [SurveyAnswer.campaign_id == campaign.id, SurveyAnswer.question == question["key"]]
    if op != "answered":
        number = value.get("value")
        if question["type"] in survey_def.TEXT_LIMITS:
            c.fail(f"{path}.op", "a text question only supports 'answered'")
        if not isinstance(number, int) or isinstance(number, bool) or not -1 <= number <= 100:
            c.fail(f"{path}.value.value", "a whole number (a score, a rating or an option's position)")
        column = SurveyAnswer.value
        where.append({"eq": column == number, "ne": column != number, "lt": column < number,
                      "lte": column <= number, "gt": column > number, "gte": column >= number}[op])
    return Supporter.id.in_(sa.select(SurveyResponse.supporter_id)
                            .join(SurveyAnswer, SurveyAnswer.response_id == SurveyResponse.id).where(*where))


segments.register_field("survey_answer", _survey_answer, SEGMENT_OPS)
