"""Survey results: per-question distributions, NPS with a 95 % interval, breakdowns, text answers, CSV.

Every figure is one GROUP BY over survey_answers (index campaign_id, question, value); NPS is
computed in Python from the NPS question's 11 counts. bench/survey.py compares this with a
hand-written SQL GROUP BY.

NPS = 100 × (P − D) / n with P promoters (9–10), D detractors (0–6), n answers. Its 95 % interval
is the normal approximation for a difference of two proportions of one multinomial sample:
    p = P/n, d = D/n,  var(p − d) = (p + d − (p − d)²) / n,
    interval = 100 × ((p − d) ± 1.96 × √var), clipped to [−100, 100].
"""

from __future__ import annotations

import math
from typing import IO, Any

import sqlalchemy as sa

from campaigns import survey_def
from campaigns.actions import CampaignSettings
from campaigns.models import Campaign, CampaignKind, Delivery, DeliveryStatus
from campaigns.surveys import SurveyAnswer, SurveyResponse, answers_of
from core.errors import NotFound, ValidationFailed
from core.extensions import db
from supporters.models import Supporter
from supporters.transfer import FORMATS, defuse, iso_timestamp, write

Z95 = 1.96
MAX_PAGE = 500


def nps(counts: dict[int, int]) -> dict[str, Any]:
    """Promoters, passives, detractors and the score with its 95 % confidence interval."""
    n = sum(counts.values())
    promoters = sum(c for v, c in counts.items() if v >= 9)
    detractors = sum(c for v, c in counts.items() if v <= 6)
    out: dict[str, Any] = {"answers": n, "promoters": promoters, "passives": n - promoters - detractors,
                           "detractors": detractors, "score": None, "ci95": None}
    if n:
        p, d = promoters / n, detractors / n
        half = Z95 * math.sqrt(max(p + d - (p - d) ** 2, 0.0) / n)
        out["score"] = round(100 * (p - d), 1)
        out["ci95"] = [round(max(-100.0, 100 * (p - d - half)), 1), round(min(100.0, 100 * (p - d + half)), 1)]
    return out


def _survey(campaign_id: int) -> tuple[Campaign, dict]:
    campaign = db.session.get(Campaign, campaign_id)
    if campaign is None:
        raise NotFound(f"campaign {campaign_id} does not exist")
    if campaign.kind != CampaignKind.SURVEY:
        raise NotFound(f"campaign {campaign_id} is not a survey")
    row = db.session.get(CampaignSettings, campaign_id)
    return campaign, (row.config if row else {"questions": []})


def _label(q: dict) -> str:
    return q["label"].get("en") or next(iter(q["label"].values()))


def figures(campaign_id: int) -> dict[str, Any]:
    """The `survey` member of the campaign's results."""
    _campaign, cfg = _survey(campaign_id)
    sent = db.session.scalar(sa.select(sa.func.count()).where(
        Delivery.campaign_id == campaign_id, Delivery.status.in_((DeliveryStatus.SENT, DeliveryStatus.BOUNCED))))
    responses, completed, replies = db.session.execute(
        sa.select(sa.func.count(), sa.func.count(SurveyResponse.completed_at),
                  sa.func.count(SurveyResponse.reply_requested_at))
        .where(SurveyResponse.campaign_id == campaign_id)).one()
    counts: dict[str, dict[int, int]] = {}
    answered: dict[str, int] = {}
    for question, value, n in db.session.execute(
            sa.select(SurveyAnswer.question, SurveyAnswer.value, sa.func.count())
            .where(SurveyAnswer.campaign_id == campaign_id).group_by(SurveyAnswer.question, SurveyAnswer.value)):
        if value is None:
            answered[question] = answered.get(question, 0) + n  # text answers
        else:
            counts.setdefault(question, {})[value] = n
    multiple = [q["key"] for q in cfg["questions"] if q["type"] == "multiple"]
    # People who answered a multiple choice (its rows count choices, not people).
    respondents = dict(db.session.execute(
        sa.select(SurveyAnswer.question, sa.func.count(sa.distinct(SurveyAnswer.response_id)))
        .where(SurveyAnswer.campaign_id == campaign_id, SurveyAnswer.question.in_(multiple))
        .group_by(SurveyAnswer.question)).all()) if multiple else {}
    questions = [_summary(q, counts.get(q["key"], {}), answered.get(q["key"], 0), respondents)
                 for q in cfg["questions"]]
    first_nps = next((q["key"] for q in cfg["questions"] if q["type"] == "nps"), None)
    return {
        "sent": sent, "responses": responses, "completed": completed, "reply_requests": replies,
        "response_rate": round(responses / sent, 4) if sent else None,
        "completion_rate": round(completed / sent, 4) if sent else None,
        "questions": questions,
        "nps": nps(counts.get(first_nps, {})) if first_nps else None,
        "breakdown": _breakdown(campaign_id, first_nps),
    }


def _summary(q: dict, counts: dict[int, int], texts: int, respondents: dict[str, int]) -> dict[str, Any]:
    out: dict[str, Any] = {"key": q["key"], "type": q["type"], "label": _label(q)}
    kind = q["type"]
    if kind in survey_def.SCALES:
        lo, hi = survey_def.SCALES[kind]
        n = sum(counts.values())
        out.update(answers=n, distribution={str(v): counts.get(v, 0) for v in range(lo, hi + 1)},
                   mean=round(sum(v * c for v, c in counts.items()) / n, 2) if n else None)
        if kind == "nps":
            out["nps"] = nps(counts)
    elif kind in survey_def.CHOICE_TYPES:
        labels = q["options"].get("en") or next(iter(q["options"].values()))
        out.update(answers=respondents.get(q["key"], sum(counts.values())) if kind == "multiple"
                   else sum(counts.values()),
                   options=[{"option": i, "label": label, "count": counts.get(i, 0)} for i, label in enumerate(labels)])
    else:
        out["answers"] = texts
    return out


