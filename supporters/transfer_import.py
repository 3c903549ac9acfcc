"""Safe, fast imports of supporter lists from CSV.

The file is checked as a whole before anything is written (readable, one encoding, a header with
an email column, a known mapping), then read row by row: a row that fails validation goes to the
reject file with its line number and the reason, a valid row is staged. Each batch of staged rows
becomes one transaction with a handful of set-based statements (suppressed addresses dropped,
`INSERT … SELECT … ON CONFLICT DO NOTHING`, consent events and tags for the new rows), so the
database never holds half a batch, and a re-run of the same file inserts nothing twice.

Nobody is imported without a stated consent basis: either evidence that these people agreed
(recorded as ConsentEvents with method "import") or `send_opt_in`, which imports them as pending
and queues the double-opt-in mail. Existing supporters are only touched with `update`, and their
status never changes (an unsubscribed or erased person is never made active by an import).

The reading side lives in supporters.import_source (the file as a whole) and
supporters.import_rows (row by row), the staging table in supporters.import_stage; this module
runs them: a reader thread feeds batches to writer threads, and rejected rows go to a file.
"""

from __future__ import annotations

import csv
import itertools
import os
import queue
import threading
from collections.abc import Callable

import sqlalchemy as sa
from flask import current_app

from core import metrics
from core.db import utcnow
from core.extensions import db
from supporters.import_rows import RowChecker, RowRejected, read_rows
from supporters.import_source import (
    ImportAborted,
    ImportOptions,
    ImportSummary,
    SourceFile,
    check_options,
    inspect_file,
    resolve_columns,
    sniff_delimiter,
)
from supporters.import_stage import Stage
from supporters.models import Suppression
from supporters.transfer import FORMULA_STARTS


def _enqueue_opt_in(ids: list[int]) -> int:
    """Queue the double-opt-in mails of a committed batch: one throttled job per OPT_IN_BATCH people."""
    from supporters.mail_jobs import OPT_IN_BATCH, send_confirmations

    send_confirmations.enqueue_many([(ids[start:start + OPT_IN_BATCH],)
                                     for start in range(0, len(ids), OPT_IN_BATCH)])
    return len(ids)


