"""Dialog topics, the due queue and the listening figures (`/dialog/...`); posts are in dialog_posts."""

from __future__ import annotations

import sqlalchemy as sa
from flask import jsonify, url_for
from marshmallow import ValidationError, fields, validate, validates_schema

from api import bp
from api.auth import require
from api.conventions import audit, check_if_match, etag_for, load_json, load_query, with_etag
from api.idempotency import idempotent
from api.openapi import doc
from api.pagination import keyset_page
from api.schemas import INT_ID_RULE, ApiSchema, PageQuery, Text, page_of
from core.db import utcnow
from core.errors import NotFound
from core.extensions import db
from dialog import figures, topics
from dialog.models import Post, Topic, Visibility
from supporters.models import SupporterKind

TID = f"<{INT_ID_RULE}:topic_id>"
KINDS = [k.value for k in SupporterKind]


class TopicOut(ApiSchema):
    id = fields.Integer(required=True)
    name_en = fields.String(required=True)
    name_de = fields.String(required=True, allow_none=True)
    description_en = fields.String(required=True, allow_none=True)
    description_de = fields.String(required=True, allow_none=True)
    is_open = fields.Boolean(required=True)
    audience_kinds = fields.List(fields.String(), required=True, allow_none=True,
                                 metadata={"description": "supporter kinds that may post and read; null = all"})
    visibility = fields.String(required=True, metadata={"enum": [v.value for v in Visibility]})
    answer_threshold = fields.Integer(required=True, allow_none=True)
    answer_deadline_days = fields.Integer(required=True, allow_none=True)
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)


class _TopicFields(ApiSchema):
    name_de = Text(max=120, allow_none=True)
    description_en = Text(max=2000, allow_none=True)
    description_de = Text(max=2000, allow_none=True)
    is_open = fields.Boolean()
    audience_kinds = fields.List(fields.String(validate=validate.OneOf(KINDS)), allow_none=True,
                                 validate=validate.Length(min=1, max=len(KINDS)))
    visibility = fields.String(validate=validate.OneOf([v.value for v in Visibility]))
    answer_threshold = fields.Integer(strict=True, allow_none=True, validate=validate.Range(min=1, max=10_000_000))
    answer_deadline_days = fields.Integer(strict=True, allow_none=True, validate=validate.Range(min=1, max=3650))

    @validates_schema
    def _deadline_needs_threshold(self, data, **_kwargs):
        if data.get("answer_deadline_days") and data.get("answer_threshold", 1) is None:
            raise ValidationError("a deadline needs an answer threshold", "answer_deadline_days")


class TopicIn(_TopicFields):
    name_en = Text(required=True, min=1, max=120)


class TopicPatch(_TopicFields):
    name_en = Text(min=1, max=120)


class DueQuery(PageQuery):
    overdue = fields.Boolean(metadata={"description": "only answers past their deadline"})


class DueOut(ApiSchema):
    id = fields.Integer(required=True)
    topic_id = fields.Integer(required=True)
    title = fields.String(required=True)
    status = fields.String(required=True)
    backers = fields.Integer(required=True)
    owner_id = fields.Integer(required=True, allow_none=True)
    due_at = fields.DateTime(required=True)
    deadline_at = fields.DateTime(required=True, allow_none=True)
    overdue = fields.Boolean(required=True)


class FiguresOut(ApiSchema):
    topic_id = fields.Integer(required=True)
    name = fields.String(required=True)
    posts = fields.Integer(required=True)
    by_status = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    backings = fields.Integer(required=True)
    backers = fields.Integer(required=True)
    median_hours_to_first_response = fields.Float(required=True, allow_none=True)
    median_hours_to_answer = fields.Float(required=True, allow_none=True)
    due_judged = fields.Integer(required=True)
    answered_within_deadline = fields.Float(required=True, allow_none=True)
    most_backed_open = fields.List(fields.Dict(), required=True)


