"""Helpers shared by the campaign and engine tests."""

from __future__ import annotations

import sqlalchemy as sa

from campaigns import services
from campaigns.models import Delivery, DeliveryStatus
from core.extensions import db
from core.queues import make_worker

BODY = "Hello {{first_name}},\n\nwe have **news**. [Your preferences]({{preferences_url}})\n"


def make_campaign(**overrides):
    data = {"name": "News", "contents": {"en": {"subject": "News for {{first_name}}", "body": BODY}}}
    data.update(overrides)
    return services.create_campaign(data)


def run_worker(app) -> None:
    make_worker(app, ["campaigns"]).work(burst=True)


def statuses(campaign_id: int) -> dict:
    db.session.expire_all()
    rows = db.session.execute(sa.select(Delivery.status, sa.func.count()).where(Delivery.campaign_id == campaign_id)
                              .group_by(Delivery.status)).all()
    db.session.commit()
    return {s.value: n for s, n in rows}


def reasons(campaign_id: int) -> dict:
    rows = db.session.execute(sa.select(Delivery.supporter_id, Delivery.status, Delivery.skip_reason)
                              .where(Delivery.campaign_id == campaign_id)).all()
    db.session.commit()
    return {sid: (reason.value if reason else status.value) for sid, status, reason in rows}


def sent_count(campaign_id: int) -> int:
    return statuses(campaign_id).get(DeliveryStatus.SENT.value, 0)
