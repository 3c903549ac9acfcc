"""The sending engine: batch jobs that claim, re-check, render, send and record; and the sweeper.

Deliveries are the source of truth. An RQ job carries a range of delivery ids of one campaign; it
claims a small chunk at a time with a conditional UPDATE (status queued → sending, with a lease),
re-checks the campaign and every supporter right before sending, and records the outcomes in
small set-based UPDATEs. The only window for a duplicate is a message the server accepted before
its outcome was recorded (a killed worker): the lease expires, the sweeper marks the row
`reclaimed`, and the resend carries the same Message-ID.

The sweeper (`sweep()`: `flask campaigns sweep`, and every CAMPAIGN_SWEEP_SECONDS from each
`flask worker`) starts due scheduled campaigns, returns expired leases to the queue, re-enqueues
work whose job was lost (a killed worker, a flushed Redis) and finishes campaigns from the
database counts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from flask import Flask, current_app

from campaigns.audience import FREQUENCY_WINDOW, default_asks
from campaigns.layout import campaign_headers, campaign_layout, campaign_sender, consent_at, consent_date
from campaigns.models import Campaign, CampaignKind, CampaignStatus, Delivery, DeliveryStatus, SkipReason
from campaigns.render import PLACEHOLDERS, CompiledContent, message_id
from campaigns.states import transition
from campaigns.tracking import action_url, campaign_links, link_values
from core.db import utcnow
from core.errors import Conflict
from core.extensions import db
from core.mail import PermanentMailError, TransientMailError, get_transport
from core.org_settings import current_org
from core.queues import get_queue, job
from core.redis import get_redis
from core.throttle import Throttle
from supporters.links import preferences_url, unsubscribe_headers
from supporters.models import Supporter, SupporterStatus, Suppression, SuppressionReason, email_hash

log = logging.getLogger(__name__)

BATCH_SIZE = 200  # deliveries per RQ job (MEASURED.md: one job per mail caps a send at ~250/s)
CLAIM_SIZE = 200  # deliveries claimed at a time inside a job (a whole batch: one claim per job)
FLUSH_EVERY = 50  # record outcomes after this many sends (bounds the duplicate window)
FLUSH_SECONDS = 1.0  # …or after this long
STATUS_CHECK_SECONDS = 0.5  # how often a job re-reads the campaign status: a pause acts within ~1 s
MAX_ATTEMPTS = 5
MAX_THROTTLE_WAIT = 2.0  # longer per-domain waits defer the delivery instead of blocking the worker
CONSECUTIVE_TRANSIENT_LIMIT = 10  # the SMTP server looks down: pause instead of burning retries
ERROR_BUDGET_MIN = 20  # permanent failures tolerated before the rate check applies
ERROR_BUDGET_RATE = 0.10  # pause when more than this share of attempted deliveries failed
QUIET_START, QUIET_END = 21, 8  # local hours during which quiet-hours campaigns do not send
SWEEP_LOCK = "sp:campaigns:sweep-lock"


def _cfg(name: str):
    return current_app.config[name]


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
    send_range.enqueue_many(ranges, timeout=3600, result_ttl=60, failure_ttl=7 * 24 * 3600)
    return count


# --- the batch job -----------------------------------------------------------------------------

class _Outcomes:
    """Buffered outcomes of claimed deliveries, written in a few set-based UPDATEs."""

    def __init__(self):
        self.sent: list[int] = []
        self.skipped: dict[int, str] = {}
        self.deferred: list[tuple[int, datetime, str | None, bool]] = []  # id, when, error, counts as attempt
        self.failed: list[tuple[int, str]] = []
        self.suppress: list[str] = []

    def __len__(self) -> int:
        return len(self.sent) + len(self.skipped) + len(self.deferred) + len(self.failed)

    def flush(self, campaign_id: int) -> int:
        """Write the outcomes (the caller commits); return how many permanent failures they hold."""
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
        for delivery_id, when, error, counts in self.deferred:
            values = {"status": DeliveryStatus.QUEUED, "next_attempt_at": when, "lease_until": None,
                      "enqueued_at": None, "error": error}
            if not counts:
                values["attempts"] = Delivery.attempts - 1
            db.session.execute(sa.update(Delivery).where(mine, Delivery.id == delivery_id).values(**values)
                               .execution_options(synchronize_session=False))
        for delivery_id, error in self.failed:
            db.session.execute(sa.update(Delivery).where(mine, Delivery.id == delivery_id)
                               .values(status=DeliveryStatus.FAILED, error=error[:500], lease_until=None)
                               .execution_options(synchronize_session=False))
        if self.suppress:
            suppress_hashes(self.suppress, SuppressionReason.HARD_BOUNCE)
        failures = len(self.failed)
        self.__init__()
        return failures


def suppress_hashes(hashes: Iterable[str], reason: SuppressionReason) -> None:
    """Add hashes to the suppression list, ignoring those already there (no commit)."""
    hashes = sorted(set(hashes))
    known = set(db.session.scalars(sa.select(Suppression.email_hash).where(Suppression.email_hash.in_(hashes))))
    for h in hashes:
        if h not in known:
            db.session.add(Suppression(email_hash=h, reason=reason))
    db.session.flush()


def _campaign_status(campaign_id: int) -> CampaignStatus | None:
    return db.session.execute(sa.select(Campaign.status).where(Campaign.id == campaign_id)).scalar()


def _claim(campaign_id: int, lo: int, hi: int, lease: int) -> list[int]:
    now = utcnow()
    candidates = (sa.select(Delivery.id)
                  .where(Delivery.campaign_id == campaign_id, Delivery.id.between(lo, hi),
                         Delivery.status == DeliveryStatus.QUEUED,
                         sa.or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= now))
                  .order_by(Delivery.id).limit(CLAIM_SIZE))
    # The status condition is checked again on the row itself: of two workers, one wins each row.
    claimed = db.session.scalars(
        sa.update(Delivery).where(Delivery.id.in_(candidates.scalar_subquery()), Delivery.status == DeliveryStatus.QUEUED)
        .values(status=DeliveryStatus.SENDING, lease_until=now + timedelta(seconds=lease),
                attempts=Delivery.attempts + 1)
        .returning(Delivery.id).execution_options(synchronize_session=False)).all()
    db.session.commit()
    return sorted(claimed)


def _release(campaign_id: int, ids: list[int]) -> None:
    """Give claimed, unsent deliveries back (pause, cancel, SMTP down): not counted as an attempt."""
    if ids:
        db.session.execute(sa.update(Delivery).where(Delivery.campaign_id == campaign_id, Delivery.id.in_(ids),
                                                     Delivery.status == DeliveryStatus.SENDING)
                           .values(status=DeliveryStatus.QUEUED, lease_until=None, enqueued_at=None,
                                   attempts=Delivery.attempts - 1)
                           .execution_options(synchronize_session=False))
        db.session.commit()


def _extend_lease(campaign_id: int, ids: list[int], lease: int, commit: bool = True) -> None:
    if ids:
        db.session.execute(sa.update(Delivery).where(Delivery.campaign_id == campaign_id, Delivery.id.in_(ids),
                                                     Delivery.status == DeliveryStatus.SENDING)
                           .values(lease_until=utcnow() + timedelta(seconds=lease))
                           .execution_options(synchronize_session=False))
        if commit:
            db.session.commit()


def quiet_until(timezone: str | None, now: datetime) -> datetime | None:
    """If it is quiet hours where the supporter lives, when they end (UTC); else None."""
    try:
        zone = ZoneInfo(timezone) if timezone else None
    except (ZoneInfoNotFoundError, ValueError):
        zone = None
    if zone is None:
        return None
    local = now.astimezone(zone)
    if QUIET_END <= local.hour < QUIET_START:
        return None
    end = local.replace(hour=QUIET_END, minute=0, second=0, microsecond=0)
    if local.hour >= QUIET_START:
        end += timedelta(days=1)
    return end.astimezone(now.tzinfo)


class _Recipients:
    """The claimed deliveries with everything the send-time re-check needs, in three queries."""

    def __init__(self, campaign_id: int, ids: list[int], now: datetime):
        self.rows = db.session.execute(
            sa.select(Delivery.id, Supporter.id, Supporter.email, Supporter.email_normalized, Supporter.name,
                      Supporter.language, Supporter.status, Supporter.timezone, Supporter.asks_per_month,
                      Supporter.paused_until, consent_at())
            .join(Supporter, Supporter.id == Delivery.supporter_id)
            .where(Delivery.id.in_(ids), Delivery.status == DeliveryStatus.SENDING).order_by(Delivery.id)).all()
        supporter_ids = [r[1] for r in self.rows]
        self.hashes = {r[0]: email_hash(r[3]) for r in self.rows if r[3]}
        self.suppressed = set(db.session.scalars(
            sa.select(Suppression.email_hash).where(Suppression.email_hash.in_(list(self.hashes.values())))))
        self.recent = dict(db.session.execute(
            sa.select(Delivery.supporter_id, sa.func.count())
            .where(Delivery.supporter_id.in_(supporter_ids), Delivery.campaign_id != campaign_id,
                   Delivery.status.in_((DeliveryStatus.SENT, DeliveryStatus.BOUNCED)),
                   Delivery.sent_at >= now - FREQUENCY_WINDOW)
            .group_by(Delivery.supporter_id)).all())
        db.session.commit()  # end the read transaction: SQLite writers must not wait on us


def _skip_reason(row, recipients: _Recipients, contents: dict, now: datetime, asks_default: int) -> str | None:
    delivery_id, supporter_id, email, normalized, _name, language, status, _tz, asks, paused_until, _c = row
    if status == SupporterStatus.UNSUBSCRIBED:
        return SkipReason.UNSUBSCRIBED.value
    if status != SupporterStatus.ACTIVE or not email or not normalized:
        return SkipReason.NO_CONSENT.value
    if recipients.hashes.get(delivery_id) in recipients.suppressed:
        return SkipReason.SUPPRESSED.value
    if paused_until is not None and paused_until > now:
        return SkipReason.PAUSED.value
    if recipients.recent.get(supporter_id, 0) >= (asks if asks is not None else asks_default):
        return SkipReason.FREQUENCY_LIMIT.value
    if language not in contents:
        return SkipReason.NO_CONTENT.value
    return None


def _placeholder_values(used: set[str], supporter_id: int, name: str | None, unsubscribe: str,
                        delivery_id: int, action_page: bool = False) -> dict[str, str]:
    values = {"unsubscribe_url": unsubscribe}
    if "first_name" in used:
        values["first_name"] = (name or "").split(" ")[0] if name else ""
    if "preferences_url" in used:
        values["preferences_url"] = preferences_url(supporter_id)
    if "action_url" in used:
        # Kinds with an action page (share/review/vote) point this at /act/<token> (campaigns.web).
        values["action_url"] = action_url(delivery_id) if action_page else preferences_url(supporter_id)
    return values


def compile_contents(campaign: Campaign) -> dict[str, CompiledContent]:
    """Each language compiled once, inside the shared layout with its footer (campaigns.layout)."""
    org = current_org()
    sender = campaign_sender(campaign.sender, org)
    links = campaign_links(campaign)  # every link is rewritten to /r/<token> (campaigns.tracking)
    return {c.language: CompiledContent.compile(sender, c.subject, c.body, links, campaign_layout(org, c.language))
            for c in campaign.contents}


@job("campaigns")
def send_range(campaign_id: int, lo: int, hi: int) -> dict[str, int]:
    """Send the campaign's queued deliveries with ids in [lo, hi]; safe to run twice."""
    campaign = db.session.get(Campaign, campaign_id)
    if campaign is None or campaign.status != CampaignStatus.SENDING:
        return {"sent": 0}
    contents = compile_contents(campaign)
    used = {p for c in contents.values() for p in PLACEHOLDERS
            if PLACEHOLDERS.index(p) in (*c.subject, *c.text, *c.html)}
    rate_per_minute = campaign.rate_per_minute
    quiet = campaign.respect_quiet_hours
    action_page = campaign.kind != CampaignKind.ANNOUNCEMENT
    stream = campaign_headers(campaign_sender(campaign.sender, current_org()))  # List-Id, Reply-To
    db.session.commit()

    transport = get_transport()
    throttle = Throttle(get_redis())
    lease = _cfg("CAMPAIGN_LEASE_SECONDS")
    retry_base = _cfg("CAMPAIGN_RETRY_SECONDS")
    global_rate = _cfg("CAMPAIGN_RATE_PER_SECOND")
    domain_rate = _cfg("CAMPAIGN_DOMAIN_RATE_PER_MINUTE")
    asks_default = default_asks()
    totals = {"sent": 0, "skipped": 0, "deferred": 0, "failed": 0}
    consecutive_transient = 0
    stop: str | None = None
    checkpoint = _Checkpoint(campaign_id, lease)

    while stop is None:
        claimed = _claim(campaign_id, lo, hi, lease)
        if not claimed:
            break
        checkpoint.claimed()
        now = utcnow()
        recipients = _Recipients(campaign_id, claimed, now)
        outcomes = _Outcomes()
        pending = [r[0] for r in recipients.rows]
        last_flush = time.monotonic()
        for row in recipients.rows:
            delivery_id, supporter_id, email, _n, name, language, _s, tz, _a, _p, consented = row
            reason = _skip_reason(row, recipients, contents, now, asks_default)
            if reason is None and quiet:
                until = quiet_until(tz, utcnow())
                if until is not None:
                    outcomes.deferred.append((delivery_id, until, None, False))
                    pending.remove(delivery_id)
                    totals["deferred"] += 1
                    continue
            if reason is not None:
                outcomes.skipped[delivery_id] = reason
                pending.remove(delivery_id)
                totals["skipped"] += 1
                continue
            domain = email.rpartition("@")[2]
            limits = throttle.limits(campaign_id, domain, global_rate, rate_per_minute, domain_rate)
            wait, limiting = throttle.acquire_or_wait(limits)
            waited = 0.0
            while wait > 0:
                if limiting is not None and ":domain:" in limiting.key and wait > MAX_THROTTLE_WAIT:
                    break  # this domain is saturated: come back later, let other domains through
                nap = min(wait, 0.5)
                time.sleep(nap)
                waited += nap
                if waited >= FLUSH_SECONDS * 2:  # a slow rate: still notice a pause, keep the lease
                    waited = 0.0
                    stop = checkpoint(outcomes, pending, force_status=True)
                    if stop:
                        break
                wait, limiting = throttle.acquire_or_wait(limits)
            if stop:
                break
            if wait > 0:
                outcomes.deferred.append((delivery_id, utcnow() + timedelta(seconds=wait), None, False))
                pending.remove(delivery_id)
                totals["deferred"] += 1
                continue
            content = contents[language]
            headers = {**stream, **unsubscribe_headers(supporter_id)}
            values = _placeholder_values(used, supporter_id, name, headers["List-Unsubscribe"][1:-1], delivery_id,
                                         action_page)
            values["consent_date"] = consent_date(consented, language)
            values.update(link_values(delivery_id, content.slots))
            data = content.message(email, message_id(delivery_id, campaign_id, content.domain), values, headers)
            try:
                transport.send(content.envelope_from, [email], data)
            except PermanentMailError as exc:
                outcomes.failed.append((delivery_id, str(exc)))
                outcomes.suppress.append(recipients.hashes[delivery_id])
                totals["failed"] += 1
                consecutive_transient = 0
            except TransientMailError as exc:
                consecutive_transient += 1
                attempts = db.session.execute(sa.select(Delivery.attempts).where(Delivery.id == delivery_id)).scalar()
                db.session.commit()
                if attempts is not None and attempts >= MAX_ATTEMPTS:
                    outcomes.failed.append((delivery_id, f"gave up after {attempts} attempts: {exc}"))
                    totals["failed"] += 1
                else:
                    delay = retry_base * (2 ** max(0, (attempts or 1) - 1))
                    outcomes.deferred.append((delivery_id, utcnow() + timedelta(seconds=min(delay, 3600)),
                                              str(exc)[:500], True))
                    totals["deferred"] += 1
                if consecutive_transient >= CONSECUTIVE_TRANSIENT_LIMIT:
                    pending.remove(delivery_id)
                    stop = f"paused: {consecutive_transient} transient SMTP errors in a row, the last: {exc}"
                    break
            else:
                outcomes.sent.append(delivery_id)
                totals["sent"] += 1
                consecutive_transient = 0
            pending.remove(delivery_id)
            # Permanent failures are written at once, so the error budget is checked exactly.
            if outcomes.failed or len(outcomes) >= FLUSH_EVERY or time.monotonic() - last_flush > FLUSH_SECONDS:
                stop = checkpoint(outcomes, pending)
                last_flush = time.monotonic()
                if stop:
                    break
        if outcomes:
            stop = checkpoint(outcomes, pending) or stop
        if stop:
            _release(campaign_id, pending)
    if stop and stop.startswith("paused:"):
        try:
            transition(campaign_id, CampaignStatus.PAUSED, sources={CampaignStatus.SENDING}, reason=stop[8:])
            db.session.commit()
        except Conflict:
            db.session.rollback()
    finish_if_done(campaign_id)
    return totals


