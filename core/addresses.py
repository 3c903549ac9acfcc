"""Mail addresses as RFC 5321/5322/6531 define them: validated once at the edge, converted at send time.

Where an address enters (join form, API, import, test send), `parse_address` validates it with
`email-validator` and returns the form to store: the local part as typed (NFC), the domain
lower-cased and in Unicode (U-labels), so people see their address as they wrote it; uniqueness
uses its lower-cased form (`Supporter.email_normalized`).

At send time `wire_address` turns the stored form into what goes into the envelope and the `To`
header: an internationalised domain as IDNA A-labels (`x@bücher.example` → `x@xn--bcher-kva.example`),
which every server accepts. Only a non-ASCII *local part* is left that needs SMTPUTF8 (RFC 6531);
the transport sends it with SMTPUTF8 when the server offers it and otherwise fails that one
delivery with "server does not support SMTPUTF8" (core.mail).
"""

from __future__ import annotations

import re
from functools import lru_cache

import idna
from email_validator import EmailNotValidError, validate_email

from core.errors import ValidationFailed

MAX_LENGTH = 254  # RFC 5321 4.5.3.1.3 (a path is 256 octets including the angle brackets)


# RFC 5322 dot-atom text for the local part (RFC 6531 adds any non-ASCII character), a host name.
_LOCAL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~\x80-\U0010ffff-]+")
_ASCII = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+")


class InvalidAddress(ValueError):
    """An address that cannot be put on the wire."""


def parse_address(raw: str, field: str = "email") -> str:
    """The address to store, or ValidationFailed naming `field` with the reason."""
    value = (raw or "").strip()
    if not value:
        raise ValidationFailed({field: ["an email address is required"]})
    try:
        normalized = validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValidationFailed({field: [f"not a valid email address: {exc}"]}) from None
    if len(normalized) > MAX_LENGTH:
        raise ValidationFailed({field: [f"must be at most {MAX_LENGTH} characters"]})
    return normalized


@lru_cache(maxsize=4096)
def _ascii_domain(domain: str) -> str:
    try:
        return idna.encode(domain, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise InvalidAddress(f"domain {domain!r} has no IDNA form: {exc}") from None


def wire_address(address: str) -> str:
    """`address` with its domain in A-labels; ASCII addresses pass unchanged (the fast path).

    Raises InvalidAddress for something that cannot be an address on the wire (control
    characters, spaces, no domain): stored data that bypassed the edge fails its own delivery only.
    """
    if _ASCII.fullmatch(address):
        return address
    local, at, domain = address.rpartition("@")
    if (not at or not _LOCAL.fullmatch(local) or not local.isprintable() or not domain or not domain.isprintable()
            or any(c.isspace() or c in "@<>,;\"()[]\\" for c in domain)):
        raise InvalidAddress(f"not a deliverable address: {address!r}")
    return f"{local}@{domain if domain.isascii() else _ascii_domain(domain)}"
