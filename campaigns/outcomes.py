"""What happened to claimed deliveries, and the bookkeeping around it: claims, leases, checkpoints.

A job claims deliveries with a conditional UPDATE (queued → sending, with a lease), buffers each
one's outcome and writes them in a few set-based UPDATEs at a checkpoint, which also re-reads the
campaign status now and then and renews the lease on what is still to send. A checkpoint that
finds the campaign no longer sending, or over its error budget, raises `Stop`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from campaigns.models import Campaign, CampaignStatus, Delivery, DeliveryStatus
from campaigns.states import transition
from core import metrics
from core.db import utcnow
from core.errors import Conflict
from core.extensions import db
from supporters.models import Suppression, SuppressionReason

CLAIM_SIZE = 200  # deliveries claimed at a time inside a job (a whole batch: one claim per job)
STATUS_CHECK_SECONDS = 0.5  # how often a job re-reads the campaign status: a pause acts within ~1 s
DB_OUTAGE_SECONDS = 60  # a checkpoint retries this long while the database is unreachable (a restart)
DB_DOWN = (sa.exc.OperationalError, sa.exc.InterfaceError)

log = logging.getLogger(__name__)
ERROR_BUDGET_MIN = 20  # permanent failures tolerated before the rate check applies
ERROR_BUDGET_RATE = 0.10  # pause when more than this share of attempted deliveries failed


# --- one delivery's outcome --------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Sent:
    pass


@dataclass(frozen=True, slots=True)
class Skip:
    reason: str  # a SkipReason value


@dataclass(frozen=True, slots=True)
class Defer:
    until: datetime
    error: str | None = None
    attempt: bool = False  # a failed attempt (counts towards the limit); otherwise the attempt is given back
    ambiguous: bool = False  # the server may have kept the message: a retry may duplicate it (`reclaimed`)
    reason: str = "retry"  # for the metrics: quiet_hours, domain_rate, transient, ambiguous


@dataclass(frozen=True, slots=True)
class Failed:
    error: str
    suppress_hash: str | None = None  # a permanent refusal suppresses the address
    reason: str = "permanent"  # for the metrics: refused, invalid_address, smtputf8, max_attempts, …


Outcome = Sent | Skip | Defer | Failed
SENT = Sent()


class Stop(Exception):
    """Why a job stops before its range is done; with `pause`, the campaign is paused for that reason."""

    def __init__(self, reason: str, pause: bool = False, again: bool = False):
        super().__init__(reason)
        # `again`: not a stop of the job, only of the chunk: give it back and claim afresh.
        self.reason, self.pause, self.again = reason, pause, again


class Outcomes:
    """Buffered outcomes of claimed deliveries, written in a few set-based UPDATEs; totals of the job."""

    def __init__(self):
        self.totals = {"sent": 0, "skipped": 0, "deferred": 0, "failed": 0}
        self.counts: dict[tuple[str, str], int] = {}  # (outcome, reason) -> n, for the metrics once written
        self._reset()

    def _reset(self) -> None:
        self.sent: list[int] = []
        self.skipped: dict[int, str] = {}
        self.deferred: list[tuple[int, datetime, str | None, bool, bool]] = []  # id, when, error, attempt, ambiguous
        self.failed: list[tuple[int, str]] = []
        self.suppress: list[str] = []

    def __len__(self) -> int:
        return len(self.sent) + len(self.skipped) + len(self.deferred) + len(self.failed)

    def record(self, delivery_id: int, outcome: Outcome) -> None:
        match outcome:
            case Sent():
                self.sent.append(delivery_id)
                self.totals["sent"] += 1
                key = ("sent", "")
            case Skip(reason=reason):
                self.skipped[delivery_id] = reason
                self.totals["skipped"] += 1
                key = ("skipped", reason)
            case Defer(until=until, error=error, attempt=attempt, ambiguous=ambiguous, reason=reason):
                self.deferred.append((delivery_id, until, error, attempt, ambiguous))
                self.totals["deferred"] += 1
                key = ("deferred", reason)
            case Failed(error=error, suppress_hash=suppress_hash, reason=reason):
                self.failed.append((delivery_id, error))
                if suppress_hash:
                    self.suppress.append(suppress_hash)
                self.totals["failed"] += 1
                key = ("failed", reason)
        self.counts[key] = self.counts.get(key, 0) + 1

    def flush(self, campaign_id: int) -> int:
        """Write the outcomes (the caller commits, then calls `written()`); return how many permanent
        failures they hold. Kept until `written()`, so a failed commit can be tried again."""
        if not len(self):
            return 0
        now = utcnow()
        mine = sa.and_(Delivery.campaign_id == campaign_id, Delivery.status == DeliveryStatus.SENDING)
        if self.sent:
            db.session.execute(sa.update(Delivery).where(mine, Delivery.id.in_(self.sent))
                               .values(status=DeliveryStatus.SENT, sent_at=now, lease_until=None, error=None)
                               .execution_options(synchronize_session=False))
        for reason in set(self.skipped.values()):
            ids = [i for i, r in self.skipped.items() if r == reason]
            db.session.execute(sa.update(Delivery).where(mine, Delivery.id.in_(ids))
                               .values(status=DeliveryStatus.SKIPPED, skip_reason=reason, lease_until=None)
                               .execution_options(synchronize_session=False))
        for delivery_id, when, error, counts, ambiguous in self.deferred:
            values = {"status": DeliveryStatus.QUEUED, "next_attempt_at": when, "lease_until": None,
                      "enqueued_at": None, "error": error}
            if not counts:
                values["attempts"] = Delivery.attempts - 1
            if ambiguous:  # marked before the retry exists: any duplicate it makes is counted
                values["reclaimed"] = True
            db.session.execute(sa.update(Delivery).where(mine, Delivery.id == delivery_id).values(**values)
                               .execution_options(synchronize_session=False))
        for delivery_id, error in self.failed:
            db.session.execute(sa.update(Delivery).where(mine, Delivery.id == delivery_id)
                               .values(status=DeliveryStatus.FAILED, error=error[:500], lease_until=None)
                               .execution_options(synchronize_session=False))
        if self.suppress:
            suppress_hashes(self.suppress, SuppressionReason.HARD_BOUNCE)
        return len(self.failed)

    def written(self) -> None:
        """The outcomes are committed: count them (one increment per outcome and reason) and forget them."""
        for (outcome, reason), n in self.counts.items():
            metrics.DELIVERIES.labels(outcome, reason).inc(n)
        self.counts.clear()
        self._reset()


def suppress_hashes(hashes: Iterable[str], reason: SuppressionReason) -> None:
    """Add hashes to the suppression list, ignoring those already there (no commit)."""
    hashes = sorted(set(hashes))
    known = set(db.session.scalars(sa.select(Suppression.email_hash).where(Suppression.email_hash.in_(hashes))))
    for h in hashes:
        if h not in known:
            db.session.add(Suppression(email_hash=h, reason=reason))
    db.session.flush()


# --- claims and leases -------------------------------------------------------------------------

def campaign_status(campaign_id: int) -> CampaignStatus | None:
    return db.session.execute(sa.select(Campaign.status).where(Campaign.id == campaign_id)).scalar()


def claim(campaign_id: int, lo: int, hi: int, lease: int, until: datetime | None = None) -> list[int]:
    """Take up to CLAIM_SIZE due queued deliveries with ids in [lo, hi] (commits); their ids, sorted.

    `until` (default: now + lease) is written as the lease; the holder renews by that value."""
    now = utcnow()
    candidates = (sa.select(Delivery.id)
                  .where(Delivery.campaign_id == campaign_id, Delivery.id.between(lo, hi),
                         Delivery.status == DeliveryStatus.QUEUED,
                         sa.or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= now))
                  .order_by(Delivery.id).limit(CLAIM_SIZE))
    # The status condition is checked again on the row itself: of two workers, one wins each row.
    claimed = db.session.scalars(
        sa.update(Delivery).where(Delivery.id.in_(candidates.scalar_subquery()), Delivery.status == DeliveryStatus.QUEUED)
        .values(status=DeliveryStatus.SENDING, lease_until=until or now + timedelta(seconds=lease),
                attempts=Delivery.attempts + 1)
        .returning(Delivery.id).execution_options(synchronize_session=False)).all()
    db.session.commit()
    return sorted(claimed)


def release(campaign_id: int, ids: Iterable[int]) -> None:
    """Give claimed, unsent deliveries back (pause, cancel, SMTP down): not counted as an attempt."""
    if ids := list(ids):
        db.session.execute(sa.update(Delivery).where(Delivery.campaign_id == campaign_id, Delivery.id.in_(ids),
                                                     Delivery.status == DeliveryStatus.SENDING)
                           .values(status=DeliveryStatus.QUEUED, lease_until=None, enqueued_at=None,
                                   attempts=Delivery.attempts - 1)
                           .execution_options(synchronize_session=False))
        db.session.commit()


def renew_lease(connection: sa.Connection, campaign_id: int, ids: Iterable[int], held: datetime,
                until: datetime) -> set[int]:
    """Move the lease of the deliveries still held at `held` on to `until`; return their ids.

    The old value identifies the holder: a row whose lease lapsed and went to another worker
    has another value, so it is neither renewed nor reported as held."""
    if not (ids := list(ids)):
        return set()
    return set(connection.scalars(
        sa.update(Delivery).where(Delivery.campaign_id == campaign_id, Delivery.id.in_(ids),
                                  Delivery.status == DeliveryStatus.SENDING, Delivery.lease_until == held)
        .values(lease_until=until).returning(Delivery.id)))


class Checkpoint:
    """Record outcomes and now and then re-read the campaign status, in one commit. (The lease is
    renewed by the job's LeaseKeeper thread, see campaigns.engine.)"""

    def __init__(self, campaign_id: int, lease: int):
        self.campaign_id, self.lease = campaign_id, lease
        self.status_at = time.monotonic()

    def __call__(self, outcomes: Outcomes, pending: Iterable[int], force_status: bool = False) -> None:
        """Raise Stop if the job must not go on. While the database is unreachable (a restart),
        retry for up to DB_OUTAGE_SECONDS: the outcomes stay buffered, nothing is sent meanwhile."""
        deadline = time.monotonic() + DB_OUTAGE_SECONDS
        while True:
            try:
                failures, status = self._write(outcomes, pending, force_status)
                break
            except DB_DOWN as exc:
                db.session.rollback()
                if time.monotonic() > deadline:
                    raise
                log.warning("campaign %s: database unreachable, retrying the checkpoint in 1 s: %s",
                            self.campaign_id, str(exc.orig or exc).strip().splitlines()[0])
                time.sleep(1)
        outcomes.written()
        if failures and (reason := over_error_budget(self.campaign_id)):
            raise Stop(reason, pause=True)
        if status != CampaignStatus.SENDING:
            raise Stop(f"campaign is {status.value if status else 'gone'}")

    def _write(self, outcomes: Outcomes, pending: Iterable[int], force_status: bool) -> tuple[int, CampaignStatus]:
        now = time.monotonic()
        failures = outcomes.flush(self.campaign_id)
        status = CampaignStatus.SENDING
        if force_status or now - self.status_at >= STATUS_CHECK_SECONDS:
            status = campaign_status(self.campaign_id)
            self.status_at = now
        db.session.commit()
        return failures, status



def over_error_budget(campaign_id: int) -> str | None:
    counts = dict(db.session.execute(
        sa.select(Delivery.status, sa.func.count()).where(
            Delivery.campaign_id == campaign_id,
            Delivery.status.in_((DeliveryStatus.SENT, DeliveryStatus.FAILED, DeliveryStatus.BOUNCED)))
        .group_by(Delivery.status)).all())
    db.session.commit()
    failed = counts.get(DeliveryStatus.FAILED, 0)
    attempted = sum(counts.values())
    if failed > ERROR_BUDGET_MIN and failed > ERROR_BUDGET_RATE * attempted:
        return (f"error budget exceeded: {failed} of {attempted} deliveries failed permanently "
                f"(more than {ERROR_BUDGET_RATE:.0%}); check the sender and the audience, then resume")
    return None


def finish_if_done(campaign_id: int) -> bool:
    """Mark a sending campaign sent when no delivery is queued or in flight (database counts only)."""
    open_work = db.session.execute(
        sa.select(Delivery.id).where(Delivery.campaign_id == campaign_id,
                                     Delivery.status.in_((DeliveryStatus.QUEUED, DeliveryStatus.SENDING))).limit(1)
    ).first()
    if open_work is not None:
        db.session.commit()
        return False
    try:
        transition(campaign_id, CampaignStatus.SENT, sources={CampaignStatus.SENDING})
        db.session.commit()
        return True
    except Conflict:
        db.session.rollback()
        return False
