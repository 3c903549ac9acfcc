"""Outgoing webhook events: the transactional outbox and the endpoints that subscribe to it.

`emit(type, data, supporter_id=None)` adds the event, and one message per active endpoint that
subscribes to its type, to the *current* transaction without committing: an event exists if and
only if the change it describes committed. After that commit, one Redis round trip at most kicks
the dispatcher (`SET sp:webhooks:kick NX EX 10`; only the request that set the key enqueues the
job, which deletes the key when it starts). A Redis error there is logged and the request goes on:
the webhooks sweeper finds the messages in the database.

Events are only written while some active endpoint subscribes to their type (a per-process cache
of the subscribed types, refreshed every CACHE_SECONDS and whenever an endpoint changes in this
process), so an installation without webhooks pays nothing. The dispatcher lives in `webhooks/`,
which registers itself here with `set_dispatcher` (this module never names it).

Bodies are `{"type", "timestamp", "data"}`; an event with a supporter always carries
`data.supporter_id`, taken from its column (so the hot INSERT of a join can fill it in SQL).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import redis
import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import Mapped, Session, mapped_column

from core.db import BigIntPK, utcnow
from core.extensions import db

log = logging.getLogger(__name__)

KICK_KEY = "sp:webhooks:kick"
KICK_SECONDS = 10
CACHE_SECONDS = 3.0
ALL = "*"  # subscribes an endpoint to every type
_KICK = "sp_webhooks_kick"  # session.info key: kick the dispatcher when this transaction commits

# type -> (description, example data). Payloads are version 1; a breaking change gets a new type.
EVENT_TYPES: dict[str, tuple[str, dict[str, Any]]] = {
    "supporter.joined": ("A person submitted the join form (pending until confirmed; no address yet).",
                         {"supporter_id": 42, "kind": "fan", "language": "en", "source": "web_form"}),
    "supporter.confirmed": ("A supporter confirmed the double opt-in and is active.",
                            {"supporter_id": 42, "email": "ada@example.org", "name": "Ada", "kind": "fan",
                             "language": "en", "referred_by_id": 7}),
    "supporter.updated": ("A supporter changed their preferences; only the changed fields.",
                          {"supporter_id": 42, "changed": {"language": "de", "asks_per_month": 2}}),
    "supporter.unsubscribed": ("A supporter withdrew consent and left.",
                               {"supporter_id": 42, "method": "unsubscribe_link"}),
    "supporter.erased": ("A supporter was erased; delete what you hold about this id.", {"supporter_id": 42}),
    "consent.changed": ("A consent ledger entry: granted, confirmed or withdrawn.",
                        {"supporter_id": 42, "purpose": "campaigns", "action": "withdrawn",
                         "method": "unsubscribe_link"}),
    "action.recorded": ("A supporter acted on a campaign: share, review, vote or sign.",
                        {"supporter_id": 42, "campaign_id": 3, "kind": "vote", "detail": "cast"}),
    "campaign.status_changed": ("A campaign moved to a new status.",
                                {"campaign_id": 3, "status": "sending", "reason": None}),
    "petition.goal_reached": ("A petition reached its signature goal.", {"campaign_id": 3, "goal": 1000}),
    "delivery.bounced": ("A campaign mail bounced.",
                         {"supporter_id": 42, "campaign_id": 3, "delivery_id": 99, "hard": True}),
    "delivery.complained": ("A recipient reported a campaign mail as spam (they are unsubscribed).",
                            {"supporter_id": 42, "campaign_id": 3, "delivery_id": 99}),
    "webhook.test": ("A test event sent on request (POST /webhooks/endpoints/{id}/test).",
                     {"endpoint_id": 1, "message": "hello"}),
}


def register_type(name: str, description: str, example: dict[str, Any]) -> None:
    """Let a feature package (e.g. dialog) add its event types."""
    EVENT_TYPES[name] = (description, example)


class WebhookEndpoint(db.Model):
    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(sa.String(2000))
    description: Mapped[str | None] = mapped_column(sa.String(500))
    active: Mapped[bool] = mapped_column(default=True)
    # Standard Webhooks secrets ("whsec_" + base64); the previous one keeps signing until its end.
    secret: Mapped[str] = mapped_column(sa.String(100))
    previous_secret: Mapped[str | None] = mapped_column(sa.String(100))
    previous_secret_until: Mapped[datetime | None]
    headers: Mapped[str] = mapped_column(sa.Text, default="{}")  # JSON object of custom headers
    owner_email: Mapped[str | None] = mapped_column(sa.String(320))
    failing_since: Mapped[datetime | None]
    disabled_reason: Mapped[str | None] = mapped_column(sa.String(200))
    lease_until: Mapped[datetime | None]  # one dispatcher per endpoint at a time (ordering)
    lease_owner: Mapped[str | None] = mapped_column(sa.String(40))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookSubscription(db.Model):
    __tablename__ = "webhook_subscriptions"

    endpoint_id: Mapped[int] = mapped_column(
        sa.ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), primary_key=True)
    event_type: Mapped[str] = mapped_column(sa.String(60), primary_key=True)


class WebhookEvent(db.Model):
    __tablename__ = "webhook_events"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    type: Mapped[str] = mapped_column(sa.String(60))
    occurred_at: Mapped[datetime] = mapped_column(index=True)
    supporter_id: Mapped[int | None] = mapped_column(sa.BigInteger, index=True)
    payload: Mapped[str] = mapped_column(sa.Text)  # JSON `data` without supporter_id
    redacted: Mapped[bool] = mapped_column(default=False)  # the supporter was erased: payload emptied


class MessageStatus:
    PENDING, DELIVERED, FAILED, SKIPPED = "pending", "delivered", "failed", "skipped"
    ALL = (PENDING, DELIVERED, FAILED, SKIPPED)


class WebhookMessage(db.Model):
    __tablename__ = "webhook_messages"
    __table_args__ = (
        sa.UniqueConstraint("endpoint_id", "event_id", name="uq_webhook_messages_endpoint_event"),
        sa.Index("ix_webhook_messages_due", "endpoint_id", "status", "event_id"),
        sa.CheckConstraint("status IN ('pending', 'delivered', 'failed', 'skipped')", name="status"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(sa.ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    event_id: Mapped[int] = mapped_column(sa.BigInteger, sa.ForeignKey("webhook_events.id", ondelete="CASCADE"),
                                          index=True)
    status: Mapped[str] = mapped_column(sa.String(10), default=MessageStatus.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookAttempt(db.Model):
    """The delivery log: one row per HTTP attempt."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (sa.Index("ix_webhook_attempts_endpoint", "endpoint_id", "id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    message_id: Mapped[int] = mapped_column(sa.BigInteger, sa.ForeignKey("webhook_messages.id", ondelete="CASCADE"),
                                            index=True)
    endpoint_id: Mapped[int] = mapped_column(sa.ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    event_id: Mapped[int] = mapped_column(sa.BigInteger)
    attempted_at: Mapped[datetime] = mapped_column(default=utcnow)
    status_code: Mapped[int | None]
    latency_ms: Mapped[int | None]
    response_excerpt: Mapped[str | None] = mapped_column(sa.String(500))
    error: Mapped[str | None] = mapped_column(sa.String(500))


# --- which types are subscribed (per process) ------------------------------------------------------

_cache: dict[int, tuple[float, frozenset[str]]] = {}
_cache_lock = threading.Lock()


def invalidate() -> None:
    """Forget the subscribed types (an endpoint changed in this process)."""
    with _cache_lock:
        _cache.clear()


@sa.event.listens_for(Session, "after_commit")
def _invalidate_on_endpoint_change(session: Session) -> None:
    if session.info.pop("sp_webhooks_changed", False):
        invalidate()


@sa.event.listens_for(Session, "before_flush")
def _note_endpoint_change(session: Session, _context, _instances) -> None:
    for obj in (*session.new, *session.dirty, *session.deleted):
        if isinstance(obj, WebhookEndpoint | WebhookSubscription):
            session.info["sp_webhooks_changed"] = True
            return


def subscribed_types() -> frozenset[str]:
    """The event types some active endpoint subscribes to (ALL among them for "everything")."""
    key = id(db.engine)
    now = time.monotonic()
    cached = _cache.get(key)
    if cached is not None and now - cached[0] < CACHE_SECONDS:
        return cached[1]
    # A connection of its own: the caller's transaction (and its autocommit shortcut) stays untouched.
    with db.engine.connect() as conn:
        types = frozenset(conn.scalars(
            sa.select(WebhookSubscription.event_type).distinct()
            .join(WebhookEndpoint, WebhookEndpoint.id == WebhookSubscription.endpoint_id)
            .where(WebhookEndpoint.active.is_(True))))
    with _cache_lock:
        _cache[key] = (now, types)
    return types


def wanted(event_type: str) -> bool:
    types = subscribed_types()
    return bool(types) and (ALL in types or event_type in types)


# --- emitting --------------------------------------------------------------------------------------

def _encode(data: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in data.items() if k != "supporter_id"}, ensure_ascii=False,
                      separators=(",", ":"),
                      default=lambda v: v.isoformat() if hasattr(v, "isoformat") else str(v))


