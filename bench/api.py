"""REST API on a large base: list pages (first and deep cursor) and segment counts vs hand-written SQL.

    .venv/bin/python -m bench.api --rows 1000000            # PostgreSQL (throw-away server)
    .venv/bin/python -m bench.api --rows 200000 --engine sqlite

(a) `GET /supporters?kind=fan&tag=…&limit=50`, first page and a deep cursor page (90 % of the way
    through), p50/p99 through the whole Flask stack (test client, no HTTP server), for a common and a
    rare tag.
(b) Count of a 3-condition segment (kind + tag + status): our compiled filter (through
    `POST /segments/count` and as bare SQL) against the best hand-written SQL in the same run:
    PostgreSQL: a `text[]` tag column with a GIN index on a copy of the table, and the join-table
    form; SQLite: the join over the `WITHOUT ROWID (tag_id, supporter_id)` table.
Targets (issue 4): list p99 < 25 ms at any depth; count within 1.5x of the best form.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from bench.generate import generate

# Same rows and columns as `supporters`, tags as text[] instead of a join table (constants only).
BEST_TABLE = "CREATE TABLE best_text_array AS SELECT s.id, s.email, s.email_normalized, s.name, s.kind, s.language, s.country, s.timezone, s.status, s.referral_code, s.referred_by_id, s.engagement_score, s.asks_per_month, s.paused_until, s.source, s.created_at, s.updated_at, s.confirmed_at, s.unsubscribed_at, s.erased_at, {tags} AS tags FROM supporters s"  # noqa: S608
NARROW_TABLE = "CREATE TABLE narrow_text_array AS SELECT s.id, s.kind, s.status, {tags} AS tags FROM supporters s"  # noqa: S608


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
    return statistics.median(ordered), p99


def _interleaved(forms: dict, repeat: int) -> dict[str, list[float]]:
    """Time the forms round-robin, so that load from elsewhere on the machine hits all of them alike."""
    for fn in forms.values():
        fn()  # warm-up
    out: dict[str, list[float]] = {label: [] for label in forms}
    for _ in range(repeat):
        for label, fn in forms.items():
            start = time.perf_counter()
            fn()
            out[label].append((time.perf_counter() - start) * 1000)
    return out


def _time(fn, repeat: int) -> list[float]:
    fn()  # warm-up
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def _production_memory(pg) -> None:
    """Give the throw-away server production-like memory (the default 128 MB of shared buffers
    cannot hold a 1M-row table, which would measure the OS page cache instead)."""
    import subprocess

    import psycopg

    from tests.servers import _as_postgres

    with psycopg.connect(f"host=127.0.0.1 port={pg.port} user=postgres dbname=postgres", autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET shared_buffers = '1GB'")
        conn.execute("ALTER SYSTEM SET work_mem = '32MB'")
    options = (f"-p {pg.port} -k {pg.dir} -c listen_addresses=127.0.0.1 -c max_connections=200 "
               "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
    subprocess.run(_as_postgres(["pg_ctl", "-D", str(pg.data), "-o", options, "-w", "-t", "60",
                                 "-l", str(pg.dir / "log"), "restart"]), check=True, stdout=subprocess.DEVNULL)


def run(engine_name: str, rows: int, repeat: int) -> None:
    from flask_migrate import upgrade

    from api.pagination import encode_cursor
    from core.accounts import create_token, create_user
    from core.extensions import db
    from tests.servers import PostgresServer, RedisServer
    from wsgi import create_app

    tmp = Path(tempfile.mkdtemp(prefix="sp-bench-api-"))
    servers = []
    try:
        settings = {"APP_ENV": "testing", "INSTANCE_PATH": str(tmp / "instance"), "SMTP_URL": None}
        if engine_name == "postgresql":
            pg = PostgresServer().start()
            servers.append(pg)
            _production_memory(pg)
            settings["DATABASE_URL"] = pg.create_database("bench_api")
            redis_server = RedisServer().start()
            servers.append(redis_server)
            settings["REDIS_URL"] = redis_server.url
        else:
            settings["DATABASE_URL"] = f"sqlite:///{tmp / 'bench.db'}"
        app = create_app(settings)
        app.config["API_RATE_LIMIT"] = "100000000/minute"
        with app.app_context():
            upgrade()
            db.session.remove()
        print(f"== {engine_name}: generating {rows:,} supporters …", flush=True)
        summary = generate(settings["DATABASE_URL"], rows, seed=1)
        print(f"   generated in {summary['seconds']} s", flush=True)
        with app.app_context():
            user = create_user("runner@example.com", "a long bench passphrase", "manager")
            db.session.flush()
            _t, secret = create_token(user, "bench")
            db.session.commit()
            client = app.test_client()
            headers = {"Authorization": f"Bearer {secret}"}
            deep = encode_cursor(int(rows * 0.9))

            print(f"\n(a) GET /supporters, kind=fan + tag, limit=50, {repeat} requests each (ms)")
            print(f"{'case':<34}{'p50':>8}{'p99':>8}{'items':>7}")
            for tag in ("t01", "t20"):
                for label, extra in (("first page", ""), ("deep page (90 %)", f"&cursor={deep}")):
                    url = f"/api/v1/supporters?kind=fan&tag={tag}&limit=50{extra}"
                    body = client.get(url, headers=headers).get_json()
                    assert "items" in body, body
                    p50, p99 = _percentiles(_time(lambda u=url: client.get(u, headers=headers), repeat))
                    print(f"{label + ', tag ' + tag:<34}{p50:>8.2f}{p99:>8.2f}{len(body['items']):>7}")

            count_repeat = max(5, repeat // 10)
            print(f"\n(b) count kind=fan + tag + status=active, {count_repeat} runs each (ms)")
            tag_id = summary["tags"]["t01"]
            definition = {"all": [{"field": "kind", "op": "eq", "value": "fan"},
                                  {"field": "tags", "op": "has", "value": "t01"},
                                  {"field": "status", "op": "eq", "value": "active"}]}
            from supporters.models import Supporter
            from supporters.segments import compile_filter, count_matching

            ours_sql = sa.select(sa.func.count()).select_from(Supporter).where(compile_filter(definition))
            expected = db.session.scalar(ours_sql)
            if engine_name == "postgresql":
                with db.engine.begin() as conn:  # the best schemas for the question, built in this run
                    tag_names = ("COALESCE((SELECT array_agg(t.name ORDER BY t.name) FROM supporter_tags st "
                                 "JOIN tags t ON t.id = st.tag_id WHERE st.supporter_id = s.id), '{}')::text[]")
                    # Same rows and columns as `supporters`, tags as text[] instead of a join table.
                    conn.execute(sa.text(BEST_TABLE.format(tags=tag_names)))
                    # Only the three columns the question needs: a floor, not a schema anyone would keep.
                    conn.execute(sa.text(NARROW_TABLE.format(tags=tag_names)))
                    for table in ("best_text_array", "narrow_text_array"):
                        conn.execute(sa.text(f"CREATE INDEX ON {table} USING gin (tags)"))
                with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                    conn.execute(sa.text("VACUUM ANALYZE"))
                baselines = {
                    "hand-written: text[] + GIN": ("SELECT count(*) FROM best_text_array WHERE kind = 'fan' "
                                                   "AND status = 'active' AND tags @> ARRAY['t01']"),
                    "hand-written: join table": ("SELECT count(*) FROM supporter_tags st JOIN supporters s "
                                                 "ON s.id = st.supporter_id WHERE st.tag_id = :tag "
                                                 "AND s.kind = 'fan' AND s.status = 'active'"),
                }
                floor = {"floor: 3-column text[] copy": ("SELECT count(*) FROM narrow_text_array WHERE kind = 'fan' "
                                                         "AND status = 'active' AND tags @> ARRAY['t01']")}
            else:
                baselines = {
                    "hand-written: WITHOUT ROWID join": (
                        "SELECT count(*) FROM supporter_tags st JOIN supporters s ON s.id = st.supporter_id "
                        "WHERE st.tag_id = :tag AND s.kind = 'fan' AND s.status = 'active'"),
                }
                floor = {}
            forms = {}
            for label, sql in {**baselines, **floor}.items():
                assert db.session.scalar(sa.text(sql), {"tag": tag_id}) == expected, label
                forms[label] = lambda s=sql: db.session.scalar(sa.text(s), {"tag": tag_id})
            forms["ours: count_matching (SQL)"] = lambda: count_matching(definition)
            api_body = client.post("/api/v1/segments/count", json={"definition": definition}, headers=headers)
            assert api_body.get_json() == {"count": expected}, api_body.get_json()
            forms["ours: POST /segments/count"] = lambda: client.post(
                "/api/v1/segments/count", json={"definition": definition}, headers=headers)
            results = _interleaved(forms, count_repeat)
            best_label = min(baselines, key=lambda k: statistics.median(results[k]))
            best = statistics.median(results[best_label])
            print(f"best hand-written form: {best_label}")
            print(f"{'form':<36}{'p50':>8}{'p99':>8}{'x best':>8}   (count = {expected:,})")
            for label, samples in results.items():
                p50, p99 = _percentiles(samples)
                print(f"{label:<36}{p50:>8.2f}{p99:>8.2f}{p50 / best:>8.2f}")
            db.session.remove()
            db.engine.dispose()
    finally:
        for server in reversed(servers):
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description="REST API list pages and segment counts on a large base")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--engine", choices=("postgresql", "sqlite", "both"), default="postgresql")
    parser.add_argument("--repeat", type=int, default=200, help="requests per list case (counts: a tenth)")
    args = parser.parse_args()
    for engine_name in (("postgresql", "sqlite") if args.engine == "both" else (args.engine,)):
        run(engine_name, args.rows, args.repeat)


if __name__ == "__main__":
    main()
