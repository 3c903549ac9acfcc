"""Generate N supporters with tags into a migrated database, fast (PostgreSQL: COPY).

    .venv/bin/python -m bench.generate postgresql+psycopg://postgres@127.0.0.1:5432/db --rows 1000000

Reusable by other benches: `generate(url, rows, seed)` returns a summary dict (tag ids by name, counts).
The data are deterministic for a seed: 20 tags with skewed popularity (`t01` on ~30 % of supporters,
`t20` on ~0.5 %), kinds and statuses in realistic proportions, ids 1..N in join order. On PostgreSQL
the `supporters.tag_ids` index column is written directly (the sync trigger is disabled during the
load and re-enabled afterwards), then the tables are analysed.
"""

from __future__ import annotations

import argparse
import io
import random
import time
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

KINDS = (("fan", 0.6), ("former_employee", 0.15), ("supplier", 0.1), ("partner", 0.1), ("other", 0.05))
STATUSES = (("active", 0.8), ("pending", 0.1), ("unsubscribed", 0.08), ("erased", 0.02))
COUNTRIES = ("DE", "AT", "CH", "GB", "FR", "NL", "US", None)
# Tag popularity: t01 ~30 %, falling off to t20 ~0.5 %.
TAG_SHARES = [0.30, 0.20, 0.15, 0.10, 0.08, 0.06, 0.05, 0.04, 0.03, 0.03,
              0.02, 0.02, 0.02, 0.015, 0.015, 0.01, 0.01, 0.01, 0.005, 0.005]
TAG_NAMES = [f"t{i:02d}" for i in range(1, len(TAG_SHARES) + 1)]
START = datetime(2020, 1, 1, tzinfo=UTC)


def _choose(rng: random.Random, table):
    x, acc = rng.random(), 0.0
    for value, share in table:
        acc += share
        if x < acc:
            return value
    return table[-1][0]


def _rows(rows: int, seed: int, tag_ids: list[int]):
    """Yield (supporter tuple, [tag ids]) in id order."""
    rng = random.Random(seed)
    span = (datetime(2026, 1, 1, tzinfo=UTC) - START).total_seconds()
    for i in range(1, rows + 1):
        kind, status = _choose(rng, KINDS), _choose(rng, STATUSES)
        tags = [tag_ids[t] for t, share in enumerate(TAG_SHARES) if rng.random() < share]
        created = START + timedelta(seconds=span * i / (rows + 1))
        erased = status == "erased"
        email = None if erased else f"person{i}@example.org"
        yield (email, email, None if erased else f"Person {i}", kind, rng.choice(("de", "en")),
                None if erased else rng.choice(COUNTRIES), status, None if erased else f"r{seed}x{i}",
                round(rng.random() * 100, 2), "bench", created, created), tags


COLUMNS = ("email", "email_normalized", "name", "kind", "language", "country", "status", "referral_code",
           "engagement_score", "source", "created_at", "updated_at")


def generate(url: str, rows: int, seed: int = 1) -> dict:
    """Fill the (migrated, empty) database at `url` with `rows` supporters and 20 tags."""
    engine = sa.create_engine(url)
    started = time.perf_counter()
    try:
        with engine.begin() as conn:
            now = datetime.now(UTC)
            tag_table = sa.table("tags", sa.column("name"), sa.column("public"), sa.column("created_at"))
            conn.execute(tag_table.insert(), [{"name": n, "public": i < 5,
                                               "created_at": now if engine.dialect.name == "postgresql"
                                               else now.replace(tzinfo=None)}
                                              for i, n in enumerate(TAG_NAMES)])
            ids = dict(conn.execute(sa.text("SELECT name, id FROM tags")).all())
            tag_ids = [ids[n] for n in TAG_NAMES]
            if engine.dialect.name == "postgresql":
                _load_postgresql(conn, rows, seed, tag_ids)
            else:
                _load_sqlite(conn, rows, seed, tag_ids)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE" if engine.dialect.name == "postgresql" else "ANALYZE"))
        return {"rows": rows, "seed": seed, "tags": ids, "seconds": round(time.perf_counter() - started, 1)}
    finally:
        engine.dispose()


def _load_postgresql(conn, rows: int, seed: int, tag_ids: list[int]) -> None:
    raw = conn.connection.driver_connection  # psycopg 3
    conn.execute(sa.text("ALTER TABLE supporter_tags DISABLE TRIGGER USER"))
    with raw.cursor() as cur:
        with cur.copy(f"COPY supporters (id, {', '.join(COLUMNS)}, tag_ids) FROM STDIN") as sup, \
                io.StringIO() as tag_buffer:
            for i, (row, tags) in enumerate(_rows(rows, seed, tag_ids), start=1):
                sup.write_row((i, *row, "{" + ",".join(map(str, sorted(tags))) + "}"))
                for t in tags:
                    tag_buffer.write(f"{t}\t{i}\n")
            tag_data = tag_buffer.getvalue()
        with cur.copy("COPY supporter_tags (tag_id, supporter_id) FROM STDIN") as copy:
            copy.write(tag_data)
        cur.execute("SELECT setval(pg_get_serial_sequence('supporters', 'id'), %s)", (rows,))
    conn.execute(sa.text("ALTER TABLE supporter_tags ENABLE TRIGGER USER"))


def _load_sqlite(conn, rows: int, seed: int, tag_ids: list[int]) -> None:
    raw = conn.connection.driver_connection
    # Column names are this module's constants, never input.
    insert = f"INSERT INTO supporters (id, {', '.join(COLUMNS)}) VALUES ({', '.join('?' * (len(COLUMNS) + 1))})"  # noqa: S608
    batch, tag_batch = [], []

    def flush():
        raw.executemany(insert, batch)
        raw.executemany("INSERT INTO supporter_tags (tag_id, supporter_id) VALUES (?, ?)", tag_batch)
        batch.clear(), tag_batch.clear()

    for i, (row, tags) in enumerate(_rows(rows, seed, tag_ids), start=1):
        created = row[-1].replace(tzinfo=None).isoformat(" ")
        batch.append((i, *row[:-2], created, created))
        tag_batch.extend((t, i) for t in tags)
        if len(batch) >= 50_000:
            flush()
    flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="SQLAlchemy URL of a migrated, empty database")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(generate(args.url, args.rows, args.seed))


if __name__ == "__main__":
    main()
