from email.header import decode_header, make_header

import pytest

from campaigns import services
from campaigns.models import Campaign
from tests.engine_helpers import make_campaign, reasons, run_worker, statuses
from tests.factories import make_supporter


@pytest.fixture
def settings(migrated, smtp_sink):
    return {**migrated, "SMTP_URL": smtp_sink.url, "CAMPAIGN_RETRY_SECONDS": 0}


def test_an_announcement_reaches_every_active_supporter_once(app, db, smtp_sink):
    people = [make_supporter(name=f"Kim {i}") for i in range(5)]
    campaign = make_campaign()
    result = services.launch(campaign.id)
    assert result == {"status": "sending", "queued": 5}
    run_worker(app)
    assert statuses(campaign.id) == {"sent": 5}
    assert len(smtp_sink.messages) == 5
    assert set(smtp_sink.handler.message_ids.values()) == {1}
    msg = smtp_sink.handler.parsed()[0]
    assert str(make_header(decode_header(msg["Subject"]))).startswith("News for Kim")
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["List-Unsubscribe"].startswith("<http://supporters.test/unsubscribe/")
    text, html = (p.get_payload(decode=True).decode() for p in msg.get_payload())
    assert "Hello Kim," in text and "<strong>news</strong>" in html
    assert 'href="http://supporters.test/preferences/' in html
    db.session.expire_all()
    assert db.session.get(Campaign, campaign.id).status.value == "sent"
    assert {m[1][0] for m in smtp_sink.messages} == {p.email for p in people}


def test_only_consenting_unsuppressed_supporters_within_their_limits_are_sent(app, db, smtp_sink):
    from datetime import timedelta

    from core.db import utcnow
    from supporters.models import Suppression, email_hash

    ok = make_supporter()
    pending = make_supporter(status="pending")
    gone = make_supporter(status="unsubscribed")
    suppressed = make_supporter()
    db.session.add(Suppression(email_hash=email_hash(suppressed.email), reason="complaint"))
    resting = make_supporter(paused_until=utcnow() + timedelta(days=3))
    supplier = make_supporter(kind="supplier")
    db.session.commit()
    campaign = make_campaign(audience={"exclude": {"field": "kind", "op": "eq", "value": "supplier"}})
    services.launch(campaign.id)
    run_worker(app)
    assert reasons(campaign.id) == {ok.id: "sent", pending.id: "no_consent", gone.id: "unsubscribed",
                                    suppressed.id: "suppressed", resting.id: "paused", supplier.id: "excluded"}
    assert [m[1] for m in smtp_sink.messages] == [[ok.email]]


def test_unsubscribing_or_being_suppressed_after_launch_is_honoured_at_send_time(app, db, smtp_sink):
    from supporters.models import Supporter, Suppression, email_hash

    stays, leaves, bounced = make_supporter(), make_supporter(), make_supporter()
    campaign = make_campaign()
    services.launch(campaign.id)
    db.session.get(Supporter, leaves.id).status = "unsubscribed"
    db.session.add(Suppression(email_hash=email_hash(bounced.email), reason="hard_bounce"))
    db.session.commit()
    run_worker(app)
    assert reasons(campaign.id) == {stays.id: "sent", leaves.id: "unsubscribed", bounced.id: "suppressed"}
    assert [m[1] for m in smtp_sink.messages] == [[stays.email]]


def test_the_frequency_limit_counts_recent_sends_across_campaigns(app, db, smtp_sink):
    once = make_supporter(asks_per_month=1)
    twice = make_supporter(asks_per_month=2)
    default = make_supporter()  # DEFAULT_ASKS_PER_MONTH = 4
    first = make_campaign(name="first")
    second = make_campaign(name="second")
    services.launch(first.id)
    services.launch(second.id)  # both snapshots see nothing sent yet: the send-time re-check decides
    run_worker(app)
    assert reasons(first.id) == {once.id: "sent", twice.id: "sent", default.id: "sent"}
    assert reasons(second.id) == {once.id: "frequency_limit", twice.id: "sent", default.id: "sent"}
    third = make_campaign(name="third")
    services.launch(third.id)  # now the snapshot already leaves them out
    run_worker(app)
    assert reasons(third.id) == {once.id: "frequency_limit", twice.id: "frequency_limit", default.id: "sent"}
    assert len(smtp_sink.messages) == 6


def test_sends_older_than_thirty_days_no_longer_count(app, db, smtp_sink):
    from datetime import timedelta

    import sqlalchemy as sa

    from campaigns.models import Delivery
    from core.db import utcnow

    person = make_supporter(asks_per_month=1)
    first = make_campaign(name="first")
    services.launch(first.id)
    run_worker(app)
    db.session.execute(sa.update(Delivery).values(sent_at=utcnow() - timedelta(days=31)))
    db.session.commit()
    second = make_campaign(name="second")
    services.launch(second.id)
    run_worker(app)
    assert reasons(second.id) == {person.id: "sent"}


def _zones():
    """A fixed-offset zone where it is now quiet (21-8 h) and one where it is not."""
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    quiet = awake = None
    for offset in range(-12, 13):
        name = f"Etc/GMT{'+' if offset <= 0 else '-'}{abs(offset)}"  # Etc/GMT+5 is UTC-5
        hour = datetime.now(UTC).astimezone(ZoneInfo(name)).hour
        if 8 <= hour < 20 and awake is None:
            awake = name
        if (hour >= 21 or hour < 7) and quiet is None:
            quiet = name
    return quiet, awake


