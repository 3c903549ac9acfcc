"""Operator CLI for supporter data: `export`, `import`, `supporters` (data-protection requests), `demo`."""

from __future__ import annotations

import json
import os
import re
import sys
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import click
import sqlalchemy as sa
from flask import Flask
from flask.cli import AppGroup

from core.accounts import record_audit
from core.db import utcnow
from core.errors import DomainError, ValidationFailed
from core.extensions import db
from supporters.models import Supporter, SupporterKind, SupporterStatus, normalize_email

export_group = AppGroup("export", help="Export supporters or the consent ledger (CSV or JSON lines), streaming.")
import_group = AppGroup("import", help="Import supporters from a CSV file, safely and in atomic batches.")
supporters_group = AppGroup("supporters", help="Data-protection requests: show, erase, purge.")

STATUSES = [s.value for s in SupporterStatus]
KINDS = [k.value for k in SupporterKind]


def fail(message: str, code: int = 2) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


def error_message(exc: DomainError) -> str:
    if isinstance(exc, ValidationFailed) and exc.errors:
        return "; ".join(f"{f}: {m}" if f not in ("file",) else m for f, msgs in exc.errors.items() for m in msgs)
    return exc.detail


def show_progress(quiet: bool) -> bool:
    """A progress bar only for a person watching a terminal: silent when piped or --quiet."""
    return not quiet and sys.stderr.isatty()


@contextmanager
def progress_bar(enabled: bool, length: int | None, label: str):
    if not enabled:
        yield None
        return
    with click.progressbar(length=length, label=label, file=sys.stderr, show_pos=True) as bar:
        yield bar.update


# --- export --------------------------------------------------------------------------------------