def _breakdown(campaign_id: int, nps_key: str | None) -> dict[str, list[dict[str, Any]]]:
    """Responses (and NPS, if the survey has one) per supporter kind and per language.

    One GROUP BY over the responses each: the first NPS score is kept on the response row.
    """
    out: dict[str, list[dict[str, Any]]] = {}
    for name, column in (("kind", SurveyResponse.supporter_kind), ("language", SurveyResponse.language)):
        groups: dict[str, int] = {}
        scores: dict[str, dict[int, int]] = {}
        for group, value, n in db.session.execute(
                sa.select(column, SurveyResponse.nps, sa.func.count())
                .where(SurveyResponse.campaign_id == campaign_id).group_by(column, SurveyResponse.nps)):
            groups[group] = groups.get(group, 0) + n
            if value is not None:
                scores.setdefault(group, {})[value] = n
        out[name] = [{name: g, "responses": groups[g], **({"nps": nps(scores.get(g, {}))} if nps_key else {})}
                     for g in sorted(groups)]
    return out


def text_answers(campaign_id: int, question: str | None, after: int = 0, limit: int = 50) -> dict[str, Any]:
    """Keyset pages of free-text answers (oldest first), optionally of one question; `next_after` continues."""
    _campaign, cfg = _survey(campaign_id)
    texts = [q["key"] for q in cfg["questions"] if survey_def.is_text_question(q)]
    if question is not None and question not in texts:
        raise ValidationFailed({"question": [f"one of this survey's text questions: {', '.join(texts) or 'none'}"]})
    where = [SurveyAnswer.campaign_id == campaign_id, SurveyAnswer.text.is_not(None), SurveyAnswer.id > after]
    if question is not None:
        where.append(SurveyAnswer.question == question)
    rows = db.session.execute(
        sa.select(SurveyAnswer.id, SurveyAnswer.question, SurveyAnswer.text, SurveyResponse.supporter_id,
                  SurveyResponse.supporter_kind, SurveyResponse.language, SurveyResponse.updated_at)
        .join(SurveyResponse, SurveyResponse.id == SurveyAnswer.response_id)
        .where(*where).order_by(SurveyAnswer.id).limit(limit)).all()
    db.session.commit()
    items = [{"id": i, "question": q, "text": t, "supporter_id": s, "kind": k, "language": lang,
              "answered_at": at.isoformat()} for i, q, t, s, k, lang, at in rows]
    return {"items": items, "next_after": items[-1]["id"] if len(items) == limit else None}


def follow_ups(campaign_id: int, after: int = 0, limit: int = 50) -> dict[str, Any]:
    """Respondents who asked for a personal reply, by response id (keyset pages)."""
    _survey(campaign_id)
    rows = db.session.execute(
        sa.select(SurveyResponse.id, SurveyResponse.supporter_id, Supporter.email, Supporter.name,
                  SurveyResponse.language, SurveyResponse.reply_requested_at)
        .join(Supporter, Supporter.id == SurveyResponse.supporter_id)
        .where(SurveyResponse.campaign_id == campaign_id, SurveyResponse.reply_requested_at.is_not(None),
               SurveyResponse.id > after).order_by(SurveyResponse.id).limit(limit)).all()
    items = [{"response_id": r, "supporter_id": s, "email": e, "name": n, "language": lang,
              "requested_at": at.isoformat(), "answers": answers_of(r)} for r, s, e, n, lang, at in rows]
    db.session.commit()
    return {"items": items, "next_after": items[-1]["response_id"] if len(items) == limit else None}


EXPORT_FIELDS = ("response_id", "delivery_id", "supporter_id", "kind", "language", "completed_at", "question",
                 "value", "text")


def export_select(campaign_id: int, for_csv: bool) -> sa.Select:
    """One row per answer (one per chosen option); text defused against spreadsheet formulas in CSV."""
    completed = iso_timestamp(SurveyResponse.completed_at) if for_csv else SurveyResponse.completed_at
    text = defuse(SurveyAnswer.text) if for_csv else SurveyAnswer.text
    return (sa.select(SurveyResponse.id.label("response_id"), SurveyResponse.delivery_id.label("delivery_id"),
                      SurveyResponse.supporter_id.label("supporter_id"), SurveyResponse.supporter_kind.label("kind"),
                      SurveyResponse.language.label("language"), completed.label("completed_at"),
                      SurveyAnswer.question.label("question"), SurveyAnswer.value.label("value"), text.label("text"))
            .join(SurveyResponse, SurveyResponse.id == SurveyAnswer.response_id)
            .where(SurveyAnswer.campaign_id == campaign_id).order_by(SurveyAnswer.response_id, SurveyAnswer.id))


def export_answers(out: IO[bytes], campaign_id: int, fmt: str = "csv") -> int:
    if fmt not in FORMATS:
        raise ValidationFailed({"format": [f"must be one of {', '.join(FORMATS)}"]})
    _survey(campaign_id)
    return write(export_select(campaign_id, fmt == "csv"), out, fmt)
