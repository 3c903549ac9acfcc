"""VERP return paths: `bounces+d123-<mac>@bounce.example.org`, one per delivery or supporter.

A bounce comes back to the envelope sender, so an envelope sender that names the delivery
(`d<id>`, campaign mail) or the supporter (`s<id>`, transactional mail) attributes it exactly,
whatever the remote server wrote in its report. The MAC (HMAC-SHA256 with the app's secret key,
truncated to 80 bits, base32) makes the address unforgeable: a report to a made-up address is
ignored instead of suppressing someone. 80 bits are plenty against guessing (each guess costs
the attacker a mail) and keep the local part under 45 octets (RFC 5321 allows 64). Lowercase
only, because some servers fold the case of local parts.

Off unless BOUNCE_ADDRESS is set: the mail server must then deliver `bounces+anything@…` to the
`bounces@…` mailbox (Postfix `recipient_delimiter = +`), see docs/deliverability.md.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable

from flask import current_app

KINDS = ("d", "s")  # d = campaign delivery, s = supporter (transactional mail)
MAC_BYTES = 10


def _mac(key: bytes, kind: str, ident: int) -> str:
    digest = hmac.new(key, f"{kind}{ident}".encode(), hashlib.sha256).digest()[:MAC_BYTES]
    return base64.b32encode(digest).decode().lower()


def _key(secret: str) -> bytes:
    # Purpose-bound like core.signing's tokens: the MAC of a VERP address is no other token's MAC.
    return hashlib.sha256(b"supporters/verp\0" + secret.encode()).digest()


def signer() -> Callable[[str, int], str] | None:
    """A function (kind, id) -> return path, or None when VERP is off; make it once per batch."""
    address = current_app.config.get("BOUNCE_ADDRESS")
    if not address:
        return None
    local, _, domain = address.rpartition("@")
    key = _key(current_app.config["SECRET_KEY"])

    def return_path(kind: str, ident: int) -> str:
        return f"{local}+{kind}{ident}-{_mac(key, kind, ident)}@{domain}"

    return return_path


def return_path(kind: str, ident: int) -> str | None:
    """The VERP envelope sender for one delivery (`d`) or supporter (`s`); None when VERP is off."""
    sign = signer()
    return sign(kind, ident) if sign else None


_VERP = re.compile(r"([a-z0-9._-]+)\+([ds])(\d{1,19})-([a-z2-7]+)@", re.IGNORECASE)


class Verp:
    """The outcome of reading VERP addresses: `found` (kind, id) pairs that verify, `forged` count."""

    def __init__(self) -> None:
        self.found: list[tuple[str, int]] = []
        self.forged = 0


def verify(texts: list[str]) -> Verp:
    """Find VERP addresses of ours (the configured local part) in `texts` and check their MACs."""
    result = Verp()
    address = current_app.config.get("BOUNCE_ADDRESS") or ""
    local = address.rpartition("@")[0].lower()
    if not local:
        return result
    key = _key(current_app.config["SECRET_KEY"])
    for text in texts:
        for m in _VERP.finditer(text or ""):
            prefix, kind, ident, mac = m.group(1).lower(), m.group(2).lower(), int(m.group(3)), m.group(4).lower()
            if prefix != local:  # another mailbox's subaddress, not a VERP address of ours
                continue
            if hmac.compare_digest(mac, _mac(key, kind, ident)):
                if (kind, ident) not in result.found:
                    result.found.append((kind, ident))
            else:
                result.forged += 1
    return result
