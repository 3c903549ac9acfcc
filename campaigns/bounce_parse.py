"""Read one bounce or complaint mail into a `Report`: what happened, to whom, and which mail of ours.

DSNs (RFC 3464) and the many non-standard bounces of older MTAs are recognised by `flufl.bounce`
(Mailman's detectors); the DSN's status codes, ARF feedback reports (RFC 5965) and the returned
original's headers are read with the standard `email` parser. Pure: no database, and no input
makes it raise (a mail it cannot read is a Report of kind `ignored` with the reason).
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from email import message_from_bytes, message_from_string
from email.message import Message
from email.policy import compat32
from email.utils import getaddresses, parseaddr

from flufl.bounce import all_failures

from campaigns.bounce_models import ReportKind

log = logging.getLogger(__name__)

# Headers of the report itself that carry the address it was delivered to: our VERP address.
ENVELOPE_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To")
# 5.x.x codes that are not the address's fault: mailbox full, message too big, content or policy
# refusals (often spam filtering, a reputation problem that suppressing would hide). Soft.
SOFT_PERMANENT = ("5.2.2", "5.3.4", "5.4.7", "5.6.", "5.7.")
_STATUS = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})")
_OUR_MESSAGE_ID = re.compile(rb"<d\d{1,19}\.c\d{1,10}@[^<>\s]{1,253}>")


@dataclass
class Report:
    kind: ReportKind
    key: str  # what makes the same mail the same report (see report_key)
    detail: str = ""
    recipients: set[str] = field(default_factory=set)  # the failed / complained-about addresses
    verp_texts: list[str] = field(default_factory=list)  # where our VERP address may appear
    message_ids: list[str] = field(default_factory=list)  # Message-IDs of the returned original


def report_key(msg: Message | None, raw: bytes) -> str:
    """sha256 of the report's Message-ID (the same mail fetched twice), else of its bytes."""
    mid = (msg.get("Message-ID") if msg is not None else None) or ""
    basis = b"mid:" + str(mid).strip().encode(errors="replace") if str(mid).strip() else b"raw:" + raw
    return hashlib.sha256(basis).hexdigest()


def parse(raw: bytes, envelope_to: list[str] | None = None) -> Report:
    """Classify one mail; never raises."""
    msg = None
    try:
        msg = message_from_bytes(raw, policy=compat32)
        report = _parse(msg, raw)
    except Exception as exc:  # a mail we cannot read is skipped, never a crash of the processor
        log.warning("unreadable report mail: %s: %s", exc.__class__.__name__, exc)
        report = Report(ReportKind.IGNORED, report_key(msg, raw), f"unreadable: {exc.__class__.__name__}")
    report.verp_texts.extend(envelope_to or [])
    report.detail = " ".join(report.detail.split())[:300]
    return report


def _parse(msg: Message, raw: bytes) -> Report:
    report = Report(ReportKind.IGNORED, report_key(msg, raw))
    report.verp_texts += [str(v) for name in ENVELOPE_HEADERS for v in (msg.get_all(name) or [])]
    feedback = _first_part(msg, "message/feedback-report")
    if feedback is not None:
        _read_feedback(report, feedback)
    else:
        _read_dsn(report, msg)
    _read_original(report, msg)
    if not report.message_ids:  # an MTA that quoted the original as text: our IDs are distinctive
        report.message_ids = sorted({m.decode() for m in _OUR_MESSAGE_ID.findall(raw)})
    return report


def _first_part(msg: Message, content_type: str) -> Message | None:
    return next((p for p in msg.walk() if p.get_content_type() == content_type), None)


