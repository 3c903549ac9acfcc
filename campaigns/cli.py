"""`flask campaigns list | show | pause | resume | cancel | sweep`, `flask demo`, `flask export campaign ID`."""

from __future__ import annotations

import sys
import time

import click
import sqlalchemy as sa
from flask import Flask, current_app
from flask.cli import AppGroup

from campaigns import services
from campaigns.demo import demo_command
from campaigns.export import campaign_select
from campaigns.models import Campaign, CampaignKind
from campaigns.survey_results import export_select
from campaigns.sweeper import start_sweeper_thread, sweep
from core.errors import DomainError
from core.extensions import db
from supporters import transfer
from supporters.cli_common import fail, output_stream, progress_bar, show_progress
from supporters.cli_export import export_group

campaigns = AppGroup("campaigns", help="Campaigns and the sending engine.")
CLI_ACTOR = {"actor_type": "cli"}


def _fail(exc: DomainError) -> None:
    click.echo(f"Error: {exc.detail}", err=True)
    sys.exit(1)


def _progress_line(s: dict) -> str:
    d = s["deliveries"]
    bar_width = 30
    filled = int(s["progress"] * bar_width)
    line = (f"[{'#' * filled}{'.' * (bar_width - filled)}] {s['progress']:6.1%}  {s['status']:<9} "
            f"sent {d['sent']}  queued {d['queued']}  in flight {d['sending']}  failed {d['failed']}  "
            f"bounced {d['bounced']}  skipped {d['skipped']}")
    if s["status_reason"]:
        line += f"  ({s['status_reason']})"
    return line


@campaigns.command("list")
def list_command() -> None:
    """List campaigns with their status."""
    rows = db.session.scalars(sa.select(Campaign).order_by(Campaign.id)).all()
    for c in rows:
        click.echo(f"{c.id}\t{c.kind.value}\t{c.status.value}\t{c.name}")
    if not rows:
        click.echo("No campaigns.", err=True)


@campaigns.command("show")
@click.argument("campaign_id", type=int)
@click.option("--watch", is_flag=True, help="Keep showing progress until the campaign stops sending.")
@click.option("--interval", default=1.0, show_default=True, help="Seconds between updates with --watch.")
def show_command(campaign_id: int, watch: bool, interval: float) -> None:
    """Show a campaign and its delivery counts (live with --watch)."""
    try:
        s = services.stats(campaign_id)
    except DomainError as exc:
        _fail(exc)
    campaign = services.get_campaign(campaign_id)
    click.echo(f"Campaign {campaign.id}: {campaign.name} ({campaign.kind.value}, {campaign.status.value})")
    click.echo(f"Languages: {', '.join(c.language for c in campaign.contents) or '-'}; "
               f"launched {s['launched_at'] or '-'}; finished {s['finished_at'] or '-'}")
    if s["skipped"]:
        click.echo("Skipped: " + ", ".join(f"{k} {v}" for k, v in sorted(s["skipped"].items())))
    if s["possible_duplicates"]:
        click.echo(f"Possible duplicates (resent after a lost worker or a dropped connection): "
                   f"{s['possible_duplicates']}")
    if s["sent_after_stop"]:
        click.echo(f"Sent while the supporter withdrew (transaction already under way): {s['sent_after_stop']}")
    click.echo(_progress_line(s))
    while watch and s["status"] in ("sending", "scheduled"):
        time.sleep(interval)
        db.session.expire_all()
        s = services.stats(campaign_id)
        click.echo(_progress_line(s))


def _transition_command(name: str, change, done: str, help_text: str) -> None:
    """Register `flask campaigns NAME ID`, one status change through the service."""

    @campaigns.command(name, help=help_text)
    @click.argument("campaign_id", type=int)
    def command(campaign_id: int) -> None:
        try:
            change(campaign_id, CLI_ACTOR)
        except DomainError as exc:
            _fail(exc)
        click.echo(f"{done} campaign {campaign_id}.")


_transition_command("pause", services.pause, "Paused", "Pause a sending campaign (takes effect within about a second).")
_transition_command("resume", services.resume, "Resumed", "Resume a paused campaign where it stopped.")
_transition_command("cancel", services.cancel, "Cancelled", "Cancel a campaign for good (what is not sent yet is not sent).")


@campaigns.command("sweep")
@click.option("--loop", is_flag=True, help="Keep sweeping every CAMPAIGN_SWEEP_SECONDS.")
def sweep_command(loop: bool) -> None:
    """Recover lost or stalled sends, start due campaigns and finish completed ones."""
    while True:
        report = sweep()
        click.echo(", ".join(f"{k} {v}" for k, v in report.items()))
        if not loop:
            return
        db.session.remove()
        time.sleep(current_app.config["CAMPAIGN_SWEEP_SECONDS"])


@click.command("campaign")
@click.argument("campaign_id", type=int)
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="csv", show_default=True)
@click.option("--output", "-o", metavar="FILE", help="Write to FILE instead of standard output.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary.")
@click.option("--answers", is_flag=True, help="A survey's answers, one row per answer (docs/surveys.md).")
def export_campaign_command(campaign_id, fmt, output, quiet, answers):
    """Export a campaign's deliveries with outcome, clicks and actions per supporter, streaming."""
    # An id beyond the column's range cannot exist (and PostgreSQL would refuse to compare it).
    campaign = db.session.get(Campaign, campaign_id) if 0 < campaign_id < 2**31 else None
    kind = campaign.kind if campaign is not None else None
    db.session.rollback()
    if campaign is None:
        fail(f"no campaign {campaign_id}", 1)
    if answers and kind != CampaignKind.SURVEY:
        fail(f"campaign {campaign_id} is not a survey: --answers needs one", 1)
    stmt = export_select(campaign_id, fmt == "csv") if answers else campaign_select(campaign_id, fmt == "csv")
    bar = show_progress(quiet)
    total = transfer.count(stmt) if bar else None
    with output_stream(output) as out, progress_bar(bar, total, "Exporting deliveries") as update:
        rows = transfer.write(stmt, out, fmt, update)
    db.session.rollback()
    if not quiet:
        click.echo(f"Exported {rows} {'answers' if answers else 'deliveries'} of campaign {campaign_id}"
                   f"{f' to {output}' if output and output != '-' else ''}.", err=True)


def init_app(app: Flask) -> None:
    app.cli.add_command(campaigns)
    app.cli.add_command(demo_command)
    # `flask export campaign` joins the supporters' export group (this module is initialised after it).
    export_group.add_command(export_campaign_command)
    # Every `flask worker` also sweeps periodically (one sweep per interval across all workers).
    app.extensions.setdefault("worker_startup", []).append(start_sweeper_thread)
