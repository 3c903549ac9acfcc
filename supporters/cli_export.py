"""`flask export supporters | consents`: streaming exports in constant memory (campaigns add `campaign`)."""

from __future__ import annotations

import json
from pathlib import Path

import click
from flask.cli import AppGroup

from core.errors import DomainError
from core.extensions import db
from supporters.cli_common import (
    KINDS,
    STATUSES,
    error_message,
    fail,
    output_stream,
    progress_bar,
    show_progress,
)

export_group = AppGroup("export", help="Export supporters or the consent ledger (CSV or JSON lines), streaming.")


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
    with output_stream(output) as out, progress_bar(bar, total, "Exporting supporters") as update:
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
    from supporters.import_source import ImportAborted, parse_timestamp

    try:
        since_at = parse_timestamp(since, "--since") if since else None
    except ImportAborted as exc:
        fail(error_message(exc))
    stmt = transfer.consents_select(fmt == "csv", since_at)
    bar = show_progress(quiet)
    total = transfer.count(stmt) if bar else None
    with output_stream(output) as out, progress_bar(bar, total, "Exporting consents") as update:
        rows = transfer.write(stmt, out, fmt, update)
    db.session.rollback()
    if not quiet:
        click.echo(f"Exported {rows} consent events{f' to {output}' if output and output != '-' else ''}.", err=True)
