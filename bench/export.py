"""Benchmark: `flask export supporters` against the database's own CSV export, same columns.

PostgreSQL: our export (COPY with formula defusing and ISO timestamps in the SELECT) against a bare
`COPY (SELECT …) TO STDOUT WITH CSV` of the same columns through psycopg. Target: within 1.25x, and
the `flask export` process's peak RSS under 150 MB.
SQLite: our export against the `sqlite3` shell's `-csv` output of the same query. Target: within 2.5x.

    .venv/bin/python -m bench.export --rows 1000000 [--engine postgresql|sqlite|both] [--runs 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

from bench.transfer_data import (
    Timer,
    fill_postgres,
    fill_sqlite,
    make_app,
    peak_rss_mb_of,
    scratch_dir,
    start_postgres,
    subprocess_env,
)

FIELDS = ["id", "email", "name", "kind", "language", "country", "status", "tags", "created_at"]
TAGS_SQL = {
    "postgresql": "(SELECT string_agg(t.name, ',') FROM supporter_tags st JOIN tags t ON t.id = st.tag_id "
                  "WHERE st.supporter_id = s.id)",
    "sqlite": "(SELECT group_concat(t.name, ',') FROM supporter_tags st JOIN tags t ON t.id = st.tag_id "
              "WHERE st.supporter_id = s.id)",
}


def baseline_select(dialect: str) -> str:
    columns = ", ".join(TAGS_SQL[dialect] + " AS tags" if f == "tags" else f"s.{f}" for f in FIELDS)
    return f"SELECT {columns} FROM supporters s WHERE s.status <> 'erased' ORDER BY s.id"  # noqa: S608


def ours(app, target: Path) -> int:
    from supporters.transfer import export_supporters

    with app.app_context(), open(target, "wb") as out:
        return export_supporters(out, fmt="csv", fields=",".join(FIELDS))


def lines(path: Path) -> int:
    with open(path, "rb") as fh:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))


def report(name: str, base: list[float], mine: list[float], rows: int, target: float) -> float:
    b, m = statistics.median(base), statistics.median(mine)
    ratio = m / b
    print(f"  {name}: baseline {b:.2f} s ({rows / b:,.0f} rows/s), flask export {m:.2f} s ({rows / m:,.0f} rows/s), "
          f"ratio {ratio:.2f}x (target <= {target}x) {'OK' if ratio <= target else 'MISSED'}")
    return ratio


def bench_postgresql(rows: int, runs: int) -> None:
    import psycopg

    work = scratch_dir("sp-bench-export-")
    server, url = start_postgres()
    try:
        app, settings = make_app(url, work / "instance")
        with Timer() as t:
            fill_postgres(url, rows)
        print(f"PostgreSQL: generated {rows:,} supporters with COPY in {t.seconds:.1f} s")
        dsn = url.replace("postgresql+psycopg://", "postgresql://")
        base, mine = [], []
        for _ in range(runs):
            with Timer() as t, psycopg.connect(dsn) as conn, conn.cursor() as cur, \
                    open(work / "baseline.csv", "wb") as out:
                with cur.copy(f"COPY ({baseline_select('postgresql')}) TO STDOUT WITH (FORMAT csv, HEADER)") as copy:
                    for chunk in copy:
                        out.write(chunk)
            base.append(t.seconds)
            with Timer() as t:
                n = ours(app, work / "ours.csv")
            mine.append(t.seconds)
        assert n == rows and lines(work / "baseline.csv") == lines(work / "ours.csv"), "row counts differ"
        report("export CSV", base, mine, rows, 1.25)
        env = subprocess_env(settings)
        cmd = [sys.executable, "-m", "flask", "--app", "wsgi", "export", "supporters", "--quiet",
               "-o", str(work / "cli.csv")]
        seconds, rss, code = peak_rss_mb_of(cmd, env)
        print(f"  `flask export supporters` as a process: {seconds:.2f} s wall (incl. start-up), "
              f"peak RSS {rss:.0f} MB (target < 150 MB) {'OK' if rss < 150 and code == 0 else 'MISSED'}")
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


def ensure_sqlite3_shell() -> str:
    found = shutil.which("sqlite3")
    if found:
        return found
    import os

    if os.geteuid() == 0:
        subprocess.run(["apt-get", "install", "-y", "-qq", "sqlite3"], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    found = shutil.which("sqlite3")
    if not found:
        raise SystemExit("the sqlite3 shell is missing: apt-get install sqlite3")
    return found


def bench_sqlite(rows: int, runs: int) -> None:
    shell = ensure_sqlite3_shell()
    work = scratch_dir("sp-bench-export-sqlite-")
    try:
        db_path = work / "bench.db"
        app, _settings = make_app(f"sqlite:///{db_path}", work / "instance")
        with Timer() as t:
            fill_sqlite(str(db_path), rows)
        print(f"SQLite: generated {rows:,} supporters in {t.seconds:.1f} s")
        base, mine = [], []
        for _ in range(runs):
            with Timer() as t, open(work / "baseline.csv", "wb") as out:
                subprocess.run([shell, "-csv", "-header", str(db_path), baseline_select("sqlite")], stdout=out,
                               check=True)
            base.append(t.seconds)
            with Timer() as t:
                n = ours(app, work / "ours.csv")
            mine.append(t.seconds)
        assert n == rows and lines(work / "baseline.csv") == lines(work / "ours.csv"), "row counts differ"
        report("export CSV", base, mine, rows, 2.5)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3, help="Alternating runs of each; the median counts.")
    parser.add_argument("--engine", choices=["postgresql", "sqlite", "both"], default="both")
    args = parser.parse_args(argv)
    if args.engine in ("postgresql", "both"):
        bench_postgresql(args.rows, args.runs)
    if args.engine in ("sqlite", "both"):
        bench_sqlite(args.rows, args.runs)


if __name__ == "__main__":
    main()
