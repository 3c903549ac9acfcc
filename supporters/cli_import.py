"""`flask import supporters FILE`: a CSV import, deduplicated, validated, each batch atomic."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from flask.cli import AppGroup

from core.accounts import record_audit
from core.errors import DomainError
from core.extensions import db
from supporters.cli_common import KINDS, error_message, fail, show_progress

import_group = AppGroup("import", help="Import supporters from a CSV file, safely and in atomic batches.")


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
    from supporters.import_source import ImportOptions, parse_mapping, parse_timestamp
    from supporters.transfer_import import import_supporters

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
