"""Read a mailbox over IMAP (BOUNCE_IMAP_URL), one message at a time, for the bounce processor.

`each_message(settings, handle)` gives every message's bytes to `handle`; a message is deleted
from the mailbox (or, with `keep`, only marked seen) after `handle` returned True, so a crash in
the middle, or a message `handle` could not deal with now (the database is down), stays for the
next run; the processor's own memory (a report's key) makes one that comes again harmless.
"""

from __future__ import annotations

import imaplib
import ssl
from collections.abc import Callable


class MailboxError(Exception):
    """The mailbox cannot be reached or read (login refused, no such folder, connection lost)."""


def _connect(settings: dict) -> imaplib.IMAP4:
    context = ssl.create_default_context()
    try:
        if settings["ssl"]:
            imap = imaplib.IMAP4_SSL(settings["host"], settings["port"], ssl_context=context,
                                     timeout=settings["timeout"])
        else:
            imap = imaplib.IMAP4(settings["host"], settings["port"], timeout=settings["timeout"])
            if settings["starttls"]:
                imap.starttls(ssl_context=context)
        imap.login(settings["username"], settings["password"])
    except (OSError, imaplib.IMAP4.error) as exc:
        raise MailboxError(f"cannot log in to IMAP {settings['host']}:{settings['port']}: {exc}") from exc
    return imap


def _quote(mailbox: str) -> str:
    return '"' + mailbox.replace("\\", "\\\\").replace('"', '\\"') + '"'


def each_message(settings: dict, handle: Callable[[bytes], bool], *, keep: bool = False,
                 limit: int | None = None) -> int:
    """Hand every message to `handle`; delete (or mark seen) those it took; return how many it took."""
    imap = _connect(settings)
    done = 0
    try:
        status, _ = imap.select(_quote(settings["mailbox"]))
        if status != "OK":
            raise MailboxError(f"cannot open the IMAP folder {settings['mailbox']!r}")
        criteria = "UNSEEN" if keep else "ALL"  # kept messages were handled by an earlier run
        status, data = imap.uid("SEARCH", None, criteria)
        if status != "OK":
            raise MailboxError(f"IMAP SEARCH failed: {data!r}")
        for uid in (data[0] or b"").split()[:limit]:
            status, parts = imap.uid("FETCH", uid, "(BODY.PEEK[])")
            raw = next((p[1] for p in parts or [] if isinstance(p, tuple) and len(p) == 2), None)
            if status != "OK" or raw is None:  # gone meanwhile (another fetcher): not ours to handle
                continue
            if not handle(raw):
                continue
            imap.uid("STORE", uid, "+FLAGS", r"(\Seen)" if keep else r"(\Deleted \Seen)")
            done += 1
        if not keep:
            imap.expunge()
    except (OSError, imaplib.IMAP4.error) as exc:
        raise MailboxError(f"IMAP error: {exc}") from exc
    finally:
        try:
            imap.logout()
        except (OSError, imaplib.IMAP4.error):
            pass
    return done
