"""Dialog posts: the moderation queue, posting and backing on a supporter's behalf, triage, status
changes along the allowed transitions, merging duplicates, and a topic's listing by backers.
"""

from __future__ import annotations

import base64
import json

import sqlalchemy as sa
from flask import jsonify, url_for
from marshmallow import fields, validate

from api import bp
from api.auth import require
from api.conventions import audit, check_if_match, etag_for, load_json, load_query, with_etag
from api.dialog import get_topic
from api.idempotency import idempotent
from api.openapi import doc
from api.pagination import BadCursor, keyset_page, next_url
from api.schemas import ID_RULE, INT_ID_RULE, MAX_ID, MAX_INT_ID, ApiSchema, Id, PageQuery, Text, page_of
from core.errors import NotFound
from core.extensions import db
from dialog import backing, moderation, posts
from dialog.models import Post, PostKind, PostStatus, listed
from supporters.models import Supporter

PID = f"<{ID_RULE}:post_id>"
TID = f"<{INT_ID_RULE}:topic_id>"
STATUSES = [s.value for s in PostStatus]


class AuthorOut(ApiSchema):
    supporter_id = fields.Integer(required=True, allow_none=True, metadata={"description": "null once erased"})
    kind = fields.String(required=True)
    show_name = fields.Boolean(required=True)


class PostOut(ApiSchema):
    id = fields.Integer(required=True)
    topic_id = fields.Integer(required=True)
    kind = fields.String(required=True, metadata={"enum": [k.value for k in PostKind]})
    status = fields.String(required=True, metadata={"enum": STATUSES})
    title = fields.String(required=True)
    body = fields.String(required=True)
    status_reason = fields.String(required=True, allow_none=True)
    answer = fields.String(required=True, allow_none=True)
    tags = fields.List(fields.String(), required=True)
    priority = fields.Integer(required=True, allow_none=True)
    owner_id = fields.Integer(required=True, allow_none=True)
    merged_into_id = fields.Integer(required=True, allow_none=True)
    backers = fields.Integer(required=True)
    author = fields.Nested(AuthorOut, required=True)
    created_at = fields.DateTime(required=True)
    published_at = fields.DateTime(required=True, allow_none=True)
    first_response_at = fields.DateTime(required=True, allow_none=True)
    due_at = fields.DateTime(required=True, allow_none=True)
    deadline_at = fields.DateTime(required=True, allow_none=True)
    answered_at = fields.DateTime(required=True, allow_none=True)


class PostIn(ApiSchema):
    supporter_id = Id(required=True, metadata={"description": "the author, an active supporter"})
    topic_id = Id(required=True, maximum=MAX_INT_ID)
    kind = fields.String(required=True, validate=validate.OneOf([k.value for k in PostKind]))
    title = fields.String(required=True, validate=validate.Length(max=1000))
    body = fields.String(required=True, validate=validate.Length(max=20_000))
    show_name = fields.Boolean(load_default=False)


class PostPatch(ApiSchema):
    topic_id = Id(maximum=MAX_INT_ID)
    tags = fields.List(Text(min=1, max=60), allow_none=True, validate=validate.Length(max=20))
    priority = fields.Integer(strict=True, allow_none=True, validate=validate.Range(min=0, max=5))
    owner_id = Id(maximum=MAX_INT_ID, allow_none=True)


class StatusIn(ApiSchema):
    status = fields.String(required=True, validate=validate.OneOf(
        [s.value for s in PostStatus if s not in (PostStatus.NEW, PostStatus.WITHDRAWN, PostStatus.MERGED)]))
    reason = fields.String(validate=validate.Length(max=20_000), metadata={"description": "rejected, declined"})
    answer = fields.String(validate=validate.Length(max=50_000), metadata={"description": "answered"})


class MergeIn(ApiSchema):
    into = Id(required=True, metadata={"description": "the post that stays; this one's backers move there"})


class BackingIn(ApiSchema):
    supporter_id = Id(required=True)


class PostQuery(PageQuery):
    topic_id = Id(maximum=MAX_INT_ID)
    status = fields.String(validate=validate.OneOf(STATUSES))


class TimelineOut(ApiSchema):
    post_id = fields.Integer(required=True)
    backers = fields.Integer(required=True)
    days = fields.List(fields.Dict(), required=True, metadata={"description": "{day, new, total} per day"})


_TIMES = ("created_at", "published_at", "first_response_at", "due_at", "deadline_at", "answered_at")


def _dump(post: Post) -> dict:
    """A post as PostOut describes it, built by hand: on a page of 50 posts marshmallow's field
    machinery cost six times the query (bench/dialog.py); `tests/test_dialog_api.py` checks that
    both give the same JSON."""
    data = {"id": post.id, "topic_id": post.topic_id, "kind": post.kind.value, "status": post.status.value,
            "title": post.title, "body": post.body, "status_reason": post.status_reason, "answer": post.answer,
            "tags": post.tags or [], "priority": post.priority, "owner_id": post.owner_id,
            "merged_into_id": post.merged_into_id, "backers": post.backers,
            "author": {"supporter_id": post.supporter_id, "kind": post.author_kind, "show_name": post.show_name}}
    for name in _TIMES:
        value = getattr(post, name)
        data[name] = value.isoformat() if value is not None else None
    return data


