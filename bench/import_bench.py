"""Benchmark: `flask import supporters` against the floor of a deduplicating import, on PostgreSQL.

The file: N rows (default 1,000,000), 10 % repeating an earlier address in other case, 1 % with
an invalid email. The floor (MEASURED.md: ~13.5 s per million here) is `COPY` of the file into a
temporary staging table plus one `INSERT … SELECT … ON CONFLICT DO NOTHING`: no validation, no
reject file, no consent ledger, broken addresses imported as they are. Ours validates every row,
writes the reject file, deduplicates, writes a ConsentEvent and a referral code per new supporter,
in atomic batches. Target: at least 0.7x the floor's rate. A second baseline does the floor plus
the work every import with consent evidence must do (referral code + ConsentEvent per new
supporter, set-based in the same statement), to show what that work itself costs.

    .venv/bin/python -m bench.import_bench --rows 1000000 [--runs 1] [--batch-size 5000] [--tag NAME]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
from datetime import UTC, datetime

from bench.transfer_data import Timer, make_app, scratch_dir, start_postgres, write_import_csv

FLOOR_STAGE = "CREATE TEMP TABLE stage (email text, name text, kind text, language text, country text)"
FLOOR_INSERT = ("INSERT INTO supporters (email, email_normalized, name, kind, language, country, status, "
                "engagement_score, source, created_at, updated_at) "
                "SELECT email, lower(email), name, kind, language, NULLIF(country, ''), 'active', 0, 'import', "
                "now(), now() FROM stage ON CONFLICT (email_normalized) DO NOTHING")
# The same floor doing the work an import must also do here: a referral code per new (active)
# supporter and its ConsentEvent, set-based from the INSERT's RETURNING.
LEDGER_INSERT = ("WITH ins AS (INSERT INTO supporters (email, email_normalized, name, kind, language, country, "
                 "status, referral_code, engagement_score, source, created_at, updated_at) "
                 "SELECT email, lower(email), name, kind, language, NULLIF(country, ''), 'active', "
                 "substr(md5(random()::text), 1, 12), 0, 'import', now(), now() FROM stage "
                 "ON CONFLICT (email_normalized) DO NOTHING RETURNING id) "
                 "INSERT INTO consent_events (supporter_id, purpose, action, method, occurred_at, note, text_version) "
                 "SELECT id, 'campaigns', 'granted', 'import', now(), 'bench', 'import' FROM ins")
EMPTY = "TRUNCATE supporters, consent_events, supporter_tags, tags, suppressions RESTART IDENTITY CASCADE"


def floor(dsn: str, path, insert: str = FLOOR_INSERT) -> tuple[float, int]:
    import psycopg

    with Timer() as t, psycopg.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(FLOOR_STAGE)
        with open(path, "rb") as fh, cur.copy("COPY stage FROM STDIN WITH (FORMAT csv, HEADER, DELIMITER ';')") as copy:
            while chunk := fh.read(1 << 20):
                copy.write(chunk)
        cur.execute(insert)
        inserted = cur.rowcount
        conn.commit()
    return t.seconds, inserted


def ours(app, path, batch_size: int, tags: list[str] | None = None):
    from supporters.transfer_import import ImportOptions, import_supporters

    opts = ImportOptions(path=str(path), consent_note="bench: customers who agreed at checkout",
                         consented_at=datetime(2025, 1, 1, tzinfo=UTC), batch_size=batch_size, tags=tags or [])
    with app.app_context(), Timer() as t:
        summary = import_supporters(opts)
    return t.seconds, summary


def empty(dsn: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(EMPTY)
        # Each contender starts with no dirty pages of the one before: a checkpoint during a run
        # otherwise lands on whichever runs next (the floor varied 7.9-10.8 s without this).
        conn.execute("CHECKPOINT")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=1, help="Alternating runs of each; the median counts.")
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--tag", action="append", default=[],
                        help="Also time an import that tags everyone (like `--tag`); repeatable.")
    args = parser.parse_args(argv)

    work = scratch_dir("sp-bench-import-")
    server, url = start_postgres()
    try:
        app, _settings = make_app(url, work / "instance")
        dsn = url.replace("postgresql+psycopg://", "postgresql://")
        path = work / "list.csv"
        with Timer() as t:
            counts = write_import_csv(path, args.rows)
        print(f"Generated {path.name}: {counts['rows']:,} rows, {counts['duplicates']:,} duplicates, "
              f"{counts['broken']:,} broken, in {t.seconds:.1f} s")
        floors, ledgers, mine, tagged = [], [], [], []
        for _ in range(args.runs):
            empty(dsn)
            seconds, inserted = floor(dsn, path)
            floors.append(seconds)
            print(f"  floor (COPY to staging + INSERT … ON CONFLICT DO NOTHING): {seconds:.2f} s, inserted {inserted:,}")
            empty(dsn)
            seconds, inserted = floor(dsn, path, LEDGER_INSERT)
            ledgers.append(seconds)
            print(f"  floor + referral codes + consent ledger (one statement): {seconds:.2f} s, {inserted:,} events")
            empty(dsn)
            seconds, summary = ours(app, path, args.batch_size)
            mine.append(seconds)
            print(f"  flask import supporters: {seconds:.2f} s, inserted {summary.inserted:,}, skipped "
                  f"{summary.skipped:,}, rejected {summary.rejected:,} (reject file included), "
                  f"{summary.inserted:,} consent events")
            if args.tag:
                empty(dsn)
                seconds, summary = ours(app, path, args.batch_size, args.tag)
                tagged.append(seconds)
                print(f"  flask import supporters --tag {' --tag '.join(args.tag)}: {seconds:.2f} s, inserted "
                      f"{summary.inserted:,}")
        f, l_, m = statistics.median(floors), statistics.median(ledgers), statistics.median(mine)
        ratio = f / m
        print(f"  rates: floor {args.rows / f:,.0f} rows/s, floor with ledger {args.rows / l_:,.0f} rows/s, "
              f"ours {args.rows / m:,.0f} rows/s")
        print(f"  ours/floor = {ratio:.2f}x (target >= 0.7x) {'OK' if ratio >= 0.7 else 'MISSED'}; "
              f"ours/(floor with ledger) = {l_ / m:.2f}x")
        if tagged:
            t_ = statistics.median(tagged)
            print(f"  with --tag: {args.rows / t_:,.0f} rows/s, {f / t_:.2f}x the floor (which tags nobody)")
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
