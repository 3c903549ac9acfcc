"""Stop markers: once a withdrawal is answered, no mail to that person starts any more.

A withdrawal (unsubscribe, pause, erasure, suppression, complaint) commits to the database, which
stays the source of truth, and then, still before the request is answered, writes a per-supporter
marker to Redis: `stop(supporter_id, reason)` queues it on the session and the commit writes it.
A sender checks the marker right before each SMTP transaction, in one round trip
(`StopCheck.stopped`); the supporter re-check per claim of deliveries is the backstop.

Redis may lose its data (a restart without persistence, FLUSHALL) and the markers with it. An
epoch key goes with them: a sender that finds it missing or changed re-reads the database for the
deliveries it holds before it sends any of them (`MarkersLost`).

Work the feature packages must do in the withdrawing transaction itself (e.g. flag the
supporter's deliveries that are in flight) registers with `@on_stop`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

import redis
import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import Session

from core.db import utcnow
from core.extensions import db

log = logging.getLogger(__name__)

KEY = "sp:stop:{}"
EPOCH_KEY = "sp:stop:epoch"
# A marker must outlive every claim that read the supporter before the withdrawal committed;
# senders re-read their claim at least this often (campaigns.engine).
TTL_SECONDS = 24 * 3600
_PENDING = "sp_stopmarks"  # session.info key: markers to write when the transaction commits

_hooks: list[Callable[[list[int]], None]] = []


class MarkersLost(Exception):
    """Redis lost its data since the sender's snapshot: re-read the database, then `begin()` again."""


def on_stop(hook: Callable[[list[int]], None]) -> Callable[[list[int]], None]:
    """Register `hook(supporter_ids)`, run inside the withdrawing transaction by `stop()`."""
    _hooks.append(hook)
    return hook


def stop(supporter_ids: int | Iterable[int], reason: str, until: datetime | None = None) -> None:
    """Stop all mail to these supporters from the moment the current transaction commits.

    `reason` is what the sender records for a delivery it skips ("unsubscribed", "paused",
    "erased", "suppressed"); `until` lets a pause marker lapse with the pause. No commit here.
    """
    ids = sorted({supporter_ids} if isinstance(supporter_ids, int) else set(supporter_ids))
    if not ids:
        return
    for hook in _hooks:
        hook(ids)
    ttl = TTL_SECONDS
    if until is not None:
        until = until if until.tzinfo else until.replace(tzinfo=UTC)
        ttl = max(1, min(ttl, int((until - utcnow()).total_seconds()) + 1))
    pending = db.session.info.setdefault(_PENDING, [])
    pending.append((current_app.extensions["redis"], ids, reason, ttl))


def clear(supporter_ids: int | Iterable[int]) -> None:
    """Lift the markers when the current transaction commits (a supporter re-confirmed or unpaused)."""
    ids = sorted({supporter_ids} if isinstance(supporter_ids, int) else set(supporter_ids))
    if ids:
        db.session.info.setdefault(_PENDING, []).append((current_app.extensions["redis"], ids, None, 0))


@sa.event.listens_for(Session, "after_commit")
def _write_after_commit(session: Session) -> None:
    pending = session.info.pop(_PENDING, None)
    if not pending:
        return
    try:
        by_connection: dict[int, tuple[redis.Redis, list]] = {}
        for connection, ids, reason, ttl in pending:
            by_connection.setdefault(id(connection), (connection, []))[1].append((ids, reason, ttl))
        for connection, items in by_connection.values():
            with connection.pipeline(transaction=False) as pipe:
                for ids, reason, ttl in items:
                    for supporter_id in ids:
                        if reason is None:
                            pipe.delete(KEY.format(supporter_id))
                        else:
                            pipe.set(KEY.format(supporter_id), reason, ex=ttl)
                pipe.execute()
    except redis.RedisError as exc:
        # The withdrawal is committed and stays answered. A sender that cannot reach Redis does
        # not send (campaigns.engine), and the per-claim database re-check covers the rest.
        log.warning("stop markers not written (%s); the senders' database re-check covers them", exc)


@sa.event.listens_for(Session, "after_transaction_end")
def _forget_after_rollback(session: Session, transaction) -> None:
    if transaction.parent is None:  # the outermost transaction ended without a commit
        session.info.pop(_PENDING, None)


class StopCheck:
    """A sender's view of the markers: `begin()` before reading the database, `stopped()` before
    each SMTP transaction. Redis errors propagate: a sender that cannot check does not send."""

    def __init__(self, connection: redis.Redis):
        self.connection = connection
        self.epoch: bytes | None = None

    def begin(self) -> None:
        """Note the epoch; call it *before* reading the supporters' state from the database."""
        epoch = self.connection.get(EPOCH_KEY)
        if epoch is None:
            self.connection.set(EPOCH_KEY, uuid.uuid4().hex, nx=True)
            epoch = self.connection.get(EPOCH_KEY)
        self.epoch = epoch

    def stopped(self, supporter_id: int) -> str | None:
        """The marker's reason, or None; raises MarkersLost when Redis lost them since `begin()`."""
        return self._verdict(*self.connection.mget(EPOCH_KEY, KEY.format(supporter_id)))

    def ask(self, supporter_id: int) -> Callable[[], str | None]:
        """Send the check now; the returned function reads its answer (what `stopped()` returns or
        raises). Whatever the caller does in between overlaps with the Redis round trip (the engine
        sends RCPT TO). The function must be called exactly once: it gives the connection back."""
        pool = self.connection.connection_pool
        conn = pool.get_connection()
        command = ("MGET", EPOCH_KEY, KEY.format(supporter_id))
        try:
            try:
                conn.send_command(*command)
            except (redis.ConnectionError, redis.TimeoutError):
                conn.disconnect()  # a pooled connection gone stale (Redis restarted): once more
                conn.send_command(*command)
        except BaseException:
            pool.release(conn)
            raise

        def answer() -> str | None:
            try:
                epoch, reason = conn.read_response()
            finally:
                pool.release(conn)  # read_response disconnects it first when the read failed
            return self._verdict(epoch, reason)

        return answer

    def _verdict(self, epoch: bytes | None, reason: bytes | None) -> str | None:
        if epoch != self.epoch or epoch is None:
            raise MarkersLost
        return reason.decode() if reason is not None else None