def _messages_select(event_id: sa.ColumnElement, now: sa.ColumnElement, type_param: sa.ColumnElement,
                     event: sa.CTE | None = None) -> sa.Select:
    """Rows for webhook_messages: one per active endpoint subscribed to the type (decided in SQL,
    so an endpoint deleted a moment ago is never referenced)."""
    s, e = WebhookSubscription.__table__, WebhookEndpoint.__table__
    subscribed = s.join(e, e.c.id == s.c.endpoint_id)
    return (sa.select(s.c.endpoint_id, event_id, sa.literal(MessageStatus.PENDING), sa.literal(0), now, now)
            .select_from(event.join(subscribed, sa.true()) if event is not None else subscribed)
            .where(e.c.active.is_(True), s.c.event_type.in_([type_param, sa.literal(ALL)])).distinct())


_MESSAGE_COLUMNS = ["endpoint_id", "event_id", "status", "attempts", "next_attempt_at", "created_at"]


def emit(event_type: str, data: dict[str, Any], supporter_id: int | None = None,
         occurred_at: datetime | None = None) -> bool:
    """Add the event and its messages to the current transaction (no commit); False if nobody listens."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}")
    if not wanted(event_type):
        return False
    now = occurred_at or utcnow()
    events = WebhookEvent.__table__
    event_id = db.session.execute(
        sa.insert(events).values(type=event_type, occurred_at=now, supporter_id=supporter_id,
                                 payload=_encode(data), redacted=False).returning(events.c.id)).scalar_one()
    db.session.execute(sa.insert(WebhookMessage.__table__).from_select(
        _MESSAGE_COLUMNS, _messages_select(sa.literal(event_id, sa.BigInteger),
                                           sa.bindparam("now", now, type_=WebhookMessage.__table__.c.created_at.type),
                                           sa.bindparam("etype", event_type))))
    kick_after_commit()
    return True


def outbox_ctes(supporter_id: sa.ColumnElement) -> list[sa.CTE]:
    """Data-modifying CTEs (PostgreSQL) that emit an event for `supporter_id` inside another INSERT,
    so that statement stays one round trip. Bind `outbox_params(...)` with it."""
    events = WebhookEvent.__table__
    at = sa.bindparam("e_at", type_=events.c.occurred_at.type)
    event = (sa.insert(events).from_select(
        ["type", "occurred_at", "supporter_id", "payload", "redacted"],
        sa.select(sa.bindparam("e_type", type_=sa.String), at, supporter_id,
                  sa.bindparam("e_payload", type_=sa.Text), sa.false()))
        .returning(events.c.id).cte("new_event"))
    messages = (sa.insert(WebhookMessage.__table__)
                .from_select(_MESSAGE_COLUMNS, _messages_select(event.c.id, at, sa.bindparam("e_type", type_=sa.String), event))
                .returning(WebhookMessage.__table__.c.id).cte("new_messages"))
    return [event, messages]


def outbox_params(event_type: str, data: dict[str, Any], occurred_at: datetime) -> dict[str, Any]:
    kick_after_commit()
    return {"e_type": event_type, "e_at": occurred_at, "e_payload": _encode(data)}


def body(event_type: str, occurred_at: datetime, supporter_id: int | None, payload: str, redacted: bool) -> str:
    """The JSON body of an event as every endpoint receives it (the same bytes on every retry)."""
    data = {} if redacted else json.loads(payload)
    if supporter_id is not None:
        data = {"supporter_id": supporter_id, **data}
    if redacted:
        data["redacted"] = True
    return json.dumps({"type": event_type, "timestamp": occurred_at.isoformat().replace("+00:00", "Z"),
                       "data": data}, ensure_ascii=False, separators=(",", ":"))


# --- privacy and retention -------------------------------------------------------------------------

def redact_supporter(supporter_id: int) -> int:
    """Erasure: empty the person's stored payloads, and never send their undelivered messages."""
    events, messages = WebhookEvent.__table__, WebhookMessage.__table__
    theirs = sa.select(events.c.id).where(events.c.supporter_id == supporter_id).scalar_subquery()
    db.session.execute(sa.update(messages).where(messages.c.event_id.in_(theirs),
                                                 messages.c.status == MessageStatus.PENDING)
                       .values(status=MessageStatus.SKIPPED))
    return db.session.execute(sa.update(events).where(events.c.supporter_id == supporter_id)
                              .values(payload="{}", redacted=True)).rowcount