def _dump_many(rows) -> list[dict]:
    return [_dump(p) for p in rows]


def _etag(post: Post) -> str:
    return etag_for("dialog_post", post.id, post.updated_at, post.status.value, post.backers, post.topic_id,
                    post.tags, post.priority, post.owner_id)


def _supporter(supporter_id: int) -> Supporter:
    supporter = db.session.get(Supporter, supporter_id)
    if supporter is None:
        raise NotFound(f"no supporter {supporter_id}")
    return supporter


def _answer(post: Post, status: int = 200):
    response = jsonify(_dump(post))
    response.status_code = status
    return with_etag(response, _etag(post))


@bp.get("/dialog/posts")
@doc("List dialog posts (the moderation queue with `status=new`)", tag="Dialog", query=PostQuery,
     response=page_of(PostOut))
@require("viewer")
def list_dialog_posts():
    args = load_query(PostQuery())
    query = sa.select(Post)
    if "topic_id" in args:
        query = query.where(Post.topic_id == args["topic_id"])
    if "status" in args:
        query = query.where(Post.status == PostStatus(args["status"]))
    return jsonify(keyset_page(query, Post.id, args, _dump_many))


def _listing_statement(seek: bool) -> sa.Select:
    """A topic's listed posts by backers, seeking in the partial index ix_dialog_posts_listed by the
    row value (backers, id): plain rows, not ORM objects (a page is read, never changed), only the
    columns the page shows, the two enums as their stored strings."""
    columns = [sa.type_coerce(c, sa.String()).label(c.name) if c.name in ("kind", "status") else c
               for c in Post.__table__.columns if c.name not in ("language", "body_hash", "updated_at")]
    query = sa.select(*columns).where(Post.topic_id == sa.bindparam("topic", type_=Post.topic_id.type), listed())
    if seek:
        query = query.where(sa.tuple_(Post.backers, Post.id) < sa.tuple_(
            sa.bindparam("b", type_=Post.backers.type), sa.bindparam("k", type_=Post.id.type)))
    return query.order_by(Post.backers.desc(), Post.id.desc()).limit(sa.bindparam("limit", type_=sa.Integer()))


# Built once: constructing the statement and computing its cache key on every request cost about
# as much as running it (bench/dialog.py); with bound parameters both are done once per process.
_FIRST_PAGE, _NEXT_PAGE = _listing_statement(False), _listing_statement(True)


def listing_query(topic_id: int, limit: int, cursor: str | None) -> tuple[sa.Select, dict]:
    """The listing statement and its parameters, for `connection.execute(*listing_query(...))`."""
    params = {"topic": topic_id, "limit": limit}
    if not cursor:
        return _FIRST_PAGE, params
    params["b"], params["k"] = _decode(cursor)
    return _NEXT_PAGE, params


_PAGE_QUERY = PageQuery()  # loading is stateless: one instance serves every request
_LISTED_NAMES = tuple(c.name for c in _FIRST_PAGE.selected_columns)
_LISTED_TIMES = ("created_at", "published_at", "first_response_at", "due_at", "deadline_at", "answered_at")


def _dump_listed(row) -> dict:
    """A row of the listing as PostOut describes it (the same JSON as `_dump`, checked by a test),
    zipped from the row's tuple: a fraction of the cost of 22 attribute lookups per row."""
    data = dict(zip(_LISTED_NAMES, row, strict=True))
    data["author"] = {"supporter_id": data.pop("supporter_id"), "kind": data.pop("author_kind"),
                      "show_name": data.pop("show_name")}
    data["tags"] = data["tags"] or []
    for name in _LISTED_TIMES:
        value = data[name]
        if value is not None:
            data[name] = value.isoformat()
    return data


def _encode(backers: int, post_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"b": backers, "k": post_id}).encode()).decode().rstrip("=")


def _decode(cursor: str) -> tuple[int, int]:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        backers, key = data["b"], data["k"]
    except (ValueError, TypeError, KeyError, UnicodeDecodeError):
        raise BadCursor("the cursor is not one this API issued; start again without it") from None
    if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_ID for v in (backers, key)) \
            or backers > MAX_INT_ID:
        raise BadCursor("the cursor is not one this API issued; start again without it")
    return backers, key


@bp.get(f"/dialog/topics/{TID}/posts")
@doc("A topic's listed posts, most backed first (cursor pages cost the same at any depth)", tag="Dialog",
     query=PageQuery, response=page_of(PostOut))
