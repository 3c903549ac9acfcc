"""Outgoing mail behind one small interface: SMTP with a persistent connection, or a file outbox.

`Transport.send()` takes the envelope and the finished message bytes; building messages is the
caller's business (campaign sends pre-compile templates, see docs/architecture.md). Failures are
classified once, here, as `TransientMailError` (retry later) or `PermanentMailError` (give up).
"""

from __future__ import annotations

import logging
import os
import re
import smtplib
import ssl
import time
import uuid
from collections.abc import Callable
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Protocol

from flask import current_app

from core.addresses import InvalidAddress, from_header, wire_address
from core.headers import header_line


class MailError(Exception):
    """A message was not sent. `recipient_refused`: the server refused *this* recipient (only
    then may the address be suppressed); `reason`: a short machine-readable cause for stats."""

    def __init__(self, message: str, code: int | None = None, *, recipient_refused: bool = False,
                 reason: str | None = None):
        super().__init__(message)
        self.code = code
        self.recipient_refused = recipient_refused
        self.reason = reason


class TransientMailError(MailError):
    """Try again later: a 4xx answer, a dropped connection, a timeout."""


class AmbiguousMailError(TransientMailError):
    """The whole message was sent, then the connection dropped or timed out before the final
    reply: the server may or may not have kept it. A retry may duplicate it (same Message-ID)."""


class PermanentMailError(MailError):
    """Never try again: a 5xx answer for this recipient or message, or a message we cannot send."""


SMTPUTF8_MISSING = "server does not support SMTPUTF8"


def needs_smtputf8(sender: str, recipients: list[str]) -> bool:
    """True when an envelope address is not ASCII (an IDN domain must already be in A-labels)."""
    return not (sender.isascii() and all(r.isascii() for r in recipients))


def wire_envelope(sender: str, recipients: list[str]) -> tuple[str, list[str]]:
    """The envelope as it goes out: domains in A-labels; an address that cannot be one fails this message."""
    try:
        return (wire_address(sender) if sender else sender), [wire_address(r) for r in recipients]
    except InvalidAddress as exc:
        raise PermanentMailError(str(exc), reason="invalid_address") from None


log = logging.getLogger(__name__)

# What a transport asks once a transaction has begun: a verdict, or a function that returns it
# (a check already on its way, answered while the mail server answers RCPT TO).
Started = Callable[[], "bool | Callable[[], bool]"]


def _verdict(answer: bool | Callable[[], bool]) -> bool:
    return answer() if callable(answer) else answer


class Transport(Protocol):
    def send(self, sender: str, recipients: list[str], message: bytes,
             started: Started | None = None, meanwhile: Callable[[], None] | None = None) -> bool: ...

    def close(self) -> None: ...