def purge_before(cutoff: datetime, execute: bool = True, batch: int = 5000) -> int:
    """Retention: delete events older than `cutoff` with their messages and attempts (commits per batch)."""
    events = WebhookEvent.__table__
    if not execute:
        return db.session.scalar(sa.select(sa.func.count()).where(events.c.occurred_at < cutoff))
    total = 0
    while True:
        ids = db.session.scalars(sa.select(events.c.id).where(events.c.occurred_at < cutoff)
                                 .order_by(events.c.id).limit(batch)).all()
        if not ids:
            return total
        message_ids = sa.select(WebhookMessage.id).where(WebhookMessage.event_id.in_(ids)).scalar_subquery()
        db.session.execute(sa.delete(WebhookAttempt).where(WebhookAttempt.message_id.in_(message_ids)))
        db.session.execute(sa.delete(WebhookMessage).where(WebhookMessage.event_id.in_(ids)))
        db.session.execute(sa.delete(WebhookEvent).where(WebhookEvent.id.in_(ids)))
        db.session.commit()
        total += len(ids)


# --- kicking the dispatcher after the commit -------------------------------------------------------

_dispatcher: list[Callable[[], None]] = []


def set_dispatcher(enqueue: Callable[[], None]) -> None:
    """Register what queues a dispatch run (webhooks.dispatch does, in its init_app)."""
    _dispatcher[:] = [enqueue]