class _Checkpoint:
    """Record outcomes, now and then re-read the campaign status and renew the lease, in one commit."""

    def __init__(self, campaign_id: int, lease: int):
        self.campaign_id, self.lease = campaign_id, lease
        self.status_at = self.lease_at = time.monotonic()

    def claimed(self) -> None:
        self.lease_at = time.monotonic()

    def __call__(self, outcomes: _Outcomes, pending: list[int], force_status: bool = False) -> str | None:
        """Return why to stop, or None to go on."""
        now = time.monotonic()
        failures = outcomes.flush(self.campaign_id)
        status = CampaignStatus.SENDING
        if force_status or now - self.status_at >= STATUS_CHECK_SECONDS:
            status = _campaign_status(self.campaign_id)
            self.status_at = now
        if pending and status == CampaignStatus.SENDING and now - self.lease_at >= self.lease / 3:
            _extend_lease(self.campaign_id, pending, self.lease, commit=False)
            self.lease_at = now
        db.session.commit()
        if failures and (reason := _over_error_budget(self.campaign_id)):
            return "paused: " + reason
        if status != CampaignStatus.SENDING:
            return f"campaign is {status.value if status else 'gone'}"
        return None


def _over_error_budget(campaign_id: int) -> str | None:
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


# --- the sweeper -------------------------------------------------------------------------------