def _filter_options(func):
    options = [
        click.option("--segment", "segment_id", type=int, help="Only the supporters of this saved segment (id)."),
        click.option("--filter", "filter_json", metavar="JSON",
                     help="A filter in the segment language, inline or @file.json."),
        click.option("--status", multiple=True, type=click.Choice(STATUSES), help="Repeatable."),
        click.option("--kind", multiple=True, type=click.Choice(KINDS), help="Repeatable."),
        click.option("--tag", "tags", multiple=True, help="Has this tag (repeatable: has all of them)."),
        click.option("--language", multiple=True, help="Repeatable."),
        click.option("--country", multiple=True, help="Two-letter code; repeatable."),
        click.option("--joined-after", metavar="DATE", help="Joined on or after this ISO date/time."),
        click.option("--joined-before", metavar="DATE", help="Joined before this ISO date/time."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _load_filter(text: str | None):
    if text is None:
        return None
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            fail(f"--filter {text}: cannot read the file: {exc.strerror or exc}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        fail(f"--filter is not valid JSON: {exc}")


@contextmanager
def _output(path: str | None):
    """The binary stream to write to; a file appears complete (renamed into place) or not at all."""
    if path is None or path == "-":
        try:
            yield sys.stdout.buffer
            sys.stdout.flush()
        except BrokenPipeError:
            # The reader stopped early (`| head`): not an error of ours. Point stdout at /dev/null
            # so the interpreter's final flush does not complain, and stop quietly.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(141)
        return
    target = Path(path)
    if target.is_dir():
        fail(f"--output {path}: is a directory")
    tmp = target.with_name(f".{target.name}.partial")
    try:
        fh = open(tmp, "wb")  # noqa: SIM115 - closed below
    except OSError as exc:
        fail(f"--output {path}: cannot write: {exc.strerror or exc}")
    try:
        yield fh
        fh.close()
        os.replace(tmp, target)
    except BaseException:
        fh.close()
        tmp.unlink(missing_ok=True)
        raise


@export_group.command("supporters")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="csv", show_default=True)
@click.option("--fields", help="Comma-separated columns (default: id,email,name,kind,language,country,status,tags,created_at).")
@_filter_options
@click.option("--output", "-o", metavar="FILE", help="Write to FILE instead of standard output.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary.")
def export_supporters_command(fmt, fields, segment_id, filter_json, status, kind, tags, language, country,
                              joined_after, joined_before, output, quiet):
    """Export supporters (never the erased), streaming in constant memory."""
    from supporters import transfer

    selection = transfer.Selection(segment_id=segment_id, filter=_load_filter(filter_json), status=list(status),
                                   kind=list(kind), tags=list(tags), language=list(language),
                                   country=[c.upper() for c in country], joined_after=joined_after,
                                   joined_before=joined_before)
    try:
        names = transfer.check_fields(fields, transfer.SUPPORTER_FIELDS, transfer.DEFAULT_SUPPORTER_FIELDS)
        where = selection.where()
        stmt = transfer.supporters_select(names, where, fmt == "csv")
    except DomainError as exc:
        fail(error_message(exc))
    finally:
        db.session.rollback()
    bar = show_progress(quiet)
    total = transfer.count(stmt) if bar else None
    with _output(output) as out, progress_bar(bar, total, "Exporting supporters") as update:
        rows = transfer.write(stmt, out, fmt, update)
    db.session.rollback()
    if not quiet:
        click.echo(f"Exported {rows} supporters{f' to {output}' if output and output != '-' else ''}.", err=True)


@export_group.command("consents")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="csv", show_default=True)
@click.option("--since", metavar="DATE", help="Only events on or after this ISO date/time.")
@click.option("--output", "-o", metavar="FILE", help="Write to FILE instead of standard output.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary.")
def export_consents_command(fmt, since, output, quiet):
    """Export the consent ledger (every grant, confirmation and withdrawal) for an auditor."""
    from supporters import transfer
    from supporters.transfer_import import ImportAborted, parse_timestamp

    try:
        since_at = parse_timestamp(since, "--since") if since else None
    except ImportAborted as exc:
        fail(error_message(exc))
    stmt = transfer.consents_select(fmt == "csv", since_at)
    bar = show_progress(quiet)
    total = transfer.count(stmt) if bar else None
    with _output(output) as out, progress_bar(bar, total, "Exporting consents") as update:
        rows = transfer.write(stmt, out, fmt, update)
    db.session.rollback()
    if not quiet:
        click.echo(f"Exported {rows} consent events{f' to {output}' if output and output != '-' else ''}.", err=True)


@export_group.command("campaign")
@click.argument("campaign_id", type=int)
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="csv", show_default=True)
@click.option("--output", "-o", metavar="FILE", help="Write to FILE instead of standard output.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary.")
def export_campaign_command(campaign_id, fmt, output, quiet):
    """Export a campaign's deliveries with outcome, clicks and actions per supporter, streaming."""
    from campaigns.models import Campaign
    from supporters import transfer

    # An id beyond the column's range cannot exist (and PostgreSQL would refuse to compare it).
    exists = 0 < campaign_id < 2**31 and db.session.get(Campaign, campaign_id) is not None
    db.session.rollback()
    if not exists:
        fail(f"no campaign {campaign_id}", 1)
    stmt = transfer.campaign_select(campaign_id, fmt == "csv")
    bar = show_progress(quiet)
    total = transfer.count(stmt) if bar else None
    with _output(output) as out, progress_bar(bar, total, "Exporting deliveries") as update:
        rows = transfer.write(stmt, out, fmt, update)
    db.session.rollback()
    if not quiet:
        click.echo(f"Exported {rows} deliveries of campaign {campaign_id}"
                   f"{f' to {output}' if output and output != '-' else ''}.", err=True)


# --- import --------------------------------------------------------------------------------------


