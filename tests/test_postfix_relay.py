"""A real, strict Postfix as the relay: international addresses go through it intact (issue 18).

Postfix (Debian `postfix`) runs on loopback with its own configuration and queue directories,
`smtputf8_enable = yes` and `smtpd_forbid_bare_newline = reject` (no exclusions), and relays to
an aiosmtpd sink; a message with a bare LF or an 8-bit envelope without SMTPUTF8 would be refused.
Skipped when postfix is not installed (scripts/test.sh installs it) or not run as root.
"""

from __future__ import annotations

import os
import shutil
import time
from email import message_from_bytes, policy

import pytest

from campaigns import services
from core.addresses import wire_address
from supporters.mail_jobs import send_confirmation
from supporters.models import SupporterStatus
from tests.engine_helpers import make_campaign, run_worker, statuses
from tests.factories import make_supporter
from tests.postfix import PostfixRelay
from tests.smtp_sink import SMTPSink

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    shutil.which("postfix") is None and not os.path.exists("/usr/sbin/postfix") or os.geteuid() != 0,
    reason="needs Debian postfix and root (scripts/test.sh installs it)")]

PEOPLE = {"ann@example.org": "Ann Smith", "x@bücher.example": "Jörg Bücher", "zoë.müller@example.com": "Zoë Müller",
          "用户@例子.广告": "李 小龙"}


@pytest.fixture(scope="module")
def relay():
    sink = SMTPSink().start()
    postfix = PostfixRelay(sink.port).start()
    assert postfix.setting("smtputf8_enable") == "yes"
    assert postfix.setting("smtpd_forbid_bare_newline") in ("reject", "no")
    yield sink, postfix
    postfix.stop()
    sink.stop()
    assert sink.wire_problems() == []


@pytest.fixture
def settings(migrated, relay):
    return {**migrated, "SMTP_URL": relay[1].url}


def arrived(sink: SMTPSink, count: int, timeout: float = 60) -> list:
    deadline = time.monotonic() + timeout
    while len(sink.messages) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(sink.messages) >= count, "Postfix did not relay every message in time"
    return list(sink.messages)


def by_recipient(messages) -> dict:
    return {rcpt[0]: message_from_bytes(content, policy=policy.SMTPUTF8) for _f, rcpt, content in messages}


def test_postfix_is_strict_about_bare_newlines(relay):
    _sink, postfix = relay
    if postfix.setting("smtpd_forbid_bare_newline") != "reject":
        pytest.skip("this Postfix does not know smtpd_forbid_bare_newline")
    import smtplib

    with smtplib.SMTP("127.0.0.1", postfix.port) as smtp:
        with pytest.raises(smtplib.SMTPDataError) as exc:
            smtp.sendmail("a@example.org", ["b@example.org"], b"Subject: bare\n\nline\n")
    assert exc.value.smtp_code == 550


def test_campaign_mails_to_international_addresses_pass_postfix_intact(app, db, relay):
    sink, _postfix = relay
    before = len(sink.messages)
    for email, name in PEOPLE.items():
        make_supporter(email, name=name)
    campaign = make_campaign(sender="Grüne Füchse <news@example.org>")
    services.launch(campaign.id)
    run_worker(app)
    assert statuses(campaign.id) == {"sent": len(PEOPLE)}
    received = by_recipient(arrived(sink, before + len(PEOPLE))[before:])
    assert set(received) == {wire_address(e) for e in PEOPLE}
    for email, name in PEOPLE.items():
        msg = received[wire_address(email)]
        assert msg["To"] == wire_address(email)
        assert msg["Subject"] == f"News for {name.split()[0]}"
        assert str(msg["From"]) == "Grüne Füchse <news@example.org>"
        assert f"Hello {name.split()[0]}," in msg.get_body(("plain",)).get_content()
        assert msg["List-Unsubscribe"].startswith("<http://supporters.test/unsubscribe/")


def test_confirmation_mails_to_international_addresses_pass_postfix_intact(app, db, relay):
    sink, _postfix = relay
    before = len(sink.messages)
    people = [make_supporter(email, name=name, status=SupporterStatus.PENDING) for email, name in PEOPLE.items()]
    for supporter in people:
        assert send_confirmation(supporter.id) is True
    received = by_recipient(arrived(sink, before + len(people))[before:])
    for supporter in people:
        msg = received[wire_address(supporter.email)]
        assert msg["To"] == wire_address(supporter.email)
        assert "/confirm/" in msg.get_body(("plain",)).get_content()


def test_the_demo_base_goes_through_postfix_without_a_failure(app, db, relay, runner):
    sink, _postfix = relay
    before = len(sink.messages)
    assert runner.invoke(args=["demo", "--supporters", "60"]).exit_code == 0
    campaign = make_campaign(contents={"en": {"subject": "News for {{first_name|there}}", "body": "Hi {{first_name}}"},
                                       "de": {"subject": "Neues für {{first_name|dich}}", "body": "Hallo {{first_name}}"}})
    services.launch(campaign.id)
    run_worker(app)
    sent = statuses(campaign.id).get("sent", 0)
    assert sent > 10 and "failed" not in statuses(campaign.id)
    received = arrived(sink, before + sent)[before:]
    assert any(not rcpt[0].isascii() for _f, rcpt, _c in received)  # the demo has UTF-8 local parts
