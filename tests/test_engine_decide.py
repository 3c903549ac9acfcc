"""The send-time re-check as a pure function: one row in, skip (why) / defer (until when) / send out."""

from datetime import UTC, datetime, timedelta

import pytest

from campaigns.models import SkipReason
from campaigns.outcomes import Defer, Skip
from campaigns.recipients import Recipient, SendChecks, decide, quiet_until
from supporters.models import SupporterStatus

NOON = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)  # 14:00 in Berlin
NIGHT = datetime(2026, 6, 1, 23, 0, tzinfo=UTC)  # 01:00 in Berlin


def row(**changes) -> Recipient:
    fields = dict(delivery_id=1, supporter_id=7, email="a@example.org", email_normalized="a@example.org",
                  name="Alex Doe", language="en", status=SupporterStatus.ACTIVE, timezone="Europe/Berlin",
                  asks_per_month=None, paused_until=None, email_hash="h-a")
    return Recipient(**{**fields, **changes})


def checks(**changes) -> SendChecks:
    fields = dict(claimed_at=NOON, suppressed=frozenset(), recent={}, asks_default=4,
                  languages=frozenset({"en"}), quiet_hours=False)
    return SendChecks(**{**fields, **changes})


def test_an_active_consenting_supporter_within_every_limit_is_sent():
    assert decide(row(), checks(), NOON) is None


@pytest.mark.parametrize(("changes", "check_changes", "reason"), [
    ({"status": SupporterStatus.UNSUBSCRIBED}, {}, SkipReason.UNSUBSCRIBED),
    ({"status": SupporterStatus.PENDING}, {}, SkipReason.NO_CONSENT),
    ({"status": SupporterStatus.ERASED, "email": None, "email_normalized": None}, {}, SkipReason.NO_CONSENT),
    ({"email": None}, {}, SkipReason.NO_CONSENT),
    ({}, {"suppressed": frozenset({"h-a"})}, SkipReason.SUPPRESSED),
    ({"paused_until": NOON + timedelta(days=1)}, {}, SkipReason.PAUSED),
    ({}, {"recent": {7: 4}}, SkipReason.FREQUENCY_LIMIT),
    ({"asks_per_month": 1}, {"recent": {7: 1}}, SkipReason.FREQUENCY_LIMIT),
    ({"language": "de"}, {}, SkipReason.NO_CONTENT),
], ids=["unsubscribed", "pending", "erased", "no-address", "suppressed", "paused", "frequency-default",
        "frequency-own", "no-content"])
def test_a_delivery_is_skipped_with_the_reason(changes, check_changes, reason):
    assert decide(row(**changes), checks(**check_changes), NOON) == Skip(reason.value)


def test_a_pause_that_ended_or_asks_left_do_not_skip():
    assert decide(row(paused_until=NOON - timedelta(minutes=1), asks_per_month=5), checks(recent={7: 4}), NOON) is None


def test_an_unsubscribe_wins_over_every_other_reason():
    assert decide(row(status=SupporterStatus.UNSUBSCRIBED, language="de"),
                  checks(suppressed=frozenset({"h-a"})), NOON) == Skip(SkipReason.UNSUBSCRIBED.value)


def test_quiet_hours_defer_until_they_end_where_the_supporter_lives():
    decision = decide(row(), checks(quiet_hours=True), NIGHT)
    assert decision == Defer(quiet_until("Europe/Berlin", NIGHT), reason="quiet_hours")
    assert decision.until == datetime(2026, 6, 2, 6, 0, tzinfo=UTC) and not decision.attempt


def test_quiet_hours_do_not_hold_a_mail_by_day_without_a_timezone_or_when_not_asked_for():
    assert decide(row(), checks(quiet_hours=True), NOON) is None
    assert decide(row(timezone=None), checks(quiet_hours=True), NIGHT) is None
    assert decide(row(timezone="Not/AZone"), checks(quiet_hours=True), NIGHT) is None
    assert decide(row(), checks(quiet_hours=False), NIGHT) is None


def test_a_skip_reason_wins_over_quiet_hours():
    assert decide(row(language="de"), checks(quiet_hours=True), NIGHT) == Skip(SkipReason.NO_CONTENT.value)