@import_group.command("supporters")
@click.argument("file", type=click.Path(dir_okay=True, path_type=str))
@click.option("--map", "mapping", metavar="FIELD=COLUMN,…", help="Column mapping, e.g. email=E-Mail,name=Name.")
@click.option("--encoding", help="The file's encoding (default: detected; UTF-8, else Windows-1252).")
@click.option("--delimiter", help="The field delimiter (default: detected among , ; tab |).")
@click.option("--kind", type=click.Choice(KINDS), help="Kind for rows without one (default: fan).")
@click.option("--language", type=click.Choice(["de", "en"]), help="Language for rows without one (default: en).")
@click.option("--tag", "tags", multiple=True, help="Tag every imported supporter (repeatable; created if new).")
@click.option("--consent-note", metavar="TEXT", help="How these people agreed (kept in the consent ledger).")
@click.option("--consented-at", metavar="DATE", help="When they agreed (ISO date/time).")
@click.option("--send-opt-in", is_flag=True, help="Import as pending and send each the double-opt-in mail.")
@click.option("--update", is_flag=True, help="Update existing supporters' profiles (never their status).")
@click.option("--dry-run", is_flag=True, help="Report what would happen; change nothing.")
@click.option("--rejects", "rejects_path", metavar="FILE", help="Where rejected rows go (default: FILE.rejects.csv).")
@click.option("--batch-size", default=5000, show_default=True, type=int, help="Rows per atomic batch.")
@click.option("--writers", default=2, show_default=True, type=int,
              help="Database connections writing batches in parallel (PostgreSQL; SQLite uses one).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def import_supporters_command(file, mapping, encoding, delimiter, kind, language, tags, consent_note, consented_at,
                              send_opt_in, update, dry_run, rejects_path, batch_size, writers, quiet):
    """Import supporters from a CSV file (deduplicated, validated, each batch atomic)."""
    from supporters.transfer_import import ImportOptions, import_supporters, parse_mapping, parse_timestamp

    if delimiter == "\\t":
        delimiter = "\t"
    bar = show_progress(quiet)
    try:
        opts = ImportOptions(
            path=file, mapping=parse_mapping(mapping), encoding=encoding, delimiter=delimiter, kind=kind,
            language=language, tags=list(tags), consent_note=consent_note,
            consented_at=parse_timestamp(consented_at, "--consented-at") if consented_at else None,
            send_opt_in=send_opt_in, update=update, dry_run=dry_run, rejects_path=rejects_path,
            batch_size=batch_size, writers=writers)
        with _ImportProgress(bar) as watcher:
            summary = import_supporters(opts, progress=watcher.update, on_ready=watcher.ready)
    except DomainError as exc:
        fail(error_message(exc))
    except Exception as exc:  # noqa: BLE001 - a database or disk failure mid-run: say what it means
        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        fail(f"the import stopped: {first}. Each batch is atomic: the batches written before were committed "
             "and the failed one left nothing behind. Run the same command again to complete the import "
             "(rows already imported are skipped).", 1)
    for note in summary.notes:
        click.echo(f"Note: {note}", err=True)
    if summary.ignored_columns:
        click.echo(f"Note: ignored columns: {', '.join(summary.ignored_columns)}", err=True)
    verb = "Would import" if dry_run else "Imported"
    click.echo(f"{verb} {file}: {summary.rows} rows read; inserted {summary.inserted}, updated {summary.updated}, "
               f"skipped as duplicate {summary.skipped} ({summary.duplicate_in_file} within the file, "
               f"{summary.existing} already known), rejected {summary.rejected}, suppressed {summary.suppressed}.")
    if summary.opt_in_queued:
        click.echo(f"Queued {summary.opt_in_queued} double-opt-in mails.")
    if summary.rejects_path:
        click.echo(f"Rejected rows with line numbers and reasons: {summary.rejects_path}")
    if dry_run:
        click.echo("Dry run: nothing was changed.")
    else:
        record_audit("supporters.import", actor_type="cli",
                     detail={"file": Path(file).name, "inserted": summary.inserted, "updated": summary.updated,
                             "rejected": summary.rejected, "suppressed": summary.suppressed,
                             "basis": "opt_in" if send_opt_in else "evidence"})
        db.session.commit()


