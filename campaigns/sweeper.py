"""The sweeper: starts due scheduled campaigns, recovers lost work and finishes campaigns.

`sweep()` runs from `flask campaigns sweep` and every CAMPAIGN_SWEEP_SECONDS from each
`flask worker` (one sweep per interval across all of them, by a Redis lock). It returns expired
leases to the queue, re-enqueues work whose job was lost (a killed worker, a flushed Redis) and
finishes campaigns from the database counts.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import Flask, current_app

from campaigns.engine import enqueue_pending
from campaigns.models import Campaign, CampaignStatus, Delivery, DeliveryStatus
from campaigns.outcomes import finish_if_done
from campaigns.services import start_scheduled
from core import metrics
from core.db import utcnow
from core.extensions import db
from core.periodic import start_locked_loop, try_locked
from core.queues import get_queue
from core.redis import get_redis

log = logging.getLogger(__name__)

SWEEP_LOCK = "sp:campaigns:sweep-lock"
# Present as long as Redis keeps its data: gone after a flush or a restart without persistence,
# when every queued job is gone with it.
QUEUE_EPOCH = "sp:campaigns:queue-epoch"


def sweep(now: datetime | None = None) -> dict[str, int]:
    """Start due scheduled campaigns, recover lost work and finish campaigns; safe to run anywhere, any time."""
    now = now or utcnow()
    report = {"started": 0, "reclaimed": 0, "requeued": 0, "finished": 0, "confirmations": 0, "transfer_files": 0}
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
    lease = current_app.config["CAMPAIGN_LEASE_SECONDS"]
    try:
        backlog = get_queue("campaigns").count
        redis_lost_data = bool(get_redis().set(QUEUE_EPOCH, "1", nx=True))
    except Exception:  # noqa: BLE001 - Redis trouble: treat everything queued as lost
        backlog, redis_lost_data = 0, True
    # Jobs still waiting behind a backlog are not lost: with a backlog, wait much longer before
    # queueing a (harmless but wasteful) second job for the same deliveries. If Redis lost its
    # data, every job queued before is gone: queue all of it again at once.
    stale_before = now if redis_lost_data else now - timedelta(seconds=lease * (10 if backlog else 1))
    sending = db.session.scalars(sa.select(Campaign.id).where(Campaign.status == CampaignStatus.SENDING)).all()
    db.session.commit()
    for campaign_id in sending:
        report["requeued"] += enqueue_pending(campaign_id, only_stale_before=stale_before, now=now)
        report["finished"] += finish_if_done(campaign_id)
    report["confirmations"] = _sweep_confirmations(lease)
    report["transfer_files"] = _expire_transfer_files(now)
    metrics.SWEEPS.inc()
    for kind, n in report.items():
        if n:
            metrics.RECOVERIES.labels(kind).inc(n)
    return report


def _expire_transfer_files(now: datetime) -> int:
    """Delete finished export/import files older than TRANSFER_KEEP_HOURS, from whichever store holds them."""
    from supporters.transfer_jobs import expire_transfer_files

    count = expire_transfer_files(now)
    db.session.commit()
    return count


def _sweep_confirmations(lease: int) -> int:
    """Re-queue double-opt-in mails of web signups whose job was lost (this sweeper is the one
    periodic duty every worker runs, so lost confirmations need no operator). Like deliveries,
    a backlog on the mail queue means jobs are waiting, not lost: then wait ten times longer."""
    from supporters.mail_jobs import sweep_unsent_confirmations

    try:
        backlog = get_queue("mail").count
    except Exception:  # noqa: BLE001 - Redis trouble: the enqueue below fails and the loop retries
        backlog = 0
    count = sweep_unsent_confirmations(older_than_seconds=max(lease, 300) * (10 if backlog else 1))
    db.session.commit()
    return count


def try_sweep(app: Flask) -> dict[str, int] | None:
    """One sweep if no other process swept within the interval (a Redis lock); None if skipped."""
    return try_locked(app, SWEEP_LOCK, app.config["CAMPAIGN_SWEEP_SECONDS"], sweep)


def start_sweeper_thread(app: Flask, _worker=None) -> threading.Thread:
    """Sweep every CAMPAIGN_SWEEP_SECONDS next to a worker (registered as a worker_startup hook)."""
    return start_locked_loop(app, "campaign-sweeper", SWEEP_LOCK, app.config["CAMPAIGN_SWEEP_SECONDS"], sweep,
                             describe=lambda report: str(report) if any(report.values()) else None)
