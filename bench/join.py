"""POST /join (CSRF handled like a browser) vs a bare Flask "hello" and the floor of a signup
(one ORM INSERT + one RQ enqueue), all under gunicorn with 2 sync workers, PostgreSQL and Redis.

    .venv/bin/python -m bench.join [--seconds 8] [--rounds 3] [--connections 8]

The benchmark first GETs /join like a browser, keeps the session cookie and the CSRF token from
that answer, then wrk POSTs the form with them and a new address every time. The rate limiter is off
(RATELIMIT_ENABLED=0). Targets (issue 3): at least 0.6x the floor's rate, p99 at most 25 ms.
A fourth line runs the floor with the platform's `pool_pre_ping` (one more round trip per request).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import statistics
import subprocess
import sys
import tempfile
import urllib.request
import uuid
from pathlib import Path

import sqlalchemy as sa

from bench.core import ROOT, Load, gunicorn, print_comparison, wrk
from tests.servers import PostgresServer, RedisServer

FORM = "name=Bench%20Supporter&kind=fan&language=en&consent=y"

# Lua for wrk: POST the form with the session cookie and CSRF token a real GET gave (see
# `browser_session`), with a new address every time. No `response` callback: wrk would copy every
# body into Lua, a cost the baselines do not pay.
JOIN_LUA = r"""
local counter = 0
local next_id = 1
function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
end
request = function()
  counter = counter + 1
  local body = "csrf_token=TOKEN&email=j" .. tid .. "-" .. counter .. "-RUN%40example.org&FORM"
  return wrk.format("POST", "/join?lang=en",
    {["Content-Type"] = "application/x-www-form-urlencoded", ["Cookie"] = "COOKIE"}, body)
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
  local body = "email=f" .. tid .. "-" .. counter .. "-RUN%40example.org&FORM"
  return wrk.format("POST", "/signup", {["Content-Type"] = "application/x-www-form-urlencoded"}, body)
end
"""


def lua(template: str, tmp: Path, session: tuple[str, str] = ("", "")) -> str:
    """A script for one run: every run gets its own address suffix, so no address repeats."""
    token, cookie = session
    path = tmp / f"{uuid.uuid4().hex}.lua"
    path.write_text(template.replace("RUN", uuid.uuid4().hex[:8]).replace("FORM", FORM)
                    .replace("TOKEN", token).replace("COOKIE", cookie))
    return str(path)


def browser_session(base: str) -> tuple[str, str]:
    """GET the form as a browser does: the CSRF token from the page and the session cookie."""
    with urllib.request.urlopen(base + "/join?lang=en", timeout=10) as response:
        page = response.read().decode()
        cookie = response.headers["Set-Cookie"].split(";", 1)[0]
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    return token, cookie


def migrate(env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"], cwd=ROOT,
                   env={**os.environ, **env}, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def median_load(name: str, loads: list[Load]) -> Load:
    def mid(values):
        return statistics.median(values)
    return Load(name, mid([x.requests_per_second for x in loads]), mid([x.p50_ms for x in loads]),
                mid([x.p99_ms for x in loads]), sum(x.errors for x in loads))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=8, help="duration of each load run (bounded)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians are reported")
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()

    servers = []
    tmp = Path(tempfile.mkdtemp(prefix="sp-bench-join-"))
    try:
        pg = PostgresServer().start()
        servers.append(pg)
        redis_server = RedisServer().start()
        servers.append(redis_server)
        url = pg.create_database("bench")
        env = {"APP_ENV": "production", "SECRET_KEY": "bench-" + "x" * 40, "INSTANCE_PATH": str(tmp),
               "OUTBOX_DIR": str(tmp / "outbox"), "DATABASE_URL": url, "REDIS_URL": redis_server.url,
               "RATELIMIT_ENABLED": "0", "PUBLIC_BASE_URL": "http://127.0.0.1"}
        migrate(env)
        from bench.insert_enqueue_app import Base

        engine = sa.create_engine(url)
        Base.metadata.create_all(engine)
        floor_app = "bench.insert_enqueue_app:create_app()"
        # name, gunicorn app, extra environment, warm-up path, load path, Lua template
        subjects = [
            ("bare Flask hello", "bench.hello_app:app", {}, "/", "/", None),
            ("INSERT + RQ enqueue (floor)", floor_app, {}, "/", "/signup", FLOOR_LUA),
            ("the floor + pool_pre_ping", floor_app, {"BENCH_PRE_PING": "1"}, "/", "/signup", FLOOR_LUA),
            ("POST /join (CSRF, PostgreSQL + RQ)", "wsgi:create_app()", {}, "/join", "/join", JOIN_LUA),
        ]
        results: dict[str, list[Load]] = {name: [] for name, *_ in subjects}
        before = _count(engine)
        # All servers run side by side and the rounds interleave, so that the load other processes
        # put on this shared machine spreads evenly over the subjects (the figures drift by ±30 %).
        with contextlib.ExitStack() as stack:
            bases = {name: stack.enter_context(gunicorn(spec, {**env, **extra}, warmup_path=warm))
                     for name, spec, extra, warm, _path, _lua in subjects}
            sessions = {name: browser_session(bases[name]) if template is JOIN_LUA else ("", "")
                        for name, _spec, _extra, _warm, _path, template in subjects}

            def script(name: str, template: str | None) -> str | None:
                return lua(template, tmp, sessions[name]) if template else None

            for name, _spec, _extra, _warm, path, template in subjects:
                wrk("warm-up", bases[name] + path, seconds=2, connections=args.connections,
                    script=script(name, template))
            for _round in range(args.rounds):
                for name, _spec, _extra, _warm, path, template in subjects:
                    results[name].append(wrk(name, bases[name] + path, seconds=args.seconds,
                                             connections=args.connections, script=script(name, template)))
        stored = _count(engine) - before
        hello, floor, floor_ping, join = (median_load(name, results[name]) for name, *_ in subjects)

        print_comparison(f"POST /join, gunicorn 2 sync workers, {args.connections} connections, medians of "
                         f"{args.rounds} interleaved rounds of {args.seconds} s", join, [hello, floor, floor_ping])
        rounds = [j.requests_per_second / f.requests_per_second
                  for j, f in zip(results[join.name], results[floor.name], strict=True)]
        print("ratio to the floor per round: " + ", ".join(f"{r:.2f}x" for r in rounds))
        ratio = join.requests_per_second / floor.requests_per_second
        print(f"supporters stored during the runs (incl. warm-up): {stored:,} (pending, one job queued each)")
        print(f"target: >= 0.60x the floor -> {ratio:.2f}x {'met' if ratio >= 0.6 else 'NOT met'}; "
              f"p99 <= 25 ms -> {join.p99_ms:.1f} ms {'met' if join.p99_ms <= 25 else 'NOT met'}")
        if any(load.errors for load in (hello, floor, floor_ping, join)):
            raise SystemExit("errors during the run: the figures are not valid")
    finally:
        for server in reversed(servers):
            server.stop()


def _count(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT count(*) FROM supporters")).scalar_one()


if __name__ == "__main__":
    main()