def kick_after_commit() -> None:
    db.session.info[_KICK] = current_app.extensions["redis"]


# A commit within this long after this process kicked (or found a kick pending) skips the round
# trip: the pending dispatch run has not started yet or has just started, and a running delivery run
# looks for new messages before it ends. Under load this saves nearly every kick; what could slip
# through (committed just after a run's last look) goes with the next kick or the sweeper.
KICK_MEMO_SECONDS = 0.05
_last_kick = [0.0]


def kick(connection: redis.Redis) -> bool:
    """At most one round trip; queue a dispatch run only if none is pending already."""
    now = time.monotonic()
    if not _dispatcher or now - _last_kick[0] < KICK_MEMO_SECONDS:
        return False
    _last_kick[0] = now
    if not connection.set(KICK_KEY, "1", nx=True, ex=KICK_SECONDS):
        return False
    _dispatcher[0]()
    return True


@sa.event.listens_for(Session, "after_commit")
def _kick_after_commit(session: Session) -> None:
    connection = session.info.pop(_KICK, None)
    if connection is None:
        return
    try:
        kick(connection)
    except redis.RedisError as exc:  # the events are committed; the sweeper dispatches them
        log.warning("webhook dispatch not queued (%s); the sweeper will", exc)


@sa.event.listens_for(Session, "after_transaction_end")
def _forget_after_rollback(session: Session, transaction) -> None:
    if transaction.parent is None:  # the outermost transaction ended (after a commit it was popped)
        session.info.pop(_KICK, None)
