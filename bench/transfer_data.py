"""Shared helpers of the export/import benchmarks: servers, a migrated app, and a COPY-based generator.

Supporters are generated in Python and loaded with `COPY … FROM STDIN` (PostgreSQL) or one
`executemany` (SQLite), in chunks, so a million rows take seconds and little memory.
"""

from __future__ import annotations

import os
import random
import secrets
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

FIRST = ["Anna", "Lukas", "Olivia", "George", "Jürgen", "Zoë", "Ngozi", "Mateo", "=Evil", "+Plus", "-Minus", "@At"]
LAST = ["Müller", "Smith", "Okafor", "Schröder", "O'Brien", "Patel", "Wagner", "Taylor"]
KINDS = ["fan"] * 7 + ["former_employee", "supplier", "partner", "other"]
COUNTRIES = ["DE", "AT", "CH", "GB", "US", "NL", None]
TAGS = ["product-news", "events", "reviews", "vip"]


class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
        return False


def scratch_dir(prefix: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(path, 0o755)
    return path


def start_postgres():
    """A throw-away PostgreSQL on loopback (the test suite's helper); returns (server, SQLAlchemy URL)."""
    from tests.servers import PostgresServer

    server = PostgresServer(fast=True).start()
    return server, server.create_database("bench")


def make_app(database_url: str, instance: Path):
    """A migrated application on `database_url` (embedded Redis under `instance`)."""
    from flask_migrate import upgrade

    from wsgi import create_app

    settings = {"APP_ENV": "testing", "DATABASE_URL": database_url, "INSTANCE_PATH": str(instance),
                "REDIS_URL": None, "OUTBOX_DIR": str(instance / "outbox")}
    app = create_app(settings)
    with app.app_context():
        upgrade()
    return app, {**settings, "REDIS_URL": app.config["REDIS_URL"]}


def supporter_rows(n: int, seed: int = 1):
    """Tuples for the supporters table: email, email_normalized, name, kind, language, country, status,
    referral_code, engagement_score, source, created_at, updated_at."""
    rng = random.Random(seed)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    for i in range(n):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        email = f"{first.strip('=+-@').lower()}.{i}@example.org"
        created = start + timedelta(seconds=i * 17)
        status = "active" if i % 10 else ("pending" if i % 20 else "unsubscribed")
        yield (email, email, f"{first} {last}", rng.choice(KINDS), "de" if i % 3 == 0 else "en",
               rng.choice(COUNTRIES), status, secrets.token_urlsafe(9), 0.0, "import", created, created)


SUPPORTER_COLUMNS = ("email", "email_normalized", "name", "kind", "language", "country", "status", "referral_code",
                     "engagement_score", "source", "created_at", "updated_at")


def fill_postgres(database_url: str, n: int) -> None:
    """COPY n supporters in, and tag about a third of them."""
    import psycopg

    dsn = database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        with cur.copy(f"COPY supporters ({', '.join(SUPPORTER_COLUMNS)}) FROM STDIN") as copy:
            for row in supporter_rows(n):
                copy.write_row(row)
        cur.execute("INSERT INTO tags (name, public, created_at) SELECT unnest(%s::text[]), true, now()", [TAGS])
        cur.execute("INSERT INTO supporter_tags (tag_id, supporter_id) SELECT t.id, s.id FROM supporters s "
                    "JOIN tags t ON t.id = 1 + (s.id % 4) WHERE s.id % 3 = 0")
        cur.execute("ANALYZE")


def fill_sqlite(path: str, n: int) -> None:
    import sqlite3

    conn = sqlite3.connect(path)
    marks = ", ".join("?" for _ in SUPPORTER_COLUMNS)
    rows = ((*r[:10], r[10].strftime("%Y-%m-%d %H:%M:%S.%f"), r[11].strftime("%Y-%m-%d %H:%M:%S.%f"))
            for r in supporter_rows(n))
    conn.executemany(f"INSERT INTO supporters ({', '.join(SUPPORTER_COLUMNS)}) VALUES ({marks})", rows)  # noqa: S608
    conn.executemany("INSERT INTO tags (name, public, created_at) VALUES (?, 1, '2024-01-01 00:00:00.000000')",
                     [(t,) for t in TAGS])
    conn.execute("INSERT INTO supporter_tags (tag_id, supporter_id) SELECT 1 + (id % 4), id FROM supporters "
                 "WHERE id % 3 = 0")
    conn.commit()
    conn.execute("ANALYZE")
    conn.close()


def write_import_csv(path: Path, n: int, duplicates: float = 0.10, broken: float = 0.01, seed: int = 2) -> dict:
    """A messy list: `duplicates` repeat an earlier address (other case), `broken` have an invalid email."""
    rng = random.Random(seed)
    counts = {"rows": n, "duplicates": 0, "broken": 0}
    emitted: list[str] = []
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write("E-Mail;Name;Kind;Language;Country\n")
        for i in range(n):
            roll = rng.random()
            if roll < broken:
                email = f"broken-row-{i}@@example.org" if i % 2 else f"no-at-sign-{i}"
                counts["broken"] += 1
            elif roll < broken + duplicates and emitted:
                email = rng.choice(emitted).upper()
                counts["duplicates"] += 1
            else:
                email = f"person.{i}@example.org"
                if len(emitted) < 100_000:
                    emitted.append(email)
            name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
            fh.write(f"{email};{name};{rng.choice(KINDS)};{'de' if i % 3 == 0 else 'en'};"
                     f"{rng.choice(COUNTRIES) or ''}\n")
    return counts


def peak_rss_mb_of(cmd: list[str], env: dict, cwd: Path = ROOT) -> tuple[float, float, int]:
    """Run a command; return (seconds, peak RSS in MB, exit code) of that process alone."""
    import subprocess

    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _pid, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        sys.stderr.write(proc.stderr.read().decode(errors="replace"))
    return seconds, usage.ru_maxrss / 1024, proc.returncode


def subprocess_env(settings: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "SMTP_URL")}
    env.update({"APP_ENV": "testing", "DATABASE_URL": settings["DATABASE_URL"], "REDIS_URL": settings["REDIS_URL"],
                "INSTANCE_PATH": settings["INSTANCE_PATH"], "OUTBOX_DIR": settings["OUTBOX_DIR"]})
    return env
