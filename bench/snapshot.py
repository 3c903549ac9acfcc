"""Snapshot: launching a campaign to N supporters (PostgreSQL) against the bare INSERT … SELECT.

    .venv/bin/python -m bench.snapshot [--rows 1000000] [--repeat 2]

`launch` is the whole service call: validation, the conditional status change, the snapshot with
every skip reason computed (consent, unsubscribed, suppression by SHA-256, paused, frequency limit
over the last 30 days, content language), the counts, the commit, and queueing the batch jobs
(ranges computed in SQL, one Redis pipeline). The baseline inserts the same rows into the same
table with no reasons and no jobs. Each is run `--repeat` times on an emptied table; best of each.
Target: launch within 1.5 × the baseline.
"""

from __future__ import annotations

import argparse
import time

import sqlalchemy as sa

from bench.engine_data import empty_deliveries, engine_app, engine_servers, load_supporters

BODY = "Hello {{first_name}}, news! [Preferences]({{preferences_url}})"


def bare(db, campaign_id: int) -> float:
    started = time.perf_counter()
    db.session.execute(sa.text(
        "INSERT INTO deliveries (campaign_id, supporter_id, status, attempts, reclaimed, enqueued_at) "
        "SELECT :cid, id, 'queued', 0, false, now() FROM supporters"), {"cid": campaign_id})
    db.session.commit()
    return time.perf_counter() - started


def launch(services, app, rows: int) -> float:
    campaign = services.create_campaign({"name": "snapshot", "contents": {"en": {"subject": "News", "body": BODY}}})
    app.extensions["redis"].flushdb()
    started = time.perf_counter()
    result = services.launch(campaign.id)
    elapsed = time.perf_counter() - started
    assert result["queued"] == rows, result
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="supporters (default 1,000,000)")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each (default 2; the best counts)")
    args = parser.parse_args()

    with engine_servers("snapshot") as settings:
        app = engine_app(settings)
        print(f"loading {args.rows:,} supporters … {load_supporters(app, args.rows):.1f} s", flush=True)
        from campaigns import services
        from campaigns.models import Campaign
        from core.extensions import db

        with app.app_context():
            base_id = services.create_campaign({"name": "baseline", "contents": {"en": {"subject": "x", "body": "y"}}}).id
            bare_times, launch_times = [], []
            for run in range(args.repeat):
                empty_deliveries(db)
                bare_times.append(bare(db, base_id))
                print(f"run {run + 1}: bare INSERT … SELECT {bare_times[-1]:.2f} s", flush=True)
                empty_deliveries(db)
                db.session.execute(sa.delete(Campaign).where(Campaign.id != base_id))
                db.session.commit()
                launch_times.append(launch(services, app, args.rows))
                jobs = app.extensions["redis"].llen("rq:queue:campaigns")
                print(f"run {run + 1}: launch {launch_times[-1]:.2f} s ({jobs:,} batch jobs queued)", flush=True)
    best_bare, best_launch = min(bare_times), min(launch_times)
    print(f"bare INSERT … SELECT  {best_bare:6.2f} s  ({args.rows / best_bare:,.0f} rows/s)")
    print(f"launch                {best_launch:6.2f} s  ({args.rows / best_launch:,.0f} rows/s)")
    print(f"launch / bare = {best_launch / best_bare:.2f}  (target ≤ 1.5)")


if __name__ == "__main__":
    main()
