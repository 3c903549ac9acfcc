"""Behind a real PgBouncer in transaction pooling (DATABASE_POOL_MODE=transaction): migrations, a join
and its confirmation, a campaign sent by a real worker process, an export and an import.

In transaction pooling every transaction may run on another server connection, so nothing may rely
on session state: psycopg's automatic prepared statements are off, and the import's staging table
lives inside each batch's transaction. PostgreSQL only (SQLite has no pooler).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
import sqlalchemy as sa

from tests.conftest import ENGINE, RUNNING

pytestmark = pytest.mark.skipif(ENGINE != "postgresql", reason="PgBouncer sits in front of PostgreSQL only")

ROOT = Path(__file__).resolve().parents[1]
DATABASE = "bouncer_test"


@pytest.fixture(scope="module")
def bouncer(migrated):
    """PgBouncer (transaction pooling) in front of the session's PostgreSQL, and a database migrated
    through it from nothing."""
    from flask_migrate import upgrade

    from tests.servers import PgBouncer
    from wsgi import create_app

    RUNNING["postgresql"].create_database(DATABASE)
    pgbouncer = PgBouncer(RUNNING["postgresql"], pool_mode="transaction").start(databases=(DATABASE,))
    try:
        app = create_app({**migrated, "DATABASE_URL": pgbouncer.url(DATABASE), "DATABASE_POOL_MODE": "transaction"})
        with app.app_context():
            upgrade()
            from core.extensions import db

            db.engine.dispose()
        yield pgbouncer
    finally:
        pgbouncer.stop()


@pytest.fixture
def settings(migrated, bouncer, smtp_sink):
    return {**migrated, "DATABASE_URL": bouncer.url(DATABASE), "DATABASE_POOL_MODE": "transaction",
            "SMTP_URL": smtp_sink.url, "TRANSFER_STORAGE": "database", "CAMPAIGN_RETRY_SECONDS": 0}


def dsn(bouncer, database: str) -> str:
    return bouncer.url(database).replace("postgresql+psycopg://", "postgresql://")


def test_without_the_setting_prepared_statements_break_behind_transaction_pooling(bouncer):
    """Why the setting exists: two clients on one server connection, psycopg preparing by default."""
    query = "SELECT count(*) FROM alembic_version WHERE version_num <> %s"
    with psycopg.connect(dsn(bouncer, f"single_{DATABASE}"), autocommit=True, prepare_threshold=0) as first, \
            psycopg.connect(dsn(bouncer, f"single_{DATABASE}"), autocommit=True, prepare_threshold=0) as second:
        first.execute(query, ["x"])
        with pytest.raises(psycopg.errors.DuplicatePreparedStatement):
            second.execute(query, ["x"])
    with psycopg.connect(dsn(bouncer, f"single_{DATABASE}"), autocommit=True, prepare_threshold=None) as first, \
            psycopg.connect(dsn(bouncer, f"single_{DATABASE}"), autocommit=True, prepare_threshold=None) as second:
        for _ in range(10):
            assert first.execute(query, ["x"]).fetchone() == second.execute(query, ["x"]).fetchone()


def test_the_setting_turns_prepared_statements_off_and_the_migrations_ran_through_the_bouncer(app, db, bouncer):
    assert app.config["SQLALCHEMY_ENGINE_OPTIONS"]["connect_args"] == {"prepare_threshold": None}
    assert db.engine.url.port == bouncer.port != RUNNING["postgresql"].port
    assert f"db={DATABASE}" in bouncer.log()  # the bouncer saw our logins
    with db.engine.connect() as conn:
        assert conn.connection.driver_connection.prepare_threshold is None
        newest = sorted((ROOT / "migrations" / "versions").glob("0*.py"))[-1].stem
        assert conn.scalar(sa.text("SELECT version_num FROM alembic_version")) == newest


def test_a_join_and_its_confirmation_through_the_bouncer(app, client, db, smtp_sink):
    from supporters.models import SupporterStatus
    from tests.test_join_support import link, post_join, run_mail_worker, supporters

    for i in range(8):  # more than psycopg's default prepare threshold (5) of every statement
        assert post_join(client, email=f"zoe{i}@example.org", name=f"Zoë {i}").status_code in (200, 303)
    run_mail_worker(app)
    messages = smtp_sink.handler.parsed()
    assert len(messages) == 8
    for message in messages:
        assert client.post(link(message, "confirm")).status_code == 200
    assert {s.status for s in supporters(db)} == {SupporterStatus.ACTIVE}


def test_a_campaign_is_sent_by_a_real_worker_process_through_the_bouncer(app, db, settings, smtp_sink):
    from campaigns import services
    from tests.engine_helpers import make_campaign, statuses
    from tests.factories import make_supporter

    people = [make_supporter(name=f"Kim {i}") for i in range(40)]
    campaign = make_campaign()
    assert services.launch(campaign.id)["queued"] == 40
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "SMTP_URL")}
    env.update({"APP_ENV": "testing", "DATABASE_URL": settings["DATABASE_URL"], "DATABASE_POOL_MODE": "transaction",
                "REDIS_URL": settings["REDIS_URL"], "SMTP_URL": settings["SMTP_URL"],
                "INSTANCE_PATH": settings["INSTANCE_PATH"], "PUBLIC_BASE_URL": settings["PUBLIC_BASE_URL"],
                "MAIL_FROM": settings["MAIL_FROM"]})
    worker = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "worker", "--burst"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert worker.returncode == 0, worker.stderr[-3000:]
    assert "prepared statement" not in worker.stderr
    assert statuses(campaign.id) == {"sent": 40}
    assert sorted(m[1][0] for m in smtp_sink.messages) == sorted(p.email for p in people)


def test_an_export_and_an_import_through_the_bouncer(app, client, db):
    from core.accounts import create_token, create_user
    from core.queues import make_worker
    from supporters.models import Supporter
    from tests.factories import make_supporter

    make_supporter("ada@example.org", name="Ada Lovelace")
    user = create_user("admin@example.org", "correct horse battery staple", "admin")
    db.session.flush()
    _token, raw = create_token(user, "test")
    db.session.commit()
    auth = {"Authorization": f"Bearer {raw}"}
    # An import of a few batches on two writer connections: its staging table must live inside each
    # batch's transaction, since the next one may run on another server connection.
    rows = "".join(f"person.{i}@example.org;Person {i}\r\n" for i in range(12_000))
    upload = io.BytesIO(f"email;name\r\n{rows}broken;B\r\n".encode())
    imported = client.post("/api/v1/imports/supporters", headers=auth, data={
        "file": (upload, "list.csv"), "consent_note": "Opted in at checkout", "consented_at": "2025-05-01"})
    assert imported.status_code == 202, imported.json
    exported = client.post("/api/v1/exports/supporters", headers=auth, json={"format": "jsonl"})
    assert exported.status_code == 202, exported.json
    make_worker(app, ["default"]).work(burst=True)
    db.session.expire_all()
    done = client.get(f"/api/v1/jobs/{imported.json['id']}", headers=auth).json
    assert done["status"] == "done", done
    assert done["summary"]["inserted"] == 12_000 and done["summary"]["rejected"] == 1
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Supporter)) == 12_001
    export = client.get(f"/api/v1/jobs/{exported.json['id']}", headers=auth).json
    assert export["status"] == "done", export
    parts = urlsplit(export["download"]["url"])
    body = client.get(f"{parts.path}?{parts.query}").get_data(as_text=True)
    assert len(body.splitlines()) == export["rows"] and "ada@example.org" in body
