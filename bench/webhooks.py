"""Webhooks (issue 16): the cost on the signup path, and the dispatcher against a plain loop.

    .venv/bin/python -m bench.webhooks [--seconds 8] [--rounds 3] [--events 2000]

1. `POST /join` (CSRF like a browser, gunicorn 2 sync workers, PostgreSQL + redis-server) on a
   database with three active endpoints subscribed to every event vs one with none, interleaved
   rounds, medians. No worker runs: this measures the request path (the outbox INSERT, which rides
   in the join's single statement, and the at-most-one Redis round trip of the kick). Target: at
   most 5 % slower.
2. Dispatch: `--events` pending events for one endpoint, delivered by `deliver_endpoint` (the job,
   in-process) to a local receiver in its own process, vs a plain `requests.Session` loop posting
   the same bodies, each signed with `standardwebhooks`, to the same receiver. Target: >= 0.7x.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import sqlalchemy as sa

from bench.core import gunicorn, wrk
from bench.join import JOIN_LUA, browser_session, lua, median_load, migrate
from tests.servers import PostgresServer, RedisServer, free_port


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *_args):
        pass

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()


def _serve(port: int) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
    server.daemon_threads = True
    server.serve_forever()


@contextlib.contextmanager
def receiver() -> str:
    """A minimal keep-alive receiver in a process of its own (no GIL shared with the sender)."""
    port = free_port()
    proc = multiprocessing.Process(target=_serve, args=(port,), daemon=True)
    proc.start()
    time.sleep(0.5)
    try:
        yield f"http://127.0.0.1:{port}/hook"
    finally:
        proc.terminate()
        proc.join(5)


def _add_endpoints(env: dict[str, str], url: str, count: int) -> None:
    import webhooks.endpoints as endpoints
    from core.extensions import db
    from wsgi import create_app

    app = create_app(env)
    with app.app_context():
        for _ in range(count):
            endpoints.create_endpoint({"url": url, "event_types": ["*"]}, None)
        db.session.commit()
        db.engine.dispose()


def join_cost(args, pg, redis_url: str, tmp: Path, hook_url: str) -> tuple[float, float]:
    base_env = {"APP_ENV": "production", "SECRET_KEY": "bench-" + "x" * 40, "INSTANCE_PATH": str(tmp),
                "OUTBOX_DIR": str(tmp / "outbox"), "REDIS_URL": redis_url, "RATELIMIT_ENABLED": "0",
                "PUBLIC_BASE_URL": "http://127.0.0.1", "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
                "WEBHOOK_REQUIRE_HTTPS": "0"}
    envs = {}
    for name, endpoints_count in (("no endpoints", 0), ("3 endpoints, every event", 3)):
        env = {**base_env, "DATABASE_URL": pg.create_database("bench_" + str(endpoints_count))}
        migrate(env)
        if endpoints_count:
            _add_endpoints(env, hook_url, endpoints_count)
        envs[name] = env
    results = {name: [] for name in envs}
    with contextlib.ExitStack() as stack:
        bases = {name: stack.enter_context(gunicorn("wsgi:create_app()", env, warmup_path="/join"))
                 for name, env in envs.items()}
        sessions = {name: browser_session(base) for name, base in bases.items()}
        for name, base in bases.items():
            wrk("warm-up", base + "/join", seconds=2, connections=args.connections,
                script=lua(JOIN_LUA, tmp, sessions[name]))
        for _ in range(args.rounds):
            for name, base in bases.items():
                results[name].append(wrk(name, base + "/join", seconds=args.seconds, connections=args.connections,
                                         script=lua(JOIN_LUA, tmp, sessions[name])))
    engine = sa.create_engine(envs["3 endpoints, every event"]["DATABASE_URL"])
    with engine.connect() as conn:
        outbox = conn.execute(sa.text("SELECT count(*) FROM webhook_events")).scalar_one()
        messages = conn.execute(sa.text("SELECT count(*) FROM webhook_messages")).scalar_one()
        joined = conn.execute(sa.text("SELECT count(*) FROM supporters")).scalar_one()
    engine.dispose()
    none, hooks = (median_load(name, results[name]) for name in envs)
    service_cost(envs, args.slices)
    print("\n== POST /join, gunicorn 2 sync workers, "
          f"{args.connections} connections, medians of {args.rounds} interleaved rounds of {args.seconds} s")
    for load in (none, hooks):
        print(load.row())
    per_round = [h.requests_per_second / n.requests_per_second
                 for h, n in zip(results[hooks.name], results[none.name], strict=True)]
    print("ratio per round: " + ", ".join(f"{r:.3f}x" for r in per_round)
          + f"; median of the rounds' ratios {statistics.median(per_round):.3f}x")
    print(f"with endpoints: {joined:,} supporters, {outbox:,} outbox events, {messages:,} messages written")
    if none.errors or hooks.errors:
        raise SystemExit("errors during the run: the figures are not valid")
    return none.requests_per_second, hooks.requests_per_second


def service_cost(envs: dict[str, dict[str, str]], slices: int, per_slice: int = 100) -> None:
    """The join service alone (what the request adds: the outbox CTEs, the kick; the confirmation
    enqueue as always), in this process, in short alternating slices: the wall time per slice, so
    PostgreSQL's share counts, and slices short enough that other load hits both alike."""
    from core.extensions import db
    from supporters.join import join
    from wsgi import create_app

    apps = {name: create_app(env) for name, env in envs.items()}
    times: dict[str, list[float]] = {name: [] for name in apps}
    for i in range(slices + 1):
        for name, app in apps.items():
            with app.app_context():
                started = time.perf_counter()
                for n in range(per_slice):
                    join(email=f"svc-{i}-{n}-{time.time_ns()}@example.org", kind="fan", language="en",
                         consent_language="en", name="Bench")
                if i:  # the first slice warms caches and connections
                    times[name].append((time.perf_counter() - started) / per_slice)
                db.session.remove()
    none, hooks = (times[name] for name in apps)
    ratios = [h / n for h, n in zip(hooks, none, strict=True)]
    print(f"\n== the join service alone, {slices} alternating slices of {per_slice}")
    print(f"no endpoints {statistics.median(none) * 1000:.3f} ms per join, 3 endpoints "
          f"{statistics.median(hooks) * 1000:.3f} ms; median of the slices' ratios {statistics.median(ratios):.3f}x "
          f"(the outbox adds {(statistics.median(ratios) - 1) * 100:+.1f} % to the service's time)")
    for app in apps.values():
        with app.app_context():
            db.engine.dispose()


