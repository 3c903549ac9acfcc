"""Dialog (issue 14) on PostgreSQL: a topic's listing by backers, and backing under load.

    .venv/bin/python -m bench.dialog [--posts 100000] [--repeat 300] [--seconds 8] [--rounds 3]

(a) `GET /api/v1/dialog/topics/{id}/posts?limit=50`, first page and a deep cursor page (90 % of the
    way down), p50/p99 through the whole Flask stack (test client, no HTTP server), on `--posts`
    posts (90 % listed) with ~20 backings each (2,000,000 at the default), interleaved with a
    hand-written keyset query (`(backers, id) < (:b, :k) ORDER BY backers DESC, id DESC LIMIT 51`)
    and with the same query built and loaded by the ORM as the endpoint does. Targets: p99 < 25 ms
    at any depth; the endpoint's query within 1.5x of the hand-written one.
(b) `POST /api/v1/dialog/posts/{id}/backings` (bearer token, a new supporter on one of 500 posts per
    run) under gunicorn with 2 sync workers and 8 wrk connections, against the join floor (one ORM
    INSERT + one RQ enqueue, `bench/insert_enqueue_app.py`) and `POST /api/v1/tags` (another
    authenticated API write: one INSERT and an audit event), interleaved rounds, medians.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

from bench.api import _interleaved, _percentiles, _production_memory

LISTED = "('published', 'under_review', 'planned', 'answered', 'declined', 'done')"
HAND_WRITTEN = (f"SELECT * FROM dialog_posts WHERE topic_id = :topic AND status IN {LISTED} "  # noqa: S608
                "AND (backers, id) < (:b, :k) ORDER BY backers DESC, id DESC LIMIT 51")
HAND_WRITTEN_FIRST = (f"SELECT * FROM dialog_posts WHERE topic_id = :topic AND status IN {LISTED} "  # noqa: S608
                      "ORDER BY backers DESC, id DESC LIMIT 51")


def generate(conn, posts: int, supporters: int) -> dict:
    """Supporters, one topic of `posts` posts (every tenth still `new`) and ~20 backings per post:
    the first 100 posts are popular (2,000 backers each), the rest have 1–36. Set-based SQL only."""
    started = time.monotonic()
    conn.execute(sa.text(
        "INSERT INTO supporters (email, email_normalized, kind, language, status, engagement_score, source, "
        "created_at, updated_at) SELECT 'b' || i || '@example.org', 'b' || i || '@example.org', 'fan', 'en', "
        "'active', 0, 'bench', now(), now() FROM generate_series(1, :n) i"), {"n": supporters})
    conn.execute(sa.text("INSERT INTO dialog_topics (name_en, is_open, visibility, created_at, updated_at) "
                         "VALUES ('Listing', true, 'public', now(), now()), ('Backing', true, 'public', now(), now())"))
    conn.execute(sa.text(
        "INSERT INTO dialog_posts (topic_id, supporter_id, author_kind, show_name, kind, language, title, body, "
        "body_hash, status, backers, created_at, updated_at, published_at) "
        "SELECT 1, 1 + i % :s, 'fan', false, 'idea', 'en', 'Post ' || i, 'The text of post ' || i, "
        "md5(i::text) || md5((i + 1)::text), CASE WHEN i % 10 = 0 THEN 'new' ELSE 'published' END, 0, "
        "now(), now(), now() FROM generate_series(1, :n) i"), {"n": posts, "s": supporters})
    conn.execute(sa.text(
        "INSERT INTO dialog_backings (post_id, supporter_id, created_at) "
        "SELECT p.id, 1 + (p.id * 7919 + j) % :s, now() - (j || ' minutes')::interval FROM dialog_posts p "
        "CROSS JOIN LATERAL generate_series(0, CASE WHEN p.id <= 100 THEN 1999 ELSE (p.id * 31) % 36 END) j "
        "WHERE p.topic_id = 1"), {"s": supporters})
    conn.execute(sa.text("UPDATE dialog_posts p SET backers = c.n FROM (SELECT post_id, count(*) AS n FROM "
                         "dialog_backings GROUP BY post_id) c WHERE c.post_id = p.id"))
    # (b): fresh published posts without author or backers, 500 per load run.
    conn.execute(sa.text(
        "INSERT INTO dialog_posts (topic_id, supporter_id, author_kind, show_name, kind, language, title, body, "
        "body_hash, status, backers, created_at, updated_at, published_at) "
        "SELECT 2, NULL, 'fan', false, 'idea', 'en', 'Backed ' || i, 'Backed ' || i, md5('b' || i), "
        "'published', 0, now(), now(), now() FROM generate_series(1, 10000) i"))
    backings = conn.execute(sa.text("SELECT count(*) FROM dialog_backings")).scalar_one()
    return {"seconds": round(time.monotonic() - started, 1), "backings": backings}


def listing(app, repeat: int) -> None:
    from api.dialog_posts import _encode, listing_query
    from core.accounts import create_token, create_user
    from core.extensions import db

    with app.app_context():
        user = create_user("runner@example.com", "a long bench passphrase", "manager")
        db.session.flush()
        _t, secret = create_token(user, "bench")
        db.session.commit()
        client = app.test_client()
        headers = {"Authorization": f"Bearer {secret}"}
        listed_count = db.session.scalar(sa.text(f"SELECT count(*) FROM dialog_posts WHERE topic_id = 1 "  # noqa: S608
                                                 f"AND status IN {LISTED}"))
        b, k = db.session.execute(sa.text(
            f"SELECT backers, id FROM dialog_posts WHERE topic_id = 1 AND status IN {LISTED} "  # noqa: S608
            "ORDER BY backers DESC, id DESC OFFSET :o LIMIT 1"), {"o": int(listed_count * 0.9)}).one()
        db.session.commit()
        plan = "\n".join(r[0] for r in db.session.execute(sa.text("EXPLAIN " + HAND_WRITTEN),
                                                          {"topic": 1, "b": b, "k": k}))
        print("   plan of the hand-written deep page:\n      " + plan.replace("\n", "\n      "))
        cases = {"first page": ("", None), "deep page (90 %)": (f"&cursor={_encode(b, k)}", (b, k))}
        print(f"\n(a) {listed_count:,} listed posts on the topic, limit=50, {repeat} requests per form (ms)")
        print(f"{'case':<46}{'p50':>8}{'p99':>8}{'x hand':>8}")
        for label, (extra, cursor) in cases.items():
            url = f"/api/v1/dialog/topics/1/posts?limit=50{extra}"
            body = client.get(url, headers=headers).get_json()
            assert len(body["items"]) == 50 and body["next"], body

            def orm(c=cursor):
                rows = db.session.connection().execute(*listing_query(1, 51, _encode(*c) if c else None)).all()
                db.session.commit()
                return rows

            def hand(c=cursor):
                sql, params = (HAND_WRITTEN, {"topic": 1, "b": c[0], "k": c[1]}) if c else (HAND_WRITTEN_FIRST,
                                                                                           {"topic": 1})
                rows = db.session.execute(sa.text(sql), params).all()
                db.session.commit()
                return rows

            assert [r.id for r in orm()] == [r.id for r in hand()]
            forms = {"hand-written keyset query": hand, "ours: the endpoint's query": orm,
                     "ours: GET …/posts (whole stack)": lambda u=url: client.get(u, headers=headers)}
            results = _interleaved(forms, repeat)
            base = statistics.median(results["hand-written keyset query"])
            for name, samples in results.items():
                p50, p99 = _percentiles(samples)
                print(f"{label + ', ' + name:<46}{p50:>8.2f}{p99:>8.2f}{p50 / base:>8.2f}")
        db.session.remove()
        db.engine.dispose()


BACK_LUA = r"""
local counter = 0
local next_id = 1
function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
end
request = function()
  counter = counter + 1
  local body = '{"supporter_id": ' .. (tid * 25000 + counter) .. '}'
  local post = BASE + (counter % 500)
  return wrk.format("POST", "/api/v1/dialog/posts/" .. post .. "/backings",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer TOKEN"}, body)
end
"""
# Another API write of the same shape (bearer token, one INSERT, one audit event): what any
# authenticated API write costs here, to tell the API's own overhead from the backing's.
TAG_LUA = r"""
local counter = 0
local next_id = 1
function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
end
request = function()
  counter = counter + 1
  local body = '{"name": "t-RUN-' .. tid .. '-' .. counter .. '"}'
  return wrk.format("POST", "/api/v1/tags",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer TOKEN"}, body)
end
"""
FLOOR_LUA = r"""
local counter = 0
local next_id = 1
function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
end
request = function()
  counter = counter + 1
  local body = "email=f" .. tid .. "-" .. counter .. "-RUN%40example.org&name=Bench&kind=fan&language=en"
  return wrk.format("POST", "/signup", {["Content-Type"] = "application/x-www-form-urlencoded"}, body)
end
"""


def backing_load(url: str, redis_url: str, tmp: Path, args) -> None:
    from bench.core import gunicorn, print_comparison, wrk
    from bench.insert_enqueue_app import Base
    from bench.join import median_load
    from core.accounts import create_token, create_user
    from core.extensions import db
    from wsgi import create_app

    app = create_app({"APP_ENV": "testing", "INSTANCE_PATH": str(tmp / "i2"), "DATABASE_URL": url,
                      "REDIS_URL": redis_url, "SMTP_URL": None})
    with app.app_context():
        user = create_user("loader@example.com", "a long bench passphrase", "manager")
        db.session.flush()
        _t, secret = create_token(user, "bench load")
        db.session.commit()
        first = db.session.scalar(sa.text("SELECT min(id) FROM dialog_posts WHERE topic_id = 2"))
        db.session.remove()
        db.engine.dispose()
    engine = sa.create_engine(url)
    Base.metadata.create_all(engine)
    env = {"APP_ENV": "production", "SECRET_KEY": "bench-" + "x" * 40, "INSTANCE_PATH": str(tmp),
           "OUTBOX_DIR": str(tmp / "outbox"), "DATABASE_URL": url, "REDIS_URL": redis_url,
           "RATELIMIT_ENABLED": "0", "PUBLIC_BASE_URL": "http://127.0.0.1"}
    runs = iter(range(100))

    def script(template: str) -> str:
        path = tmp / f"{uuid.uuid4().hex}.lua"
        base = first + 500 * next(runs)  # every run backs its own 500 posts: no backing repeats
        path.write_text(template.replace("BASE", str(base)).replace("TOKEN", secret)
                        .replace("RUN", uuid.uuid4().hex[:8]))
        return str(path)

    results = {"floor": [], "back": [], "tags": []}
    with contextlib.ExitStack() as stack:
        ours = stack.enter_context(gunicorn("wsgi:create_app()", env, warmup_path="/healthz"))
        floor = stack.enter_context(gunicorn("bench.insert_enqueue_app:create_app()", env, warmup_path="/"))
        wrk("warm-up", ours + "/api/v1/dialog/topics", seconds=2, connections=args.connections,
            script=script(BACK_LUA))
        wrk("warm-up", floor + "/signup", seconds=2, connections=args.connections, script=script(FLOOR_LUA))
        for _round in range(args.rounds):
            results["floor"].append(wrk("INSERT + RQ enqueue (join floor)", floor + "/signup", seconds=args.seconds,
                                        connections=args.connections, script=script(FLOOR_LUA)))
            results["back"].append(wrk("POST …/backings (API)", ours + "/api/v1/dialog/topics",
                                       seconds=args.seconds, connections=args.connections, script=script(BACK_LUA)))
            results["tags"].append(wrk("POST /api/v1/tags (same shape)", ours + "/api/v1/tags",
                                       seconds=args.seconds, connections=args.connections, script=script(TAG_LUA)))
    back, base = median_load("POST …/backings (API)", results["back"]), median_load(
        "INSERT + RQ enqueue (join floor)", results["floor"])
    tags = median_load("POST /api/v1/tags (same shape)", results["tags"])
    print_comparison(f"(b) backing, gunicorn 2 sync workers, {args.connections} connections, medians of "
                     f"{args.rounds} interleaved rounds of {args.seconds} s", back, [base, tags])
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT count(*) FROM dialog_backings b JOIN dialog_posts p ON "
                                      "p.id = b.post_id WHERE p.topic_id = 2")).scalar_one()
        exact = conn.execute(sa.text("SELECT count(*) FROM dialog_posts p WHERE topic_id = 2 AND backers <> "
                                     "(SELECT count(*) FROM dialog_backings b WHERE b.post_id = p.id)")).scalar_one()
    print(f"backings stored during the runs (incl. warm-up): {stored:,}; posts whose count is off: {exact}")
    if back.errors or base.errors or tags.errors:
        raise SystemExit("errors during the run: the figures are not valid")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=100_000)
    parser.add_argument("--supporters", type=int, default=60_000)
    parser.add_argument("--repeat", type=int, default=300, help="requests per listing form")
    parser.add_argument("--seconds", type=int, default=8, help="duration of each load run (bounded)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--skip-load", action="store_true", help="only (a)")
    args = parser.parse_args()

    from flask_migrate import upgrade

    from core.extensions import db
    from tests.servers import PostgresServer, RedisServer
    from wsgi import create_app

    tmp = Path(tempfile.mkdtemp(prefix="sp-bench-dialog-"))
    servers = []
    try:
        pg = PostgresServer().start()
        servers.append(pg)
        _production_memory(pg)
        redis_server = RedisServer().start()
        servers.append(redis_server)
        url = pg.create_database("bench_dialog")
        settings = {"APP_ENV": "testing", "INSTANCE_PATH": str(tmp / "instance"), "SMTP_URL": None,
                    "DATABASE_URL": url, "REDIS_URL": redis_server.url}
        app = create_app(settings)
        app.config["API_RATE_LIMIT"] = "100000000/minute"
        with app.app_context():
            upgrade()
            db.session.remove()
            print(f"== postgresql: generating {args.posts:,} posts …", flush=True)
            with db.engine.begin() as conn:
                summary = generate(conn, args.posts, args.supporters)
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(sa.text("VACUUM ANALYZE"))
            print(f"   {summary['backings']:,} backings, generated in {summary['seconds']} s", flush=True)
            db.session.remove()
        listing(app, args.repeat)
        if not args.skip_load:
            backing_load(url, redis_server.url, tmp, args)
    finally:
        for server in reversed(servers):
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
