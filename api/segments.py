"""Segments: saved audience definitions (supporters.segments), their count and a preview."""

from __future__ import annotations

import sqlalchemy as sa
from flask import jsonify, url_for
from marshmallow import fields, validate

from api import bp
from api.auth import current_principal, require
from api.conventions import audit, check_if_match, etag_for, load_json, load_query, with_etag
from api.idempotency import idempotent
from api.openapi import doc
from api.pagination import keyset_page
from api.schemas import INT_ID_RULE, ApiSchema, PageQuery, Text, page_of
from api.supporters import SupporterOut, dump_supporters
from core.errors import Conflict, NotFound
from core.extensions import db
from supporters.models import Segment, Supporter
from supporters.segments import FIELDS, OPERATORS, compile_filter, count_matching

GID = f"<{INT_ID_RULE}:segment_id>"
LANGUAGE_HELP = (
    "A node is `{\"all\": [node, …]}`, `{\"any\": [node, …]}`, `{\"not\": node}` or "
    "`{\"field\": F, \"op\": OP, \"value\": V}`. Fields and operators: "
    + "; ".join(f"`{f}`: {', '.join(OPERATORS[f])}" for f in FIELDS)
    + ". Unknown fields or operators are 422 with the JSON path of the offending node."
)


class Definition(fields.Dict):
    """A filter definition; validated by compiling it (errors carry the node's path)."""

    def __init__(self, **kwargs):
        super().__init__(metadata={"description": LANGUAGE_HELP,
                                   "example": {"all": [{"field": "kind", "op": "eq", "value": "fan"},
                                                       {"field": "status", "op": "eq", "value": "active"}]}},
                         **kwargs)


class SegmentOut(ApiSchema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    description = fields.String(allow_none=True, required=True)
    definition = fields.Dict(required=True)
    created_by_id = fields.Integer(allow_none=True, required=True)
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)


class SegmentIn(ApiSchema):
    name = Text(required=True, min=1, max=120)
    description = Text(max=500, allow_none=True)
    definition = Definition(required=True)


class SegmentPatch(ApiSchema):
    name = Text(min=1, max=120)
    description = Text(max=500, allow_none=True)
    definition = Definition()


class DefinitionIn(ApiSchema):
    definition = Definition(required=True)
    limit = fields.Integer(strict=True, load_default=20, validate=validate.Range(min=1, max=100),
                           metadata={"description": "preview only: how many members to show"})


class PreviewQuery(ApiSchema):
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))


class CountOut(ApiSchema):
    count = fields.Integer(required=True)


class PreviewOut(ApiSchema):
    count = fields.Integer(required=True)
    items = fields.List(fields.Nested(SupporterOut), required=True)


def _segment(segment_id: int) -> Segment:
    segment = db.session.get(Segment, segment_id)
    if segment is None:
        raise NotFound(f"no segment {segment_id}")
    return segment


def _dump(segment: Segment) -> dict:
    return SegmentOut().dump({c: getattr(segment, c) for c in SegmentOut._declared_fields})


def _etag(segment: Segment) -> str:
    return etag_for("segment", segment.id, segment.updated_at)


def _unique_name(name: str, own_id: int = 0) -> None:
    if db.session.scalar(sa.select(Segment.id).where(sa.func.lower(Segment.name) == name.lower(),
                                                     Segment.id != own_id)) is not None:
        raise Conflict(f"a segment named {name!r} already exists")


def preview_members(definition, limit: int) -> dict:
    where = compile_filter(definition, path="definition")
    rows = db.session.scalars(sa.select(Supporter).where(where).order_by(Supporter.id).limit(limit)).all()
    return {"count": count_matching(definition, path="definition"), "items": dump_supporters(rows)}


@bp.get("/segments")
@doc("List saved segments", tag="Segments", query=PageQuery, response=page_of(SegmentOut))
@require("viewer")
def list_segments():
    args = load_query(PageQuery())
    return jsonify(keyset_page(sa.select(Segment), Segment.id, args, lambda rows: [_dump(s) for s in rows]))


