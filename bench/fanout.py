"""Fan-out: an announcement to N supporters through the engine, against plain smtplib loops.

    .venv/bin/python -m bench.fanout [--rows 100000] [--workers 2]

Runs, in one go, on a throw-away PostgreSQL + redis-server and an aiosmtpd sink (its own process)
on loopback:
  engine     launch → last message accepted: `flask worker` processes, deliveries in PostgreSQL
  smtplib    the same messages, built the same way (same compiled template with the layout and
             footer, same signed links, same headers),
             one process per worker, each over one persistent smtplib connection
  protocol   pre-built bytes over the same number of connections (the protocol-only rate)
Targets: engine ≥ 0.7 × smtplib and ≥ 0.5 × protocol.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import smtplib
import subprocess
import sys
import time
from datetime import date

from bench.engine_data import ROOT, EngineSink, engine_app, engine_servers, load_supporters

BODY = ("Hello {{first_name}},\n\nwe opened a new shop in **Berlin** and wanted you to hear it first.\n\n"
        "Thank you for being with us.\n\n[Your preferences]({{preferences_url}}) · "
        "[Unsubscribe]({{unsubscribe_url}})\n")
SUBJECT = "News for you, {{first_name}}"


def _client(settings, smtp_port, people, prebuilt, ready, go, done):
    """One baseline sender: build (unless prebuilt) and send over one persistent connection."""
    from campaigns.layout import campaign_headers, campaign_layout, consent_date
    from campaigns.render import CompiledContent, message_id
    from core.org_settings import current_org
    from supporters.links import preferences_url, unsubscribe_headers
    from wsgi import create_app

    app = create_app(settings)
    with app.app_context():
        # The engine's messages: the shared layout with its footer, the campaign stream's headers.
        org = current_org()
        content = CompiledContent.compile(org.campaign_sender, SUBJECT, BODY, None, campaign_layout(org, "en"))
        stream = campaign_headers(org.campaign_sender, org)
        consented = consent_date(date.today(), "en")
        smtp = smtplib.SMTP("127.0.0.1", smtp_port)
        fixed = None
        if prebuilt:
            sid, email, name = people[0]
            headers = {**stream, **unsubscribe_headers(sid)}
            fixed = content.message(email, message_id(sid, 1, content.domain),
                                    {"first_name": name.split(" ")[0], "preferences_url": preferences_url(sid),
                                     "unsubscribe_url": headers["List-Unsubscribe"][1:-1],
                                     "consent_date": consented}, headers)
        ready.put(1)
        go.wait()
        for sid, email, name in people:
            if fixed is not None:
                smtp.sendmail(content.envelope_from, [email], fixed)
                continue
            headers = {**stream, **unsubscribe_headers(sid)}
            data = content.message(email, message_id(sid, 1, content.domain),
                                   {"first_name": name.split(" ")[0], "preferences_url": preferences_url(sid),
                                    "unsubscribe_url": headers["List-Unsubscribe"][1:-1],
                                    "consent_date": consented}, headers)
            smtp.sendmail(content.envelope_from, [email], data)
        smtp.quit()
        done.put(1)


def baseline(settings, people, workers: int, prebuilt: bool) -> float:
    sink = EngineSink()
    ctx = mp.get_context("spawn")
    ready, done, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    share = [people[i::workers] for i in range(workers)]
    procs = [ctx.Process(target=_client, args=(settings, sink.port, part, prebuilt, ready, go, done)) for part in share]
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


def engine(settings, app, rows: int, workers: int) -> tuple[float, float]:
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
            result = services.launch(campaign.id)
            launch_seconds = time.time() - started
            assert result["queued"] == rows, result
            last = sink.wait_for(rows, timeout=1200)
            deadline = time.monotonic() + 60
            while services.stats(campaign.id)["status"] != "sent" and time.monotonic() < deadline:
                db.session.expire_all()
                time.sleep(0.2)
            stats = services.stats(campaign.id)
            assert stats["deliveries"]["sent"] == rows, stats
        return rows / (last - started), launch_seconds
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
    args = parser.parse_args()

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
        rate_engine, launch_seconds = engine(settings, app, args.rows, args.workers)
        print(f"engine    {rate_engine:8.0f} msgs/s  (launch call {launch_seconds:.2f} s)", flush=True)
        rate_smtplib = baseline(settings, people, args.workers, prebuilt=False)
        print(f"smtplib   {rate_smtplib:8.0f} msgs/s  (same messages, {args.workers} persistent connections)", flush=True)
        rate_protocol = baseline(settings, people, args.workers, prebuilt=True)
        print(f"protocol  {rate_protocol:8.0f} msgs/s  (pre-built bytes, {args.workers} connections)", flush=True)
    print(f"engine / smtplib  = {rate_engine / rate_smtplib:.2f}  (target ≥ 0.7)")
    print(f"engine / protocol = {rate_engine / rate_protocol:.2f}  (target ≥ 0.5)")


if __name__ == "__main__":
    main()
