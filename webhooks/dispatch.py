"""Delivery: one job per endpoint sends its pending messages in event order, signed.

`dispatch` (queued by the kick after a commit, `core.events`) lists the endpoints with due
messages and queues `deliver_endpoint` for each. A delivery run takes the endpoint's lease in the
database (one run per endpoint at a time, so the order holds), re-checks the URL against the SSRF
guard and connects to the checked address, then walks the pending messages by event id over one
keep-alive connection. Delivered outcomes are committed together every FLUSH_EVERY messages or
FLUSH_SECONDS (a failure at once): a killed worker leaves at most that many messages in doubt,
which are sent again with the same `webhook-id` (at least once).

A failure keeps the message at the head of the line (later events wait: order per endpoint) and
schedules the next attempt after WEBHOOK_RETRY_SCHEDULE[n] (+0-10 % jitter); after the last delay
the message is `failed` and the line moves on. An endpoint that has failed without a success for
WEBHOOK_DISABLE_AFTER seconds is disabled and its owner mailed.
"""

from __future__ import annotations

import http.client
import json
import logging
import random
import socket
import ssl
import time
import uuid
from datetime import UTC, datetime, timedelta
from email.utils import parseaddr

import sqlalchemy as sa
from flask import current_app
from standardwebhooks import Webhook

import webhooks.ssrf as ssrf
from core import events
from core.db import utcnow
from core.events import MessageStatus, WebhookAttempt, WebhookEndpoint, WebhookEvent, WebhookMessage
from core.extensions import db
from core.mail import build_message, get_transport
from core.queues import job
from core.redis import get_redis

log = logging.getLogger(__name__)

BATCH = 500
FLUSH_EVERY, FLUSH_SECONDS = 100, 1.0  # delivered outcomes are committed together (see _Checkpoint)
JITTER = 0.1
MAX_RESPONSE = 65536  # bytes read of a response; a longer one closes the connection
USER_AGENT = "supporter-platform-webhooks/1"


def message_id(event_id: int) -> str:
    """The `webhook-id`: the same for every attempt, retry and replay of one event."""
    return f"evt_{event_id}"


# --- HTTP, to the checked address --------------------------------------------------------------------

