"""Outgoing mail behind one small interface: SMTP with a persistent connection, or a file outbox.

`Transport.send()` takes the envelope and the finished message bytes; building messages is the
caller's business (campaign sends pre-compile templates, see docs/architecture.md). Failures are
classified once, here, as `TransientMailError` (retry later) or `PermanentMailError` (give up).
"""

from __future__ import annotations

import os
import smtplib
import ssl
import time
import uuid
from email.header import Header
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formataddr, formatdate, make_msgid, parseaddr
from pathlib import Path
from typing import Protocol

from flask import current_app


class MailError(Exception):
    def __init__(self, message: str, code: int | None = None):
        super().__init__(message)
        self.code = code


class TransientMailError(MailError):
    """Try again later: a 4xx answer, a dropped connection, a timeout."""


class PermanentMailError(MailError):
    """Never try again: a 5xx answer for this recipient or message."""


class Transport(Protocol):
    def send(self, sender: str, recipients: list[str], message: bytes) -> None: ...

    def close(self) -> None: ...


class FileOutbox:
    """Writes each message as an .eml file; the embedded default when no SMTP_URL is set."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def send(self, sender: str, recipients: list[str], message: bytes) -> None:
        name = f"{uuid.uuid4().hex}.eml"
        tmp = self.directory / f".{name}.tmp"
        # Write then rename, so a reader never sees half a message.
        with open(tmp, "wb") as fh:
            fh.write(b"X-Envelope-From: " + sender.encode() + b"\r\n")
            fh.write(b"X-Envelope-To: " + ", ".join(recipients).encode() + b"\r\n")
            fh.write(message)
        os.replace(tmp, self.directory / name)

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

    def send(self, sender: str, recipients: list[str], message: bytes) -> None:
        smtp = self._live_connection()
        try:
            refused = smtp.sendmail(sender, recipients, message)
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            raise _classify(code, text) from exc
        except smtplib.SMTPServerDisconnected as exc:
            # Never resend here: the server may have taken the message before it hung up.
            # The caller retries, and any duplicate carries the same Message-ID.
            self._drop()
            raise TransientMailError(f"SMTP connection dropped: {exc}") from exc
        except smtplib.SMTPResponseException as exc:
            if exc.smtp_code == 421:  # the server is closing the connection
                self._drop()
            raise _classify(exc.smtp_code, exc.smtp_error) from exc
        except (OSError, smtplib.SMTPException) as exc:
            self._drop()
            raise TransientMailError(f"SMTP error: {exc}") from exc
        finally:
            self._last_used = time.monotonic()
        if refused:
            code, text = next(iter(refused.values()))
            raise _classify(code, text)

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


def _classify(code: int, text: bytes | str) -> MailError:
    detail = text.decode(errors="replace") if isinstance(text, bytes) else str(text)
    cls = PermanentMailError if 500 <= code < 600 else TransientMailError
    return cls(f"{code} {detail}", code)


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
    """A multipart/alternative message as bytes (compat32 MIME: ~6x cheaper than EmailMessage)."""
    if html is None:
        msg = MIMEText(text, "plain", "utf-8")
    else:
        msg = MIMEMultipart("alternative")
        msg.attach(MIMEText(text, "plain", "utf-8"))
        msg.attach(MIMEText(html, "html", "utf-8"))
    msg["From"] = _address(sender)
    msg["To"] = _address(to)
    msg["Subject"] = _header(subject)
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = message_id or make_msgid(domain=parseaddr(sender)[1].rpartition("@")[2] or "localhost")
    for name, value in (headers or {}).items():
        msg[name] = _header(value)
    # CRLF line ends: smtplib sends bytes as they are, and SMTP servers refuse bare-LF "lines"
    # longer than 1000 octets (a whole message, once it grows past ~1 KB).
    return msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))


def _header(value: str) -> str | Header:
    return value if value.isascii() else Header(value, "utf-8")


def _address(value: str) -> str:
    name, address = parseaddr(value)
    return formataddr((name, address), charset="utf-8") if name else address