@bp.post("/segments")
@doc("Save a segment", tag="Segments", body=SegmentIn, response=SegmentOut, status=201, errors=(409,),
     idempotent=True)
@require("manager")
@idempotent
def create_segment():
    data = load_json(SegmentIn())
    compile_filter(data["definition"], path="definition")
    _unique_name(data["name"])
    segment = Segment(**data, created_by_id=current_principal().user.id)
    db.session.add(segment)
    db.session.flush()
    audit("segment.create", "segment", segment.id, {"name": segment.name})
    db.session.commit()
    response = jsonify(_dump(segment))
    response.status_code = 201
    response.headers["Location"] = url_for("api.get_segment", segment_id=segment.id)
    return with_etag(response, _etag(segment))


@bp.get(f"/segments/{GID}")
@doc("Get a saved segment", tag="Segments", response=SegmentOut, etag=True)
@require("viewer")
def get_segment(segment_id: int):
    segment = _segment(segment_id)
    return with_etag(jsonify(_dump(segment)), _etag(segment))


@bp.patch(f"/segments/{GID}")
@doc("Change a saved segment", tag="Segments", body=SegmentPatch, response=SegmentOut, etag=True, errors=(409,))
@require("manager")
def patch_segment(segment_id: int):
    segment = _segment(segment_id)
    check_if_match(_etag(segment))
    data = load_json(SegmentPatch(), partial=True)
    if "definition" in data:
        compile_filter(data["definition"], path="definition")
    if "name" in data:
        _unique_name(data["name"], segment.id)
    changed = [k for k, v in data.items() if getattr(segment, k) != v]
    for key in changed:
        setattr(segment, key, data[key])
    if changed:
        audit("segment.update", "segment", segment.id, {"fields": changed})
    db.session.commit()
    return with_etag(jsonify(_dump(segment)), _etag(segment))


def _refuse_if_used_by_unlaunched_campaigns(segment: Segment) -> None:
    """A draft or scheduled campaign reads the segment at launch: deleting it would widen the audience."""
    from campaigns.models import Campaign, CampaignStatus

    names = db.session.scalars(sa.select(Campaign.name).where(
        Campaign.segment_id == segment.id,
        Campaign.status.in_((CampaignStatus.DRAFT, CampaignStatus.SCHEDULED))).order_by(Campaign.id)).all()
    if names:
        raise Conflict(f"the segment is the audience of campaigns not yet launched: {', '.join(names)}")


@bp.delete(f"/segments/{GID}")
@doc("Delete a saved segment", tag="Segments", status=204, etag=True, errors=(409,))
@require("manager")
def delete_segment(segment_id: int):
    segment = _segment(segment_id)
    check_if_match(_etag(segment))
    _refuse_if_used_by_unlaunched_campaigns(segment)
    audit("segment.delete", "segment", segment.id, {"name": segment.name})
    db.session.delete(segment)
    db.session.commit()
    return "", 204


@bp.get(f"/segments/{GID}/count")
@doc("Count a saved segment's members", tag="Segments", response=CountOut, errors=(422,))
@require("viewer")
def count_segment(segment_id: int):
    return jsonify({"count": count_matching(_segment(segment_id).definition, path="definition")})


@bp.get(f"/segments/{GID}/preview")
@doc("The count and the first members of a saved segment", tag="Segments", query=PreviewQuery,
     response=PreviewOut)
@require("viewer")
def preview_segment(segment_id: int):
    args = load_query(PreviewQuery())
    return jsonify(preview_members(_segment(segment_id).definition, args["limit"]))


@bp.post("/segments/count")
@doc("Count an unsaved definition", tag="Segments", body=DefinitionIn, response=CountOut)
@require("viewer")
def count_definition():
    data = load_json(DefinitionIn())
    return jsonify({"count": count_matching(data["definition"], path="definition")})


@bp.post("/segments/preview")
@doc("The count and the first members of an unsaved definition", tag="Segments", body=DefinitionIn,
     response=PreviewOut)
@require("viewer")
def preview_definition():
    data = load_json(DefinitionIn())
    return jsonify(preview_members(data["definition"], data["limit"]))
