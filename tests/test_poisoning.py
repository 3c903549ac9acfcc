"""One supporter's bad address or header text never harms another's mail (issue 18).

Rows are written straight into the database here, as if an older version or a bug had let them
past the edge: the send must still fail only that one delivery, with a reason, suppress nobody,
finish the campaign, and put no injected header into any mail (every raw mail is parsed again).
"""

from __future__ import annotations

import sqlalchemy as sa

from campaigns import services
from campaigns.models import Delivery, DeliveryStatus
from core.addresses import wire_address
from core.mail import SMTPUTF8_MISSING
from supporters.models import Suppression
from tests.engine_helpers import make_campaign, run_worker, statuses
from tests.factories import make_supporter
from tests.smtp_sink import SMTPSink

GOOD = ["ann@example.org", "x@bücher.example", "bob@example.org", "cleo@example.net"]


def failures(campaign_id: int) -> dict[str, str]:
    from supporters.models import Supporter

    rows = dict(_db().session.execute(sa.select(Supporter.email, Delivery.error).join(Supporter)
                                      .where(Delivery.campaign_id == campaign_id,
                                             Delivery.status == DeliveryStatus.FAILED)).all())
    _db().session.commit()
    return rows


def _db():
    from core.extensions import db

    return db


def injected_headers(sink) -> list[str]:
    return [f"{rcpt}: {name}" for msg, (_f, rcpt, _c) in zip(sink.handler.parsed(), sink.messages, strict=True)
            for name in msg.keys() if name.lower() in ("bcc", "reply-to", "x-evil")]


def test_a_batch_with_broken_rows_sends_every_good_address_and_suppresses_nobody(app, db, smtp_sink):
    app.config["SMTP"] = {"host": "127.0.0.1", "port": smtp_sink.port}
    app.extensions.pop("mail_transport", None)
    bad = ["broken address@example.org", "evil@example.org\r\nBcc: x@evil.example", "nobody"]
    for i, email in enumerate([GOOD[0], bad[0], GOOD[1], bad[1], GOOD[2], bad[2], GOOD[3]]):
        make_supporter(email, name="Mallory\r\nBcc: x@evil.example" if i == 4 else f"Person {i}")
    smtp_sink.handler.rcpt_replies["cleo@example.net"] = "550 5.1.1 no such user"
    campaign = make_campaign()
    services.launch(campaign.id)
    run_worker(app)
    assert statuses(campaign.id) == {"sent": 3, "failed": 4}
    assert services.get_campaign(campaign.id).status.value == "sent"
    assert {rcpt[0] for _f, rcpt, _c in smtp_sink.messages} == {wire_address(e) for e in GOOD[:3]}
    failed = failures(campaign.id)
    assert set(failed) == {*bad, "cleo@example.net"}
    assert all("not a deliverable address" in error for email, error in failed.items() if email in bad)
    # Only the server's word about a recipient suppresses: the refused one, nobody else.
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Suppression)) == 1
    assert services.stats(campaign.id)["failed"] == {"invalid_address": 3, "refused": 1}
    assert injected_headers(smtp_sink) == []


def test_a_relay_without_smtputf8_fails_only_the_utf8_address_with_its_own_reason(app, db):
    sink = SMTPSink(smtputf8=False).start()
    try:
        app.config["SMTP"] = {"host": "127.0.0.1", "port": sink.port}
        app.extensions.pop("mail_transport", None)
        for email in ["ann@example.org", "zoë.müller@example.com", "x@bücher.example", "bob@example.org"]:
            make_supporter(email)
        campaign = make_campaign()
        assert services.preview(campaign.id)["needs_smtputf8"] == 1  # the IDN domain does not need it
        services.launch(campaign.id)
        run_worker(app)
        assert statuses(campaign.id) == {"sent": 3, "failed": 1}
        failed = failures(campaign.id)
        assert list(failed) == ["zoë.müller@example.com"] and SMTPUTF8_MISSING in failed["zoë.müller@example.com"]
        assert services.get_campaign(campaign.id).status.value == "sent"
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Suppression)) == 0
        assert services.stats(campaign.id)["failed"] == {"smtputf8": 1}
        # The IDN domain needs no SMTPUTF8: it went out in A-labels.
        assert sorted(rcpt[0] for _f, rcpt, _c in sink.messages) == [
            "ann@example.org", "bob@example.org", "x@xn--bcher-kva.example"]
        assert sink.wire_problems() == []
    finally:
        sink.stop()


def test_a_refused_confirmation_is_recorded_once_and_never_swept_again(app, db):
    from supporters.mail_jobs import send_confirmation, sweep_unsent_confirmations
    from supporters.models import Supporter, SupporterStatus

    sink = SMTPSink(smtputf8=False).start()
    try:
        app.config["SMTP"] = {"host": "127.0.0.1", "port": sink.port}
        app.extensions.pop("mail_transport", None)
        utf8 = make_supporter("zoë@example.com", status=SupporterStatus.PENDING, source="web_form")
        broken = make_supporter("no body@example.com", status=SupporterStatus.PENDING, source="web_form")
        fine = make_supporter("x@bücher.example", status=SupporterStatus.PENDING, source="web_form")
        assert [send_confirmation(s.id) for s in (utf8, broken, fine)] == [False, False, True]
        db.session.expire_all()
        assert db.session.get(Supporter, utf8.id).confirmation_error == SMTPUTF8_MISSING
        assert db.session.get(Supporter, broken.id).confirmation_error.startswith("not a deliverable address")
        assert db.session.get(Supporter, fine.id).confirmation_error is None
        assert [rcpt for _f, rcpt, _c in sink.messages] == [["x@xn--bcher-kva.example"]]
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Suppression)) == 0
        assert sweep_unsent_confirmations(older_than_seconds=-60) == 0  # nothing to re-queue, ever
    finally:
        sink.stop()