def import_supporters(opts: ImportOptions, progress: Callable[[int], None] | None = None,
                      on_ready: Callable[[SourceFile, ImportSummary], None] | None = None) -> ImportSummary:
    """Import a CSV file; raises ImportAborted when the file as a whole cannot be imported."""
    check_options(opts)
    src = inspect_file(opts.path, opts.encoding)
    summary = ImportSummary(encoding=src.encoding)
    if src.note:
        summary.notes.append(src.note)
    delimiter = opts.delimiter or sniff_delimiter(src.path, src.encoding)
    summary.delimiter = delimiter
    tag_names = sorted({t.strip() for t in opts.tags})
    db.session.rollback()  # the import works on its own connection: end any open transaction here
    hash_emails = db.session.scalar(sa.select(Suppression.id).limit(1)) is not None
    db.session.rollback()

    state: dict = {}

    def take_header(header: list[str]) -> int:
        positions, ignored = resolve_columns(header, opts.mapping)
        state["positions"], state["header"] = positions, header
        summary.ignored_columns = ignored
        return len(header)

    rows = read_rows(src, delimiter, take_header)
    first = next(rows, None)  # reads the header: a bad header aborts before anything is written
    if "positions" not in state:
        raise ImportAborted(f"{src.path}: the file is empty")
    check = RowChecker(state["positions"], opts, active=not opts.send_opt_in, hash_emails=hash_emails)
    if on_ready:
        on_ready(src, summary)

    rejects_path = opts.rejects_path or f"{opts.path}.rejects.csv"
    if not opts.rejects_path and os.path.exists(rejects_path):
        os.unlink(rejects_path)  # our own file from an earlier run: it would describe another run
    rejects = _RejectFile(rejects_path, state["header"])
    seen: set[int] = set()  # hashes of normalised addresses already taken from this file
    with_tag_column = "tags" in state["positions"]

    engine = db.engine
    app = current_app._get_current_object()
    # SQLite has one writer at a time: a second connection would only wait for the lock.
    writers = 1 if engine.dialect.name == "sqlite" else opts.writers
    work: queue.Queue = queue.Queue(maxsize=2)
    stop = threading.Event()

    def produce() -> None:
        """Read, validate and deduplicate rows into batches (runs beside the database work)."""
        batch: list[tuple] = []
        read = 0

        def put(item) -> None:
            while not stop.is_set():
                try:
                    work.put(item, timeout=0.2)
                    return
                except queue.Full:
                    continue

        try:
            items = itertools.chain([first] if first is not None else [], rows)
            for line, row, reason in items:
                if stop.is_set():
                    return
                read += 1
                if reason is None:
                    try:
                        values = check(row)
                    except RowRejected as exc:
                        reason = str(exc)
                    else:
                        key = hash(values[1])
                        if key in seen:
                            summary.duplicate_in_file += 1
                            continue
                        seen.add(key)
                        batch.append((line, *values))
                        if len(batch) >= opts.batch_size:
                            put((batch, read))
                            batch, read = [], 0
                        continue
                summary.rejected += 1
                rejects.write(line, reason, row)
            put((batch, read))
            for _ in range(writers):
                put(None)
        except BaseException as exc:  # noqa: BLE001 - handed to a writer, which re-raises it
            put(exc)

    lock = threading.Lock()
    failures: list[BaseException] = []

    def write_batches() -> None:
        """Take batches off the queue and write each in its own transaction, on its own connection."""
        try:
            with app.app_context(), engine.connect() as conn:
                stage = Stage(conn, opts, tag_names, set(state["positions"]),
                              per_transaction=app.config["DATABASE_POOL_MODE"] == "transaction")
                stage.create()
                try:
                    while not stop.is_set():
                        try:
                            item = work.get(timeout=0.2)
                        except queue.Empty:
                            continue
                        if item is None:
                            return
                        if isinstance(item, BaseException):
                            raise item
                        batch, read = item
                        counts = _write_batch(stage, batch, opts, with_tag_column) if batch else {}
                        with lock:
                            summary.rows += read
                            for name, value in counts.items():
                                setattr(summary, name, getattr(summary, name) + value)
                            if progress:
                                progress(read)
                finally:
                    if not conn.invalidated:
                        stage.drop()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the calling thread
            with lock:
                failures.append(exc)
            stop.set()

    # One thread parses the file into batches while `writers` threads write them: parsing and
    # the database overlap (the driver releases the GIL while it waits for the server), and on
    # PostgreSQL two writers keep both cores of the server busy.
    producer = threading.Thread(target=produce, name="import-reader", daemon=True)
    threads = [threading.Thread(target=write_batches, name=f"import-writer-{i}", daemon=True)
               for i in range(writers)]
    producer.start()
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join()
    finally:
        stop.set()
        producer.join()
        rejects.close()
    if failures:
        raise failures[0]
    summary.rejects_path = rejects.path if rejects.count else None
    for outcome in ("inserted", "updated", "duplicate_in_file", "existing", "rejected", "suppressed"):
        if count := getattr(summary, outcome):
            metrics.TRANSFER_ROWS.labels("import", outcome).inc(count)
    return summary


def _write_batch(stage: Stage, batch: list[tuple], opts: ImportOptions, with_tag_column: bool) -> dict[str, int]:
    """Write one batch in one transaction (rolled back on any error, and always in a dry run)."""
    conn = stage.conn
    now = utcnow()
    transaction = conn.begin()
    try:
        stage.load(batch)
        suppressed = stage.drop_suppressed() if batch[0][9] is not None else 0
        updated = stage.update_existing(now) if opts.update else 0
        tags = bool(stage.tag_names or with_tag_column)
        if tags:
            stage.ensure_tags(now, with_tag_column)
        inserted = stage.insert_new(now, need_ids=tags or opts.send_opt_in, with_tag_column=with_tag_column)
        if tags:
            stage.tag_rows(with_tag_column)
        new_ids = stage.new_ids() if opts.send_opt_in and not opts.dry_run else []
    except BaseException:
        transaction.rollback()
        raise
    if opts.dry_run:
        transaction.rollback()
    else:
        transaction.commit()
    counts = {"suppressed": suppressed, "updated": updated, "inserted": inserted,
              "existing": len(batch) - suppressed - inserted}
    if new_ids:
        # After the commit: the job re-reads rows that now exist.
        counts["opt_in_queued"] = _enqueue_opt_in(new_ids)
    return counts


def _defuse(cell: str) -> str:
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


class _RejectFile:
    """Rejected rows with their line number and reason, written only if there are any."""

    def __init__(self, path: str, header: list[str]):
        self.path = path
        self.header = header
        self.count = 0
        self._fh = None
        self._writer = None

    def write(self, line: int, reason: str, row: list[str] | None) -> None:
        if self._writer is None:
            self._fh = open(self.path, "w", encoding="utf-8", newline="")  # noqa: SIM115 - closed in close()
            self._writer = csv.writer(self._fh)
            self._writer.writerow(["line", "reason", *self.header])
        # Defused like exports: the reject file is opened in a spreadsheet to fix the rows.
        self._writer.writerow([line, reason, *(_defuse(cell) for cell in row or [])])
        self.count += 1

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()

