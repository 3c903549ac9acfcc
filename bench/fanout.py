"""Fan-out: an announcement to N supporters through the engine, against plain smtplib loops.

    .venv/bin/python -m bench.fanout [--rows 100000] [--workers 2] [--repeat 1]

Runs, in one go, on a throw-away PostgreSQL + redis-server and an aiosmtpd sink (its own process)
on loopback:
  engine     launch → last message accepted: `flask worker` processes, deliveries in PostgreSQL
  smtplib    the same messages, built by the engine's own code (campaigns.compose.Composer of the
             same campaign: the layout and footer, the signed links, the same headers), one
             process per worker, each over one persistent smtplib connection
  protocol   pre-built bytes over the same number of connections (the protocol-only rate)
Targets (issues 12 and 18): engine ≥ 0.77 × smtplib and ≥ 0.5 × protocol.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import smtplib
import statistics
import subprocess
import sys
import time
from datetime import date

from bench.engine_data import ROOT, EngineSink, empty_deliveries, engine_app, engine_servers, load_supporters

BODY = ("Hello {{first_name}},\n\nwe opened a new shop in **Berlin** and wanted you to hear it first.\n\n"
        "Thank you for being with us.\n\n[Your preferences]({{preferences_url}}) · "
        "[Unsubscribe]({{unsubscribe_url}})\n")
SUBJECT = "News for you, {{first_name}}"


def _client(settings, smtp_port, campaign_id, people, prebuilt, ready, go, done):
    """One baseline sender: build (unless prebuilt) and send over one persistent connection.

    The messages are the engine's own: `campaigns.compose.Composer` of the same campaign (the layout
    with its footer, the signed unsubscribe, preferences and dialog links, the stream headers)."""
    from campaigns.compose import Composer
    from campaigns.models import Campaign
    from core.extensions import db
    from wsgi import create_app

    app = create_app(settings)
    with app.app_context():
        composer = Composer.for_campaign(db.session.get(Campaign, campaign_id))
        db.session.remove()
        consented = date.today()
        smtp = smtplib.SMTP("127.0.0.1", smtp_port)
        fixed = None
        if prebuilt:
            sid, email, name = people[0]
            content, fixed = composer.message(sid, sid, email, name, "en", consented)
        ready.put(1)
        go.wait()
        for sid, email, name in people:
            if fixed is not None:
                smtp.sendmail(content.envelope_from, [email], fixed)
                continue
            content, data = composer.message(sid, sid, email, name, "en", consented)
            smtp.sendmail(content.envelope_from, [email], data)
        smtp.quit()
        done.put(1)


def baseline(settings, campaign_id: int, people, workers: int, prebuilt: bool) -> float:
    sink = EngineSink()
    ctx = mp.get_context("spawn")
    ready, done, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    share = [people[i::workers] for i in range(workers)]
    procs = [ctx.Process(target=_client, args=(settings, sink.port, campaign_id, part, prebuilt, ready, go, done)) for part in share]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get(timeout=120)
    started = time.time()
    go.set()
    last = sink.wait_for(len(people), timeout=1200)
    for p in procs:
        p.join(60)
    sink.stop()
    return len(people) / (last - started)


def engine(settings, app, rows: int, workers: int) -> tuple[float, float, int]:
    from rq import Worker

    from campaigns import services
    from core.extensions import db

    sink = EngineSink()
    env = {**os.environ, **{k: v for k, v in settings.items() if isinstance(v, str)}, "SMTP_URL": sink.url}
    procs = [subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "worker", "-q", "campaigns",
                               "--name", f"bench-{i}-{os.getpid()}"], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for i in range(workers)]
    try:
        with app.app_context():
            campaign = services.create_campaign({"name": "bench", "contents": {"en": {"subject": SUBJECT, "body": BODY}}})
            redis = app.extensions["redis"]
            deadline = time.monotonic() + 60
            while len(Worker.all(connection=redis)) < workers:
                if time.monotonic() > deadline:
                    raise SystemExit("the workers did not start")
                time.sleep(0.1)
            started = time.time()
            campaign_id = campaign.id
            result = services.launch(campaign_id)
            launch_seconds = time.time() - started
            assert result["queued"] == rows, result
            last = sink.wait_for(rows, timeout=1200)
            deadline = time.monotonic() + 60
            while services.stats(campaign_id)["status"] != "sent" and time.monotonic() < deadline:
                db.session.expire_all()
                time.sleep(0.2)
            stats = services.stats(campaign_id)
            assert stats["deliveries"]["sent"] == rows, stats
        return rows / (last - started), launch_seconds, campaign_id
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)
        sink.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="supporters (default 100,000)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes / connections (default 2)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="rounds of engine, smtplib, protocol in turn; the medians of the ratios are reported "
                             "(default 1; on a machine with noisy neighbours use 3 or more)")
    args = parser.parse_args()

    rounds: list[tuple[float, float, float]] = []
    with engine_servers("fanout") as settings:
        app = engine_app(settings)
        print(f"loading {args.rows:,} supporters … {load_supporters(app, args.rows):.1f} s", flush=True)
        with app.app_context():
            import sqlalchemy as sa

            from core.extensions import db
            from supporters.models import Supporter

            people = [tuple(r) for r in db.session.execute(
                sa.select(Supporter.id, Supporter.email, Supporter.name).order_by(Supporter.id))]
            db.session.remove()
        for n in range(1, args.repeat + 1):
            if n > 1:  # the next campaign starts from no deliveries (no frequency-limit skips)
                with app.app_context():
                    empty_deliveries(db)
                    db.session.remove()
            rate_engine, launch_seconds, campaign_id = engine(settings, app, args.rows, args.workers)
            print(f"[{n}] engine    {rate_engine:8.0f} msgs/s  (launch call {launch_seconds:.2f} s)", flush=True)
            rate_smtplib = baseline(settings, campaign_id, people, args.workers, prebuilt=False)
            print(f"[{n}] smtplib   {rate_smtplib:8.0f} msgs/s  (same messages, {args.workers} persistent connections)",
                  flush=True)
            rate_protocol = baseline(settings, campaign_id, people, args.workers, prebuilt=True)
            print(f"[{n}] protocol  {rate_protocol:8.0f} msgs/s  (pre-built bytes, {args.workers} connections)",
                  flush=True)
            print(f"[{n}] engine / smtplib = {rate_engine / rate_smtplib:.2f}, "
                  f"engine / protocol = {rate_engine / rate_protocol:.2f}", flush=True)
            rounds.append((rate_engine, rate_smtplib, rate_protocol))
    by_smtplib = statistics.median(e / s for e, s, _p in rounds)
    by_protocol = statistics.median(e / p for e, _s, p in rounds)
    label = f"median of {len(rounds)} rounds" if len(rounds) > 1 else "one round"
    print(f"engine / smtplib  = {by_smtplib:.2f}  (target ≥ 0.77; {label})")
    print(f"engine / protocol = {by_protocol:.2f}  (target ≥ 0.5; {label})")


if __name__ == "__main__":
    main()