def dispatch_rate(args, pg, redis_url: str, tmp: Path, hook_url: str) -> tuple[float, float]:
    import requests
    from standardwebhooks import Webhook

    from core import events
    from core.events import WebhookEvent
    from core.extensions import db
    from supporters.join import join
    from webhooks.dispatch import deliver_endpoint
    from wsgi import create_app

    env = {"APP_ENV": "testing", "INSTANCE_PATH": str(tmp), "OUTBOX_DIR": str(tmp / "outbox"),
           "REDIS_URL": redis_url, "DATABASE_URL": pg.create_database("bench_dispatch"),
           "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8"}
    migrate(env)
    _add_endpoints(env, hook_url, 1)
    app = create_app(env)
    ours, plain = [], []
    with app.app_context():
        for n in range(args.events):
            join(email=f"d{n}@example.org", kind="fan", language="en", consent_language="en", name="Bench")
        endpoint_id = db.session.scalar(sa.text("SELECT id FROM webhook_endpoints"))
        secret = db.session.scalar(sa.text("SELECT secret FROM webhook_endpoints"))
        rows = db.session.scalars(sa.select(WebhookEvent).order_by(WebhookEvent.id)).all()
        bodies = [(f"evt_{e.id}", events.body(e.type, e.occurred_at, e.supporter_id, e.payload, e.redacted))
                  for e in rows]
        db.session.commit()
        for _ in range(args.rounds):
            # Baseline: the same bodies, signed, over one requests.Session.
            started = time.perf_counter()
            with requests.Session() as session:
                hook = Webhook(secret)
                for msg_id, body in bodies:
                    at = datetime.fromtimestamp(int(time.time()), UTC)
                    session.post(hook_url, data=body.encode(), timeout=5, headers={
                        "Content-Type": "application/json", "webhook-id": msg_id,
                        "webhook-timestamp": str(int(at.timestamp())),
                        "webhook-signature": hook.sign(msg_id, at, body)}).raise_for_status()
            plain.append(len(bodies) / (time.perf_counter() - started))
            # Ours: the job, from the outbox (reads, signs, posts, logs each attempt, commits each outcome).
            db.session.execute(sa.text("UPDATE webhook_messages SET status = 'pending', attempts = 0"))
            db.session.execute(sa.text("DELETE FROM webhook_attempts"))
            db.session.commit()
            started = time.perf_counter()
            counts = deliver_endpoint(endpoint_id)
            ours.append(counts["delivered"] / (time.perf_counter() - started))
            assert counts["delivered"] == len(bodies), counts
        db.engine.dispose()
    ours_rate, plain_rate = statistics.median(ours), statistics.median(plain)
    print(f"\n== dispatch of {len(bodies):,} events to a local receiver, medians of {args.rounds} rounds")
    print(f"plain requests.Session loop, signed bodies   {plain_rate:>8,.0f} msgs/s   "
          f"rounds {', '.join(f'{r:,.0f}' for r in plain)}")
    print(f"deliver_endpoint (outbox, log, commits)       {ours_rate:>8,.0f} msgs/s   "
          f"rounds {', '.join(f'{r:,.0f}' for r in ours)}")
    return ours_rate, plain_rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--slices", type=int, default=20, help="alternating slices of the service-level run")
    parser.add_argument("--only", choices=("join", "dispatch"))
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="sp-bench-webhooks-"))
    servers = []
    try:
        pg = PostgresServer().start()
        servers.append(pg)
        redis_server = RedisServer().start()
        servers.append(redis_server)
        os.environ.setdefault("WEBHOOK_ALLOWED_NETWORKS", "127.0.0.0/8")
        with receiver() as hook_url:
            if args.only != "dispatch":
                none, hooks = join_cost(args, pg, redis_server.url, tmp, hook_url)
                slower = 1 - hooks / none  # of the medians; the per-round ratios above show the spread
                print(f"target: at most 5 % slower -> {slower * 100:+.1f} % "
                      f"({'met' if slower <= 0.05 else 'NOT met'})")
            if args.only != "join":
                ours, plain = dispatch_rate(args, pg, redis_server.url, tmp, hook_url)
                ratio = ours / plain
                print(f"target: >= 0.7x the plain loop -> {ratio:.2f}x ({'met' if ratio >= 0.7 else 'NOT met'})")
    finally:
        for server in reversed(servers):
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
