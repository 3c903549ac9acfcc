"""A real SMTP server on loopback (aiosmtpd) that records messages and can misbehave on purpose."""

from __future__ import annotations

import threading
import time
from collections import Counter
from email import message_from_bytes
from email.message import Message

from aiosmtpd.controller import Controller

from tests.servers import free_port


class SinkHandler:
    def __init__(self):
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.message_ids: Counter[str] = Counter()
        self.connections = 0
        # recipient address -> SMTP answer for RCPT (e.g. "550 5.1.1 no such user")
        self.rcpt_replies: dict[str, str] = {}
        # recipient address -> answers for DATA, consumed in order (e.g. ["451 try later"])
        self.data_replies: dict[str, list[str]] = {}
        self.drop_next_data: int = 0  # close the connection instead of answering, this many times
        self.keep_and_drop_next_data: int = 0  # the same, after keeping the message (a real duplicate on retry)
        self.drop_every: int = 1  # the two above act on every n-th message only (drop first, then keep-and-drop)
        self.data_seen = 0
        self.dropped_ids: list[str] = []  # Message-IDs of the messages answered by a hang-up
        # recipient -> (when its transaction's MAIL FROM arrived, when the message was accepted), per message kept
        self.timeline: dict[str, list[tuple[float, float]]] = {}
        self.lock = threading.Lock()

    async def handle_MAIL(self, server, session, envelope, address, mail_options):  # noqa: N802
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        envelope.mail_time = time.time()
        return "250 OK"

    async def handle_HELO(self, server, session, envelope, hostname):  # noqa: N802 - aiosmtpd API
        session.host_name = hostname
        with self.lock:
            self.connections += 1
        return f"250 {server.hostname}"

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: N802
        session.host_name = hostname
        with self.lock:
            self.connections += 1
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        reply = self.rcpt_replies.get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        with self.lock:
            self.data_seen += 1
            turn = self.data_seen % self.drop_every == 0
            if self.drop_next_data > 0 and turn:
                self.drop_next_data -= 1
                self.dropped_ids.append(message_from_bytes(envelope.content).get("Message-ID", ""))
                session.transport_close = True
                server.transport.close()
                return "421 closing"
            for rcpt in envelope.rcpt_tos:
                queued = self.data_replies.get(rcpt.lower())
                if queued:
                    return queued.pop(0)
            self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
            mid = message_from_bytes(envelope.content).get("Message-ID", "")
            self.message_ids[mid] += 1
            now = time.time()
            for rcpt in envelope.rcpt_tos:
                self.timeline.setdefault(rcpt.lower(), []).append((getattr(envelope, "mail_time", now), now))
            if self.keep_and_drop_next_data > 0 and turn:
                self.keep_and_drop_next_data -= 1
                self.dropped_ids.append(mid)
                session.transport_close = True
                server.transport.close()
                return "421 closing"
        return "250 Message accepted"

    def parsed(self) -> list[Message]:
        with self.lock:
            return [message_from_bytes(content) for _f, _t, content in self.messages]


def wire_problems(content: bytes) -> list[str]:
    """What is wrong with a raw message as it crossed the wire: bare CR or LF, parser defects."""
    problems = []
    if content.replace(b"\r\n", b"").count(b"\n") or content.replace(b"\r\n", b"").count(b"\r"):
        problems.append("bare CR or LF line end")
    parsed = message_from_bytes(content)
    for part in parsed.walk():
        problems += [f"defect {type(d).__name__} in {part.get_content_type()}" for d in part.defects]
    return problems


class SMTPSink:
    """`smtputf8=False` gives a server that does not offer SMTPUTF8 (RFC 6531)."""

    def __init__(self, smtputf8: bool = True):
        self.handler = SinkHandler()
        self.port = free_port()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port,
                                     enable_SMTPUTF8=smtputf8)

    def start(self) -> SMTPSink:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    @property
    def messages(self):
        return self.handler.messages

    def wire_problems(self) -> list[str]:
        """Problems of every message received so far (checked after every test that used the sink)."""
        return [f"{mid}: {problem}" for _f, _t, content in self.messages
                for mid in [message_from_bytes(content).get("Message-ID", "?")] for problem in wire_problems(content)]
