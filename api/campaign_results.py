"""Results of share/review/vote campaigns: /api/v1/campaigns/{id}/actions, …/results and the
petition's official answer …/answer. (…/stats carries the same results next to the delivery counts.)
"""

from __future__ import annotations

from flask import request
from marshmallow import RAISE, Schema, ValidationError, fields, validate

from api import bp
from api.auth import current_principal, require
from api.campaigns import ContentSchema, dump
from campaigns import acting, results
from supporters.models import LANGUAGES


class AnswerSchema(Schema):
    class Meta:
        unknown = RAISE

    contents = fields.Dict(keys=fields.String(validate=validate.OneOf(LANGUAGES)),
                           values=fields.Nested(ContentSchema), required=True,
                           validate=validate.Length(min=1))


def _int_arg(name: str, default: int, lo: int, hi: int) -> int:
    try:
        value = int(request.args.get(name, default))
    except ValueError:
        raise ValidationError({name: ["must be a whole number"]}) from None
    if not lo <= value <= hi:
        raise ValidationError({name: [f"must be between {lo} and {hi}"]})
    return value


@bp.get("/campaigns/<int(max=2147483647):campaign_id>/actions")
@require("viewer")
def campaign_actions(campaign_id: int):
    """Actions oldest first; `?after=<id>&limit=<1..500>` pages by id (keyset)."""
    return results.list_actions(campaign_id, _int_arg("after", 0, 0, 2**62), _int_arg("limit", 50, 1, 500))


@bp.get("/campaigns/<int(max=2147483647):campaign_id>/results")
@require("viewer")
def campaign_results(campaign_id: int):
    """Funnel, per-kind figures, time buckets (`?bucket=hour|day|week`), k-factor, referral depth."""
    return results.results(campaign_id, request.args.get("bucket", "day"))


@bp.post("/campaigns/<int(max=2147483647):campaign_id>/answer")
@require("manager")
def petition_answer(campaign_id: int):
    """Publish the official answer to a petition: an announcement to exactly its signers."""
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ValidationError({"body": ["expected a JSON object"]})
    data = AnswerSchema().load(data)
    p = current_principal()
    answer = acting.publish_answer(campaign_id, data["contents"],
                                   {"actor_type": p.kind, "actor_id": p.user.id, "actor_label": p.label})
    return dump(answer), 202, {"Location": f"/api/v1/campaigns/{answer.id}"}
