"""The audit trail (admin only): who did what, when, newest first."""

from __future__ import annotations

import sqlalchemy as sa
from flask import jsonify
from marshmallow import fields

from api import bp
from api.auth import require
from api.conventions import load_query
from api.openapi import doc
from api.pagination import keyset_page
from api.schemas import ApiSchema, PageQuery, Text, page_of
from core.accounts import AuditEvent


class AuditOut(ApiSchema):
    id = fields.Integer(required=True)
    occurred_at = fields.DateTime(required=True)
    actor_type = fields.String(required=True)
    actor_id = fields.Integer(allow_none=True, required=True)
    actor_label = fields.String(allow_none=True, required=True)
    action = fields.String(required=True)
    object_type = fields.String(allow_none=True, required=True)
    object_id = fields.String(allow_none=True, required=True)
    detail = fields.Dict(allow_none=True, required=True)
    ip = fields.String(allow_none=True, required=True)


class AuditQuery(PageQuery):
    action = Text(max=60, min=1, metadata={"description": "exact action, e.g. supporter.erase"})
    object_type = Text(max=40, min=1)
    object_id = Text(max=64, min=1)
    actor_type = Text(max=20, min=1)


@bp.get("/audit")
@doc("The audit trail, newest first", tag="Audit", query=AuditQuery, response=page_of(AuditOut))
@require("admin")
def audit_trail():
    args = load_query(AuditQuery())
    query = sa.select(AuditEvent)
    for name in ("action", "object_type", "object_id", "actor_type"):
        if name in args:
            query = query.where(getattr(AuditEvent, name) == args[name])
    return jsonify(keyset_page(query, AuditEvent.id, args,
                               lambda rows: [AuditOut().dump({c: getattr(e, c) for c in AuditOut._declared_fields})
                                             for e in rows], descending=True))
