"""Fan-out scaling: the engine with 1, 2, 4 … worker processes, and the round trips one mail costs.

    .venv/bin/python -m bench.fanout_scale [--rows 20000] [--workers 1 2 4] [--count-rows 5000]

On a throw-away PostgreSQL + redis-server and the aiosmtpd sink of `bench.fanout` (loopback):
  scale   for each worker count, an announcement to --rows supporters with that many real
          `flask worker` processes, launch → last message accepted (`bench.fanout.engine`)
  count   one more announcement to --count-rows supporters sent by an in-process burst worker,
          counting every database round trip (SQLAlchemy `before_cursor_execute` and `commit`
          events on the engine, the lease keeper's connection included) and every Redis command
          (the server's MONITOR, so RQ's own connection counts too), divided by the mails sent
"""

from __future__ import annotations

import argparse
import os
import threading
import time

from bench.engine_data import EngineSink, engine_app, engine_servers, load_supporters
from bench.fanout import BODY, SUBJECT, engine

STOP = "bench-monitor-stop"


class RedisCommandCounter:
    """Count the commands Redis executes (MONITOR) until stopped."""

    def __init__(self, url: str):
        import redis

        self.client = redis.Redis.from_url(url)
        self.count = 0
        self.by_command: dict[str, int] = {}
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def _listen(self) -> None:
        with self.client.monitor() as monitor:
            self._ready.set()
            for event in monitor.listen():
                command = event.get("command", "")
                if STOP in command:
                    return
                self.count += 1
                name = command.split(" ", 1)[0].upper()
                self.by_command[name] = self.by_command.get(name, 0) + 1

    def stop(self) -> int:
        self.client.echo(STOP)
        self._thread.join(10)
        return self.count


def count_round_trips(settings: dict, rows: int) -> dict:
    """Send one campaign in-process and count database round trips and Redis commands."""
    import sqlalchemy as sa

    from campaigns import services
    from campaigns.models import Delivery, DeliveryStatus
    from core.extensions import db
    from core.queues import make_worker
    from wsgi import create_app

    sink = EngineSink()
    app = create_app({**settings, "SMTP_URL": sink.url})
    counts = {"statements": 0, "commits": 0, "checkouts": 0}

    def on_statement(*_args, **_kwargs):
        counts["statements"] += 1

    def on_commit(*_args, **_kwargs):
        counts["commits"] += 1

    def on_checkout(*_args, **_kwargs):  # pool_pre_ping: one `SELECT 1` round trip per checkout
        counts["checkouts"] += 1

    try:
        with app.app_context():
            # Only the first `rows` supporters are in this campaign's audience (marked by engagement).
            from supporters.models import Supporter

            db.session.execute(sa.update(Supporter).where(Supporter.id <= sa.select(sa.func.min(Supporter.id))
                                                          .scalar_subquery() + rows - 1).values(engagement_score=7))
            db.session.commit()
            campaign = services.create_campaign({
                "name": "count", "contents": {"en": {"subject": SUBJECT, "body": BODY}},
                "audience": {"filter": {"field": "engagement", "op": "eq", "value": 7}}})
            started = time.perf_counter()
            launched = services.launch(campaign.id)
            launch_seconds = time.perf_counter() - started
            engine = db.engine
            sa.event.listen(engine, "before_cursor_execute", on_statement)
            sa.event.listen(engine, "commit", on_commit)
            sa.event.listen(engine.pool, "checkout", on_checkout)
            redis_counter = RedisCommandCounter(settings["REDIS_URL"])
            started = time.perf_counter()
            make_worker(app, ["campaigns"]).work(burst=True)
            seconds = time.perf_counter() - started
            redis_commands = redis_counter.stop()
            sa.event.remove(engine, "before_cursor_execute", on_statement)
            sa.event.remove(engine, "commit", on_commit)
            sa.event.remove(engine.pool, "checkout", on_checkout)
            sent = db.session.scalar(sa.select(sa.func.count()).where(
                Delivery.campaign_id == campaign.id, Delivery.status == DeliveryStatus.SENT))
            db.session.remove()
    finally:
        sink.stop()
    return {"queued": launched["queued"], "sent": sent, "seconds": seconds, "launch_seconds": launch_seconds,
            "statements": counts["statements"], "commits": counts["commits"], "checkouts": counts["checkouts"],
            "redis": redis_commands,
            "redis_by_command": dict(sorted(redis_counter.by_command.items(), key=lambda kv: -kv[1])[:12])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000, help="supporters per scaling run (default 20,000)")
    parser.add_argument("--workers", type=int, nargs="*", default=[1, 2, 4],
                        help="worker counts (default 1 2 4; none: only the counting run)")
    parser.add_argument("--count-rows", type=int, default=5_000, help="mails of the counting run (default 5,000)")
    args = parser.parse_args()

    with engine_servers("fanout_scale") as settings:
        # Several campaigns go to the same people here: lift the monthly limit for the bench.
        settings = {**settings, "DEFAULT_ASKS_PER_MONTH": "1000"}
        app = engine_app(settings)
        print(f"loading {args.rows:,} supporters … {load_supporters(app, args.rows):.1f} s", flush=True)
        print(f"load average before: {os.getloadavg()[0]:.1f}", flush=True)
        rates = {}
        for n in args.workers:
            rate, launch_seconds, _ = engine(settings, app, args.rows, n)
            rates[n] = rate
            print(f"workers {n}: {rate:8.0f} msgs/s  ({rate / rates[args.workers[0]]:.2f}x of {args.workers[0]}; "
                  f"launch {launch_seconds:.2f} s; load {os.getloadavg()[0]:.1f})", flush=True)
        c = count_round_trips(settings, min(args.count_rows, args.rows))
        sent = max(c["sent"], 1)
        print(f"count run: {c['sent']:,} sent of {c['queued']:,} in {c['seconds']:.1f} s by one in-process worker "
              f"({c['sent'] / c['seconds']:.0f} msgs/s)")
        trips = c["statements"] + c["commits"] + c["checkouts"]
        print(f"  database: {c['statements']:,} statements + {c['commits']:,} commits + {c['checkouts']:,} "
              f"pre-ping checkouts = {trips / sent:.3f} round trips per mail")
        print(f"  redis:    {c['redis']:,} commands = {c['redis'] / sent:.3f} per mail; most frequent: "
              + ", ".join(f"{k} {v}" for k, v in c["redis_by_command"].items()))


if __name__ == "__main__":
    main()