class _Pinned(http.client.HTTPConnection):
    def __init__(self, target: ssrf.Target, timeout: float):
        super().__init__(target.host, target.port, timeout=timeout)
        self.address = target.address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedTLS(http.client.HTTPSConnection):
    def __init__(self, target: ssrf.Target, timeout: float):
        super().__init__(target.host, target.port, timeout=timeout, context=ssl.create_default_context())
        self.address = target.address

    def connect(self) -> None:
        sock = socket.create_connection((self.address, self.port), self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


class Sender:
    """POSTs to one checked target over a kept-alive connection."""

    def __init__(self, target: ssrf.Target, timeout: float):
        self.target, self.timeout = target, timeout
        self.connection: http.client.HTTPConnection | None = None

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None

    def post(self, headers: dict[str, str], body: bytes) -> tuple[int | None, str | None, str | None]:
        """(status, response excerpt, error)."""
        for reused in (True, False):
            fresh = self.connection is None
            if fresh:
                cls = _PinnedTLS if self.target.scheme == "https" else _Pinned
                self.connection = cls(self.target, self.timeout)
            try:
                self.connection.request("POST", self.target.path, body=body, headers=headers)
                response = self.connection.getresponse()
                data = response.read(MAX_RESPONSE + 1)
                if len(data) > MAX_RESPONSE or response.will_close or not response.isclosed():
                    self.close()
                return response.status, data[:2000].decode("utf-8", "replace")[:500] or None, None
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                self.close()
                if reused and not fresh:
                    continue  # the server closed an idle kept-alive connection: once more, on a new one
                return None, None, f"connection closed: {exc.__class__.__name__}"
            except TimeoutError:
                self.close()
                return None, None, f"timed out after {self.timeout} s"
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                return None, None, f"{exc.__class__.__name__}: {exc}"[:500]
        return None, None, "connection closed"


# --- jobs ------------------------------------------------------------------------------------------

@job("webhooks")
def dispatch() -> int:
    """Queue a delivery run for every endpoint with due messages (after a kick)."""
    get_redis().delete(events.KICK_KEY)  # from now on, a new commit kicks again
    ids = due_endpoints(utcnow())
    db.session.commit()
    if ids:
        deliver_endpoint.enqueue_many([(i,) for i in ids])
    return len(ids)


def enqueue_dispatch() -> None:
    dispatch.enqueue()


def due_endpoints(now: datetime, due_before: datetime | None = None) -> list[int]:
    """Active endpoints with a pending message due (by `due_before`) and no live delivery run."""
    m, e = WebhookMessage, WebhookEndpoint
    return list(db.session.scalars(
        sa.select(m.endpoint_id).distinct().join(e, e.id == m.endpoint_id)
        .where(m.status == MessageStatus.PENDING, m.next_attempt_at <= (due_before or now), e.active.is_(True),
               sa.or_(e.lease_until.is_(None), e.lease_until < now))))


def _lease_seconds() -> int:
    # Renewed after every message, and one message takes at most a connect and a read timeout.
    return 3 * current_app.config["WEBHOOK_TIMEOUT_SECONDS"] + 5


def _take_lease(endpoint_id: int, owner: str) -> bool:
    now = utcnow()
    won = db.session.execute(
        sa.update(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id, WebhookEndpoint.active.is_(True),
                                         sa.or_(WebhookEndpoint.lease_until.is_(None),
                                                WebhookEndpoint.lease_until < now))
        .values(lease_until=now + timedelta(seconds=_lease_seconds()), lease_owner=owner)
        .execution_options(synchronize_session=False)).rowcount
    db.session.commit()
    return bool(won)


def _renew_lease(endpoint_id: int, owner: str) -> bool:
    renewed = db.session.execute(
        sa.update(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id, WebhookEndpoint.lease_owner == owner)
        .values(lease_until=utcnow() + timedelta(seconds=_lease_seconds()))
        .execution_options(synchronize_session=False)).rowcount
    return bool(renewed)


def _release_lease(endpoint_id: int, owner: str) -> None:
    db.session.rollback()
    db.session.execute(sa.update(WebhookEndpoint)
                       .where(WebhookEndpoint.id == endpoint_id, WebhookEndpoint.lease_owner == owner)
                       .values(lease_until=None, lease_owner=None).execution_options(synchronize_session=False))
    db.session.commit()


@job("webhooks")
def deliver_endpoint(endpoint_id: int) -> dict[str, int]:
    """Send the endpoint's due messages in event order; safe to run twice (one run holds the lease)."""
    owner = uuid.uuid4().hex
    counts = {"delivered": 0, "failed_attempts": 0}
    for _ in range(1000):  # bounded: each turn delivers a batch or stops at a message not yet due
        if not _take_lease(endpoint_id, owner):
            break
        try:
            more = _run(endpoint_id, owner, counts)
        finally:
            _release_lease(endpoint_id, owner)
        # A message committed while we held the lease found it taken: look once more after releasing.
        if not more and endpoint_id not in due_endpoints(utcnow()):
            break
    db.session.commit()
    return counts


def _run(endpoint_id: int, owner: str, counts: dict[str, int]) -> bool:
    """One batch; True if more may be due right away."""
    endpoint = db.session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None or not endpoint.active:
        db.session.rollback()
        return False
    config = current_app.config
    m, ev = WebhookMessage.__table__, WebhookEvent.__table__
    rows = db.session.execute(
        sa.select(m.c.id, m.c.event_id, m.c.attempts, m.c.next_attempt_at, ev.c.type, ev.c.occurred_at,
                  ev.c.supporter_id, ev.c.payload, ev.c.redacted)
        .join(ev, ev.c.id == m.c.event_id)
        .where(m.c.endpoint_id == endpoint_id, m.c.status == MessageStatus.PENDING)
        .order_by(m.c.event_id).limit(BATCH)).all()
    sign = _signer(endpoint)
    custom = json.loads(endpoint.headers or "{}")
    url = endpoint.url
    db.session.commit()  # no transaction stays open while we talk to the receiver
    if not rows:
        return False
    try:
        target = ssrf.resolve(url, config)  # again at delivery time: DNS may have changed
        refused = None
    except ssrf.Refused as exc:
        target, refused = None, exc.errors["url"][0]
    sender = Sender(target, config["WEBHOOK_TIMEOUT_SECONDS"]) if target else None
    done = _Checkpoint(endpoint_id, owner)
    try:
        for row in rows:
            now = utcnow()
            if row.next_attempt_at > now:  # the head of the line waits for its retry
                done.flush()
                _schedule(endpoint_id, row.next_attempt_at - now)
                return False
            body = events.body(row.type, row.occurred_at, row.supporter_id, row.payload, row.redacted)
            msg_id = message_id(row.event_id)
            started = time.monotonic()
            if sender is None:
                status, excerpt, error = None, None, f"refused: {refused}"[:500]
            else:
                at = int(time.time())
                headers = {**custom, "Content-Type": "application/json", "User-Agent": USER_AGENT,
                           "webhook-id": msg_id, "webhook-timestamp": str(at), "webhook-signature": sign(msg_id, at, body)}
                status, excerpt, error = sender.post(headers, body.encode())
            latency = int((time.monotonic() - started) * 1000)
            if status is not None and 200 <= status < 300:
                counts["delivered"] += 1
                if not done.add(row, status, excerpt, latency):
                    return False  # the lease was lost (a stall): another run owns the line now
                continue
            counts["failed_attempts"] += 1
            if not done.flush():
                return False
            pending = _record_failure(endpoint_id, row, status, excerpt, error, latency)
            if pending is None:  # the endpoint was disabled
                return False
            if pending:  # retry later; later events wait behind it
                _schedule(endpoint_id, timedelta(seconds=pending))
                return False
        return done.flush() and len(rows) == BATCH
    finally:
        if sender is not None:
            sender.close()


def _signer(endpoint: WebhookEndpoint):
    """sign(msg_id, unix_time, body) with the current secret, and the previous one during an overlap."""
    secrets = [Webhook(endpoint.secret)]
    until = endpoint.previous_secret_until
    previous = Webhook(endpoint.previous_secret) if endpoint.previous_secret and until else None

    def sign(msg_id: str, at: int, body: str) -> str:
        moment = datetime.fromtimestamp(at, UTC)
        active = secrets + ([previous] if previous is not None and until > moment else [])
        return " ".join(s.sign(msg_id, moment, body) for s in active)

    return sign


class _Checkpoint:
    """Delivered messages, recorded together (every FLUSH_EVERY messages or FLUSH_SECONDS): a few
    set-based statements and one commit instead of several round trips per message. A crash before
    the flush sends those again, with the same `webhook-id` (at least once)."""

    def __init__(self, endpoint_id: int, owner: str):
        self.endpoint_id, self.owner = endpoint_id, owner
        self.rows: list[dict] = []
        self.since = time.monotonic()

    def add(self, row, status: int, excerpt: str | None, latency: int) -> bool:
        self.rows.append({"message_id": row.id, "endpoint_id": self.endpoint_id, "event_id": row.event_id,
                          "attempted_at": utcnow(), "status_code": status, "latency_ms": latency,
                          "response_excerpt": excerpt, "error": None})
        if len(self.rows) >= FLUSH_EVERY or time.monotonic() - self.since >= FLUSH_SECONDS:
            return self.flush()
        return True

    def flush(self) -> bool:
        self.since = time.monotonic()
        if not _renew_lease(self.endpoint_id, self.owner):
            db.session.rollback()
            self.rows = []
            return False
        if self.rows:
            now = utcnow()
            db.session.execute(sa.insert(WebhookAttempt.__table__), self.rows)
            db.session.execute(sa.update(WebhookMessage.__table__)
                               .where(WebhookMessage.__table__.c.id.in_([r["message_id"] for r in self.rows]))
                               .values(status=MessageStatus.DELIVERED, delivered_at=now,
                                       attempts=WebhookMessage.__table__.c.attempts + 1))
            db.session.execute(sa.update(WebhookEndpoint.__table__)
                               .where(WebhookEndpoint.__table__.c.id == self.endpoint_id,
                                      WebhookEndpoint.__table__.c.failing_since.is_not(None))
                               .values(failing_since=None))
        db.session.commit()
        self.rows = []
        return True


def _record_failure(endpoint_id: int, row, status: int | None, excerpt: str | None, error: str | None,
                    latency: int) -> float | None:
    """Log a failed attempt and commit; return the seconds until the retry, 0 when the message has
    failed for good (the line moves on), None when the endpoint was disabled."""
    now = utcnow()
    endpoint = db.session.get(WebhookEndpoint, endpoint_id)
    message = db.session.get(WebhookMessage, row.id)
    db.session.add(WebhookAttempt(message_id=row.id, endpoint_id=endpoint_id, event_id=row.event_id,
                                  attempted_at=now, status_code=status, latency_ms=latency,
                                  response_excerpt=excerpt, error=error))
    message.attempts += 1
    schedule = current_app.config["WEBHOOK_RETRY_SCHEDULE"]
    delay = 0.0
    if message.attempts > len(schedule):
        message.status = MessageStatus.FAILED
    else:
        delay = schedule[message.attempts - 1] * (1 + JITTER * random.random())  # noqa: S311 - jitter
        message.next_attempt_at = now + timedelta(seconds=delay)
    disabled = False
    if endpoint.failing_since is None:
        endpoint.failing_since = now
    elif (now - endpoint.failing_since).total_seconds() >= current_app.config["WEBHOOK_DISABLE_AFTER"]:
        endpoint.active, disabled = False, True
        endpoint.disabled_reason = f"failing since {endpoint.failing_since.isoformat()}"[:200]
    db.session.commit()
    if disabled:
        events.invalidate()
        if endpoint.owner_email:
            notify_disabled.enqueue(endpoint_id)
        return None
    return max(delay, 0.001) if message.status == MessageStatus.PENDING else 0


def _schedule(endpoint_id: int, delay: timedelta) -> None:
    """Run again when the head message is due (RQ's scheduler; the sweeper if Redis loses it)."""
    try:
        deliver_endpoint.enqueue_in(max(delay, timedelta(0)) + timedelta(milliseconds=50), endpoint_id)
    except Exception as exc:  # noqa: BLE001 - Redis trouble: the sweeper finds the due message
        log.warning("webhook retry for endpoint %s not scheduled (%s); the sweeper will", endpoint_id, exc)


@job("mail")
def notify_disabled(endpoint_id: int) -> bool:
    """Mail the endpoint's owner that it was disabled (safe to run twice: one more mail)."""
    endpoint = db.session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None or endpoint.active or not endpoint.owner_email:
        return False
    base = current_app.config["PUBLIC_BASE_URL"]
    text = (f"The webhook endpoint {endpoint_id} ({endpoint.url}) failed every delivery for "
            f"{current_app.config['WEBHOOK_DISABLE_AFTER']} seconds and was disabled; its pending events are kept.\n\n"
            f"The delivery log: GET {base}/api/v1/webhooks/endpoints/{endpoint_id}/attempts\n"
            f"Enable it again (pending events follow): PATCH {base}/api/v1/webhooks/endpoints/{endpoint_id} "
            f'{{"active": true}}\n')
    sender = current_app.config["MAIL_FROM"]
    message = build_message(sender, endpoint.owner_email, f"Webhook endpoint {endpoint_id} disabled", text)
    get_transport().send(parseaddr(sender)[1], [endpoint.owner_email], message)
    return True