def sweep(now: datetime | None = None) -> dict[str, int]:
    """Start due scheduled campaigns, recover lost work and finish campaigns; safe to run anywhere, any time."""
    from campaigns.services import start_scheduled

    now = now or utcnow()
    report = {"started": 0, "reclaimed": 0, "requeued": 0, "finished": 0, "confirmations": 0}
    due = db.session.scalars(sa.select(Campaign.id).where(Campaign.status == CampaignStatus.SCHEDULED,
                                                          Campaign.send_at <= now)).all()
    db.session.commit()
    for campaign_id in due:
        report["started"] += start_scheduled(campaign_id)
    # Expired leases: the worker died (or stalled) holding them. It may have sent some of these
    # before dying; the resend has the same Message-ID and the row says `reclaimed`.
    report["reclaimed"] = db.session.execute(
        sa.update(Delivery).where(Delivery.status == DeliveryStatus.SENDING, Delivery.lease_until < now)
        .values(status=DeliveryStatus.QUEUED, lease_until=None, enqueued_at=None, reclaimed=True)
        .execution_options(synchronize_session=False)).rowcount
    db.session.commit()
    lease = _cfg("CAMPAIGN_LEASE_SECONDS")
    try:
        backlog = get_queue("campaigns").count
    except Exception:  # noqa: BLE001 - Redis trouble: treat everything queued as lost
        backlog = 0
    # Jobs still waiting behind a backlog are not lost: with a backlog, wait much longer before
    # queueing a (harmless but wasteful) second job for the same deliveries.
    stale_before = now - timedelta(seconds=lease * (10 if backlog else 1))
    sending = db.session.scalars(sa.select(Campaign.id).where(Campaign.status == CampaignStatus.SENDING)).all()
    db.session.commit()
    for campaign_id in sending:
        report["requeued"] += enqueue_pending(campaign_id, only_stale_before=stale_before, now=now)
        report["finished"] += finish_if_done(campaign_id)
    report["confirmations"] = _sweep_confirmations(lease)
    return report


