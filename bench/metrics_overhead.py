"""What request metrics and request ids cost a request: a bare Flask "hello" with and without them.

    .venv/bin/python -m bench.metrics_overhead [--requests 20000] [--rounds 7]

Both apps answer GET /hello/<name> through the full WSGI stack (werkzeug's test client, no
network); rounds alternate between them so that load from elsewhere hits both alike. Reported:
the best round's microseconds per request and the ratio. The hooks are core.logs (X-Request-ID)
and core.metrics (a counter and a histogram per request).
"""

from __future__ import annotations

import argparse
import time

from bench.engine_data import ROOT  # noqa: F401 - puts the repository on sys.path


def make_app(instrumented: bool):
    from flask import Flask

    app = Flask(f"hello-{instrumented}")
    if instrumented:
        from core import logs, metrics

        logs.init_app(app)
        metrics.init_app(app)
    app.add_url_rule("/hello/<name>", "hello", lambda name: f"hello {name}")
    return app


def per_request(client, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        client.get("/hello/world")
    return (time.perf_counter() - started) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    clients = {False: make_app(False).test_client(), True: make_app(True).test_client()}
    for client in clients.values():
        per_request(client, 500)  # warm up
    best = {False: float("inf"), True: float("inf")}
    for _ in range(args.rounds):
        for instrumented, client in clients.items():
            best[instrumented] = min(best[instrumented], per_request(client, args.requests))
    print(f"bare Flask hello     {best[False]:7.1f} µs per request")
    print(f"with metrics + ids   {best[True]:7.1f} µs per request  (+{best[True] - best[False]:.1f} µs)")
    print(f"ratio                {best[True] / best[False]:7.3f}")


if __name__ == "__main__":
    main()