class _ImportProgress:
    """A progress bar over the file's lines, opened once the file has passed its checks."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self._bar = None

    def __enter__(self):
        return self

    def ready(self, src, _summary) -> None:
        if self.enabled:
            self._bar = click.progressbar(length=max(src.lines - 1, 1), label="Importing", file=sys.stderr,
                                          show_pos=True)
            self._bar.__enter__()

    def update(self, n: int) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.__exit__(*exc)
        return False


# --- data-protection requests ---------------------------------------------------------------------


def _find(email: str) -> Supporter:
    supporter = db.session.scalar(sa.select(Supporter).where(Supporter.email_normalized == normalize_email(email)))
    if supporter is None:
        fail(f"no supporter with the email {normalize_email(email)}", 1)
    return supporter


@supporters_group.command("show")
@click.argument("email")
def supporters_show(email: str) -> None:
    """Print everything stored about a person as JSON (an access request)."""
    from supporters.privacy import person_record

    supporter = _find(email)
    record = person_record(supporter)
    record_audit("supporter.access", actor_type="cli", object_type="supporter", object_id=supporter.id)
    db.session.commit()
    click.echo(json.dumps(record, indent=2, ensure_ascii=False, default=str))


@supporters_group.command("erase")
@click.argument("email")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def supporters_erase(email: str, yes: bool) -> None:
    """Erase a person's data irreversibly (anonymous aggregates stay)."""
    from supporters.privacy import erase_supporter

    supporter = _find(email)
    if not yes:
        click.confirm(f"Erase all personal data of supporter {supporter.id} ({supporter.email})? "
                      "This cannot be undone", abort=True, err=True)
    supporter_id = supporter.id
    erase_supporter(supporter)
    record_audit("supporter.erase", actor_type="cli", object_type="supporter", object_id=supporter_id)
    db.session.commit()
    click.echo(f"Erased supporter {supporter_id}; the address stays suppressed (as a hash).")


_DURATION = re.compile(r"(\d{1,4})([dwmy])")
_UNIT_DAYS = {"d": 1, "w": 7, "m": 30, "y": 365}


def parse_duration(text: str) -> timedelta:
    match = _DURATION.fullmatch(text.strip().lower())
    if not match or int(match.group(1)) == 0:
        fail(f"--inactive-for expects a duration such as 90d, 12w, 24m or 2y, not {text!r}")
    return timedelta(days=int(match.group(1)) * _UNIT_DAYS[match.group(2)])


def inactive_supporters(cutoff) -> sa.ColumnElement[bool]:
    """Who retention removes: never confirmed, or unsubscribed, for longer than the period.

    Active supporters have a standing consent and are never purged by age alone.
    """
    return sa.or_(
        sa.and_(Supporter.status == SupporterStatus.PENDING.value, Supporter.created_at < cutoff),
        sa.and_(Supporter.status == SupporterStatus.UNSUBSCRIBED.value,
                sa.func.coalesce(Supporter.unsubscribed_at, Supporter.updated_at) < cutoff),
    )


@supporters_group.command("purge")
@click.option("--inactive-for", required=True, metavar="DURATION", help="e.g. 24m (months), 2y, 90d.")
@click.option("--execute", is_flag=True, help="Erase them (the default is a dry run that only counts).")
def supporters_purge(inactive_for: str, execute: bool) -> None:
    """Erase people who never confirmed or who unsubscribed longer ago than DURATION (retention)."""
    from supporters.privacy import erase_supporter

    cutoff = utcnow() - parse_duration(inactive_for)
    where = inactive_supporters(cutoff)
    counts = dict(db.session.execute(sa.select(Supporter.status, sa.func.count()).where(where)
                                     .group_by(Supporter.status)).all())
    total = sum(counts.values())
    detail = ", ".join(f"{n} {s.value if hasattr(s, 'value') else s}" for s, n in sorted(counts.items())) or "none"
    if not execute:
        click.echo(f"{total} supporters inactive since before {cutoff.date().isoformat()} ({detail}). "
                   "Dry run: run again with --execute to erase them.")
        return
    erased = 0
    while True:
        # Batches of a few hundred, each committed with its audit event: an interrupted purge resumes.
        batch = db.session.scalars(sa.select(Supporter).where(where).order_by(Supporter.id).limit(500)).all()
        if not batch:
            break
        for supporter in batch:
            erase_supporter(supporter)
        record_audit("supporter.purge", actor_type="cli",
                     detail={"count": len(batch), "inactive_for": inactive_for})
        db.session.commit()
        erased += len(batch)
    click.echo(f"Erased {erased} supporters inactive since before {cutoff.date().isoformat()}.")


def init_app(app: Flask) -> None:
    from supporters.demo import demo_command

    app.cli.add_command(export_group)
    app.cli.add_command(import_group)
    app.cli.add_command(supporters_group)
    app.cli.add_command(demo_command)
