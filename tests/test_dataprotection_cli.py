import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from core.accounts import AuditEvent
from supporters.models import (
    ConsentAction,
    ConsentEvent,
    Supporter,
    SupporterStatus,
    Suppression,
    email_hash,
    supporter_tags,
)
from tests.factories import make_supporter, make_tag


def make_ada(db):
    tag = make_tag("press")
    ada = make_supporter("Ada@Example.org", name="Ada Lovelace", country="GB")
    db.session.add(ConsentEvent(supporter=ada, purpose="campaigns", action=ConsentAction.CONFIRMED,
                                method="confirm_link", ip="203.0.113.9", user_agent="Firefox/130"))
    db.session.execute(supporter_tags.insert().values(tag_id=tag.id, supporter_id=ada.id))
    make_supporter("friend@example.org", name="Friend", referred_by_id=ada.id)
    db.session.commit()
    return ada


def totals(db) -> dict:
    db.session.rollback()
    return {
        "supporters": db.session.scalar(sa.select(sa.func.count()).select_from(Supporter)),
        "consents": db.session.scalar(sa.select(sa.func.count()).select_from(ConsentEvent)),
        "by_kind": dict(db.session.execute(sa.select(Supporter.kind, sa.func.count()).group_by(Supporter.kind)).all()),
        "referrals": db.session.scalar(sa.select(sa.func.count()).where(Supporter.referred_by_id.is_not(None))),
    }


def test_show_prints_everything_stored_about_a_person_as_json(runner, db):
    ada = make_ada(db)
    result = runner.invoke(args=["supporters", "show", "ADA@example.org"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["profile"]["email"] == "Ada@Example.org" and record["profile"]["name"] == "Ada Lovelace"
    assert record["tags"] == ["press"]
    assert {c["action"] for c in record["consents"]} == {"granted", "confirmed"}
    assert record["consents"][1]["ip"] == "203.0.113.9"
    assert len(record["referrals"]) == 1
    audit = db.session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "supporter.access"))
    assert audit.object_id == str(ada.id) and "ada" not in json.dumps(audit.detail or {}).lower()


def test_show_and_erase_refuse_an_unknown_address(runner, db):
    for command in (["show"], ["erase", "--yes"]):
        result = runner.invoke(args=["supporters", *command, "ghost@example.org"])
        assert result.exit_code == 1 and "no supporter with the email ghost@example.org" in result.stderr


def test_erase_leaves_no_personal_data_in_any_table_and_keeps_the_counts(runner, db):
    ada = make_ada(db)
    ada_id = ada.id
    before = totals(db)
    result = runner.invoke(args=["supporters", "erase", "ada@example.org", "--yes"])
    assert result.exit_code == 0, result.output
    assert f"Erased supporter {ada_id}" in result.stdout
    assert totals(db) == before
    for table in db.metadata.sorted_tables:
        for row in db.session.execute(sa.select(table)).all():
            text = " ".join(str(v) for v in row).lower()
            for secret in ("ada@example.org", "lovelace", "203.0.113.9", "firefox"):
                assert secret not in text, (table.name, row)
    assert db.session.get(Supporter, ada_id).status is SupporterStatus.ERASED
    assert db.session.scalar(sa.select(Suppression.email_hash)) == email_hash("ada@example.org")
    assert db.session.scalar(sa.select(AuditEvent.object_id).where(AuditEvent.action == "supporter.erase")) == str(ada_id)
    # The person cannot be found any more, and the export no longer lists them.
    assert runner.invoke(args=["supporters", "show", "ada@example.org"]).exit_code == 1
    assert "ada@example.org" not in runner.invoke(args=["export", "supporters"]).stdout


def test_erase_asks_first_and_a_no_changes_nothing(runner, db):
    make_ada(db)
    result = runner.invoke(args=["supporters", "erase", "ada@example.org"], input="n\n")
    assert result.exit_code == 1 and "Erase all personal data" in result.output
    db.session.rollback()
    assert db.session.scalar(sa.select(Supporter.name).where(Supporter.email_normalized == "ada@example.org")) == "Ada Lovelace"
    result = runner.invoke(args=["supporters", "erase", "ada@example.org"], input="y\n")
    assert result.exit_code == 0, result.output
    assert db.session.scalar(sa.select(sa.func.count()).where(Supporter.status == SupporterStatus.ERASED)) == 1


def test_purge_is_a_dry_run_by_default_and_erases_only_the_long_inactive(runner, db):
    old = datetime.now(UTC) - timedelta(days=800)
    make_supporter("oldpending@example.org", status="pending", created_at=old)
    make_supporter("oldleft@example.org", status="unsubscribed", created_at=old, unsubscribed_at=old)
    make_supporter("newleft@example.org", status="unsubscribed", unsubscribed_at=datetime.now(UTC))
    make_supporter("oldactive@example.org", status="active", created_at=old)
    make_supporter("newpending@example.org", status="pending")
    dry = runner.invoke(args=["supporters", "purge", "--inactive-for", "24m"])
    assert dry.exit_code == 0, dry.output
    assert "2 supporters inactive" in dry.stdout and "--execute" in dry.stdout
    assert db.session.scalar(sa.select(sa.func.count()).where(Supporter.status == SupporterStatus.ERASED)) == 0
    done = runner.invoke(args=["supporters", "purge", "--inactive-for", "24m", "--execute"])
    assert done.exit_code == 0, done.output
    assert "Erased 2 supporters" in done.stdout
    db.session.rollback()
    left = set(db.session.scalars(sa.select(Supporter.email_normalized).where(Supporter.email_normalized.is_not(None))))
    assert left == {"newleft@example.org", "oldactive@example.org", "newpending@example.org"}
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Supporter)) == 5
    again = runner.invoke(args=["supporters", "purge", "--inactive-for", "24m"])
    assert "0 supporters inactive" in again.stdout


def test_purge_refuses_a_duration_it_cannot_read(runner):
    for value in ("forever", "0m", "24", "-3m"):
        result = runner.invoke(args=["supporters", "purge", "--inactive-for", value])
        assert result.exit_code == 2 and "expects a duration" in result.stderr, value


def test_erase_as_a_subprocess(db, subprocess_env):
    make_ada(db)
    result = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "supporters", "erase", "ada@example.org",
                             "--yes"], env=subprocess_env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    db.session.rollback()
    assert db.session.scalar(sa.select(sa.func.count()).where(Supporter.status == SupporterStatus.ERASED)) == 1
    shown = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "supporters", "show", "friend@example.org"],
                           env=subprocess_env, capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0 and json.loads(shown.stdout)["profile"]["name"] == "Friend"
