"""`flask dialog due | report | export | sweep | digest`."""

from __future__ import annotations

import json

import click
import sqlalchemy as sa
from flask import Flask
from flask.cli import AppGroup

from core.db import utcnow
from core.extensions import db
from dialog import digest, figures, notices
from dialog.models import Post, Topic
from supporters import transfer
from supporters.cli_common import fail, output_stream

dialog_group = AppGroup("dialog", help="The supporter dialog: due answers, listening figures, exports.")

EXPORT_TEXT = ("title", "body", "status_reason", "answer", "author_kind", "tags")


@dialog_group.command("due")
@click.option("--overdue", is_flag=True, help="Only posts whose answer deadline has passed.")
def due_command(overdue: bool) -> None:
    """List posts that owe an answer, earliest deadline first."""
    rows = db.session.scalars(figures.due_posts(overdue_only=overdue)
                              .order_by(Post.deadline_at.is_(None), Post.deadline_at, Post.id)).all()
    now = utcnow()
    for post in rows:
        deadline = post.deadline_at.isoformat() if post.deadline_at else "-"
        late = " OVERDUE" if post.deadline_at and post.deadline_at < now else ""
        click.echo(f"{post.id}\ttopic {post.topic_id}\t{post.backers} backers\tdue {post.due_at.isoformat()}\t"
                   f"deadline {deadline}{late}\t{post.status.value}\t{post.title}")
    if not rows:
        click.echo("No answers due.", err=True)


@dialog_group.command("report")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def report_command(as_json: bool) -> None:
    """Listening figures per topic: posts, backers, response times, answers within the deadline."""
    report = figures.report()
    if as_json:
        click.echo(json.dumps(report, indent=2, ensure_ascii=False))
        return
    if not report:
        click.echo("No topics.", err=True)
    for f in report:
        within = "-" if f["answered_within_deadline"] is None else f"{f['answered_within_deadline']:.0%}"
        click.echo(f"Topic {f['topic_id']}: {f['name']}")
        click.echo(f"  posts {f['posts']} ({', '.join(f'{k} {v}' for k, v in f['by_status'].items()) or 'none'})")
        click.echo(f"  backings {f['backings']} by {f['backers']} people")
        click.echo(f"  median hours to first response {f['median_hours_to_first_response']}, "
                   f"to answer {f['median_hours_to_answer']}")
        click.echo(f"  answered within the deadline {within} of {f['due_judged']} due posts")
        for p in f["most_backed_open"]:
            click.echo(f"  most backed: #{p['id']} {p['backers']} backers ({p['status']}) {p['title']}")


@dialog_group.command("export")
@click.option("--topic", "topic_id", type=int, help="Only this topic.")
@click.option("--output", "-o", metavar="FILE", help="Write to FILE instead of standard output.")
def export_command(topic_id: int | None, output: str | None) -> None:
    """Export posts as CSV (spreadsheet formulas defused); no personal data of authors."""
    if topic_id is not None and not (0 < topic_id < 2**31 and db.session.get(Topic, topic_id)):
        fail(f"no topic {topic_id}", 1)
    columns = []
    for name in ("id", "topic_id", "kind", "status", "title", "body", "author_kind", "backers", "priority",
                 "tags", "status_reason", "answer", "created_at", "published_at", "due_at", "deadline_at",
                 "answered_at"):
        expr = getattr(Post, name)
        if name in ("created_at", "published_at", "due_at", "deadline_at", "answered_at"):
            expr = transfer.iso_timestamp(expr)
        elif name in EXPORT_TEXT:
            expr = transfer.defuse(sa.cast(expr, sa.Text) if name == "tags" else expr)
        elif isinstance(expr.type, sa.Enum):
            expr = sa.type_coerce(expr, sa.String)
        columns.append(expr.label(name))
    stmt = sa.select(*columns).order_by(Post.id)
    if topic_id is not None:
        stmt = stmt.where(Post.topic_id == topic_id)
    with output_stream(output) as out:
        rows = transfer.write(stmt, out, "csv")
    db.session.rollback()
    click.echo(f"Exported {rows} posts.", err=True)


@dialog_group.command("sweep")
def sweep_command() -> None:
    """Queue again the mails about posts that are waiting or were abandoned by a worker."""
    click.echo(f"Queued {notices.sweep()} notice jobs.")


@dialog_group.command("digest")
def digest_command() -> None:
    """Send the digest now to every subscriber whose digest is due (the workers do it by themselves)."""
    click.echo(f"Sent {digest.send_digests()} digests.")


def init_app(app: Flask) -> None:
    from dialog.sweeper import start_sweeper_thread

    app.cli.add_command(dialog_group)
    # Due digests and waiting notices go out by themselves: one worker per interval sweeps.
    app.extensions.setdefault("worker_startup", []).append(start_sweeper_thread)
