"""GET /healthz (one database and one Redis round trip) vs a bare Flask "hello", same gunicorn settings.

    .venv/bin/python -m bench.healthz [--seconds 10] [--engine postgresql|sqlite]
"""

from __future__ import annotations

import argparse
import tempfile

from bench.core import gunicorn, print_comparison, wrk
from tests.servers import PostgresServer, RedisServer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="duration of each load run (bounded)")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--engine", choices=["postgresql", "sqlite"], default="postgresql")
    args = parser.parse_args()

    servers = []
    try:
        tmp = tempfile.mkdtemp(prefix="sp-bench-")
        env = {"APP_ENV": "testing", "INSTANCE_PATH": tmp, "RATELIMIT_ENABLED": "0"}
        if args.engine == "postgresql":
            pg = PostgresServer().start()
            servers.append(pg)
            redis_server = RedisServer().start()
            servers.append(redis_server)
            env.update(DATABASE_URL=pg.create_database("bench"), REDIS_URL=redis_server.url)
        else:
            env.update(DATABASE_URL=f"sqlite:///{tmp}/bench.db")
            redis_server = RedisServer().start()  # gunicorn workers share one server, as in production
            servers.append(redis_server)
            env.update(REDIS_URL=redis_server.url)

        with gunicorn("bench.hello_app:app", env) as base:
            wrk("warm-up", base + "/", seconds=2, connections=args.connections)
            hello = wrk("bare Flask hello", base + "/", seconds=args.seconds, connections=args.connections)
        with gunicorn("wsgi:create_app()", env, warmup_path="/healthz") as base:
            wrk("warm-up", base + "/healthz", seconds=2, connections=args.connections)
            health = wrk(f"/healthz ({args.engine} + redis)", base + "/healthz", seconds=args.seconds,
                         connections=args.connections)
        print_comparison(f"healthz vs hello, gunicorn 2 sync workers, {args.connections} connections",
                         health, [hello])
        if health.errors or hello.errors:
            raise SystemExit("errors during the run: the figures are not valid")
    finally:
        for server in reversed(servers):
            server.stop()


if __name__ == "__main__":
    main()
