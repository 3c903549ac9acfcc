"""`flask supporters show | erase | purge`: data-protection requests (access, erasure, retention)."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import click
import sqlalchemy as sa
from flask import current_app
from flask.cli import AppGroup

from core import events
from core.accounts import record_audit
from core.db import utcnow
from core.extensions import db
from supporters.cli_common import fail
from supporters.models import Supporter, SupporterStatus, normalize_email

supporters_group = AppGroup("supporters", help="Data-protection requests: show, erase, purge.")


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
    # Webhook events (core.events) have a retention of their own: WEBHOOK_RETENTION_DAYS.
    days = current_app.config["WEBHOOK_RETENTION_DAYS"]
    events_cutoff = utcnow() - timedelta(days=days)
    if not execute:
        click.echo(f"{total} supporters inactive since before {cutoff.date().isoformat()} ({detail}). "
                   f"{events.purge_before(events_cutoff, execute=False)} webhook events older than {days} days. "
                   "Dry run: run again with --execute to erase them.")
        return
    purged = events.purge_before(events_cutoff)
    click.echo(f"Deleted {purged} webhook events older than {days} days.")
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