def test_quiet_hours_hold_mail_until_morning_in_the_supporters_time_zone(app, db, smtp_sink):
    import sqlalchemy as sa

    from campaigns.models import Delivery
    from campaigns.recipients import quiet_until
    from core.db import utcnow

    quiet_zone, awake_zone = _zones()
    sleeper = make_supporter(timezone=quiet_zone)
    awake = make_supporter(timezone=awake_zone)
    unknown = make_supporter(timezone=None)
    considerate = make_campaign(respect_quiet_hours=True)
    services.launch(considerate.id)
    run_worker(app)
    assert reasons(considerate.id) == {sleeper.id: "queued", awake.id: "sent", unknown.id: "sent"}
    held = db.session.scalar(sa.select(Delivery).where(Delivery.supporter_id == sleeper.id))
    assert held.next_attempt_at == quiet_until(quiet_zone, utcnow()) and held.attempts == 0
    db.session.expire_all()
    assert db.session.get(Campaign, considerate.id).status.value == "sending"
    # A campaign that does not ask for quiet hours sends at once.
    urgent = make_campaign(name="urgent")
    services.launch(urgent.id)
    run_worker(app)
    assert reasons(urgent.id) == {sleeper.id: "sent", awake.id: "sent", unknown.id: "sent"}


def test_smtp_errors_are_retried_failed_and_suppressed_as_designed(app, db, smtp_sink):
    import sqlalchemy as sa

    from supporters.models import Suppression, email_hash

    people = [make_supporter() for _ in range(10)]
    rejected, busy = people[0], people[1]
    smtp_sink.handler.rcpt_replies[rejected.email] = "550 5.1.1 no such user"
    smtp_sink.handler.data_replies[busy.email] = ["451 4.3.0 try later", "452 4.2.2 full"]
    smtp_sink.handler.drop_next_data = 2  # the first two messages lose their connection
    campaign = make_campaign()
    services.launch(campaign.id)
    run_worker(app)
    assert statuses(campaign.id) == {"sent": 9, "failed": 1}
    assert reasons(campaign.id)[rejected.id] == "failed"
    assert db.session.scalar(sa.select(Suppression.reason).where(
        Suppression.email_hash == email_hash(rejected.email))).value == "hard_bounce"
    # Everyone else got exactly one message, the retried ones included.
    assert sorted(m[1][0] for m in smtp_sink.messages) == sorted(p.email for p in people[1:])
    assert set(smtp_sink.handler.message_ids.values()) == {1}
    db.session.expire_all()
    assert db.session.get(Campaign, campaign.id).status.value == "sent"


def test_past_the_error_budget_the_campaign_pauses_itself_and_says_why(app, db, smtp_sink):
    people = [make_supporter() for _ in range(40)]
    for p in people[:30]:
        smtp_sink.handler.rcpt_replies[p.email] = "550 5.1.1 no such user"
    campaign = make_campaign()
    services.launch(campaign.id)
    run_worker(app)
    db.session.expire_all()
    paused = db.session.get(Campaign, campaign.id)
    assert paused.status.value == "paused"
    assert "error budget" in paused.status_reason
    counts = statuses(campaign.id)
    assert counts["failed"] == 21 and counts.get("queued", 0) + counts.get("sent", 0) == 19
    assert counts.get("sending", 0) == 0


def test_a_campaign_pauses_itself_when_the_smtp_server_is_down(app, db, settings):
    from tests.servers import free_port
    from wsgi import create_app

    down = create_app({**settings, "SMTP_URL": f"smtp://127.0.0.1:{free_port()}?timeout=2"})
    with down.app_context():
        for _ in range(12):
            make_supporter()
        campaign = make_campaign()
        services.launch(campaign.id)
        run_worker(down)
        db.session.expire_all()
        paused = db.session.get(Campaign, campaign.id)
        assert paused.status.value == "paused"
        assert "transient SMTP errors in a row" in paused.status_reason
        assert statuses(campaign.id) == {"queued": 12}


def test_the_campaign_rate_limits_sending(app, db, smtp_sink):
    import time

    for _ in range(6):
        make_supporter()
    campaign = make_campaign(rate_per_minute=600)  # 10 per second
    services.launch(campaign.id)
    started = time.monotonic()
    run_worker(app)
    assert time.monotonic() - started >= 0.45
    assert statuses(campaign.id) == {"sent": 6}


def test_a_saturated_recipient_domain_is_deferred_while_other_domains_go_through(app, db, smtp_sink):
    import sqlalchemy as sa

    from campaigns.models import Delivery

    app.config["CAMPAIGN_DOMAIN_RATE_PER_MINUTE"] = 20  # one every 3 s per domain
    busy = [make_supporter(f"p{i}@busy.example") for i in range(3)]
    quiet = make_supporter("solo@quiet.example")
    campaign = make_campaign()
    services.launch(campaign.id)
    run_worker(app)
    got = reasons(campaign.id)
    assert got[quiet.id] == "sent"
    assert sorted(got[p.id] for p in busy) == ["queued", "queued", "sent"]
    waiting = db.session.scalars(sa.select(Delivery).where(Delivery.status == "queued")).all()
    assert all(d.next_attempt_at is not None and d.attempts == 0 for d in waiting)