def _sweep_confirmations(lease: int) -> int:
    """Re-queue double-opt-in mails of web signups whose job was lost (this sweeper is the one
    periodic duty every worker runs, so lost confirmations need no operator). Like deliveries,
    a backlog on the mail queue means jobs are waiting, not lost: then wait ten times longer."""
    from supporters.join import sweep_unsent_confirmations

    try:
        backlog = get_queue("mail").count
    except Exception:  # noqa: BLE001 - Redis trouble: the enqueue below fails and the loop retries
        backlog = 0
    count = sweep_unsent_confirmations(older_than_seconds=max(lease, 300) * (10 if backlog else 1))
    db.session.commit()
    return count


def try_sweep(app: Flask) -> dict[str, int] | None:
    """One sweep if no other process swept within the interval (a Redis lock); None if skipped."""
    interval = app.config["CAMPAIGN_SWEEP_SECONDS"]
    with app.app_context():
        try:
            if not get_redis().set(SWEEP_LOCK, "1", nx=True, ex=interval):
                return None
            return sweep()
        finally:
            db.session.remove()


def start_sweeper_thread(app: Flask, _worker=None) -> threading.Thread:
    """Sweep every CAMPAIGN_SWEEP_SECONDS next to a worker (registered as a worker_startup hook)."""
    interval = app.config["CAMPAIGN_SWEEP_SECONDS"]

    def loop() -> None:
        # The first sweep waits a moment: the worker forks its RQ scheduler right after start-up,
        # and the fork must not inherit a database connection of ours (see core.cli).
        time.sleep(max(interval, 3))
        while True:
            try:
                report = try_sweep(app)
                if report and any(report.values()):
                    log.info("campaign sweep: %s", report)
            except Exception:  # noqa: BLE001 - the sweeper must outlive a Redis or database hiccup
                log.exception("campaign sweep failed; trying again in %s s", interval)
            time.sleep(interval)

    thread = threading.Thread(target=loop, name="campaign-sweeper", daemon=True)
    thread.start()
    return thread