class FileOutbox:
    """Writes each message as an .eml file; the embedded default when no SMTP_URL is set."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def send(self, sender: str, recipients: list[str], message: bytes,
             started: Started | None = None, meanwhile: Callable[[], None] | None = None) -> bool:
        if started is not None and not _verdict(started()):
            return False
        sender, recipients = wire_envelope(sender, recipients)
        name = f"{uuid.uuid4().hex}.eml"
        tmp = self.directory / f".{name}.tmp"
        # Write then rename, so a reader never sees half a message.
        with open(tmp, "wb") as fh:
            fh.write(b"X-Envelope-From: " + sender.encode() + b"\r\n")
            fh.write(b"X-Envelope-To: " + ", ".join(recipients).encode() + b"\r\n")
            fh.write(message)
        os.replace(tmp, self.directory / name)
        if meanwhile is not None:
            _run_meanwhile(meanwhile)
        return True

    def close(self) -> None:
        pass


class SMTPTransport:
    """One persistent SMTP connection, opened on first use and reopened when it was dropped."""

    IDLE_CHECK_SECONDS = 5.0

    def __init__(self, host: str, port: int, username: str | None = None, password: str | None = None,
                 ssl: bool = False, starttls: bool = False, timeout: float = 30, **_ignored):
        self.host, self.port = host, port
        self.username, self.password = username, password
        self.use_ssl, self.starttls, self.timeout = ssl, starttls, timeout
        self._smtp: smtplib.SMTP | None = None
        self._last_used = 0.0

    def _connect(self) -> smtplib.SMTP:
        context = ssl.create_default_context()
        try:
            if self.use_ssl:
                smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
                if self.starttls:
                    smtp.starttls(context=context)
            if self.username:
                smtp.login(self.username, self.password or "")
        except smtplib.SMTPAuthenticationError as exc:
            raise PermanentMailError(f"SMTP login refused: {exc.smtp_code} {exc.smtp_error!r}", exc.smtp_code) from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise TransientMailError(f"cannot connect to SMTP {self.host}:{self.port}: {exc}") from exc
        return smtp

    def send(self, sender: str, recipients: list[str], message: bytes,
             started: Started | None = None, meanwhile: Callable[[], None] | None = None) -> bool:
        """Send one message in one SMTP transaction and return True, or raise a classified MailError.

        `started()`, if given, is asked once the server has accepted MAIL FROM, i.e. once the
        transaction has begun: False abandons it (RSET; send returns False). A sender's last-moment
        checks go there, so a check that passed means the transaction had already started. It may
        return a function instead (a check it has sent off, e.g. to Redis): that is called after
        the RCPT TO round trip, so the two round trips overlap, and still before DATA.

        `meanwhile()`, if given, runs once the message is on the wire, while the server reads it and
        before its final reply is read: a sender builds its next message there (an error in it is
        logged and changes nothing about this message).

        Whatever goes wrong, the connection is left clean for the next message: a refused
        transaction is reset (RSET), anything unexpected drops the connection. One recipient's bad
        address or one message's bad bytes can never fail another's.
        """
        sender, recipients = wire_envelope(sender, recipients)
        options: list[str] = []
        if needs_smtputf8(sender, recipients):
            options.append("SMTPUTF8")
        smtp = self._live_connection()
        phase = "envelope"
        try:
            smtp.ehlo_or_helo_if_needed()
            if options and not smtp.has_extn("smtputf8"):
                raise PermanentMailError(SMTPUTF8_MISSING, reason="smtputf8")
            code, reply = _mail_from(smtp, sender, options)
            if code != 250:
                self._reset()
                raise _classify(code, reply)
            answer = started() if started is not None else True
            if answer is False:
                self._reset()
                return False
            refused = None
            try:
                for recipient in recipients:
                    smtp.putcmd("rcpt", f"TO:<{recipient}>")
                    code, reply = smtp.getreply()
                    if code not in (250, 251):
                        refused = (code, reply)
                        break
            finally:
                go = _verdict(answer)  # always read a pending check's answer, whatever happened
            if refused is not None:
                self._reset()
                raise _classify(*refused, recipient_refused=True)
            if not go:
                self._reset()
                return False
            code, reply = smtp.docmd("data")
            if code != 354:
                self._reset()
                raise _classify(code, reply)
            # Dot-stuffing and the final dot as smtplib's data() does; once the final dot is out,
            # a drop or a timeout leaves the outcome unknown.
            payload = _DOT_LINE.sub(b"..", message)
            if not payload.endswith(b"\r\n"):
                payload += b"\r\n"
            smtp.send(payload + b".\r\n")
            phase = "final reply"
            if meanwhile is not None:
                _run_meanwhile(meanwhile)
            code, reply = smtp.getreply()
            if code != 250:
                if code == 421:  # the server is closing the connection
                    self._drop()
                raise _classify(code, reply)
            return True
        except MailError:
            raise
        except smtplib.SMTPServerDisconnected as exc:
            self._drop()
            if phase == "final reply":
                raise AmbiguousMailError(f"SMTP connection dropped after the message was sent: {exc}") from exc
            raise TransientMailError(f"SMTP connection dropped: {exc}") from exc
        except (TimeoutError, OSError) as exc:
            self._drop()
            if phase == "final reply":
                raise AmbiguousMailError(f"no final reply after the message was sent: {exc}") from exc
            raise TransientMailError(f"SMTP error: {exc}") from exc
        except smtplib.SMTPResponseException as exc:
            self._drop()
            raise _classify(exc.smtp_code, exc.smtp_error) from exc
        except (UnicodeError, ValueError, TypeError) as exc:
            # Bytes or an address smtplib cannot put on the wire: this message's fault, never the
            # recipient's (no suppression); the connection may be mid-transaction, so drop it.
            self._drop()
            raise PermanentMailError(f"message cannot be sent: {exc.__class__.__name__}: {exc}",
                                     reason="unsendable") from exc
        except Exception:
            self._drop()
            raise
        finally:
            self._last_used = time.monotonic()

    def _reset(self) -> None:
        """End a refused transaction so the connection can carry the next message (drop if RSET fails)."""
        try:
            if self._smtp is not None and self._smtp.sock is not None and self._smtp.rset()[0] == 250:
                return
        except (OSError, smtplib.SMTPException):
            pass
        self._drop()

    def _live_connection(self) -> smtplib.SMTP:
        """The open connection; one idle for a while is checked with NOOP first (servers drop them)."""
        if self._smtp is not None and time.monotonic() - self._last_used > self.IDLE_CHECK_SECONDS:
            try:
                if self._smtp.noop()[0] != 250:
                    self._drop()
            except (OSError, smtplib.SMTPException):
                self._drop()
        if self._smtp is None:
            self._smtp = self._connect()
            self._last_used = time.monotonic()
        return self._smtp

    def _drop(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            try:
                smtp.close()
            except (OSError, smtplib.SMTPException):
                pass

    def close(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (TimeoutError, OSError, smtplib.SMTPException):
                pass
        self._drop()


def _run_meanwhile(meanwhile: Callable[[], None]) -> None:
    try:
        meanwhile()
    except Exception:  # noqa: BLE001 - the message on the wire must not pay for it
        log.exception("work done while the SMTP server read a message failed")


def _mail_from(smtp: smtplib.SMTP, sender: str, options: list[str]) -> tuple[int, bytes]:
    """smtplib's `mail()` without its `quoteaddr()` (an address parser run per command, ~6 % of a
    send's CPU): `wire_envelope` has already checked the addresses, which hold no spaces, angle
    brackets or line breaks, so `<address>` is their quoted form."""
    if "SMTPUTF8" in options:
        smtp.command_encoding = "utf-8"  # as smtplib's mail() does (the server offers it: checked before)
    smtp.putcmd("mail", f"FROM:<{sender}>{' ' + ' '.join(options) if options else ''}")
    return smtp.getreply()


_DOT_LINE = re.compile(rb"(?m)^\.")
# Answers about the session or the sequence, not about a recipient or a message: never permanent
# (503 "nested MAIL command" is what a poisoned connection looks like).
_SESSION_CODES = {421, 503}


def _classify(code: int, text: bytes | str, *, recipient_refused: bool = False) -> MailError:
    detail = text.decode(errors="replace") if isinstance(text, bytes) else str(text)
    if 500 <= code < 600 and code not in _SESSION_CODES:
        return PermanentMailError(f"{code} {detail}", code, recipient_refused=recipient_refused)
    return TransientMailError(f"{code} {detail}", code)


def make_transport(config) -> Transport:
    smtp = config.get("SMTP")
    if smtp:
        return SMTPTransport(**smtp)
    return FileOutbox(config["OUTBOX_DIR"])


def get_transport() -> Transport:
    """The transport of this process, kept open across jobs (see core.queues.AppSimpleWorker)."""
    app = current_app._get_current_object()
    transport = app.extensions.get("mail_transport")
    if transport is None:
        transport = app.extensions["mail_transport"] = make_transport(app.config)
    return transport


def build_message(sender: str, to: str, subject: str, text: str, html: str | None = None,
                  headers: dict[str, str] | None = None, message_id: str | None = None) -> bytes:
    """A multipart/alternative message as bytes, CRLF only.

    The MIME parts come from compat32 `MIMEText` (~6x cheaper than EmailMessage); the header lines
    are ours (core.headers, core.addresses): defused, encoded, folded, the domain of `to` in
    A-labels and a non-ASCII local part raw (RFC 6532), which compat32 would mangle into an
    encoded word. Raises PermanentMailError(reason='invalid_address') when `to` cannot be an
    address on the wire.
    """
    if html is None:
        msg = MIMEText(text, "plain", "utf-8")
    else:
        msg = MIMEMultipart("alternative")
        msg.attach(MIMEText(text, "plain", "utf-8"))
        msg.attach(MIMEText(html, "html", "utf-8"))
    from_line, envelope = from_header(sender)
    try:
        to = wire_address(to)
    except InvalidAddress as exc:  # this message's recipient only: never a suppression
        raise PermanentMailError(str(exc), reason="invalid_address") from None
    head = [from_line, f"To: {to}", header_line("Subject", subject),
            f"Date: {formatdate(localtime=False)}",
            header_line("Message-ID", message_id or make_msgid(domain=envelope.rpartition("@")[2] or "localhost"))]
    head += [header_line(name, value) for name, value in (headers or {}).items()]
    # CRLF line ends: smtplib sends bytes as they are, and strict servers refuse bare LF.
    body = msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))
    return "\r\n".join(head).encode() + b"\r\n" + body