@require("viewer")
def list_topic_posts(topic_id: int):
    try:
        args = load_query(_PAGE_QUERY)
        limit = args["limit"]
        statement, params = listing_query(topic_id, limit + 1, args.get("cursor"))
    except Exception:
        get_topic(topic_id)  # an unknown topic is a 404 before any problem with the query, as ever
        raise
    rows = db.session.connection().execute(statement, params).all()
    if not rows:
        get_topic(topic_id)  # rows prove the topic exists; without any, it may not (404)
    more = len(rows) > limit
    rows = rows[:limit]
    return jsonify({"items": [_dump_listed(r) for r in rows],
                    "next": next_url(_encode(rows[-1].backers, rows[-1].id)) if more else None})


@bp.post("/dialog/posts")
@doc("Post on a supporter's behalf (status new)", tag="Dialog", body=PostIn, response=PostOut, status=201,
     errors=(403, 404, 409), idempotent=True)
@require("manager")
@idempotent
def create_dialog_post():
    data = load_json(PostIn())
    post = posts.create_post(_supporter(data.pop("supporter_id")), data)
    audit("dialog.post.create", "dialog_post", post.id, {"on_behalf": True})
    db.session.commit()
    response = _answer(post, 201)
    response.headers["Location"] = url_for("api.get_dialog_post", post_id=post.id)
    return response


@bp.get(f"/dialog/posts/{PID}")
@doc("Get a dialog post", tag="Dialog", response=PostOut, etag=True)
@require("viewer")
def get_dialog_post(post_id: int):
    return _answer(moderation.get_post(post_id))


@bp.get(f"/dialog/posts/{PID}/backers")
@doc("A post's backers over time (per day, with the running total)", tag="Dialog", response=TimelineOut)
@require("viewer")
def dialog_post_backers(post_id: int):
    post = moderation.get_post(post_id)
    return jsonify(TimelineOut().dump({"post_id": post.id, "backers": post.backers,
                                       "days": backing.backers_over_time(post.id)}))


@bp.patch(f"/dialog/posts/{PID}")
@doc("Triage a post: topic, tags, priority, owner", tag="Dialog", body=PostPatch, response=PostOut, etag=True)
@require("manager")
def patch_dialog_post(post_id: int):
    post = moderation.get_post(post_id)
    check_if_match(_etag(post))
    changed = moderation.triage(post, load_json(PostPatch(), partial=True))
    if changed:
        audit("dialog.post.triage", "dialog_post", post.id, {"fields": changed})
    db.session.commit()
    return _answer(post)


@bp.post(f"/dialog/posts/{PID}/status")
@doc("Change a post's status (publish, reject with a reason, review, plan, answer, decline, done)",
     tag="Dialog", body=StatusIn, response=PostOut, errors=(404, 409), idempotent=True,
     description="Allowed: new → published | rejected; published → under_review | answered | declined; "
                 "under_review → planned | answered | declined; planned → answered | declined | done; "
                 "answered | declined → done. Anything else is a 409. Publishing, rejecting, answering "
                 "and declining mail the author (answers and declines every backer too), once.")
@require("manager")
@idempotent
def dialog_post_status(post_id: int):
    data = load_json(StatusIn())
    post = moderation.get_post(post_id)
    check_if_match(_etag(post))
    before = post.status.value
    post = moderation.change_status(
        post, PostStatus(data["status"]), reason=data.get("reason"), answer=data.get("answer"),
        record=lambda: audit("dialog.post.status", "dialog_post", post_id, {"from": before, "to": data["status"]}))
    return _answer(post)


@bp.post(f"/dialog/posts/{PID}/merge")
@doc("Merge a duplicate into another post (its backers carried over, each counted once)", tag="Dialog",
     body=MergeIn, response=PostOut, errors=(404, 409), idempotent=True)
@require("manager")
@idempotent
def merge_dialog_post(post_id: int):
    data = load_json(MergeIn())
    source, target = moderation.get_post(post_id), moderation.get_post(data["into"])
    merged = moderation.merge(source, target, record=lambda: audit("dialog.post.merge", "dialog_post", post_id,
                                                                   {"into": data["into"]}))
    return _answer(merged)


@bp.post(f"/dialog/posts/{PID}/backings")
@doc("Back a post on a supporter's behalf", tag="Dialog", body=BackingIn, response=PostOut, status=201,
     errors=(403, 404, 409), idempotent=True)
@require("manager")
@idempotent
def back_dialog_post(post_id: int):
    data = load_json(BackingIn())
    post = backing.back(_supporter(data["supporter_id"]), post_id,
                        record=lambda: audit("dialog.post.back", "dialog_post", post_id, {"on_behalf": True}))
    return _answer(post, 201)


@bp.delete(f"/dialog/posts/{PID}/backings/<{ID_RULE}:supporter_id>")
@doc("Withdraw a supporter's backing", tag="Dialog", status=204, errors=(404, 409))
@require("manager")
def unback_dialog_post(post_id: int, supporter_id: int):
    backing.unback(_supporter(supporter_id), post_id,
                   record=lambda: audit("dialog.post.unback", "dialog_post", post_id, {"on_behalf": True}))
    return "", 204