def _fields(part: Message) -> list[Message]:
    """The header blocks of a message/feedback-report or message/delivery-status part."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, Message)]
    if isinstance(payload, str):  # some senders base64 or otherwise encode the block
        text = part.get_payload(decode=True) or b""
        return [message_from_string(block, policy=compat32)
                for block in text.decode(errors="replace").replace("\r\n", "\n").split("\n\n") if block.strip()]
    return []


def _read_feedback(report: Report, part: Message) -> None:
    """ARF (RFC 5965): feedback-type abuse is a complaint; other types are recorded, nothing more."""
    blocks = _fields(part)
    fields = blocks[0] if blocks else Message()
    feedback_type = str(fields.get("Feedback-Type", "")).strip().lower()
    report.verp_texts += [str(v) for v in fields.get_all("Original-Mail-From") or []]
    report.recipients |= {_address(v) for v in fields.get_all("Original-Rcpt-To") or [] if _address(v)}
    report.kind = ReportKind.COMPLAINT if feedback_type == "abuse" else ReportKind.IGNORED
    report.detail = f"feedback report: {feedback_type or 'no type'}"
    if agent := fields.get("User-Agent"):
        report.detail += f" from {agent}"


def _read_dsn(report: Report, msg: Message) -> None:
    """A DSN, or a bounce flufl.bounce recognises: hard, soft or delayed, with status and reason."""
    statuses: list[tuple[str, str, str]] = []  # (action, status, diagnostic) per recipient
    status_part = _first_part(msg, "message/delivery-status")
    if status_part is not None:
        blocks = _fields(status_part)
        for block in blocks:
            report.verp_texts += [str(v) for v in block.get_all("X-Postfix-Sender") or []]
            action = str(block.get("Action", "")).strip().lower()
            if not action:
                continue
            for name in ("Original-Recipient", "Final-Recipient"):
                if block.get(name) and (address := _address(str(block[name]).partition(";")[2])):
                    report.recipients.add(address)
                    break
            statuses.append((action, str(block.get("Status", "")).strip(), str(block.get("Diagnostic-Code", ""))))
    try:
        temporary, permanent = all_failures(msg)
    except Exception as exc:  # a detector choking on odd input must not stop the rest
        log.warning("flufl.bounce could not read a report: %s", exc)
        temporary, permanent = frozenset(), frozenset()
    failed = [s for s in statuses if s[0].startswith(("fail", "error"))]
    delayed = [s for s in statuses if s[0].startswith("delay")]
    for address in (*permanent, *temporary):
        report.recipients.add(address.decode(errors="replace").strip().lower())
    if failed:
        hard = [s for s in failed if _is_hard(s[1])]
        action, status, diagnostic = (hard or failed)[0]
        report.kind = ReportKind.HARD if hard else ReportKind.SOFT
        report.detail = f"{status or 'no status'} {diagnostic.partition(';')[2] or diagnostic}"
    elif permanent:  # a non-DSN bounce: the detectors only call permanent what says so
        report.kind = ReportKind.HARD
        report.detail = "permanent failure (non-standard bounce)"
    elif delayed or temporary:
        report.kind = ReportKind.DELAYED
        status = delayed[0][1] if delayed else ""
        report.detail = f"delayed {status}".strip()


def _is_hard(status: str) -> bool:
    """A 5.x.x about the address itself (5.1.1 no such user, 5.1.2 no such domain, 5.2.1 disabled, …)."""
    m = _STATUS.match(status)
    if not m:
        return not status  # "failed" without a status: trust the action
    code = f"{m.group(1)}.{int(m.group(2))}.{int(m.group(3))}"
    return m.group(1) == "5" and not code.startswith(SOFT_PERMANENT)


def _read_original(report: Report, msg: Message) -> None:
    """Message-ID and Return-Path of the returned original (message/rfc822 or text/rfc822-headers)."""
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype == "message/rfc822":
            payload = part.get_payload()
            original = payload[0] if isinstance(payload, list) and payload else None
        elif ctype == "text/rfc822-headers":
            text = part.get_payload(decode=True) or b""
            original = message_from_bytes(text, policy=compat32)
        else:
            continue
        if not isinstance(original, Message):
            continue
        report.verp_texts += [str(v) for v in original.get_all("Return-Path") or []]
        if mid := original.get("Message-ID"):
            report.message_ids.append(str(mid).strip())
        if report.kind is ReportKind.COMPLAINT and not report.recipients:
            report.recipients |= {a.lower() for _n, a in getaddresses([str(v) for v in original.get_all("To") or []])
                                  if "@" in a}


def _address(value: str) -> str:
    address = parseaddr(str(value).strip())[1] or str(value).strip().strip("<>")
    return address.lower() if "@" in address else ""
