"""Long exports and imports as RQ jobs: start them, poll `/jobs/{id}`, fetch the result by a signed link.

The download link carries its own authorisation (a purpose-bound, expiring signature of the job
id), so it can be handed to a browser or a script without the bearer token.
"""

from __future__ import annotations

import os
from datetime import UTC, timedelta

from flask import Response, current_app, request, send_file, url_for
from marshmallow import EXCLUDE, INCLUDE, Schema, fields, validate

from api import bp
from api.auth import current_principal, require
from api.conventions import check_text, load_json, public_url
from api.errors import problem
from api.openapi import doc
from api.schemas import MAX_INT_ID, Text, Time
from core.accounts import record_audit
from core.blobs import BlobMissing, get_store
from core.errors import ValidationFailed
from core.extensions import db
from core.signing import ExpiredToken, InvalidToken, make_token, read_token
from supporters import transfer
from supporters.models import LANGUAGES, SupporterKind, SupporterStatus
from supporters.transfer_jobs import (
    DOWNLOAD_MAX_AGE,
    DOWNLOAD_PURPOSE,
    TransferJob,
    TransferKind,
    create_job,
    start,
    upload_key,
)

FORM_OVERHEAD = 1024 * 1024  # the multipart envelope and the option fields around the CSV


class SupporterExportSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    format = fields.String(load_default="csv", validate=validate.OneOf(transfer.FORMATS))
    fields_ = fields.List(fields.String(), data_key="fields", load_default=None)
    filter = fields.Raw(load_default=None)
    segment_id = fields.Integer(load_default=None, validate=validate.Range(min=1, max=MAX_INT_ID))
    status = fields.List(fields.String(validate=validate.OneOf([s.value for s in SupporterStatus])), load_default=list)
    kind = fields.List(fields.String(validate=validate.OneOf([k.value for k in SupporterKind])), load_default=list)
    tags = fields.List(Text(max=100), load_default=list)
    language = fields.List(fields.String(validate=validate.OneOf(LANGUAGES)), load_default=list)
    country = fields.List(fields.String(validate=validate.Length(equal=2)), load_default=list)
    joined_after = fields.String(load_default=None)
    joined_before = fields.String(load_default=None)


class ConsentExportSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    format = fields.String(load_default="csv", validate=validate.OneOf(transfer.FORMATS))
    since = Time(load_default=None, default_timezone=UTC)


class ImportSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    map = fields.String(load_default=None)
    encoding = fields.String(load_default=None)
    delimiter = fields.String(load_default=None)
    kind = fields.String(load_default=None)
    language = fields.String(load_default=None)
    tag = fields.List(fields.String(), load_default=list)
    consent_note = fields.String(load_default=None)
    consented_at = fields.String(load_default=None)
    send_opt_in = fields.Boolean(load_default=False)
    update = fields.Boolean(load_default=False)
    dry_run = fields.Boolean(load_default=False)


class _Open(Schema):
    class Meta:
        unknown = INCLUDE


class DownloadOut(_Open):
    url = fields.String(required=True, metadata={"description": "signed; needs no bearer token"})
    expires_at = fields.DateTime(required=True)


class JobOut(_Open):
    id = fields.Integer(required=True)
    kind = fields.String(required=True, validate=validate.OneOf([k.value for k in TransferKind]))
    status = fields.String(required=True)
    rows = fields.Integer(allow_none=True, required=True)
    summary = fields.Dict(allow_none=True, required=True)
    error = fields.String(allow_none=True, required=True)
    created_at = fields.DateTime(required=True)
    started_at = fields.DateTime(allow_none=True, required=True)
    finished_at = fields.DateTime(allow_none=True, required=True)
    download = fields.Nested(DownloadOut, allow_none=True, required=True)


class DownloadQuery(Schema):
    token = fields.String(required=True, metadata={"description": "from the job's `download.url`"})


def job_body(record: TransferJob) -> dict:
    body = {
        "id": record.id, "kind": record.kind.value, "status": record.status.value, "rows": record.rows,
        "summary": _public_summary(record.summary), "error": record.error,
        "created_at": record.created_at.isoformat(),
        "started_at": record.started_at.isoformat() if record.started_at else None,
        "finished_at": record.finished_at.isoformat() if record.finished_at else None,
        "download": None,
    }
    if record.result_key is not None:
        max_age = current_app.config.get("TRANSFER_LINK_MAX_AGE", DOWNLOAD_MAX_AGE)
        token = make_token(DOWNLOAD_PURPOSE, {"j": record.id})
        from core.db import utcnow

        body["download"] = {
            "url": public_url(url_for("api.download_transfer", job_id=record.id, token=token)),
            "expires_at": (utcnow() + timedelta(seconds=max_age)).isoformat(),
        }
    return body


