"""`flask campaigns engagement`: recompute every supporter's engagement score (run daily: decay)."""

from __future__ import annotations

import click
from flask import Flask

from campaigns.cli import campaigns


@campaigns.command("engagement")
@click.option("--batch", default=1000, show_default=True, help="Supporters per transaction.")
def engagement_command(batch: int) -> None:
    """Recompute engagement scores (actions and referrals, with decay)."""
    from campaigns.engagement import refresh_all

    click.echo(f"Refreshed the engagement of {refresh_all(batch)} supporters.")


def register(app: Flask) -> None:
    """The command joins the existing `campaigns` group (added to the CLI by campaigns.cli)."""
    if "engagement" not in campaigns.commands:
        campaigns.add_command(engagement_command)
