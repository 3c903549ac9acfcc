"""Shared helpers for the engine benchmarks: throw-away servers, schema, COPY-loaded supporters, a sink.

Only the `bench/engine_*` names are used, so that other benchmarks' helpers never clash.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@contextmanager
def engine_servers(database: str = "bench"):
    """A throw-away PostgreSQL (fsync off) and redis-server; yields the app settings."""
    from tests.servers import PostgresServer, RedisServer

    tmp = Path(tempfile.mkdtemp(prefix="sp-bench-"))
    pg = PostgresServer().start()
    redis = RedisServer().start()
    try:
        yield {"APP_ENV": "testing", "DATABASE_URL": pg.create_database(database), "REDIS_URL": redis.url,
               "INSTANCE_PATH": str(tmp / "instance"), "OUTBOX_DIR": str(tmp / "outbox"),
               "PUBLIC_BASE_URL": "https://supporters.example.com", "MAIL_FROM": "Fans <fans@example.com>",
               "RATELIMIT_ENABLED": "0"}
    finally:
        redis.stop()
        pg.stop()


def engine_app(settings: dict):
    """The application on the bench database, migrated."""
    from flask_migrate import upgrade

    from wsgi import create_app

    app = create_app(settings)
    with app.app_context():
        upgrade()
    return app


def load_supporters(app, rows: int, chunk: int = 100_000) -> float:
    """COPY `rows` active English-speaking supporters (and their consent) in; return the seconds it took."""
    from core.extensions import db

    started = time.perf_counter()
    with app.app_context():
        raw = db.engine.raw_connection()
        try:
            cursor = raw.cursor()
            columns = ("email, email_normalized, name, kind, language, status, engagement_score, "
                       "created_at, updated_at")
            with cursor.copy(f"COPY supporters ({columns}) FROM STDIN") as copy:
                for start in range(0, rows, chunk):
                    buf = io.StringIO()
                    for i in range(start, min(rows, start + chunk)):
                        email = f"fan{i}@d{i % 50}.example.org"
                        buf.write(f"{email}\t{email}\tFan Number{i}\tfan\ten\tactive\t0\t"
                                  "2026-01-01 00:00:00+00\t2026-01-01 00:00:00+00\n")
                    copy.write(buf.getvalue())
            # Each with the consent grant an import records: the footer prints its date.
            cursor.execute("INSERT INTO consent_events (supporter_id, purpose, action, method, occurred_at) "
                           "SELECT id, 'campaigns', 'granted', 'import', created_at FROM supporters")
            cursor.execute("ANALYZE supporters")
            cursor.execute("ANALYZE consent_events")
            raw.commit()
        finally:
            raw.close()
    return time.perf_counter() - started


SINK_CODE = r'''
import sys, threading, time
from aiosmtpd.controller import Controller

class Handler:
    def __init__(self):
        self.count = 0
        self.last = 0.0
    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        self.last = time.time()
        return "250 OK"

port, status_file = int(sys.argv[1]), sys.argv[2]
handler = Handler()
controller = Controller(handler, hostname="127.0.0.1", port=port)
controller.start()
def report():
    while True:
        with open(status_file + ".tmp", "w") as fh:
            fh.write(f"{handler.count} {handler.last}")
        import os
        os.replace(status_file + ".tmp", status_file)
        time.sleep(0.05)
threading.Thread(target=report, daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
'''


class EngineSink:
    """An aiosmtpd sink in its own process (it needs a core of its own) that counts accepted messages."""

    def __init__(self):
        from tests.servers import free_port

        self.port = free_port()
        self.status_file = tempfile.mktemp(prefix="sp-sink-")
        self.proc = subprocess.Popen([sys.executable, "-c", SINK_CODE, str(self.port), self.status_file],
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "ready"

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def status(self) -> tuple[int, float]:
        try:
            count, last = open(self.status_file).read().split()
            return int(count), float(last)
        except (OSError, ValueError):
            return 0, 0.0

    def wait_for(self, count: int, timeout: float) -> float:
        """Wait until `count` messages were accepted; return the wall time of the last one."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got, last = self.status()
            if got >= count:
                return last
            time.sleep(0.05)
        raise SystemExit(f"the sink accepted only {self.status()[0]} of {count} messages in {timeout} s")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        for path in (self.status_file, self.status_file + ".tmp"):
            if os.path.exists(path):
                os.remove(path)


def empty_deliveries(db) -> None:
    """No deliveries (actions and clicks reference them), and fresh planner statistics: a run starts clean."""
    import sqlalchemy as sa

    db.session.execute(sa.text("TRUNCATE deliveries CASCADE"))
    db.session.commit()
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE deliveries"))
