"""Benchmark: an export through the database transfer store against a bare `COPY … TO STDOUT`.

PostgreSQL, N supporters (default 1,000,000), the default export columns. In the same run, alternating:

- baseline: `COPY (SELECT …) TO STDOUT WITH CSV` of the same columns through psycopg into a local file;
- ours: `export_supporters` (formula defusing, ISO timestamps) into `core.blobs.DatabaseStore`, i.e.
  1 MiB chunks inserted into `transfer_chunks` and committed, readable from every host.

Target: ours within 1.3x of the baseline. Then, in a process of its own (for its peak RSS, `wait4`),
the export into the store and its download read back chunk by chunk: target < 150 MB. With
`--storage-variants` it also times the chunk column's storage choices (uncompressed, pglz, lz4).

    .venv/bin/python -m bench.transfer_store [--rows 1000000] [--runs 3] [--storage-variants]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys

from bench.export import FIELDS, baseline_select
from bench.transfer_data import (
    Timer,
    fill_postgres,
    make_app,
    peak_rss_mb_of,
    scratch_dir,
    start_postgres,
    subprocess_env,
)

KEY = "bench-export.csv"


def export_to_store(app) -> tuple[int, int]:
    """Our export into the database store; returns (rows, bytes stored)."""
    from core.blobs import DatabaseStore
    from core.extensions import db
    from supporters.transfer import export_supporters

    with app.app_context():
        store = DatabaseStore(db.engine)
        with store.writer(KEY) as out:
            rows = export_supporters(out, fmt="csv", fields=",".join(FIELDS))
        return rows, store.size(KEY)


def read_back(app) -> int:
    from core.blobs import DatabaseStore
    from core.extensions import db

    with app.app_context():
        return sum(len(chunk) for chunk in DatabaseStore(db.engine).chunks(KEY))


def child(database_url: str, instance: str) -> None:
    """The measured process: export into the store, then read it all back (a download)."""
    from wsgi import create_app

    app = create_app({"APP_ENV": "testing", "DATABASE_URL": database_url, "INSTANCE_PATH": instance,
                      "TRANSFER_STORAGE": "database"})
    rows, size = export_to_store(app)
    assert read_back(app) == size, "read back a different size"
    print(rows, size)


def baseline(dsn: str, target) -> int:
    import psycopg

    with psycopg.connect(dsn) as conn, conn.cursor() as cur, open(target, "wb") as out:
        with cur.copy(f"COPY ({baseline_select('postgresql')}) TO STDOUT WITH (FORMAT csv, HEADER)") as copy:
            for chunk in copy:
                out.write(chunk)
        return cur.rowcount


def set_storage(dsn: str, variant: str) -> None:
    import psycopg

    statements = {
        "external (uncompressed, the migration's fallback)": ["ALTER TABLE transfer_chunks ALTER COLUMN data SET STORAGE EXTERNAL"],
        "extended + pglz (PostgreSQL's default)": ["ALTER TABLE transfer_chunks ALTER COLUMN data SET STORAGE EXTENDED",
                                                   "ALTER TABLE transfer_chunks ALTER COLUMN data SET COMPRESSION pglz"],
        "extended + lz4 (the migration's choice)": ["ALTER TABLE transfer_chunks ALTER COLUMN data SET STORAGE EXTENDED",
                           "ALTER TABLE transfer_chunks ALTER COLUMN data SET COMPRESSION lz4"],
    }[variant]
    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def stored_mb(dsn: str) -> float:
    """What the live file takes in the table (dead versions of earlier runs left out), then VACUUM."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        size = conn.execute("SELECT sum(pg_column_size(data)) FROM transfer_chunks").fetchone()[0] / 1e6
        conn.execute("VACUUM transfer_chunks")
        return size


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3, help="Alternating runs of each; the median counts.")
    parser.add_argument("--storage-variants", action="store_true", help="Also time pglz and lz4 chunk storage.")
    parser.add_argument("--child", nargs=2, metavar=("DATABASE_URL", "INSTANCE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(*args.child)
        return
    work = scratch_dir("sp-bench-store-")
    server, url = start_postgres()
    try:
        app, settings = make_app(url, work / "instance")
        with Timer() as t:
            fill_postgres(url, args.rows)
        print(f"PostgreSQL: generated {args.rows:,} supporters with COPY in {t.seconds:.1f} s")
        dsn = url.replace("postgresql+psycopg://", "postgresql://")
        base, mine, back = [], [], []
        for _ in range(args.runs):
            with Timer() as t:
                n_base = baseline(dsn, work / "baseline.csv")
            base.append(t.seconds)
            with Timer() as t:
                rows, size = export_to_store(app)
            mine.append(t.seconds)
            stored = stored_mb(dsn)
            with Timer() as t:
                assert read_back(app) == size
            back.append(t.seconds)
        assert n_base == rows == args.rows, f"row counts differ: COPY {n_base}, ours {rows}"
        b, m, r = statistics.median(base), statistics.median(mine), statistics.median(back)
        ratio = m / b
        print(f"  COPY TO STDOUT into a local file: {b:.2f} s ({args.rows / b:,.0f} rows/s)")
        print(f"  export into the database store: {m:.2f} s ({args.rows / m:,.0f} rows/s, {size / 1e6:.0f} MB stored as "
              f"{stored:.0f} MB), ratio {ratio:.2f}x (target <= 1.3x) "
              f"{'OK' if ratio <= 1.3 else 'MISSED'}")
        print(f"  reading it back (a download): {r:.2f} s ({size / 1e6 / r:,.0f} MB/s)")
        env = subprocess_env(settings)
        seconds, rss, code = peak_rss_mb_of([sys.executable, "-m", "bench.transfer_store", "--child", url,
                                             str(work / "instance")], env)
        print(f"  export into the store + read back, as a process: {seconds:.2f} s wall (incl. start-up), "
              f"peak RSS {rss:.0f} MB (target < 150 MB) {'OK' if rss < 150 and code == 0 else 'MISSED'}")
        if args.storage_variants:
            for variant in ("extended + pglz (PostgreSQL's default)", "external (uncompressed, the migration's fallback)",
                            "extended + lz4 (the migration's choice)"):
                set_storage(dsn, variant)
                base_v, times = [], []
                for _ in range(args.runs):  # each against a baseline of the same moment
                    with Timer() as t:
                        baseline(dsn, work / "baseline.csv")
                    base_v.append(t.seconds)
                    with Timer() as t:
                        export_to_store(app)
                    times.append(t.seconds)
                    stored = stored_mb(dsn)
                v, bv = statistics.median(times), statistics.median(base_v)
                print(f"  chunk storage {variant}: {v:.2f} s, {v / bv:.2f}x COPY ({bv:.2f} s), "
                      f"stored as {stored:.0f} MB")
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
