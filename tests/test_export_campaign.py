import csv
import io
import json
from datetime import UTC, datetime

import pytest

from campaigns.actions import Action, ActionKind, Click, Link, LinkPurpose
from campaigns.models import Delivery, DeliveryStatus, SkipReason
from supporters.privacy import erase_supporter
from tests.engine_helpers import make_campaign
from tests.factories import make_supporter


def rows_of(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


@pytest.fixture
def campaign(db):
    """A sent campaign: Ada clicked twice on one link and once on another and shared; Jo was
    skipped; Bo's delivery failed; Gone clicked and voted, then was erased."""
    campaign = make_campaign(name="Share day")
    ada = make_supporter("ada@example.org", name="Ada Lovelace", language="en")
    jo = make_supporter("jo@example.org", name="=HYPERLINK(\"http://evil\")", language="de")
    bo = make_supporter("bo@example.org", name="Bo")
    gone = make_supporter("gone@example.org", name="Gone Person")
    sent_at = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    d_ada = Delivery(campaign_id=campaign.id, supporter_id=ada.id, status=DeliveryStatus.SENT, attempts=1,
                     sent_at=sent_at)
    d_jo = Delivery(campaign_id=campaign.id, supporter_id=jo.id, status=DeliveryStatus.SKIPPED,
                    skip_reason=SkipReason.FREQUENCY_LIMIT)
    d_bo = Delivery(campaign_id=campaign.id, supporter_id=bo.id, status=DeliveryStatus.FAILED, attempts=3,
                    error="-550 mailbox unavailable")
    d_gone = Delivery(campaign_id=campaign.id, supporter_id=gone.id, status=DeliveryStatus.SENT, attempts=1,
                      sent_at=sent_at)
    db.session.add_all([d_ada, d_jo, d_bo, d_gone])
    first = Link(campaign_id=campaign.id, purpose=LinkPurpose.MAIL, url="https://example.org/a")
    second = Link(campaign_id=campaign.id, purpose=LinkPurpose.ACTION, url="act:")
    db.session.add_all([first, second])
    db.session.flush()
    db.session.add_all([
        Click(link_id=first.id, delivery_id=d_ada.id, count=2, first_at=sent_at, last_at=sent_at),
        Click(link_id=second.id, delivery_id=d_ada.id, count=1, first_at=sent_at, last_at=sent_at),
        Click(link_id=first.id, delivery_id=d_gone.id, count=1, first_at=sent_at, last_at=sent_at),
        Action(campaign_id=campaign.id, supporter_id=ada.id, delivery_id=d_ada.id, kind=ActionKind.SHARE,
               detail="mastodon"),
        Action(campaign_id=campaign.id, supporter_id=gone.id, delivery_id=d_gone.id, kind=ActionKind.VOTE,
               detail="cast", note="my private words"),
    ])
    db.session.commit()
    erase_supporter(gone)
    db.session.commit()
    return campaign


def test_export_campaign_lists_every_delivery_with_outcome_clicks_and_actions(runner, campaign):
    result = runner.invoke(args=["export", "campaign", str(campaign.id)])
    assert result.exit_code == 0, result.output
    rows = rows_of(result.stdout)
    assert [r["status"] for r in rows] == ["sent", "skipped", "failed", "sent"]
    ada, jo, bo, gone = rows
    assert (ada["email"], ada["clicks"], ada["links_clicked"], ada["actions"], ada["action_kinds"]) == \
        ("ada@example.org", "3", "2", "1", "share:mastodon")
    assert ada["sent_at"] == "2026-03-01T09:30:00Z" and ada["first_click_at"] == "2026-03-01T09:30:00Z"
    assert (jo["skip_reason"], jo["clicks"], jo["actions"], jo["sent_at"]) == ("frequency_limit", "0", "0", "")
    assert bo["attempts"] == "3" and bo["error"] == "'-550 mailbox unavailable"
    # The erased supporter's row stays for honest counts, with nothing personal in it.
    assert (gone["email"], gone["name"], gone["clicks"], gone["action_kinds"]) == ("", "", "1", "vote:cast")
    assert "gone@example.org" not in result.stdout and "Gone Person" not in result.stdout
    assert "private words" not in result.stdout
    assert f"Exported 4 deliveries of campaign {campaign.id}." in result.stderr


def test_export_campaign_defuses_formulas_in_csv_but_not_in_jsonl(runner, campaign):
    csv_rows = rows_of(runner.invoke(args=["export", "campaign", str(campaign.id)]).stdout)
    assert csv_rows[1]["name"] == "'=HYPERLINK(\"http://evil\")"
    result = runner.invoke(args=["export", "campaign", str(campaign.id), "--format", "jsonl", "--quiet"])
    assert result.exit_code == 0 and result.stderr == ""
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert records[1]["name"] == "=HYPERLINK(\"http://evil\")"
    assert records[0]["clicks"] == 3 and records[0]["sent_at"] == "2026-03-01T09:30:00Z"
    assert records[3]["email"] is None and records[3]["name"] is None


def test_export_campaign_writes_a_file(runner, campaign, tmp_path):
    target = tmp_path / "deliveries.csv"
    result = runner.invoke(args=["export", "campaign", str(campaign.id), "--output", str(target)])
    assert result.exit_code == 0, result.output
    assert len(rows_of(target.read_text(encoding="utf-8"))) == 4
    assert not list(tmp_path.glob(".*.partial"))


def test_export_campaign_refuses_an_unknown_campaign_clearly(runner, campaign, tmp_path):
    for bad in ("999999", "99999999999", "0", "-1"):
        target = tmp_path / "out.csv"
        result = runner.invoke(args=["export", "campaign", "--output", str(target), "--", bad])
        assert result.exit_code == 1, (bad, result.output)
        assert f"no campaign {bad}" in result.stderr and result.stdout == ""
        assert not target.exists()
    result = runner.invoke(args=["export", "campaign", "abc"])
    assert result.exit_code == 2 and "not a valid integer" in result.stderr


def test_export_campaign_of_a_campaign_without_deliveries_is_just_the_header(runner, db):
    campaign = make_campaign(name="Draft")
    result = runner.invoke(args=["export", "campaign", str(campaign.id)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].startswith("delivery_id,supporter_id,email")
    assert len(result.stdout.splitlines()) == 1
