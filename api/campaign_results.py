"""Results of share/review/vote campaigns: /api/v1/campaigns/{id}/actions, …/results and the
petition's official answer …/answer. (…/stats carries the same results next to the delivery counts.)
"""

from __future__ import annotations

from flask import request
from marshmallow import INCLUDE, RAISE, Schema, ValidationError, fields, validate

from api import bp
from api.auth import current_principal, require
from api.campaigns import CID, CampaignOut, ContentSchema, StatsQuery, dump
from api.conventions import load_json
from api.openapi import doc
from campaigns import acting, results
from supporters.models import LANGUAGES


class AnswerSchema(Schema):
    class Meta:
        unknown = RAISE

    contents = fields.Dict(keys=fields.String(validate=validate.OneOf(LANGUAGES)),
                           values=fields.Nested(ContentSchema), required=True,
                           validate=validate.Length(min=1))


class ActionsQuery(Schema):
    after = fields.Integer(validate=validate.Range(min=0, max=2**62), metadata={"description": "default 0"})
    limit = fields.Integer(validate=validate.Range(min=1, max=500), metadata={"description": "default 50"})


class _Open(Schema):
    class Meta:
        unknown = INCLUDE


class ActionOut(_Open):
    id = fields.Integer(required=True)
    kind = fields.String(required=True)
    detail = fields.String(allow_none=True, required=True)
    note = fields.String(allow_none=True, required=True)
    supporter_id = fields.Integer(allow_none=True, required=True)
    created_at = fields.DateTime(required=True)
    comment = fields.String(allow_none=True, metadata={"description": "petition signatures only"})


class ActionPage(_Open):
    items = fields.List(fields.Nested(ActionOut), required=True)
    next_after = fields.Integer(allow_none=True, required=True, metadata={"description": "null on the last page"})


class ActivityOut(_Open):
    start = fields.String(required=True, metadata={"description": "the bucket's start, UTC"})
    sent = fields.Integer(required=True)
    clicked = fields.Integer(required=True)
    acted = fields.Integer(required=True)


class ResultsOut(_Open):
    """Plus one member named after the campaign's kind (share, review, vote) with its figures."""

    funnel = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    k_factor = fields.Float(allow_none=True, required=True)
    referral_depth = fields.Integer(required=True)
    links = fields.List(fields.Dict(), required=True)
    bucket = fields.String(required=True)
    timeline = fields.List(fields.Dict(), required=True, metadata={
        "description": "actions per time bucket and kind: {start, share: n, …}"})
    activity = fields.List(fields.Nested(ActivityOut), required=True, metadata={
        "description": "per time bucket: mails sent, first clicks per mail, first actions per supporter "
                       "(each column adds up to the funnel's figure)"})
    referral_generations = fields.List(fields.Integer(), required=True, metadata={
        "description": "newcomers per generation of the referral tree: joined through the campaign, "
                       "brought by those, …"})


def _int_arg(name: str, default: int, lo: int, hi: int) -> int:
    try:
        value = int(request.args.get(name, default))
    except ValueError:
        raise ValidationError({name: ["must be a whole number"]}) from None
    if not lo <= value <= hi:
        raise ValidationError({name: [f"must be between {lo} and {hi}"]})
    return value


@bp.get(f"/campaigns/{CID}/actions")
@doc("The campaign's actions, oldest first", tag="Campaign results", query=ActionsQuery, response=ActionPage)
@require("viewer")
def campaign_actions(campaign_id: int):
    """Actions oldest first; `?after=<id>&limit=<1..500>` pages by id (keyset)."""
    return results.list_actions(campaign_id, _int_arg("after", 0, 0, 2**62), _int_arg("limit", 50, 1, 500))


@bp.get(f"/campaigns/{CID}/results")
@doc("Funnel, per-kind figures, timeline, k-factor, referral depth", tag="Campaign results", query=StatsQuery, response=ResultsOut)
@require("viewer")
def campaign_results(campaign_id: int):
    """Funnel, per-kind figures, time buckets (`?bucket=hour|day|week`), k-factor, referral depth."""
    return results.results(campaign_id, request.args.get("bucket", "day"))


@bp.post(f"/campaigns/{CID}/answer")
@doc("Publish a petition's official answer to its signers", tag="Campaign results", body=AnswerSchema, response=CampaignOut, status=202, errors=(409,))
@require("manager")
def petition_answer(campaign_id: int):
    """Publish the official answer to a petition: an announcement to exactly its signers."""
    data = load_json(AnswerSchema())
    p = current_principal()
    answer = acting.publish_answer(campaign_id, data["contents"],
                                   {"actor_type": p.kind, "actor_id": p.user.id, "actor_label": p.label})
    return dump(answer), 202, {"Location": f"/api/v1/campaigns/{answer.id}"}