def _public_summary(summary: dict | None) -> dict | None:
    if not summary:
        return summary
    # Server paths are nobody's business; whether there is a reject file is.
    return {k: v for k, v in summary.items() if k != "rejects_path"} | {"has_rejects": bool(summary.get("rejects_path"))}


def _accepted(record: TransferJob):
    body = job_body(record)
    return body, 202, {"Location": url_for("api.get_transfer_job", job_id=record.id)}


def _label() -> str | None:
    principal = current_principal()
    return principal.label if principal else None


def _owner() -> dict:
    principal = current_principal()
    return {"requested_by_user_id": principal.user.id}


def may_see(principal, record: TransferJob) -> bool:
    """Admins see every job; others only their own, and never an import (it holds raw personal data)."""
    if principal.role.allows("admin"):
        return True
    if record.kind is TransferKind.IMPORT_SUPPORTERS:
        return False
    return record.requested_by_user_id is not None and record.requested_by_user_id == principal.user.id


def _audit(action: str, record: TransferJob) -> None:
    principal = current_principal()
    record_audit(action, actor_type=principal.kind, actor_id=principal.user.id, actor_label=principal.label,
                 object_type="transfer_job", object_id=record.id, detail={"kind": record.kind.value})


@bp.post("/exports/supporters")
@doc("Start an export of supporters (filters as in the CLI)", tag="Jobs", body=SupporterExportSchema, body_optional=True, response=JobOut, status=202, errors=(404,), headers={"Location": {"schema": {"type": "string"}}})
@require("manager")
def start_supporter_export():
    """Start an export of supporters (same filters as the CLI); poll the returned job."""
    data = load_json(SupporterExportSchema(), optional=True)
    selection = {"segment_id": data["segment_id"], "filter": data["filter"], "status": data["status"],
                 "kind": data["kind"], "tags": data["tags"], "language": data["language"],
                 "country": [c.upper() for c in data["country"]], "joined_after": data["joined_after"],
                 "joined_before": data["joined_before"]}
    requested = ",".join(data["fields_"]) if data["fields_"] else None
    # Validate now, so a bad filter is a 422 here and not a failed job later.
    names = transfer.check_fields(requested, transfer.SUPPORTER_FIELDS, transfer.DEFAULT_SUPPORTER_FIELDS)
    transfer.Selection(**selection).where()
    record = create_job(TransferKind.EXPORT_SUPPORTERS, {"format": data["format"], "fields": ",".join(names),
                                                         "selection": selection}, _label(), **_owner())
    _audit("transfer.export", record)
    db.session.commit()
    start(record)
    return _accepted(record)


@bp.post("/exports/consents")
@doc("Start an export of the consent ledger", tag="Jobs", body=ConsentExportSchema, body_optional=True, response=JobOut, status=202, headers={"Location": {"schema": {"type": "string"}}})
@require("manager")
def start_consent_export():
    """Start an export of the consent ledger."""
    data = load_json(ConsentExportSchema(), optional=True)
    params = {"format": data["format"], "since": data["since"].isoformat() if data["since"] else None}
    record = create_job(TransferKind.EXPORT_CONSENTS, params, _label(), **_owner())
    _audit("transfer.export", record)
    db.session.commit()
    start(record)
    return _accepted(record)


@bp.post("/imports/supporters")
@doc("Import a CSV as a job", tag="Jobs", response=JobOut, status=202, errors=(413, 422), headers={"Location": {"schema": {"type": "string"}}}, description=(
    "Upload the CSV as the multipart field `file` (at most IMPORT_MAX_BYTES); the other form fields are the "
    "CLI's options: " + ", ".join(f"`{name}`" for name in ImportSchema._declared_fields) + "."))
