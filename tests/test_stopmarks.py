"""Stop markers (core.stopmarks) and what writes them; the engine's use of them, in-process."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from campaigns import services
from campaigns.models import Delivery
from core import stopmarks
from core.stopmarks import MarkersLost, StopCheck
from supporters.links import unsubscribe_url
from supporters.models import Supporter
from tests.engine_helpers import make_campaign, run_worker, statuses
from tests.test_engine_faults import add_supporters


@pytest.fixture
def settings(migrated, smtp_sink):
    return {**migrated, "SMTP_URL": smtp_sink.url}


def withdraw(app, supporter_id: int) -> None:
    """The RFC 8058 one-click unsubscribe, as a mail client posts it."""
    url = unsubscribe_url(supporter_id).removeprefix(app.config["PUBLIC_BASE_URL"])
    assert app.test_client().post(url, data={"List-Unsubscribe": "One-Click"}).status_code == 200


def test_a_marker_is_written_by_the_commit_and_never_by_a_rollback(app, db):
    check = StopCheck(app.extensions["redis"])
    check.begin()
    stopmarks.stop(7, "unsubscribed")
    assert check.stopped(7) is None  # not before the commit
    db.session.commit()
    assert check.stopped(7) == "unsubscribed"
    stopmarks.stop(8, "erased")
    db.session.rollback()
    db.session.commit()
    assert check.stopped(8) is None
    stopmarks.clear(7)
    db.session.commit()
    assert check.stopped(7) is None


def test_a_sender_notices_when_redis_lost_the_markers(app, db):
    check = StopCheck(app.extensions["redis"])
    check.begin()
    app.extensions["redis"].flushdb()
    with pytest.raises(MarkersLost):
        check.stopped(1)
    check.begin()
    assert check.stopped(1) is None


def test_an_asked_check_answers_like_stopped_and_gives_its_connection_back(app, db):
    """`ask()` (the engine's overlapped check) answers what `stopped()` would, and reading the
    answer returns the connection to the pool, also when it raises MarkersLost."""
    redis = app.extensions["redis"]
    pool = redis.connection_pool
    check = StopCheck(redis)
    check.begin()
    stopmarks.stop(7, "unsubscribed")
    db.session.commit()
    pending = check.ask(7)
    other = check.ask(9)  # two checks in flight at once, on two pooled connections
    assert pending() == "unsubscribed" and other() is None
    stopmarks.stop(8, "paused")
    db.session.commit()
    assert check.ask(8)() == "paused"
    redis.flushdb()
    lost = check.ask(7)
    with pytest.raises(MarkersLost):
        lost()
    assert len(pool._in_use_connections) == 0  # every asked connection went back
    check.begin()
    assert check.ask(7)() is None


def test_an_unsubscribe_stops_mail_the_engine_had_already_read_as_active(app, db, smtp_sink, monkeypatch):
    add_supporters(db, 5)
    campaign_id = make_campaign().id
    services.launch(campaign_id)
    leaving = db.session.scalars(sa.select(Supporter.id).order_by(Supporter.id.desc()).limit(2)).all()
    db.session.commit()
    from campaigns import recipients as module

    real = module.load_recipients

    def read_then_they_leave(*args, **kwargs):
        loaded = real(*args, **kwargs)  # the chunk was read while everyone was active…
        for supporter_id in leaving:  # …then two of them unsubscribe before their mail starts
            withdraw(app, supporter_id)
        return loaded

    monkeypatch.setattr("campaigns.engine.load_recipients", read_then_they_leave)
    run_worker(app)
    assert statuses(campaign_id) == {"sent": 3, "skipped": 2}
    assert services.stats(campaign_id)["skipped"] == {"unsubscribed": 2}
    assert len(smtp_sink.messages) == 3


def test_a_withdrawal_flags_the_deliveries_a_worker_holds(app, db):
    add_supporters(db, 2)
    campaign_id = make_campaign().id
    services.launch(campaign_id)
    first, second = db.session.scalars(sa.select(Delivery.id).order_by(Delivery.id)).all()
    db.session.execute(sa.update(Delivery).where(Delivery.id == first).values(status="sending"))
    db.session.commit()
    for supporter_id in db.session.scalars(sa.select(Supporter.id)).all():
        withdraw(app, supporter_id)
    db.session.expire_all()
    flags = dict(db.session.execute(sa.select(Delivery.id, Delivery.in_flight_at_stop)).all())
    assert flags == {first: True, second: False}


def test_a_drop_after_the_message_marks_the_delivery_before_its_retry(app, db, smtp_sink):
    app.config["CAMPAIGN_RETRY_SECONDS"] = 0
    add_supporters(db, 3)
    campaign_id = make_campaign().id
    services.launch(campaign_id)
    smtp_sink.handler.keep_and_drop_next_data = 1
    run_worker(app)
    marked = db.session.scalars(sa.select(Delivery.id).where(Delivery.reclaimed.is_(True))).all()
    assert len(marked) == 1 and statuses(campaign_id) == {"sent": 3}  # the retry was due at once
    assert sorted(smtp_sink.handler.message_ids.values()) == [1, 1, 2]
    assert services.stats(campaign_id)["possible_duplicates"] == 1


def test_a_refused_recipient_is_suppressed_and_a_message_level_failure_is_not(app, db, smtp_sink):
    add_supporters(db, 2)
    smtp_sink.handler.rcpt_replies["p0@example.org"] = "550 5.1.1 no such user"
    smtp_sink.handler.data_replies["p1@example.org"] = ["554 5.6.0 message refused"]
    campaign_id = make_campaign().id
    services.launch(campaign_id)
    run_worker(app)
    assert statuses(campaign_id) == {"failed": 2}
    from supporters.models import Suppression

    assert db.session.scalar(sa.select(sa.func.count()).select_from(Suppression)) == 1
