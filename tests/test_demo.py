import subprocess
import sys

import sqlalchemy as sa

from supporters.models import ConsentEvent, Supporter, Suppression, Tag, supporter_tags
from tests.factories import make_supporter


def test_is_empty_is_silent_and_answers_with_the_exit_code(runner, db):
    result = runner.invoke(args=["demo", "--is-empty"])
    assert result.exit_code == 0 and result.output == ""
    make_supporter()
    result = runner.invoke(args=["demo", "--is-empty"])
    assert result.exit_code == 1 and result.output == ""


def test_demo_fills_an_empty_database_with_a_realistic_base(runner, db):
    result = runner.invoke(args=["demo"])
    assert result.exit_code == 0, result.output
    assert "3000 supporters" in result.stdout
    count = lambda stmt: db.session.scalar(stmt)  # noqa: E731
    assert count(sa.select(sa.func.count()).select_from(Supporter)) == 3000
    kinds = dict(db.session.execute(sa.select(Supporter.kind, sa.func.count()).group_by(Supporter.kind)).all())
    assert {k.value for k in kinds} == {"fan", "former_employee", "supplier", "partner", "other"}
    statuses = {s.value for s in db.session.scalars(sa.select(Supporter.status).distinct())}
    assert statuses == {"active", "pending", "unsubscribed"}
    assert set(db.session.scalars(sa.select(Supporter.language).distinct())) == {"de", "en"}
    assert count(sa.select(sa.func.count()).select_from(Tag).where(Tag.public)) >= 3
    assert count(sa.select(sa.func.count()).select_from(supporter_tags)) > 1000
    assert count(sa.select(sa.func.count()).where(Supporter.referred_by_id.is_not(None))) > 200
    assert count(sa.select(sa.func.count()).select_from(ConsentEvent)) > 5000
    unsubscribed = count(sa.select(sa.func.count()).where(Supporter.status == "unsubscribed"))
    assert count(sa.select(sa.func.count()).select_from(Suppression)) == unsubscribed
    # Every active supporter has a referral link and a confirmed consent.
    assert count(sa.select(sa.func.count()).where(Supporter.status == "active", Supporter.referral_code.is_(None))) == 0
    emails = db.session.scalars(sa.select(Supporter.email)).all()
    assert all(e.rsplit("@", 1)[1] in ("example.org", "example.com", "example.net") for e in emails)
    assert runner.invoke(args=["demo", "--is-empty"]).exit_code == 1


def test_demo_refuses_a_database_that_already_has_supporters(runner, db):
    make_supporter()
    result = runner.invoke(args=["demo", "--supporters", "50"])
    assert result.exit_code == 1 and "only fills an empty database" in result.stderr
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Supporter)) == 1


def test_demo_as_a_subprocess_then_the_export_lists_it(db, subprocess_env):
    flask = [sys.executable, "-m", "flask", "--app", "wsgi"]
    empty = subprocess.run([*flask, "demo", "--is-empty"], env=subprocess_env, capture_output=True, text=True, timeout=120)
    assert empty.returncode == 0 and empty.stdout == "" and empty.stderr == ""
    result = subprocess.run([*flask, "demo", "--supporters", "200"], env=subprocess_env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    exported = subprocess.run([*flask, "export", "supporters", "--quiet"], env=subprocess_env, capture_output=True,
                              text=True, timeout=120)
    assert exported.returncode == 0 and len(exported.stdout.strip().splitlines()) == 201
