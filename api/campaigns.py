"""Campaign endpoints: /api/v1/campaigns (create, edit, preview, test, launch, pause, resume, cancel, stats)
and /api/v1/campaigns/bounces (report bounces back). Handlers are load → service → dump.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import request
from marshmallow import INCLUDE, RAISE, Schema, ValidationError, fields, validate, validates_schema

from api import bp
from api.auth import current_principal, require
from api.conventions import load_json, load_query
from api.openapi import doc
from api.schemas import INT_ID_RULE, MAX_ID, MAX_INT_ID, Text, Time
from campaigns import kinds, results, services
from campaigns.models import Campaign, CampaignKind, CampaignStatus
from core.extensions import db
from supporters.models import LANGUAGES

# campaigns.id is a 32-bit key: bigger ids are a 404 at routing, not a database overflow.
CID = f"<{INT_ID_RULE}:campaign_id>"


class _Strict(Schema):
    class Meta:
        unknown = RAISE


class ContentSchema(_Strict):
    subject = Text(required=True, min=1, max=300)  # one line: a mail header
    body = fields.String(required=True, validate=validate.Length(min=1, max=100_000))


class AudienceSchema(_Strict):
    filter = fields.Dict(allow_none=True, load_default=None)  # supporters.segments filter language
    exclude = fields.Dict(allow_none=True, load_default=None)
    segment_id = fields.Integer(allow_none=True, load_default=None, validate=validate.Range(min=1, max=MAX_INT_ID))  # AND filter


class CampaignInSchema(_Strict):
    name = Text(required=True, min=1, max=200)
    kind = fields.String(load_default=CampaignKind.ANNOUNCEMENT.value,
                         validate=validate.OneOf([k.value for k in CampaignKind]))
    audience = fields.Nested(AudienceSchema, load_default=None, allow_none=True)
    contents = fields.Dict(keys=fields.String(validate=validate.OneOf(LANGUAGES)),
                           values=fields.Nested(ContentSchema), load_default=dict)
    sender = Text(max=254, allow_none=True, load_default=None,
                  metadata={"description": "an address or `Name <address>`; default MAIL_FROM"})
    send_at = Time(allow_none=True, load_default=None, default_timezone=None)
    rate_per_minute = fields.Integer(allow_none=True, load_default=None, validate=validate.Range(min=1, max=1_000_000))
    respect_quiet_hours = fields.Boolean(load_default=False)
    settings = fields.Dict(allow_none=True)  # kind-specific: campaigns.kinds, docs/actions.md


class TestSendSchema(_Strict):
    to = fields.String(required=True, validate=validate.Length(min=1, max=320),
                       metadata={"description": "any valid address, internationalised ones included"})
    language = fields.String(load_default=None, validate=validate.OneOf(LANGUAGES))


class BounceSchema(_Strict):
    message_id = fields.String(load_default=None, validate=validate.Length(max=300))
    delivery_id = fields.Integer(load_default=None, validate=validate.Range(min=1, max=MAX_ID))
    type = fields.String(load_default="hard", validate=validate.OneOf(["hard", "soft"]))
    reason = fields.String(load_default=None, validate=validate.Length(max=400))

    @validates_schema
    def _one_id(self, data, **_kwargs):
        if (data.get("message_id") is None) == (data.get("delivery_id") is None):
            raise ValidationError("give exactly one of message_id and delivery_id", "message_id")


class CampaignListQuery(Schema):
    status = fields.String(validate=validate.OneOf([s.value for s in CampaignStatus]))
    limit = fields.Integer(validate=validate.Range(min=1, max=200), metadata={"description": "default 50"})
    after = fields.Integer(validate=validate.Range(min=0, max=MAX_INT_ID), metadata={"description": "the `next_after` of the last page"})


# Response shapes, for the OpenAPI document (the handlers build plain dicts). INCLUDE: a client must
# tolerate fields added later, and the kind-specific parts vary.
class _Open(Schema):
    class Meta:
        unknown = INCLUDE


class AudienceOut(_Open):
    filter = fields.Dict(allow_none=True, required=True)
    exclude = fields.Dict(allow_none=True, required=True)
    segment_id = fields.Integer(allow_none=True, required=True,
                                metadata={"description": "a saved segment; the audience is it AND `filter`"})


class CampaignOut(_Open):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    kind = fields.String(required=True, validate=validate.OneOf([k.value for k in CampaignKind]))
    status = fields.String(required=True, validate=validate.OneOf([s.value for s in CampaignStatus]))
    status_reason = fields.String(allow_none=True, required=True)
    audience = fields.Nested(AudienceOut, required=True)
    contents = fields.Dict(keys=fields.String(), values=fields.Nested(ContentSchema), required=True)
    sender = fields.String(allow_none=True, required=True)
    send_at = fields.DateTime(allow_none=True, required=True)
    rate_per_minute = fields.Integer(allow_none=True, required=True)
    respect_quiet_hours = fields.Boolean(required=True)
    created_at = fields.DateTime(required=True)
    launched_at = fields.DateTime(allow_none=True, required=True)
    finished_at = fields.DateTime(allow_none=True, required=True)
    settings = fields.Dict(allow_none=True, required=True)
    warnings = fields.List(fields.String(), required=True)


class CampaignPage(_Open):
    items = fields.List(fields.Nested(CampaignOut), required=True)
    next_after = fields.Integer(allow_none=True, required=True, metadata={"description": "null on the last page"})


class LaunchOut(CampaignOut):
    queued = fields.Integer(metadata={"description": "deliveries queued (a launch now, not a schedule)"})


class LintOut(_Open):
    code = fields.String(required=True, metadata={"description": "no_text, image_only, images_removed, "
                                                  "insecure_link, long_subject, no_unsubscribe_placeholder, "
                                                  "settings.<field>"})
    severity = fields.String(required=True, validate=validate.OneOf(["warning", "info"]))
    message = fields.String(required=True)


class CampaignPreviewOut(_Open):
    recipients = fields.Integer(required=True)
    audience = fields.Integer(required=True)
    left_out = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    samples = fields.Dict(keys=fields.String(), values=fields.Dict(), required=True, metadata={
        "description": "per language: subject, text and html as sent (layout and footer included) for a "
                       "supporter without a name, `longest_name` for the audience's longest first name, and "
                       "`spamassassin` {score, required} when SpamAssassin is installed"})
    needs_smtputf8 = fields.Integer(required=True, metadata={
        "description": "active audience members with a UTF-8 local part: they fail with 'server does not "
                       "support SMTPUTF8' unless the relay offers SMTPUTF8"})
    lint = fields.Dict(keys=fields.String(), values=fields.List(fields.Nested(LintOut)), required=True,
                       metadata={"description": "per language: what makes the content look like spam or read badly"})


class TestSendOut(_Open):
    sent_to = fields.String(required=True)
    language = fields.String(required=True)
    message_id = fields.String(required=True)


class StatsQuery(Schema):
    bucket = fields.String(validate=validate.OneOf(results.BUCKETS), metadata={"description": "default day"})


class StatsOut(_Open):
    id = fields.Integer(required=True)
    status = fields.String(required=True)
    status_reason = fields.String(allow_none=True, required=True)
    deliveries = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    skipped = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    failed = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True,
                         metadata={"description": "failed deliveries by cause: smtputf8 (the relay lacks SMTPUTF8), "
                                   "invalid_address, unsendable, retries_exhausted, refused"})
    total = fields.Integer(required=True)
    progress = fields.Float(required=True)
    possible_duplicates = fields.Integer(required=True, metadata={
        "description": "sent deliveries that may have reached the server twice (a lost worker's lease, "
                       "or a connection dropped after the whole message), each resent with the same Message-ID"})
    sent_after_stop = fields.Integer(required=True, metadata={
        "description": "sent deliveries whose supporter withdrew while the SMTP transaction was under way"})
    complaints = fields.Integer(required=True, metadata={"description": "spam complaints (ARF abuse reports)"})
    complaint_rate = fields.Float(required=True, metadata={"description": "complaints / sent; above "
                                  "COMPLAINT_PAUSE_PERCENT the campaign pauses itself"})
    launched_at = fields.DateTime(allow_none=True, required=True)
    finished_at = fields.DateTime(allow_none=True, required=True)
    results = fields.Dict(required=True, metadata={"description": "as GET /campaigns/{id}/results"})


class BounceOut(_Open):
    delivery_id = fields.Integer(required=True)
    campaign_id = fields.Integer(required=True)
    status = fields.String(required=True)
    suppressed = fields.Boolean(required=True)


def _actor() -> dict[str, Any]:
    p = current_principal()
    return {"actor_type": p.kind, "actor_id": p.user.id, "actor_label": p.label}


def dump(c: Campaign) -> dict[str, Any]:
    return {
        "id": c.id, "name": c.name, "kind": c.kind.value, "status": c.status.value, "status_reason": c.status_reason,
        "audience": {"filter": c.audience_filter, "exclude": c.exclude_filter, "segment_id": c.segment_id},
        "contents": {x.language: {"subject": x.subject, "body": x.body} for x in c.contents},
        "sender": c.sender, "send_at": c.send_at.isoformat() if c.send_at else None,
        "rate_per_minute": c.rate_per_minute, "respect_quiet_hours": c.respect_quiet_hours,
        "created_at": c.created_at.isoformat(), "launched_at": c.launched_at.isoformat() if c.launched_at else None,
        "finished_at": c.finished_at.isoformat() if c.finished_at else None,
        **kinds.describe(c),
    }


@bp.get("/campaigns")
@doc("List campaigns (by id; `next_after` pages)", tag="Campaigns", query=CampaignListQuery, response=CampaignPage)
@require("viewer")
def list_campaigns():
    # Out-of-range values are refused as the document says (422 naming the field), never clamped.
    args = load_query(CampaignListQuery())
    status, limit, after = args.get("status"), args.get("limit", 50), args.get("after", 0)
    query = sa.select(Campaign).where(Campaign.id > after).order_by(Campaign.id).limit(limit)
    if status:
        query = query.where(Campaign.status == status)
    items = [dump(c) for c in db.session.scalars(query)]
    return {"items": items, "next_after": items[-1]["id"] if len(items) == limit else None}


@bp.post("/campaigns")
@doc("Create a draft campaign", tag="Campaigns", body=CampaignInSchema, response=CampaignOut, status=201)
@require("manager")
def create_campaign():
    data = load_json(CampaignInSchema())
    campaign = services.create_campaign(data, _actor(), owner_email=current_principal().user.email)
    return dump(campaign), 201, {"Location": f"/api/v1/campaigns/{campaign.id}"}


@bp.get(f"/campaigns/{CID}")
@doc("Get a campaign", tag="Campaigns", response=CampaignOut)
@require("viewer")
def get_campaign(campaign_id: int):
    return dump(services.get_campaign(campaign_id))


@bp.patch(f"/campaigns/{CID}")
@doc("Change a draft campaign (fields given replace)", tag="Campaigns", body=CampaignInSchema, response=CampaignOut, errors=(409,))
@require("manager")
def update_campaign(campaign_id: int):
    data = load_json(CampaignInSchema(), partial=True)
    return dump(services.update_campaign(campaign_id, data, _actor()))


@bp.post(f"/campaigns/{CID}/preview")
@doc("Who would receive it now, who is left out and why, rendered samples", tag="Campaigns", response=CampaignPreviewOut)
@require("manager")
def preview_campaign(campaign_id: int):
    return services.preview(campaign_id)


@bp.post(f"/campaigns/{CID}/test")
@doc("Send a test message to one address", tag="Campaigns", body=TestSendSchema, response=TestSendOut,
     errors=(409, 422, 502))
@require("manager")
def test_campaign(campaign_id: int):
    data = load_json(TestSendSchema())
    return services.send_test(campaign_id, data["to"], data["language"])


@bp.post(f"/campaigns/{CID}/launch")
@doc("Launch now (snapshot the audience) or schedule for send_at", tag="Campaigns", response=LaunchOut, status=202, errors=(409, 422))
@require("manager")
def launch_campaign(campaign_id: int):
    result = services.launch(campaign_id, _actor())
    return {**dump(services.get_campaign(campaign_id)), **result}, 202


@bp.post(f"/campaigns/{CID}/pause")
@doc("Pause sending", tag="Campaigns", response=CampaignOut, errors=(409,))
@require("manager")
def pause_campaign(campaign_id: int):
    return dump(services.pause(campaign_id, _actor()))


@bp.post(f"/campaigns/{CID}/resume")
@doc("Resume sending", tag="Campaigns", response=CampaignOut, errors=(409,))
@require("manager")
def resume_campaign(campaign_id: int):
    return dump(services.resume(campaign_id, _actor()))


@bp.post(f"/campaigns/{CID}/cancel")
@doc("Cancel for good", tag="Campaigns", response=CampaignOut, errors=(409,))
@require("manager")
def cancel_campaign(campaign_id: int):
    return dump(services.cancel(campaign_id, _actor()))


@bp.get(f"/campaigns/{CID}/stats")
@doc("Delivery counts, progress and the action results", tag="Campaigns", query=StatsQuery, response=StatsOut)
@require("viewer")
def campaign_stats(campaign_id: int):
    stats = services.stats(campaign_id)
    # Share/review/vote results (funnel, per-kind figures, k-factor): campaigns.results, issue 6.
    return {**stats, "results": results.results(campaign_id, request.args.get("bucket", "day"))}


@bp.post("/campaigns/bounces")
@doc("Report a bounce (hard bounces suppress the address)", tag="Campaigns", body=BounceSchema, response=BounceOut, errors=(404, 409))
@require("manager")
def report_bounce():
    """Report a bounce: {"message_id": "<d12.c3@example.org>", "type": "hard"|"soft", "reason": "…"}."""
    data = load_json(BounceSchema())
    return services.report_bounce(data["message_id"], data["delivery_id"], hard=data["type"] == "hard",
                                  reason=data["reason"])
