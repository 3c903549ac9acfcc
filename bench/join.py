"""POST /join (CSRF handled like a browser) vs a bare Flask "hello" and the floor of a signup
(one ORM INSERT + one RQ enqueue), all under gunicorn with 2 sync workers, PostgreSQL and Redis.

    .venv/bin/python -m bench.join [--seconds 15] [--connections 8]

Each wrk thread first GETs /join, keeps the session cookie and the CSRF token from that answer,
then POSTs the form with a new address every time, as a browser would. The rate limiter is off
(RATELIMIT_ENABLED=0). Targets (issue 3): at least 0.6x the floor's rate, p99 at most 25 ms.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import sqlalchemy as sa

from bench.core import ROOT, gunicorn, print_comparison, wrk
from tests.servers import PostgresServer, RedisServer

FORM = "name=Bench%20Supporter&kind=fan&language=en&consent=y"

# Lua for wrk: per thread, one GET for the session cookie + CSRF token, then POSTs with fresh addresses.
JOIN_LUA = r"""
local counter, token, cookie = 0, nil, nil
local next_id = 1
function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
end
request = function()
  if token == nil then
    return wrk.format("GET", "/join?lang=en")
  end
  counter = counter + 1
  local body = "csrf_token=" .. token .. "&email=j" .. tid .. "-" .. counter .. "-RUN%40example.org&FORM"
  return wrk.format("POST", "/join?lang=en",
    {["Content-Type"] = "application/x-www-form-urlencoded", ["Cookie"] = cookie}, body)
end
response = function(status, headers, body)
  if token == nil and status == 200 then
    local t = string.match(body, 'name="csrf_token" value="([^"]+)"')
    local c = headers["Set-Cookie"]
    if t and c then
      token = t
      cookie = string.match(c, "^([^;]+)")
    end
  end
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


def lua(template: str, tmp: Path) -> str:
    """A script for one run: every run gets its own address suffix, so no address repeats."""
    path = tmp / f"{uuid.uuid4().hex}.lua"
    path.write_text(template.replace("RUN", uuid.uuid4().hex[:8]).replace("FORM", FORM))
    return str(path)


def migrate(env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"], cwd=ROOT,
                   env={**os.environ, **env}, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=15, help="duration of each load run (bounded)")
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
        run = dict(seconds=args.seconds, connections=args.connections)

        with gunicorn("bench.hello_app:app", env) as base:
            wrk("warm-up", base + "/", seconds=2, connections=args.connections)
            hello = wrk("bare Flask hello", base + "/", **run)
        with gunicorn("bench.insert_enqueue_app:create_app()", env) as base:
            wrk("warm-up", base + "/signup", seconds=2, connections=args.connections, script=lua(FLOOR_LUA, tmp))
            floor = wrk("INSERT + RQ enqueue (floor)", base + "/signup", script=lua(FLOOR_LUA, tmp), **run)
        with gunicorn("wsgi:create_app()", env, warmup_path="/join") as base:
            wrk("warm-up", base + "/join", seconds=2, connections=args.connections, script=lua(JOIN_LUA, tmp))
            before = _count(engine)
            join = wrk("POST /join (CSRF, PostgreSQL + RQ)", base + "/join", script=lua(JOIN_LUA, tmp), **run)
            stored = _count(engine) - before

        print_comparison(f"POST /join, gunicorn 2 sync workers, {args.connections} connections, {args.seconds} s",
                         join, [hello, floor])
        ratio = join.requests_per_second / floor.requests_per_second
        print(f"supporters stored during the run: {stored:,} (pending, one confirmation job queued each)")
        print(f"target: >= 0.60x the floor -> {ratio:.2f}x {'met' if ratio >= 0.6 else 'NOT met'}; "
              f"p99 <= 25 ms -> {join.p99_ms:.1f} ms {'met' if join.p99_ms <= 25 else 'NOT met'}")
        if join.errors or floor.errors or hello.errors:
            raise SystemExit("errors during the run: the figures are not valid")
    finally:
        for server in reversed(servers):
            server.stop()


def _count(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT count(*) FROM supporters")).scalar_one()


if __name__ == "__main__":
    main()
