"""`flask bounces fetch [--keep] [--max N] [--loop SECONDS] | process FILE…`: bounces arriving as mail."""

from __future__ import annotations

import logging
import sys
import time
from collections import Counter

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from campaigns import bounces as processor
from core.extensions import db
from core.mailbox import MailboxError, each_message

bounces = AppGroup("bounces", help="Bounce and complaint reports (DSN, ARF) read from mail.")
log = logging.getLogger(__name__)


class _Tally:
    """Processes one report, counting outcomes; a failure of one report is counted and skipped."""

    def __init__(self, source: str):
        self.source, self.counts = source, Counter()

    def __call__(self, raw: bytes) -> bool:
        """True when the report was dealt with (it may leave the mailbox)."""
        try:
            outcome = processor.process(raw, source=self.source)
        except Exception:  # parsing never raises: this is the database or a bug; keep the mail
            db.session.rollback()
            log.exception("could not process a report; it stays in the mailbox")
            self.counts["errors"] += 1
            return False
        self.counts["duplicate" if outcome.duplicate else outcome.kind.value] += 1
        self.counts["paused campaigns"] += int(outcome.paused)
        return True

    def line(self) -> str:
        return ", ".join(f"{name} {n}" for name, n in sorted(self.counts.items()) if n) or "nothing"


@bounces.command("fetch")
@click.option("--keep", is_flag=True, help="Mark processed mails seen instead of deleting them.")
@click.option("--max", "limit", type=click.IntRange(min=1), default=1000, show_default=True,
              help="At most this many mails per round.")
@click.option("--loop", type=click.IntRange(min=1), default=None, metavar="SECONDS",
              help="Fetch again every SECONDS (the Procfile's `bounces` process).")
def fetch(keep: bool, limit: int, loop: int | None) -> None:
    """Read the bounce mailbox (BOUNCE_IMAP_URL) and process every report in it."""
    settings = current_app.config.get("BOUNCE_IMAP")
    if not settings:
        click.echo("BOUNCE_IMAP_URL is not set: there is no bounce mailbox to read.", err=True)
        if loop is None:
            sys.exit(1)
        while True:  # a process manager would restart an exiting process forever; idle instead
            time.sleep(3600)
    while True:
        tally = _Tally("imap")
        try:
            count = each_message(settings, tally, keep=keep, limit=limit)
        except MailboxError as exc:
            click.echo(f"Error: {exc}", err=True)
            if loop is None:
                sys.exit(1)
        else:
            click.echo(f"{count} mail(s): {tally.line()}")
        if loop is None:
            return
        time.sleep(loop)


@bounces.command("process")
@click.argument("files", nargs=-1, required=True, type=click.File("rb"))
def process(files) -> None:
    """Process report mails from files (`-` reads one from standard input, e.g. a Postfix pipe)."""
    tally = _Tally("file")
    for fh in files:
        tally(fh.read())
    click.echo(f"{len(files)} mail(s): {tally.line()}")


def init_app(app: Flask) -> None:
    app.cli.add_command(bounces)
