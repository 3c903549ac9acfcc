"""Helpers for the join-flow tests (no tests here): a client that behaves like a browser with a
CSRF token, the real RQ worker, and the mails the platform actually sent."""

from __future__ import annotations

import os
import re
from email import message_from_bytes
from email.message import Message
from pathlib import Path

import sqlalchemy as sa

from core.queues import get_queue, make_worker
from supporters.models import ConsentEvent, Supporter

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
LINK_RE = re.compile(r"http://supporters\.test(/(?:confirm|preferences|unsubscribe)/[A-Za-z0-9_.\-]+)")


def csrf_token(client, path: str = "/join") -> str:
    page = client.get(path)
    assert page.status_code == 200, page.status_code
    return CSRF_RE.search(page.get_data(as_text=True)).group(1)


def join_form(**fields) -> dict:
    data = {"email": "ada@example.org", "name": "Ada", "kind": "fan", "language": "en", "consent": "y"}
    data.update(fields)
    return {k: v for k, v in data.items() if v is not None}


def post_join(client, path: str = "/join", headers: dict | None = None, follow: bool = True, **fields):
    """Fetch the form (for its CSRF token) and submit it, as a browser would: a successful join
    answers 303 to the "check your inbox" page, which is followed unless `follow` is False."""
    data = join_form(**fields)
    data["csrf_token"] = csrf_token(client, path)
    return client.post(path, data=data, headers=headers, follow_redirects=follow)


def run_mail_worker(app) -> None:
    make_worker(app, ["mail"]).work(burst=True)


def queued(name: str = "mail") -> list[str]:
    """Function names of the jobs waiting in a queue."""
    return [job.func_name for job in get_queue(name).jobs]


def outbox(app) -> list[Message]:
    """Mails written by the file transport (the default when no SMTP_URL is set), oldest first."""
    directory = Path(app.config["OUTBOX_DIR"])
    if not directory.exists():
        return []
    files = sorted(directory.glob("*.eml"), key=os.path.getmtime)
    return [message_from_bytes(f.read_bytes()) for f in files]


def header(message: Message, name: str) -> str:
    """A header's value, unfolded (long ones such as List-Unsubscribe are folded onto two lines)."""
    return " ".join(str(message[name]).split())


def parts(message: Message) -> dict[str, str]:
    return {p.get_content_type(): p.get_payload(decode=True).decode() for p in message.walk()
            if not p.is_multipart()}


def link(message: Message, kind: str) -> str:
    """The path of the first /<kind>/<token> link in the plain-text part."""
    for path in LINK_RE.findall(parts(message)["text/plain"]):
        if path.startswith(f"/{kind}/"):
            return path
    raise AssertionError(f"no {kind} link in the mail")


def supporters(db) -> list[Supporter]:
    db.session.expire_all()
    return list(db.session.scalars(sa.select(Supporter).order_by(Supporter.id)))


def trail(db, supporter_id: int) -> list[tuple[str, str]]:
    """The consent ledger of one supporter as (action, method) pairs, oldest first."""
    db.session.expire_all()
    rows = db.session.execute(sa.select(ConsentEvent.action, ConsentEvent.method)
                              .where(ConsentEvent.supporter_id == supporter_id).order_by(ConsentEvent.id))
    return [(action.value, method) for action, method in rows]
