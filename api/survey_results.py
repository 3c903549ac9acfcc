"""Survey answers over the API: text answers (keyset pages), follow-up requests, CSV/JSON-lines export.

The survey's figures (distributions, NPS with its interval, breakdowns, response rate) are the
`survey` member of /api/v1/campaigns/{id}/results (campaigns.survey_results).
"""

from __future__ import annotations

import io

from flask import Response, request
from marshmallow import INCLUDE, Schema, fields, validate

from api import bp
from api.auth import require
from api.campaign_results import _int_arg
from api.campaigns import CID
from api.openapi import doc
from campaigns import survey_results
from core.errors import ValidationFailed


class _Open(Schema):
    class Meta:
        unknown = INCLUDE


class TextAnswersQuery(Schema):
    question = fields.String(metadata={"description": "a text question's key (default: all text questions)"})
    after = fields.Integer(validate=validate.Range(min=0, max=2**62), metadata={"description": "default 0"})
    limit = fields.Integer(validate=validate.Range(min=1, max=500), metadata={"description": "default 50"})


class TextAnswerOut(_Open):
    id = fields.Integer(required=True)
    question = fields.String(required=True)
    text = fields.String(required=True)
    supporter_id = fields.Integer(required=True)
    kind = fields.String(required=True)
    language = fields.String(required=True)
    answered_at = fields.DateTime(required=True)


class TextAnswerPage(_Open):
    items = fields.List(fields.Nested(TextAnswerOut), required=True)
    next_after = fields.Integer(allow_none=True, required=True, metadata={"description": "null on the last page"})


class FollowUpPage(_Open):
    items = fields.List(fields.Dict(), required=True)
    next_after = fields.Integer(allow_none=True, required=True, metadata={"description": "null on the last page"})


class PageQuery(Schema):
    after = fields.Integer(validate=validate.Range(min=0, max=2**62), metadata={"description": "default 0"})
    limit = fields.Integer(validate=validate.Range(min=1, max=500), metadata={"description": "default 50"})


class ExportQuery(Schema):
    format = fields.String(validate=validate.OneOf(("csv", "jsonl")), metadata={"description": "default csv"})


def _question() -> str | None:
    value = request.args.get("question")
    if value is not None and (not value or len(value) > 40):
        raise ValidationFailed({"question": ["a question key of 1 to 40 characters"]})
    return value


@bp.get(f"/campaigns/{CID}/survey/answers")
@doc("A survey's free-text answers, oldest first", tag="Campaign results", query=TextAnswersQuery,
     response=TextAnswerPage, errors=(404,))
@require("viewer")
def survey_text_answers(campaign_id: int):
    """Free-text answers; `?question=KEY&after=<id>&limit=<1..500>` pages by id (keyset)."""
    return survey_results.text_answers(campaign_id, _question(), _int_arg("after", 0, 0, 2**62),
                                       _int_arg("limit", 50, 1, 500))


@bp.get(f"/campaigns/{CID}/survey/follow-ups")
@doc("Respondents who asked for a personal reply", tag="Campaign results", query=PageQuery,
     response=FollowUpPage, errors=(404,))
@require("manager")
def survey_follow_ups(campaign_id: int):
    """Who asked for a personal reply on the thank-you page, with their answers (keyset pages)."""
    return survey_results.follow_ups(campaign_id, _int_arg("after", 0, 0, 2**62), _int_arg("limit", 50, 1, 500))


@bp.get(f"/campaigns/{CID}/survey/export")
@doc("Export a survey's answers, one row per answer (CSV formula-safe, or JSON lines)", tag="Campaign results",
     query=ExportQuery, errors=(404,))
@require("manager")
def survey_export(campaign_id: int):
    """All answers of the survey as CSV (text cells defused against formulas) or JSON lines."""
    fmt = request.args.get("format", "csv")
    out = io.BytesIO()
    survey_results.export_answers(out, campaign_id, fmt)
    mimetype = "text/csv" if fmt == "csv" else "application/x-ndjson"
    response = Response(out.getvalue(), mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="survey-{campaign_id}-answers.{fmt}"'
    response.headers["Cache-Control"] = "no-store"  # personal data
    return response
