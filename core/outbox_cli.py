"""`flask outbox list|show`: read the embedded default's outbox (`OUTBOX_DIR`, one `.eml` per mail).

Without `SMTP_URL`, mail is written to files instead of being sent (core.mail.FileOutbox). These
commands show what was "sent" without grepping `.eml` files: newest first, with the decoded
subject and the plain-text part, where the confirm, preferences and unsubscribe links are.
"""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup

outbox = AppGroup("outbox", help="Read the mail the embedded default wrote to OUTBOX_DIR instead of sending it.")


def _directory() -> Path:
    if current_app.config.get("SMTP"):
        raise click.UsageError("SMTP_URL is set: mail goes to the SMTP server, there is no outbox to read")
    return Path(current_app.config["OUTBOX_DIR"])


def _mails(directory: Path) -> list[Path]:
    """The outbox's mails, newest first (ties by name, so the order is stable)."""
    if not directory.is_dir():
        return []
    files = [p for p in directory.glob("*.eml") if p.is_file()]
    return sorted(files, key=lambda p: (p.stat().st_mtime_ns, p.name), reverse=True)


def _parse(path: Path) -> EmailMessage:
    with open(path, "rb") as fh:
        return email.message_from_binary_file(fh, policy=email.policy.default)


def _one_line(value: object) -> str:
    return " ".join(str(value or "").split())


@outbox.command("list")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10_000), help="How many, newest first.")
@click.option("--to", "to_filter", help="Only mails whose To contains this text (case-insensitive).")
def outbox_list(limit: int, to_filter: str | None) -> None:
    """List the newest mails: ID (for `show`), time, recipient and subject."""
    directory = _directory()
    shown = 0
    for path in _mails(directory):
        message = _parse(path)
        to = _one_line(message["To"])
        if to_filter and to_filter.casefold() not in to.casefold():
            continue
        when = datetime.fromtimestamp(path.stat().st_mtime, UTC).strftime("%Y-%m-%d %H:%M:%S")
        click.echo(f"{path.stem[:12]}  {when}  {to}  {_one_line(message['Subject'])}")
        shown += 1
        if shown >= limit:
            break
    if not shown:
        click.echo(f"No mail in {directory}.", err=True)


@outbox.command("show")
@click.argument("mail_id", default="latest")
@click.option("--part", type=click.Choice(["text", "html", "raw", "headers"]), default="text", show_default=True)
def outbox_show(mail_id: str, part: str) -> None:
    """Show one mail (an ID from `list`, or `latest`): headers and the plain-text part by default."""
    mails = _mails(_directory())
    if mail_id == "latest":
        matches = mails[:1]
    else:
        matches = [p for p in mails if p.stem.startswith(mail_id.strip().lower())] if mail_id.strip() else []
    if len(matches) != 1:
        problem = "no mail" if not matches else f"{len(matches)} mails"
        raise click.BadParameter(f"{problem} with ID {mail_id!r} (see `flask outbox list`)", param_hint="MAIL_ID")
    path = matches[0]
    if part == "raw":
        click.echo(path.read_bytes().decode("utf-8", "replace"), nl=False)
        return
    message = _parse(path)
    for name in ("From", "To", "Subject", "Date", "List-Unsubscribe"):
        if message[name] is not None:
            click.echo(f"{name}: {_one_line(message[name])}")
    if part == "headers":
        return
    body = message.get_body(preferencelist=("plain",) if part == "text" else ("html",))
    click.echo("")
    click.echo(body.get_content() if body is not None else f"(this mail has no {part} part)")
