"""The organisation's identity in every mail: name, postal address, links, colour and senders.

One row in `org_settings`, changed by admins through `PUT /api/v1/settings`. Every field may be
empty: `current_org()` fills in defaults (the display name of MAIL_FROM, MAIL_FROM as sender), so a
fresh install still sends complete mails; `Org.missing()` lists what an operator should still set.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from email.utils import formataddr, parseaddr
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from email_validator import EmailNotValidError, validate_email
from flask import current_app
from sqlalchemy.orm import Mapped, mapped_column

from core.db import utcnow
from core.errors import ValidationFailed
from core.extensions import db

DEFAULT_ACCENT = "#1f5c99"
_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROL_BUT_LF = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")

# field -> (kind, maximum length); the kinds are checked by `validate_settings`.
FIELDS: dict[str, tuple[str, int]] = {
    "organisation_name": ("text", 200),
    "postal_address": ("lines", 500),
    "privacy_url": ("https", 2000),
    "logo_url": ("https", 2000),
    "accent_color": ("colour", 7),
    "reply_to": ("address", 320),
    "campaign_sender": ("address", 320),
    "transactional_sender": ("address", 320),
}


class OrgSettings(db.Model):
    """The single settings row (id 1); NULL means "use the default"."""

    __tablename__ = "org_settings"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    organisation_name: Mapped[str | None] = mapped_column(sa.String(200))
    postal_address: Mapped[str | None] = mapped_column(sa.String(500))
    privacy_url: Mapped[str | None] = mapped_column(sa.String(2000))
    logo_url: Mapped[str | None] = mapped_column(sa.String(2000))
    accent_color: Mapped[str | None] = mapped_column(sa.String(7))
    reply_to: Mapped[str | None] = mapped_column(sa.String(320))
    campaign_sender: Mapped[str | None] = mapped_column(sa.String(320))
    transactional_sender: Mapped[str | None] = mapped_column(sa.String(320))
    updated_at: Mapped[datetime | None]


@dataclass(frozen=True)
class Org:
    """The effective settings: stored values with the defaults filled in."""

    name: str
    postal_address: str
    privacy_url: str | None
    logo_url: str | None
    accent_color: str
    reply_to: str | None
    campaign_sender: str
    transactional_sender: str
    website: str

    def missing(self) -> list[str]:
        """What the operator should still set (mail in the EU and the US must show a postal address)."""
        found = []
        if not self.postal_address:
            found.append("postal_address: no postal address/imprint is set; commercial mail must show one")
        if not self.privacy_url:
            found.append("privacy_url: no privacy-policy link is set")
        return found


def stored() -> dict[str, Any]:
    """The stored values (None where nothing is set) and when they last changed."""
    row = db.session.get(OrgSettings, 1)
    values = {name: getattr(row, name) if row else None for name in FIELDS}
    return {**values, "updated_at": row.updated_at if row else None}


def current_org(values: dict[str, Any] | None = None) -> Org:
    """The effective settings (one primary-key read unless `values` are given)."""
    values = stored() if values is None else values
    mail_from = current_app.config["MAIL_FROM"]
    default_name = parseaddr(mail_from)[0] or "Supporters"
    return Org(
        name=values.get("organisation_name") or default_name,
        postal_address=values.get("postal_address") or "",
        privacy_url=values.get("privacy_url"),
        logo_url=values.get("logo_url"),
        accent_color=(values.get("accent_color") or DEFAULT_ACCENT).lower(),
        reply_to=values.get("reply_to"),
        campaign_sender=values.get("campaign_sender") or mail_from,
        transactional_sender=values.get("transactional_sender") or mail_from,
        website=current_app.config["PUBLIC_BASE_URL"],
    )


def _address(value: str) -> str:
    """`Name <addr@domain>` or `addr@domain`, normalised; ValueError with the reason otherwise."""
    name, address = parseaddr(value)
    if not address or "@" not in address or ("<" in value and f"<{address}>" not in value):
        raise ValueError("not an email address (use addr@example.org or Name <addr@example.org>)")
    try:
        checked = validate_email(address, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from None
    # The sender's address goes into SMTP envelopes and headers: ASCII keeps it deliverable anywhere.
    normalised = checked.ascii_email or checked.normalized
    if not normalised or not normalised.isascii():
        raise ValueError("use an ASCII address (an internationalised domain in its xn-- form)")
    return formataddr((name, normalised)) if name else normalised


def validate_settings(data: dict[str, Any]) -> dict[str, str | None]:
    """Check and normalise the given fields; ValidationFailed names every bad one."""
    errors: dict[str, list[str]] = {}
    clean: dict[str, str | None] = {}
    for field, value in data.items():
        if field not in FIELDS:
            errors[field] = ["unknown setting"]
            continue
        if value is None or (isinstance(value, str) and not value.strip()):
            clean[field] = None  # back to the default
            continue
        if not isinstance(value, str):
            errors[field] = ["must be a string or null"]
            continue
        kind, limit = FIELDS[field]
        value = value.strip()
        if kind == "lines":
            value = "\n".join(line.strip() for line in value.replace("\r\n", "\n").split("\n") if line.strip())
        if len(value) > limit:
            errors[field] = [f"must be at most {limit} characters"]
        elif (_CONTROL_BUT_LF if kind == "lines" else _CONTROL).search(value):
            errors[field] = ["must not contain control characters" + (" (line breaks are fine)" if kind == "lines" else "")]
        elif kind == "https":
            try:
                parts = urlsplit(value)
                valid = parts.scheme == "https" and bool(parts.hostname) and " " not in value
            except ValueError:  # e.g. an unclosed IPv6 bracket
                valid = False
            if not valid:
                errors[field] = ["must be an https:// URL"]
        elif kind == "colour" and not _COLOUR.match(value):
            errors[field] = ["must be a colour as #rrggbb"]
        elif kind == "address":
            try:
                value = _address(value)
            except ValueError as exc:
                errors[field] = [str(exc)]
        if field not in errors:
            clean[field] = value.lower() if kind == "colour" else value
    if errors:
        raise ValidationFailed(errors)
    return clean


def update_settings(data: dict[str, Any]) -> list[str]:
    """Store the given fields (None resets one to its default); return the names that changed.

    The caller records the audit event and commits.
    """
    clean = validate_settings(data)
    row = db.session.get(OrgSettings, 1)
    if row is None:
        row = OrgSettings(id=1)
        db.session.add(row)
    changed = [f for f, v in clean.items() if getattr(row, f) != v]
    for field in changed:
        setattr(row, field, clean[field])
    if changed:
        row.updated_at = utcnow()
    db.session.flush()
    return changed
