"""Bounces and complaints arriving as mail: VERP, DSN and ARF processing, idempotency, auto-pause."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from campaigns import bounces, services
from campaigns.bounce_models import BounceReport
from campaigns.models import Campaign, Delivery, DeliveryStatus
from core import verp
from supporters.models import ConsentEvent, Supporter, Suppression, email_hash
from tests.bounce_mails import arf, dsn
from tests.engine_helpers import make_campaign, run_worker
from tests.factories import make_supporter

BOUNCE_ADDRESS = "bounces@bounce.example.org"


@pytest.fixture
def settings(migrated, smtp_sink):
    return {**migrated, "SMTP_URL": smtp_sink.url, "BOUNCE_ADDRESS": BOUNCE_ADDRESS}


def _send_campaign(app, smtp_sink, n: int = 3):
    people = [make_supporter() for _ in range(n)]
    campaign = make_campaign()
    services.launch(campaign.id)
    run_worker(app)
    return campaign, people, {m[1][0]: m[0] for m in smtp_sink.messages}  # recipient -> envelope sender


def _delivery(campaign_id: int, supporter_id: int) -> Delivery:
    return _db().session.scalar(sa.select(Delivery).where(Delivery.campaign_id == campaign_id,
                                                          Delivery.supporter_id == supporter_id))


def _db():
    from core.extensions import db

    return db


def _suppressed() -> dict[str, str]:
    db = _db()
    db.session.expire_all()
    rows = {h: r.value for h, r in db.session.execute(sa.select(Suppression.email_hash, Suppression.reason))}
    db.session.commit()
    return rows


def _counts() -> tuple[int, ...]:
    db = _db()
    return tuple(db.session.scalar(sa.select(sa.func.count()).select_from(m))
                 for m in (Suppression, BounceReport, ConsentEvent))


def test_every_campaign_mail_has_its_own_signed_return_path(app, db, smtp_sink):
    campaign, people, senders = _send_campaign(app, smtp_sink)
    for person in people:
        sender = senders[person.email]
        local = sender.partition("@")[0]
        assert re.fullmatch(r"bounces\+d\d+-[a-z2-7]{16}", local) and len(local) <= 64
        assert sender.endswith("@bounce.example.org")
        assert verp.verify([sender]).found == [("d", _delivery(campaign.id, person.id).id)]


def test_transactional_mail_has_a_per_supporter_return_path(app, db, smtp_sink):
    from supporters.mails import send_confirmation_mail

    person = make_supporter(status="pending")
    send_confirmation_mail(person, None)
    assert verp.verify([smtp_sink.messages[0][0]]).found == [("s", person.id)]


def test_without_bounce_address_the_envelope_sender_stays_mail_from(app, db, smtp_sink):
    app.config["BOUNCE_ADDRESS"] = None
    _send_campaign(app, smtp_sink, n=1)
    assert smtp_sink.messages[0][0] == "supporters@example.org"


def test_a_hard_bounce_suppresses_exactly_that_address_and_marks_the_delivery(app, db, smtp_sink):
    campaign, (gone, *others), senders = _send_campaign(app, smtp_sink)
    outcome = bounces.process(dsn(gone.email, to=senders[gone.email]))
    assert (outcome.kind.value, outcome.supporter_id, outcome.campaign_id) == ("hard", gone.id, campaign.id)
    assert _suppressed() == {email_hash(gone.email): "hard_bounce"}
    assert _delivery(campaign.id, gone.id).status is DeliveryStatus.BOUNCED
    assert "5.1.1" in _delivery(campaign.id, gone.id).error
    assert {_delivery(campaign.id, p.id).status for p in others} == {DeliveryStatus.SENT}


def test_the_same_report_processed_twice_changes_nothing_twice(app, db, smtp_sink):
    campaign, (gone, complainer, _), senders = _send_campaign(app, smtp_sink)
    reports = [dsn(gone.email, to=senders[gone.email]),
               arf(complainer.email, original_mail_from=senders[complainer.email],
                   original_message_id=f"<d{_delivery(campaign.id, complainer.id).id}.c{campaign.id}@example.org>")]
    for raw in reports:
        assert not bounces.process(raw).duplicate
    after_first = _counts()
    for raw in reports:
        assert bounces.process(raw).duplicate
    assert _counts() == after_first


def test_a_forged_verp_address_is_ignored(app, db, smtp_sink):
    campaign, (victim, *_), senders = _send_campaign(app, smtp_sink)
    real = senders[victim.email]
    forged = re.sub(r"-[a-z2-7]{16}@", "-aaaaaaaaaaaaaaaa@", real)
    delivery = _delivery(campaign.id, victim.id)
    # Everything else in the report points at the victim: the bad MAC alone makes it ignored.
    outcome = bounces.process(dsn(victim.email, to=forged, original_message_id=f"<d{delivery.id}.c{campaign.id}@x>"))
    assert outcome.kind.value == "forged"
    assert _suppressed() == {}
    assert _delivery(campaign.id, victim.id).status is DeliveryStatus.SENT


def test_our_message_id_attributes_only_with_the_matching_recipient(app, db, smtp_sink):
    campaign, (gone, other, _), _senders = _send_campaign(app, smtp_sink)
    mid = f"<d{_delivery(campaign.id, gone.id).id}.c{campaign.id}@example.org>"
    wrong = bounces.process(dsn(other.email, to="supporters@example.org", original_message_id=mid))
    assert wrong.kind.value == "unattributed" and _suppressed() == {}
    right = bounces.process(dsn(gone.email, to="supporters@example.org", original_message_id=mid))
    assert (right.kind.value, right.supporter_id) == ("hard", gone.id)
    assert _suppressed() == {email_hash(gone.email): "hard_bounce"}


def test_soft_bounces_suppress_only_after_the_limit(app, db, smtp_sink):
    _campaign, (full, *_), senders = _send_campaign(app, smtp_sink)
    for i in range(2):
        outcome = bounces.process(dsn(full.email, to=senders[full.email], status="4.2.2", action="failed",
                                      diagnostic="smtp; 452 4.2.2 mailbox full"))
        assert outcome.kind.value == "soft" and not outcome.suppressed, i
    assert _suppressed() == {}
    third = bounces.process(dsn(full.email, to=senders[full.email], status="5.2.2",
                                diagnostic="smtp; 552 5.2.2 mailbox full"))
    assert third.kind.value == "soft" and third.suppressed
    assert _suppressed() == {email_hash(full.email): "hard_bounce"}


def test_delay_warnings_and_policy_refusals_do_not_suppress(app, db, smtp_sink):
    _campaign, (person, *_), senders = _send_campaign(app, smtp_sink)
    delayed = bounces.process(dsn(person.email, to=senders[person.email], action="delayed", status="4.4.1",
                                  diagnostic="smtp; 421 try later"))
    spam = bounces.process(dsn(person.email, to=senders[person.email], status="5.7.1",
                               diagnostic="smtp; 550 5.7.1 message refused as spam"))
    assert (delayed.kind.value, spam.kind.value) == ("delayed", "soft")
    assert _suppressed() == {}


def test_an_arf_complaint_unsubscribes_suppresses_and_records_the_withdrawal(app, db, smtp_sink):
    campaign, (complainer, *_), senders = _send_campaign(app, smtp_sink)
    delivery = _delivery(campaign.id, complainer.id)
    # Providers redact the recipient; the VERP address in Original-Mail-From is enough.
    outcome = bounces.process(arf(None, original_mail_from=senders[complainer.email],
                                  original_message_id=f"<d{delivery.id}.c{campaign.id}@example.org>"))
    assert (outcome.kind.value, outcome.supporter_id, outcome.campaign_id) == ("complaint", complainer.id, campaign.id)
    db.session.expire_all()
    person = db.session.get(Supporter, complainer.id)
    assert person.status.value == "unsubscribed"
    assert _suppressed() == {email_hash(complainer.email): "complaint"}
    withdrawal = db.session.scalars(sa.select(ConsentEvent).where(ConsentEvent.supporter_id == person.id)
                                    .order_by(ConsentEvent.id.desc())).first()
    assert (withdrawal.action.value, withdrawal.method) == ("withdrawn", "complaint")
    assert services.stats(campaign.id)["complaints"] == 1


def test_other_feedback_types_change_nothing(app, db, smtp_sink):
    campaign, (person, *_), senders = _send_campaign(app, smtp_sink)
    outcome = bounces.process(arf(person.email, original_mail_from=senders[person.email],
                                  original_message_id="<x@y>", feedback_type="not-spam"))
    assert outcome.kind.value == "ignored" and _suppressed() == {}


def _launch_unsent(n: int) -> tuple[Campaign, list[Supporter]]:
    """A sending campaign whose n deliveries count as sent (no worker: it would finish the campaign)."""
    people = [make_supporter() for _ in range(n)]
    campaign = make_campaign()
    services.launch(campaign.id)
    db = _db()
    db.session.execute(sa.update(Delivery).where(Delivery.campaign_id == campaign.id)
                       .values(status=DeliveryStatus.SENT))
    db.session.commit()
    return campaign, people


def _complain(campaign, person) -> bounces.Outcome:
    delivery = _delivery(campaign.id, person.id)
    return bounces.process(arf(person.email, original_mail_from=verp.return_path("d", delivery.id),
                               original_message_id=f"<d{delivery.id}.c{campaign.id}@example.org>"))


def test_one_complaint_in_ten_does_not_pause_a_campaign(app, db):
    campaign, people = _launch_unsent(10)
    assert not _complain(campaign, people[0]).paused
    assert services.stats(campaign.id)["status"] == "sending"
    assert services.stats(campaign.id)["complaint_rate"] == 0.1


def test_complaints_above_the_rate_pause_a_sending_campaign(app, db):
    campaign, people = _launch_unsent(20)
    outcomes = [_complain(campaign, p) for p in people[:3]]
    assert [o.paused for o in outcomes] == [False, False, True]
    stats = services.stats(campaign.id)
    assert stats["status"] == "paused" and "complaint rate" in stats["status_reason"]
    assert (stats["complaints"], stats["complaint_rate"]) == (3, 0.15)


def test_bad_input_is_counted_and_skipped_never_a_crash(app, db, runner, tmp_path):
    mails = {
        "garbage.eml": b"\x00\xff\xfe not a mail at all \r\n\r\n\x80",
        "empty.eml": b"",
        "plain.eml": b"From: someone@example.com\r\nSubject: out of office\r\n\r\nI am away.\r\n",
        "broken-report.eml": (b"Content-Type: multipart/report; report-type=delivery-status; boundary=\"X\"\r\n\r\n"
                              b"--X\r\nContent-Type: message/delivery-status\r\nContent-Transfer-Encoding: base64"
                              b"\r\n\r\n!!!not base64\r\n--X"),
        "arf-without-part.eml": b"Content-Type: multipart/report; report-type=feedback-report\r\n\r\nhi\r\n",
    }
    for name, raw in mails.items():
        (tmp_path / name).write_bytes(raw)
    result = runner.invoke(args=["bounces", "process", *(str(tmp_path / n) for n in mails)])
    assert result.exit_code == 0, result.output
    assert "5 mail(s)" in result.output and "errors" not in result.output
    assert _suppressed() == {}


def test_fetch_without_a_mailbox_says_what_is_missing(app, runner):
    result = runner.invoke(args=["bounces", "fetch"])
    assert result.exit_code == 1 and "BOUNCE_IMAP_URL" in result.output
