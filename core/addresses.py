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
from email import policy
from email.headerregistry import Address
from email.utils import parseaddr
from functools import lru_cache

import idna
from email_validator import EmailNotValidError, validate_email

from core.errors import ValidationFailed
from core.headers import defuse, header_text_problem

INVALID_ADDRESS = "not a deliverable address"  # how InvalidAddress messages start (campaign stats count them)
SENDER_NAME_MAX = 100
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
        raise InvalidAddress(f"{INVALID_ADDRESS}: {address!r}")
    return f"{local}@{domain if domain.isascii() else _ascii_domain(domain)}"


def from_header(sender: str, field: str = "sender") -> tuple[str, str]:
    """(`From:` line, envelope address) for `Name <address>`: name encoded and folded, domain in A-labels.

    Built by the standard library's header registry (once per campaign or mail, never per
    recipient); ValidationFailed naming `field` when the address cannot go on the wire.
    """
    name, address = parseaddr(sender)
    try:
        address = wire_address(address)
    except InvalidAddress as exc:
        raise ValidationFailed({field: [str(exc)]}) from None
    local, _, domain = address.rpartition("@")
    mailbox = Address(display_name=defuse(name).strip(), username=local, domain=domain)
    # A non-ASCII local part (RFC 6532) can only be written raw, for a server with SMTPUTF8.
    pol = policy.SMTP if local.isascii() else policy.SMTPUTF8
    return pol.header_factory("From", mailbox).fold(policy=pol).rstrip("\r\n"), address


def parse_sender(raw: str, field: str = "sender") -> str:
    """A sender `Name <address>` or a bare address, checked and normalised for storing.

    The name must be header-safe (no line breaks or control characters) and the address valid
    (email-validator); ValidationFailed naming `field` otherwise.
    """
    problem = header_text_problem(raw)
    if problem:
        raise ValidationFailed({field: [problem]})
    name, address = "", (raw or "").strip()
    if "<" in address:
        parsed = policy.default.header_factory("From", address)
        if len(parsed.addresses) != 1 or parsed.defects:
            raise ValidationFailed({field: ["give one address, or a name and an address: Name <news@example.org>"]})
        name, address = parsed.addresses[0].display_name, parsed.addresses[0].addr_spec
    address = parse_address(address, field)
    name = " ".join(name.split())
    if len(name) > SENDER_NAME_MAX:
        raise ValidationFailed({field: [f"the name must be at most {SENDER_NAME_MAX} characters"]})
    if not name:
        return address
    return f'"{name.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}" <{address}>'