class ReportOut(ApiSchema):
    topics = fields.List(fields.Nested(FiguresOut), required=True)


def get_topic(topic_id: int) -> Topic:
    topic = db.session.get(Topic, topic_id)
    if topic is None:
        raise NotFound(f"no dialog topic {topic_id}")
    return topic


TOPIC_OUT, DUE_OUT = TopicOut(), DueOut()


def _dump(topic: Topic) -> dict:
    return TOPIC_OUT.dump({c: getattr(topic, c) for c in TOPIC_OUT.fields} | {"visibility": topic.visibility.value})


def _etag(topic: Topic) -> str:
    return etag_for("dialog_topic", topic.id, topic.updated_at, *(getattr(topic, f) for f in topics.FIELDS))


@bp.get("/dialog/topics")
@doc("List dialog topics", tag="Dialog", query=PageQuery, response=page_of(TopicOut))
@require("viewer")
def list_dialog_topics():
    args = load_query(PageQuery())
    return jsonify(keyset_page(sa.select(Topic), Topic.id, args, lambda rows: [_dump(t) for t in rows]))


@bp.post("/dialog/topics")
@doc("Create a dialog topic", tag="Dialog", body=TopicIn, response=TopicOut, status=201, idempotent=True)
@require("manager")
@idempotent
def create_dialog_topic():
    topic = topics.create_topic(load_json(TopicIn()))
    audit("dialog.topic.create", "dialog_topic", topic.id)
    db.session.commit()
    response = jsonify(_dump(topic))
    response.status_code = 201
    response.headers["Location"] = url_for("api.get_dialog_topic", topic_id=topic.id)
    return with_etag(response, _etag(topic))


@bp.get(f"/dialog/topics/{TID}")
@doc("Get a dialog topic", tag="Dialog", response=TopicOut, etag=True)
@require("viewer")
def get_dialog_topic(topic_id: int):
    topic = get_topic(topic_id)
    return with_etag(jsonify(_dump(topic)), _etag(topic))


@bp.patch(f"/dialog/topics/{TID}")
@doc("Change a dialog topic (open/close, audience, threshold, deadline, …)", tag="Dialog", body=TopicPatch,
     response=TopicOut, etag=True)
@require("manager")
def patch_dialog_topic(topic_id: int):
    topic = get_topic(topic_id)
    check_if_match(_etag(topic))
    changed = topics.update_topic(topic, load_json(TopicPatch(), partial=True))
    if changed:
        audit("dialog.topic.update", "dialog_topic", topic.id, {"fields": changed})
    db.session.commit()
    return with_etag(jsonify(_dump(topic)), _etag(topic))


@bp.get(f"/dialog/topics/{TID}/figures")
@doc("Listening figures of a topic", tag="Dialog", response=FiguresOut)
@require("viewer")
def dialog_topic_figures(topic_id: int):
    return jsonify(FiguresOut().dump(figures.topic_figures(get_topic(topic_id))))


@bp.get("/dialog/report")
@doc("Listening figures of every topic", tag="Dialog", response=ReportOut)
@require("viewer")
def dialog_report():
    return jsonify(ReportOut().dump({"topics": figures.report()}))


@bp.get("/dialog/due")
@doc("Posts that owe an answer (threshold reached, not yet answered); `overdue=true`: past the deadline",
     tag="Dialog", query=DueQuery, response=page_of(DueOut))
@require("viewer")
def dialog_due():
    args = load_query(DueQuery())
    now = utcnow()

    def dump(rows):
        return [DUE_OUT.dump({"id": p.id, "topic_id": p.topic_id, "title": p.title, "status": p.status.value,
                               "backers": p.backers, "owner_id": p.owner_id, "due_at": p.due_at,
                               "deadline_at": p.deadline_at,
                               "overdue": bool(p.deadline_at and p.deadline_at < now)}) for p in rows]

    return jsonify(keyset_page(figures.due_posts(overdue_only=args.get("overdue", False)), Post.id, args, dump))