@require("admin")
def start_supporter_import():
    """Upload a CSV (multipart field `file`) and import it as a job; options as in the CLI."""
    from supporters.import_source import ImportOptions, check_options, parse_mapping, parse_timestamp

    max_bytes = current_app.config["IMPORT_MAX_BYTES"]
    request.max_content_length = max_bytes + FORM_OVERHEAD  # this endpoint alone takes more than a JSON body
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise ValidationFailed({"file": ["upload the CSV as the multipart field 'file'"]})
    form = {k: request.form.getlist(k) if k == "tag" else v for k, v in request.form.items()}
    check_text(form, "body")
    data = ImportSchema().load(form)
    opts = ImportOptions(path="", mapping=parse_mapping(data["map"]), encoding=data["encoding"],
                         delimiter=data["delimiter"], kind=data["kind"], language=data["language"],
                         tags=data["tag"], consent_note=data["consent_note"],
                         consented_at=parse_timestamp(data["consented_at"], "consented_at")
                         if data["consented_at"] else None,
                         send_opt_in=data["send_opt_in"], update=data["update"], dry_run=data["dry_run"])
    check_options(opts)
    # The upload goes to the transfer store, where a worker on any host reads it (core.blobs),
    # streamed: never more than a chunk of it in memory.
    key = upload_key()
    with get_store().writer(key) as out:
        size = 0
        while chunk := upload.stream.read(1 << 20):
            size += len(chunk)
            if size > max_bytes:  # leaving the block discards what was stored
                raise ValidationFailed({"file": [f"larger than {max_bytes // (1024 * 1024)} MB"]})
            out.write(chunk)
    params = {"mapping": opts.mapping, "encoding": opts.encoding, "delimiter": opts.delimiter, "kind": opts.kind,
              "language": opts.language, "tags": opts.tags, "consent_note": opts.consent_note,
              "consented_at": opts.consented_at.isoformat() if opts.consented_at else None,
              "send_opt_in": opts.send_opt_in, "update": opts.update, "dry_run": opts.dry_run,
              "filename": os.path.basename(upload.filename)[:200]}
    record = create_job(TransferKind.IMPORT_SUPPORTERS, params, _label(), file_path=key, **_owner())
    _audit("transfer.import", record)
    db.session.commit()
    start(record)
    return _accepted(record)


@bp.get("/jobs/<int:job_id>")
@doc("The state of an export or import job", tag="Jobs", response=JobOut, description=(
    "Visible to the user who started it and to admins; imports to admins only. Anyone else gets 404."))
@require("manager")
def get_transfer_job(job_id: int):
    """The state of an export or import job, with a download link (expiring) once it is done."""
    record = db.session.get(TransferJob, job_id)
    if record is None or not may_see(current_principal(), record):
        return problem(404, "Not found", f"no job {job_id}")
    return job_body(record)


@bp.get("/jobs/<int:job_id>/download")
@doc("Download the job's file (CSV or JSON lines); the signed token authorises", tag="Jobs", query=DownloadQuery, public=True, errors=(403, 410))
def download_transfer(job_id: int):
    """The result file; the signed `token` is the authorisation (no bearer token needed)."""
    max_age = current_app.config.get("TRANSFER_LINK_MAX_AGE", DOWNLOAD_MAX_AGE)
    try:
        payload = read_token(DOWNLOAD_PURPOSE, request.args.get("token", ""), max_age=max_age)
    except ExpiredToken:
        return problem(410, "Gone", "the download link has expired; ask the job for a new one")
    except InvalidToken:
        return problem(403, "Forbidden", "the download link is not valid")
    if not isinstance(payload, dict) or payload.get("j") != job_id:
        return problem(403, "Forbidden", "the download link is not valid for this job")
    record = db.session.get(TransferJob, job_id)
    key = record.result_key if record is not None else None
    if key is None:
        return problem(404, "Not found", "the job has no file to download")
    suffix = os.path.splitext(key)[1]
    mimetype = "application/x-ndjson" if suffix == ".jsonl" else "text/csv"
    name = f"{record.kind.value}-{record.id}{suffix}" if record.kind is not TransferKind.IMPORT_SUPPORTERS \
        else f"import-{record.id}-rejects.csv"
    store = get_store()
    local = store.local_path(key)
    if local is not None:
        response = send_file(local, mimetype=mimetype, as_attachment=True, download_name=name, max_age=0)
    else:
        # Streamed from shared storage chunk by chunk: constant memory however large the file.
        try:
            size, chunks = store.size(key), store.chunks(key)
        except BlobMissing:
            return problem(404, "Not found", "the job has no file to download")
        response = Response(chunks, mimetype=mimetype, direct_passthrough=True)
        response.content_length = size
        response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    response.headers["Cache-Control"] = "no-store"  # personal data
    return response
