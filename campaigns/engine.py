"""The sending engine: batch jobs that claim, re-check, render, send and record.

Deliveries are the source of truth. An RQ job carries a range of delivery ids of one campaign; it
claims a small chunk at a time with a conditional UPDATE (status queued → sending, with a lease),
re-checks the campaign and every supporter right before sending, and records the outcomes in
small set-based UPDATEs. The only window for a duplicate is a message the server accepted before
its outcome was recorded (a killed worker): the lease expires, the sweeper marks the row
`reclaimed`, and the resend carries the same Message-ID.

The pieces: `campaigns.recipients` (the re-check, a pure decision per delivery),
`campaigns.outcomes` (claims, leases, outcomes and checkpoints), `campaigns.compose` (compiled
contents and per-delivery values) and `campaigns.sweeper` (due campaigns, lost work, finishing).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

import redis
import sqlalchemy as sa
from flask import current_app

from campaigns.audience import default_asks
from campaigns.compose import composer_for
from campaigns.models import Campaign, CampaignStatus, Delivery, DeliveryStatus
from campaigns.outcomes import (
    SENT,
    Checkpoint,
    Defer,
    Failed,
    Outcome,
    Outcomes,
    Skip,
    Stop,
    claim,
    finish_if_done,
    release,
    renew_lease,
)
from campaigns.recipients import STOP_SKIPS, Recipient, SendChecks, decide, load_recipients
from campaigns.render import CompiledContent
from campaigns.states import transition
from core import verp
from core.addresses import InvalidAddress
from core.db import utcnow
from core.errors import Conflict
from core.extensions import db
from core.leases import LeaseKeeper
from core.mail import AmbiguousMailError, PermanentMailError, TransientMailError, get_transport
from core.queues import job
from core.redis import get_redis
from core.stopmarks import MarkersLost, StopCheck
from core.throttle import Throttle

BATCH_SIZE = 200  # deliveries per RQ job (MEASURED.md: one job per mail caps a send at ~250/s)
FLUSH_EVERY = 50  # record outcomes after this many sends (bounds the duplicate window)
FLUSH_SECONDS = 1.0  # …or after this long
MAX_ATTEMPTS = 5
MAX_THROTTLE_WAIT = 2.0  # longer per-domain waits defer the delivery instead of blocking the worker
CONSECUTIVE_TRANSIENT_LIMIT = 10  # the SMTP server looks down: pause instead of burning retries


# --- enqueueing --------------------------------------------------------------------------------

def enqueue_pending(campaign_id: int, only_stale_before: datetime | None = None, now: datetime | None = None,
                    mark_enqueued: bool = True) -> int:
    """Queue jobs for the campaign's due queued deliveries; return how many deliveries.

    With `only_stale_before`, only deliveries never queued or queued before that time (the
    sweeper's notion of "lost"). Commits: the rows are marked enqueued before the jobs exist.
    """
    now = now or utcnow()
    due = sa.and_(Delivery.campaign_id == campaign_id, Delivery.status == DeliveryStatus.QUEUED,
                  sa.or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= now))
    if only_stale_before is not None:
        due = sa.and_(due, sa.or_(Delivery.enqueued_at.is_(None), Delivery.enqueued_at < only_stale_before))
    # Range boundaries in SQL: every BATCH_SIZE-th id starts a job (no list of a million ids in Python).
    numbered = sa.select(Delivery.id, sa.func.row_number().over(order_by=Delivery.id).label("rn")).where(due).subquery()
    starts = db.session.scalars(sa.select(numbered.c.id).where((numbered.c.rn - 1) % BATCH_SIZE == 0)
                                .order_by(numbered.c.id)).all()
    if not starts:
        db.session.commit()
        return 0
    last = db.session.execute(sa.select(sa.func.max(Delivery.id)).where(due)).scalar_one()
    count = 0
    if mark_enqueued:
        count = db.session.execute(
            sa.update(Delivery).where(due, Delivery.id <= last).values(enqueued_at=now)
            .execution_options(synchronize_session=False)).rowcount
    db.session.commit()
    ranges = [(campaign_id, lo, (starts[i + 1] - 1) if i + 1 < len(starts) else last) for i, lo in enumerate(starts)]
    # Recovered work (the sweeper's) goes to the front: it has waited long enough already.
    send_range.enqueue_many(ranges, timeout=3600, result_ttl=60, failure_ttl=7 * 24 * 3600,
                            at_front=only_stale_before is not None)
    return count


# --- the batch job -----------------------------------------------------------------------------

@job("campaigns")
def send_range(campaign_id: int, lo: int, hi: int) -> dict[str, int]:
    """Send the campaign's queued deliveries with ids in [lo, hi]; safe to run twice."""
    sender = _Sender.start(campaign_id)
    if sender is None:
        return {"sent": 0}
    stop: Stop | None = None
    try:
        while stop is None and (claimed := sender.claim(lo, hi)):
            try:
                recipients, checks = sender.begin_chunk(claimed)
                for i, r in enumerate(recipients):
                    # Skipped, deferred (quiet hours, a saturated domain), or None: its turn has come.
                    outcome = decide(r, checks, utcnow()) or sender.wait_turn(r)
                    if outcome is not None:
                        sender.record(r, outcome)
                        continue
                    sender.record(r, sender.send(r, recipients[i + 1] if i + 1 < len(recipients) else None))
                    sender.after_send()  # a streak of transient errors pauses; checkpoint when due
            except Stop as exc:
                stop = exc
            except redis.RedisError as exc:  # no stop-marker check, no rate limit: send nothing
                stop = Stop(f"Redis unreachable: {exc}")
            stop = sender.end_chunk(stop)
            if stop is not None and stop.again:
                stop = None
    finally:
        sender.keeper.close()
    if stop is not None and stop.pause:
        _pause(campaign_id, stop.reason)
    finish_if_done(campaign_id)
    return sender.outcomes.totals


class _Sender:
    """One job's settings, connections and state: the compiled contents, the outcomes, the chunk's
    deliveries still to settle (given back on a stop), and the streak of transient errors."""

    def __init__(self, campaign: Campaign):
        self.campaign_id = campaign.id
        self.composer = composer_for(campaign)
        self.ahead: tuple[int, tuple[CompiledContent, bytes]] | None = None  # the next message, built early
        self.languages = frozenset(self.composer.contents)
        self.rate_per_minute = campaign.rate_per_minute
        self.quiet_hours = campaign.respect_quiet_hours
        db.session.commit()
        config = current_app.config
        self.lease = config["CAMPAIGN_LEASE_SECONDS"]
        self.retry_base = config["CAMPAIGN_RETRY_SECONDS"]
        self.global_rate = config["CAMPAIGN_RATE_PER_SECOND"]
        self.domain_rate = config["CAMPAIGN_DOMAIN_RATE_PER_MINUTE"]
        self.asks_default = default_asks()
        self.transport = get_transport()
        self.return_path = verp.signer()  # VERP (BOUNCE_ADDRESS): bounces name their delivery
        self.throttle = Throttle(get_redis())
        self.outcomes = Outcomes()
        self.checkpoint = Checkpoint(self.campaign_id, self.lease)
        self.pending: set[int] = set()
        self.last_flush = time.monotonic()
        self.transient_streak, self.last_transient = 0, ""
        self.stops = StopCheck(get_redis())
        self.stopped_by: str | None = None  # why the last transaction was abandoned
        self.lease_held: datetime | None = None  # the lease value our claimed rows carry
        self.lost: set[int] = set()  # claimed rows whose lease lapsed and may be someone else's now
        engine, campaign_id, lease = db.engine, self.campaign_id, self.lease

        self.lock = threading.Lock()  # the claim, `pending` and the lease value, against the keeper

        def renew() -> None:  # in the keeper's thread, on a connection of its own
            with self.lock:
                ids, held, until = set(self.pending), self.lease_held, utcnow() + timedelta(seconds=lease)
                if ids and held is not None:
                    with engine.begin() as conn:
                        still = renew_lease(conn, campaign_id, ids, held, until)
                    self.lost |= ids - still  # (also rows settled meanwhile: harmless, they are done)
                    self.lease_held = until

        self.keeper = LeaseKeeper(renew, lease, name=f"lease-keeper-{campaign_id}")

    @classmethod
    def start(cls, campaign_id: int) -> _Sender | None:
        """None unless the campaign is sending."""
        campaign = db.session.get(Campaign, campaign_id)
        if campaign is None or campaign.status != CampaignStatus.SENDING:
            return None
        return cls(campaign)

    def claim(self, lo: int, hi: int) -> list[int]:
        with self.lock:
            until = utcnow() + timedelta(seconds=self.lease)
            self.keeper.renewed()
            claimed = claim(self.campaign_id, lo, hi, self.lease, until)
            self.lease_held, self.lost, self.pending = until, set(), set(claimed)
        return claimed

    def begin_chunk(self, claimed: list[int]) -> tuple[list[Recipient], SendChecks]:
        self.stops.begin()  # before reading the supporters: a marker lost after this is noticed
        recipients, checks = load_recipients(self.campaign_id, claimed, self.languages, self.asks_default,
                                             self.quiet_hours)
        with self.lock:
            self.pending = {r.delivery_id for r in recipients}
        self.last_flush = time.monotonic()
        return recipients, checks

    def record(self, r: Recipient, outcome: Outcome) -> None:
        self.outcomes.record(r.delivery_id, outcome)
        with self.lock:
            self.pending.discard(r.delivery_id)

    def wait_turn(self, r: Recipient) -> Defer | None:
        """Wait until the rates let this mail go (None), or defer it if its domain is saturated."""
        limits = self.throttle.limits(self.campaign_id, r.email.rpartition("@")[2], self.global_rate,
                                      self.rate_per_minute, self.domain_rate)
        wait, limiting = self.throttle.acquire_or_wait(limits)
        waited = 0.0
        while wait > 0:
            if limiting is not None and ":domain:" in limiting.key and wait > MAX_THROTTLE_WAIT:
                return Defer(utcnow() + timedelta(seconds=wait), reason="domain_rate")  # let other domains through
            nap = min(wait, 0.5)
            time.sleep(nap)
            waited += nap
            if waited >= FLUSH_SECONDS * 2:  # a slow rate: still notice a pause, keep the lease
                waited = 0.0
                self.checkpoint(self.outcomes, self.pending, force_status=True)
            wait, limiting = self.throttle.acquire_or_wait(limits)
        return None

    def send(self, r: Recipient, upcoming: Recipient | None = None) -> Outcome:
        """Render and send one message: sent, failed (a permanent refusal suppresses) or retried later.
        `upcoming`'s message is built while the server reads this one (it is only bytes: what may be
        sent is still decided at its own turn, inside its own transaction)."""
        self.stopped_by = None
        try:
            try:
                content, data = self._built(r)
            except InvalidAddress as exc:  # a stored address that bypassed the edge: this delivery only
                raise PermanentMailError(str(exc), reason="invalid_address") from None
            envelope_from = self.return_path("d", r.delivery_id) if self.return_path else content.envelope_from
            started = self.transport.send(envelope_from, [r.email], data, started=lambda: self._may_start(r),
                                          meanwhile=(lambda: self._build_ahead(upcoming)) if upcoming else None)
        except PermanentMailError as exc:
            self.transient_streak = 0
            # Only a refused recipient is suppressed; a message-level failure names its reason.
            return Failed(f"{exc.reason}: {exc}" if exc.reason else str(exc),
                          suppress_hash=r.email_hash if exc.recipient_refused else None,
                          reason=exc.reason or ("refused" if exc.recipient_refused else "permanent"))
        except TransientMailError as exc:
            self.transient_streak, self.last_transient = self.transient_streak + 1, str(exc)
            return self._retry(r.delivery_id, exc, ambiguous=isinstance(exc, AmbiguousMailError))
        if not started:
            return self._abandoned()
        self.transient_streak = 0
        return SENT

    def _built(self, r: Recipient) -> tuple[CompiledContent, bytes]:
        ahead, self.ahead = self.ahead, None
        if ahead is not None and ahead[0] == r.delivery_id:
            return ahead[1]
        return self.composer.message(r.delivery_id, r.supporter_id, r.email, r.name, r.language, r.consented_at)

    def _build_ahead(self, r: Recipient) -> None:
        """Build `r`'s message now (while the SMTP server reads the current one); on any error, at its turn."""
        self.ahead = None
        if r.email and r.language in self.languages:
            try:
                self.ahead = (r.delivery_id, self.composer.message(r.delivery_id, r.supporter_id, r.email, r.name,
                                                                   r.language, r.consented_at))
            except Exception:  # noqa: BLE001 - built again at its turn, where the error counts
                self.ahead = None

    def _may_start(self, r: Recipient) -> bool | Callable[[], bool]:
        """Asked once the SMTP transaction has begun (MAIL FROM accepted): the lease must be ours;
        the stop-marker check goes to Redis now and its answer is read once the server has
        answered RCPT TO (the two round trips overlap), before DATA. No marker, markers intact."""
        if not self.keeper.holds() or r.delivery_id in self.lost:
            self.stopped_by = "lease"
            return False
        try:
            answer = self.stops.ask(r.supporter_id)
        except redis.RedisError as exc:
            self.stopped_by = f"Redis unreachable: {exc}"
            return False

        def verdict() -> bool:
            try:
                reason = answer()
            except MarkersLost:
                self.stopped_by = "markers lost"
                return False
            except redis.RedisError as exc:
                self.stopped_by = f"Redis unreachable: {exc}"
                return False
            if reason is not None:
                self.stopped_by = reason
                return False
            return True

        return verdict

    def _abandoned(self) -> Outcome:
        """The transaction was abandoned before any recipient: skip the delivery, or stop the chunk."""
        why = self.stopped_by or "abandoned"
        if why in STOP_SKIPS:  # the supporter withdrew after our claim read them
            return Skip(STOP_SKIPS[why])
        if why == "markers lost":  # Redis lost the markers: read the chunk again from the database
            raise Stop(why, again=True)
        if why == "lease":
            raise Stop("the lease could not be renewed (database unreachable)")
        raise Stop(why)

    def _retry(self, delivery_id: int, exc: TransientMailError, ambiguous: bool = False) -> Outcome:
        """Back off exponentially, or give up after MAX_ATTEMPTS."""
        attempts = db.session.execute(sa.select(Delivery.attempts).where(Delivery.id == delivery_id)).scalar()
        db.session.commit()
        if attempts is not None and attempts >= MAX_ATTEMPTS:
            return Failed(f"gave up after {attempts} attempts: {exc}", reason="max_attempts")
        delay = self.retry_base * (2 ** max(0, (attempts or 1) - 1))
        return Defer(utcnow() + timedelta(seconds=min(delay, 3600)), str(exc)[:500], attempt=True,
                     ambiguous=ambiguous, reason="ambiguous" if ambiguous else "transient")

    def after_send(self) -> None:
        """Raise Stop when the SMTP server looks down; checkpoint when due (which may raise Stop)."""
        if self.transient_streak >= CONSECUTIVE_TRANSIENT_LIMIT:
            raise Stop(f"{self.transient_streak} transient SMTP errors in a row, the last: {self.last_transient}",
                       pause=True)
        # Permanent failures are written at once, so the error budget is checked exactly.
        if (self.outcomes.failed or len(self.outcomes) >= FLUSH_EVERY
                or time.monotonic() - self.last_flush > FLUSH_SECONDS):
            self.checkpoint(self.outcomes, self.pending)
            self.last_flush = time.monotonic()

    def end_chunk(self, stop: Stop | None) -> Stop | None:
        """Write what is left of the chunk; on a stop, give back what was not settled."""
        if self.outcomes:
            try:
                self.checkpoint(self.outcomes, self.pending)
            except Stop as exc:
                stop = exc
        if stop is not None:
            release(self.campaign_id, self.pending)
            with self.lock:
                self.pending = set()
        return stop


def _pause(campaign_id: int, reason: str) -> None:
    try:
        transition(campaign_id, CampaignStatus.PAUSED, sources={CampaignStatus.SENDING}, reason=reason)
        db.session.commit()
    except Conflict:
        db.session.rollback()
