"""Exports and imports started from the API: a row per job in the database, the work in an RQ job.

The row is the source of truth (status, counts, the result file); Redis only carries the job id.
The job re-reads the row and is safe to run twice: an export rewrites its file, an import of the
same file is a no-op for what is already in. The files themselves live in the transfer store
(core.blobs: the instance folder, or the database that every host reaches); `file_path` and the
summary's `rejects_path` hold their keys in it.
"""

from __future__ import annotations

import enum
import secrets
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import Mapped, mapped_column

from core.blobs import BlobMissing, get_store
from core.db import BigIntPK, str_enum, utcnow
from core.errors import DomainError
from core.extensions import db
from core.queues import job
from supporters.privacy import on_erase

DOWNLOAD_PURPOSE = "transfer-download"
DOWNLOAD_MAX_AGE = 3600  # seconds a download link stays valid (TRANSFER_LINK_MAX_AGE overrides)


class TransferKind(enum.StrEnum):
    EXPORT_SUPPORTERS = "export_supporters"
    EXPORT_CONSENTS = "export_consents"
    IMPORT_SUPPORTERS = "import_supporters"


class TransferStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class TransferJob(db.Model):
    __tablename__ = "transfer_jobs"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    kind: Mapped[TransferKind] = mapped_column(str_enum(TransferKind, "transfer_kind", length=30))
    status: Mapped[TransferStatus] = mapped_column(str_enum(TransferStatus, "transfer_status"),
                                                   default=TransferStatus.QUEUED)
    params: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    # The key (core.blobs) of the export's result, or of an import's upload (gone once read).
    file_path: Mapped[str | None] = mapped_column(sa.String(500))
    rows: Mapped[int | None]
    summary: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    error: Mapped[str | None] = mapped_column(sa.String(1000))
    requested_by: Mapped[str | None] = mapped_column(sa.String(254))
    # Who may read the job through the API besides admins (None: started from the CLI).
    requested_by_user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("admin_users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    @property
    def result_key(self) -> str | None:
        """The stored file a download link serves: the export, or an import's reject file."""
        if self.status is not TransferStatus.DONE or not self.file_path:
            return None
        key = (self.summary or {}).get("rejects_path") if self.kind is TransferKind.IMPORT_SUPPORTERS \
            else self.file_path
        return key if key and get_store().exists(key) else None


def create_job(kind: TransferKind, params: dict, requested_by: str | None, file_path: str | None = None,
               requested_by_user_id: int | None = None) -> TransferJob:
    record = TransferJob(kind=kind, params=params, requested_by=requested_by, file_path=file_path,
                         requested_by_user_id=requested_by_user_id)
    db.session.add(record)
    db.session.flush()
    if kind is not TransferKind.IMPORT_SUPPORTERS:
        suffix = "jsonl" if params.get("format") == "jsonl" else "csv"
        # Unique even if an id is ever used again (SQLite reuses the highest id once its row is gone).
        record.file_path = f"{kind.value}-{record.id}-{secrets.token_hex(6)}.{suffix}"
    return record


def upload_key() -> str:
    """A fresh, unguessable key for an import's upload."""
    return f"import-{secrets.token_hex(12)}.csv"


def start(record: TransferJob) -> None:
    """Queue the work; call after the row is committed (the job re-reads it)."""
    run_transfer_job.enqueue(record.id)


@job("default", job_timeout=3600)
def run_transfer_job(job_id: int) -> str:
    record = db.session.get(TransferJob, job_id)
    if record is None or record.status is TransferStatus.DONE:
        return "nothing to do"
    record.status, record.started_at, record.error = TransferStatus.RUNNING, utcnow(), None
    db.session.commit()
    try:
        rows, summary = _perform(record)
    except DomainError as exc:
        db.session.rollback()
        _finish(job_id, TransferStatus.FAILED, error=exc.detail[:1000])
        return "failed"
    except BlobMissing:
        db.session.rollback()
        _finish(job_id, TransferStatus.FAILED, error="the uploaded file is gone (deleted by an erasure or expired)")
        return "failed"
    except Exception:
        db.session.rollback()
        _finish(job_id, TransferStatus.FAILED, error="internal error; the worker log has the details")
        raise
    _finish(job_id, TransferStatus.DONE, rows=rows, summary=summary)
    return "done"


def _forget_upload(record: TransferJob) -> None:
    """An import's uploaded file is personal data: gone once the job has read it (its rejects stay)."""
    if record.kind is TransferKind.IMPORT_SUPPORTERS and record.file_path:
        get_store().delete(record.file_path)


def _forget_files(record: TransferJob) -> None:
    store = get_store()
    rejects = (record.summary or {}).get("rejects_path")
    for key in (record.file_path, rejects):
        if key:
            store.delete(key)
    if rejects:
        record.summary = {**record.summary, "rejects_path": None}


@on_erase
def forget_transfer_files(_supporter) -> None:
    """Exports and reject files are snapshots of personal data: an erasure deletes all finished ones.

    They exist for a download within the hour; keeping any of them would keep the erased person.
    """
    finished = (TransferStatus.DONE, TransferStatus.FAILED)
    for record in db.session.scalars(sa.select(TransferJob).where(TransferJob.status.in_(finished))):
        _forget_files(record)


def expire_transfer_files(now: datetime | None = None) -> int:
    """Delete the files of jobs finished more than TRANSFER_KEEP_HOURS ago; the caller commits.

    Runs from the sweeper of every worker, so the files leave whichever storage holds them.
    """
    keep = timedelta(hours=current_app.config["TRANSFER_KEEP_HOURS"])
    cutoff = (now or utcnow()) - keep
    finished = (TransferStatus.DONE, TransferStatus.FAILED)
    expired = db.session.scalars(sa.select(TransferJob).where(
        TransferJob.status.in_(finished), TransferJob.finished_at < cutoff, TransferJob.file_path.is_not(None),
    ).order_by(TransferJob.id).limit(1000)).all()
    for record in expired:
        _forget_files(record)
        record.file_path = None  # nothing left to serve, nothing to look for next time
    return len(expired)


def _finish(job_id: int, status: TransferStatus, **values) -> None:
    record = db.session.get(TransferJob, job_id)
    _forget_upload(record)
    record.status, record.finished_at = status, datetime.now(UTC)
    for name, value in values.items():
        setattr(record, name, value)
    db.session.commit()


def _perform(record: TransferJob) -> tuple[int, dict | None]:
    from supporters import transfer
    from supporters.transfer_import import ImportOptions, import_supporters

    p = dict(record.params)
    store = get_store()
    if record.kind is TransferKind.IMPORT_SUPPORTERS:
        db.session.commit()
        # The import reads its file several times (encoding, delimiter, rows): a path on this host.
        # With shared storage that is a temporary copy; the rejects go back to the store.
        with store.materialize(record.file_path) as path, tempfile.TemporaryDirectory(prefix="sp-rejects-") as tmp:
            opts = ImportOptions(
                path=str(path), mapping=p.get("mapping") or {}, encoding=p.get("encoding"),
                delimiter=p.get("delimiter"), kind=p.get("kind"), language=p.get("language"),
                tags=p.get("tags") or [], consent_note=p.get("consent_note"),
                consented_at=datetime.fromisoformat(p["consented_at"]) if p.get("consented_at") else None,
                send_opt_in=bool(p.get("send_opt_in")), update=bool(p.get("update")),
                dry_run=bool(p.get("dry_run")), rejects_path=str(Path(tmp) / "rejects.csv"))
            try:
                summary = import_supporters(opts)
            except DomainError as exc:
                # The upload's place on a host is nobody's business: name it as the person knows it.
                exc.detail = exc.detail.replace(str(path), "the uploaded file")
                raise
            if summary.rejects_path:
                key = f"{Path(record.file_path).stem}.rejects.csv"
                store.put_file(key, Path(summary.rejects_path))
                summary.rejects_path = key
        fields = ("rows", "inserted", "updated", "duplicate_in_file", "existing", "rejected", "suppressed",
                  "opt_in_queued", "rejects_path", "ignored_columns", "notes")
        return summary.inserted, {f: getattr(summary, f) for f in fields}
    fmt = p.get("format", "csv")
    db.session.commit()
    with store.writer(record.file_path) as out:
        if record.kind is TransferKind.EXPORT_CONSENTS:
            since = datetime.fromisoformat(p["since"]) if p.get("since") else None
            rows = transfer.export_consents(out, fmt=fmt, since=since)
        else:
            selection = transfer.Selection(**(p.get("selection") or {}))
            rows = transfer.export_supporters(out, fmt=fmt, fields=p.get("fields"), selection=selection)
    return rows, None
