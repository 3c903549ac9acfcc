"""`flask demo`: fill an empty database with a realistic small supporter base to explore."""

from __future__ import annotations

import sys

import click
import sqlalchemy as sa

from supporters.models import Supporter
from wsgi import db


def database_is_empty() -> bool:
    return db.session.scalar(sa.select(Supporter.id).limit(1)) is None


@click.command("demo")
@click.option("--is-empty", "is_empty", is_flag=True, help="Only check: exit 0 if there are no supporters, 1 otherwise.")
def demo_command(is_empty: bool) -> None:
    """Fill an empty database with demo supporters, tags, consents and referrals."""
    if is_empty:
        sys.exit(0 if database_is_empty() else 1)
