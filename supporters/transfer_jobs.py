"""Exports and imports started from the API: a row per job in the database, the work in an RQ job.

The row is the source of truth (status, counts, the result file); Redis only carries the job id.
The job re-reads the row and is safe to run twice: an export rewrites its file, an import of the
same file is a no-op for what is already in.
"""

from __future__ import annotations

import enum
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import Mapped, mapped_column

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
    # The export's result, or the uploaded file of an import (its rejects sit next to it).
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
    def result_file(self) -> Path | None:
        """The file a download link serves: the export, or an import's reject file."""
        if self.status is not TransferStatus.DONE or not self.file_path:
            return None
        if self.kind is TransferKind.IMPORT_SUPPORTERS:
            rejects = (self.summary or {}).get("rejects_path")
            return Path(rejects) if rejects and os.path.exists(rejects) else None
        return Path(self.file_path) if os.path.exists(self.file_path) else None


def transfer_dir() -> Path:
    path = Path(current_app.instance_path) / "transfers"
    path.mkdir(parents=True, exist_ok=True)
    return path


def create_job(kind: TransferKind, params: dict, requested_by: str | None, file_path: str | None = None,
               requested_by_user_id: int | None = None) -> TransferJob:
    record = TransferJob(kind=kind, params=params, requested_by=requested_by, file_path=file_path,
                         requested_by_user_id=requested_by_user_id)
    db.session.add(record)
    db.session.flush()
    if kind is not TransferKind.IMPORT_SUPPORTERS:
        suffix = "jsonl" if params.get("format") == "jsonl" else "csv"
        record.file_path = str(transfer_dir() / f"{kind.value}-{record.id}.{suffix}")
    return record


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
        # The upload's place on the server is nobody's business: name it as the person knows it.
        error = exc.detail.replace(record.file_path, "the uploaded file") if record.file_path else exc.detail
        _finish(job_id, TransferStatus.FAILED, error=error[:1000])
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
        Path(record.file_path).unlink(missing_ok=True)


@on_erase
def forget_transfer_files(_supporter) -> None:
    """Exports and reject files are snapshots of personal data: an erasure deletes all finished ones.

    They exist for a download within the hour; keeping any of them would keep the erased person.
    """
    finished = (TransferStatus.DONE, TransferStatus.FAILED)
    for record in db.session.scalars(sa.select(TransferJob).where(TransferJob.status.in_(finished))):
        rejects = (record.summary or {}).get("rejects_path")
        for path in (record.file_path, rejects):
            if path:
                Path(path).unlink(missing_ok=True)
        if rejects:
            record.summary = {**record.summary, "rejects_path": None}


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
    if record.kind is TransferKind.IMPORT_SUPPORTERS:
        opts = ImportOptions(
            path=record.file_path, mapping=p.get("mapping") or {}, encoding=p.get("encoding"),
            delimiter=p.get("delimiter"), kind=p.get("kind"), language=p.get("language"), tags=p.get("tags") or [],
            consent_note=p.get("consent_note"),
            consented_at=datetime.fromisoformat(p["consented_at"]) if p.get("consented_at") else None,
            send_opt_in=bool(p.get("send_opt_in")), update=bool(p.get("update")), dry_run=bool(p.get("dry_run")))
        db.session.commit()
        summary = import_supporters(opts)
        fields = ("rows", "inserted", "updated", "duplicate_in_file", "existing", "rejected", "suppressed",
                  "opt_in_queued", "rejects_path", "ignored_columns", "notes")
        return summary.inserted, {f: getattr(summary, f) for f in fields}
    target = Path(record.file_path)
    partial = target.with_name(f".{target.name}.partial")
    fmt = p.get("format", "csv")
    db.session.commit()
    with open(partial, "wb") as out:
        if record.kind is TransferKind.EXPORT_CONSENTS:
            since = datetime.fromisoformat(p["since"]) if p.get("since") else None
            rows = transfer.export_consents(out, fmt=fmt, since=since)
        else:
            selection = transfer.Selection(**(p.get("selection") or {}))
            rows = transfer.export_supporters(out, fmt=fmt, fields=p.get("fields"), selection=selection)
    os.replace(partial, target)
    return rows, None
