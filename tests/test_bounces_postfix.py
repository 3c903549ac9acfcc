"""Real bounces: a real Postfix bounces unknown users, Dovecot files the DSNs, `flask bounces fetch` acts.

Campaign and confirmation mail go out through Postfix (tests/mailservers.py) with VERP return
paths; Postfix delivers to the existing mailboxes, generates a DSN for each unknown local user and
hands it to Dovecot's bounce mailbox; the processor reads that mailbox over IMAP.
"""

from __future__ import annotations

import imaplib

import pytest
import sqlalchemy as sa

from campaigns import bounces, services
from campaigns.bounce_models import BounceReport
from campaigns.models import Delivery
from supporters.models import Suppression, email_hash
from tests import mailservers
from tests.engine_helpers import make_campaign, run_worker, statuses
from tests.factories import make_supporter

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def mail_servers():
    reason = mailservers.available()
    if reason:
        pytest.skip(f"no real Postfix and Dovecot here: {reason}")
    dovecot = mailservers.DovecotServer().start()
    try:
        postfix = mailservers.PostfixServer(dovecot.lmtp_port).start()
    except Exception:
        dovecot.stop()
        raise
    yield postfix, dovecot
    postfix.stop()
    dovecot.stop()


@pytest.fixture
def settings(migrated, mail_servers):
    postfix, dovecot = mail_servers
    return {**migrated, "SMTP_URL": postfix.url, "BOUNCE_ADDRESS": f"bounces@{mailservers.BOUNCE_DOMAIN}",
            "BOUNCE_IMAP_URL": dovecot.imap_url(), "MAIL_FROM": f"Supporters <news@{mailservers.MAILBOX_DOMAIN}>"}


def _raw_mails(dovecot, user: str) -> list[bytes]:
    imap = imaplib.IMAP4("127.0.0.1", dovecot.imap_port)
    try:
        imap.login(user, mailservers.IMAP_PASSWORD)
        imap.select("INBOX")
        numbers = (imap.search(None, "ALL")[1][0] or b"").split()
        return [imap.fetch(n, "(BODY.PEEK[])")[1][0][1] for n in numbers]
    finally:
        imap.logout()


def test_postfix_bounces_suppress_exactly_the_unknown_addresses(app, db, runner, mail_servers):
    from supporters.mails import send_confirmation_mail

    _postfix, dovecot = mail_servers
    fans = [make_supporter(f"fan{i}@{mailservers.MAILBOX_DOMAIN}") for i in range(2)]
    gone = make_supporter(f"nobody-here@{mailservers.LOCAL_DOMAIN}")
    campaign = make_campaign()
    services.launch(campaign.id)
    run_worker(app)
    assert statuses(campaign.id) == {"sent": 3}  # Postfix took all three; the bounce comes later
    ghost = make_supporter(f"ghost@{mailservers.LOCAL_DOMAIN}", status="pending")
    send_confirmation_mail(ghost, None)  # transactional mail: a per-supporter return path

    assert dovecot.wait_for_mail("bounces", 2) == 2
    assert [dovecot.wait_for_mail(f.email.partition("@")[0]) for f in fans] == [1, 1]
    reports = _raw_mails(dovecot, "bounces")
    assert all(b"Content-Type: multipart/report; report-type=delivery-status" in r for r in reports)

    result = runner.invoke(args=["bounces", "fetch"])
    assert result.exit_code == 0, result.output
    assert "2 mail(s): hard 2" in result.output
    db.session.expire_all()
    suppressed = dict(db.session.execute(sa.select(Suppression.email_hash, Suppression.reason)).all())
    assert {h: r.value for h, r in suppressed.items()} == {email_hash(gone.email): "hard_bounce",
                                                          email_hash(ghost.email): "hard_bounce"}
    by_supporter = dict(db.session.execute(sa.select(Delivery.supporter_id, Delivery.status)
                                           .where(Delivery.campaign_id == campaign.id)).all())
    assert {sid: s.value for sid, s in by_supporter.items()} == {fans[0].id: "sent", fans[1].id: "sent",
                                                                 gone.id: "bounced"}
    # The mailbox was emptied; the same DSNs once more (a second fetcher, a restore) change nothing.
    assert runner.invoke(args=["bounces", "fetch"]).output.startswith("0 mail(s)")
    rows = db.session.scalar(sa.select(sa.func.count()).select_from(BounceReport))
    assert all(bounces.process(raw, source="imap").duplicate for raw in reports)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(BounceReport)) == rows == 2
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Suppression)) == 2
