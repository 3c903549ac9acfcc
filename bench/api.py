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


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
    return statistics.median(ordered), p99


def _time(fn, repeat: int) -> list[float]:
    fn()  # warm-up
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def run(engine_name: str, rows: int, repeat: int) -> None:
    from flask_migrate import upgrade

    from api.pagination import encode_cursor
    from core.accounts import create_token, create_user
    from tests.servers import PostgresServer, RedisServer
    from wsgi import create_app, db

    tmp = Path(tempfile.mkdtemp(prefix="sp-bench-api-"))
    servers = []
    try:
        settings = {"APP_ENV": "testing", "INSTANCE_PATH": str(tmp / "instance"), "SMTP_URL": None}
        if engine_name == "postgresql":
            pg = PostgresServer().start()
            servers.append(pg)
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
            from supporters.segments import compile_filter

            ours_sql = sa.select(sa.func.count()).select_from(Supporter).where(compile_filter(definition))
            expected = db.session.scalar(ours_sql)
            if engine_name == "postgresql":
                with db.engine.begin() as conn:  # the best schema for the question, built in this run
                    conn.execute(sa.text(
                        "CREATE TABLE best_text_array AS SELECT s.id, s.kind, s.status, "
                        "COALESCE((SELECT array_agg(t.name) FROM supporter_tags st JOIN tags t ON t.id = st.tag_id "
                        "WHERE st.supporter_id = s.id), '{}')::text[] AS tags FROM supporters s"))
                    conn.execute(sa.text("CREATE INDEX ON best_text_array USING gin (tags)"))
                    conn.execute(sa.text("ANALYZE best_text_array"))
                baselines = {
                    "hand-written: text[] + GIN": ("SELECT count(*) FROM best_text_array WHERE kind = 'fan' "
                                                   "AND status = 'active' AND tags @> ARRAY['t01']"),
                    "hand-written: join table": ("SELECT count(*) FROM supporter_tags st JOIN supporters s "
                                                 "ON s.id = st.supporter_id WHERE st.tag_id = :tag "
                                                 "AND s.kind = 'fan' AND s.status = 'active'"),
                }
            else:
                baselines = {
                    "hand-written: WITHOUT ROWID join": (
                        "SELECT count(*) FROM supporter_tags st JOIN supporters s ON s.id = st.supporter_id "
                        "WHERE st.tag_id = :tag AND s.kind = 'fan' AND s.status = 'active'"),
                }
            results = {}
            for label, sql in baselines.items():
                assert db.session.scalar(sa.text(sql), {"tag": tag_id}) == expected, label
                results[label] = _time(lambda s=sql: db.session.scalar(sa.text(s), {"tag": tag_id}), count_repeat)
            results["ours: compiled filter (SQL)"] = _time(lambda: db.session.scalar(ours_sql), count_repeat)
            api_body = client.post("/api/v1/segments/count", json={"definition": definition}, headers=headers)
            assert api_body.get_json() == {"count": expected}, api_body.get_json()
            results["ours: POST /segments/count"] = _time(
                lambda: client.post("/api/v1/segments/count", json={"definition": definition}, headers=headers),
                count_repeat)
            best_label = min(baselines, key=lambda k: statistics.median(results[k]))
            best = statistics.median(results[best_label])
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
