"""Tags: CRUD, with the `public` flag for tags supporters may pick themselves on the join form."""

from __future__ import annotations

import sqlalchemy as sa
from flask import jsonify, url_for
from marshmallow import fields

from api import bp
from api.auth import require
from api.conventions import audit, check_if_match, etag_for, load_json, load_query, with_etag
from api.idempotency import idempotent
from api.openapi import doc
from api.pagination import keyset_page
from api.schemas import INT_ID_RULE, ApiSchema, PageQuery, Text, page_of
from core.errors import NotFound
from core.extensions import db
from supporters import manage
from supporters.models import Tag, supporter_tags

TID = f"<{INT_ID_RULE}:tag_id>"


class TagOut(ApiSchema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    public = fields.Boolean(required=True, metadata={"description": "offered as an interest on the join form"})
    label_de = fields.String(allow_none=True, required=True)
    label_en = fields.String(allow_none=True, required=True)
    created_at = fields.DateTime(required=True)
    members = fields.Integer(metadata={"description": "number of tagged supporters (single-tag reads only)"})


class TagIn(ApiSchema):
    name = Text(required=True, min=1, max=80)
    public = fields.Boolean(load_default=False)
    label_de = Text(max=120, allow_none=True)
    label_en = Text(max=120, allow_none=True)


class TagPatch(ApiSchema):
    name = Text(min=1, max=80)
    public = fields.Boolean()
    label_de = Text(max=120, allow_none=True)
    label_en = Text(max=120, allow_none=True)


class TagQuery(PageQuery):
    public = fields.Boolean(metadata={"description": "only public (true) or only internal (false) tags"})


def _tag(tag_id: int) -> Tag:
    tag = db.session.get(Tag, tag_id)
    if tag is None:
        raise NotFound(f"no tag {tag_id}")
    return tag


def _dump(tag: Tag, members: bool = False) -> dict:
    data = {c: getattr(tag, c) for c in ("id", "name", "public", "label_de", "label_en", "created_at")}
    if members:
        data["members"] = db.session.scalar(
            sa.select(sa.func.count()).select_from(supporter_tags).where(supporter_tags.c.tag_id == tag.id))
    return TagOut().dump(data)


def _etag(tag: Tag) -> str:
    return etag_for("tag", tag.id, tag.name, tag.public, tag.label_de, tag.label_en)


@bp.get("/tags")
@doc("List tags", tag="Tags", query=TagQuery, response=page_of(TagOut))
@require("viewer")
def list_tags():
    args = load_query(TagQuery())
    query = sa.select(Tag)
    if "public" in args:
        query = query.where(Tag.public.is_(args["public"]))
    return jsonify(keyset_page(query, Tag.id, args, lambda rows: [_dump(t) for t in rows]))


@bp.post("/tags")
@doc("Create a tag", tag="Tags", body=TagIn, response=TagOut, status=201, errors=(409,), idempotent=True)
@require("manager")
@idempotent
def create_tag():
    data = load_json(TagIn())
    tag = manage.create_tag(data)
    audit("tag.create", "tag", tag.id, {"name": tag.name})
    db.session.commit()
    response = jsonify(_dump(tag))
    response.status_code = 201
    response.headers["Location"] = url_for("api.get_tag", tag_id=tag.id)
    return with_etag(response, _etag(tag))


@bp.get(f"/tags/{TID}")
@doc("Get a tag with its member count", tag="Tags", response=TagOut, etag=True)
@require("viewer")
def get_tag(tag_id: int):
    tag = _tag(tag_id)
    return with_etag(jsonify(_dump(tag, members=True)), _etag(tag))


@bp.patch(f"/tags/{TID}")
@doc("Change a tag", tag="Tags", body=TagPatch, response=TagOut, etag=True, errors=(409,))
@require("manager")
def patch_tag(tag_id: int):
    tag = _tag(tag_id)
    check_if_match(_etag(tag))
    data = load_json(TagPatch(), partial=True)
    changed = manage.update_tag(tag, data)
    if changed:
        audit("tag.update", "tag", tag.id, {"fields": changed})
    db.session.commit()
    return with_etag(jsonify(_dump(tag)), _etag(tag))


@bp.delete(f"/tags/{TID}")
@doc("Delete a tag (supporters lose it; they stay)", tag="Tags", status=204, etag=True)
@require("manager")
def delete_tag(tag_id: int):
    tag = _tag(tag_id)
    check_if_match(_etag(tag))
    audit("tag.delete", "tag", tag.id, {"name": tag.name})
    db.session.execute(supporter_tags.delete().where(supporter_tags.c.tag_id == tag.id))
    db.session.delete(tag)
    db.session.commit()
    return "", 204
