"""The import's reading side, row by row: the CSV rows of a checked file, each validated or rejected."""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import os
import re
import zoneinfo
from collections.abc import Callable, Iterator

from email_validator import SPECIAL_USE_DOMAIN_NAMES as _SPECIAL_USE
from email_validator import EmailNotValidError, validate_email

from supporters.import_source import KINDS, MAX_NAME, MAX_TAG, ImportAborted, ImportOptions, SourceFile
from supporters.models import LANGUAGES, SupporterKind, normalize_email

# A conservative subset of what email-validator accepts, checked first because the validator
# costs ~20 µs per address (20 s per million); anything else gets the validator's full verdict.
_SIMPLE_EMAIL = re.compile(
    r"[A-Za-z0-9_%+\-]+(?:\.[A-Za-z0-9_%+\-]+)*@"
    r"((?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+([A-Za-z]{2,63}))"
)


# --- rows --------------------------------------------------------------------------------------


class RowRejected(Exception):
    pass


def check_email(raw: str) -> str:
    """The address as it will be stored (domain lower-cased), or RowRejected with the reason."""
    value = raw.strip()
    if not value:
        raise RowRejected("the email is empty")
    match = _SIMPLE_EMAIL.fullmatch(value)
    if (match and len(value) <= 254 and len(value) - len(match.group(1)) <= 65 and "--" not in match.group(1)
            and match.group(2).lower() not in _SPECIAL_USE):
        local, _, domain = value.rpartition("@")
        return f"{local}@{domain.lower()}"
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise RowRejected(f"invalid email {value!r}: {exc}") from None


def referral_codes(chunk: int = 4096) -> Iterator[str]:
    """Referral codes for imported supporters: 14 URL-safe characters, 72 random bits after a prefix.

    The 12 characters after the prefix are `secrets.token_urlsafe(9)` (the same `os.urandom`,
    drawn a few thousand codes at a time: one call per code was a fifth of the reader's time).
    The 2-character prefix is random too but shared by `chunk` consecutive codes, so a batch's
    codes land side by side in the unique index instead of on thousands of scattered pages
    (measured at a million rows: the code index cost 2.2 s with scattered keys, 1.4 s clustered).
    It adds no guessable structure: the 72 bits after it are what makes a code unguessable.
    """
    while True:
        prefix = base64.urlsafe_b64encode(os.urandom(3)).decode("ascii")[:2]
        text = base64.urlsafe_b64encode(os.urandom(9 * chunk)).decode("ascii")  # 9 bytes -> 12 chars
        yield from (prefix + text[i:i + 12] for i in range(0, len(text), 12))


_TIMEZONES: set[str] | None = None


def _timezones() -> set[str]:
    global _TIMEZONES
    if _TIMEZONES is None:
        _TIMEZONES = zoneinfo.available_timezones()
    return _TIMEZONES


class RowChecker:
    """Turns a CSV row into the staged values, or raises RowRejected."""

    def __init__(self, positions: dict[str, int], opts: ImportOptions, active: bool, hash_emails: bool):
        self.positions = positions
        self.default_kind = opts.kind or SupporterKind.FAN.value
        self.default_language = opts.language or "en"
        self.active = active
        self.hash_emails = hash_emails
        self._codes = referral_codes()

    def __call__(self, row: list[str]) -> tuple:
        p = self.positions
        email = check_email(row[p["email"]])
        normalized = normalize_email(email)
        name = row[p["name"]].strip() if "name" in p else ""
        if len(name) > MAX_NAME:
            raise RowRejected(f"the name is longer than {MAX_NAME} characters")
        kind = row[p["kind"]].strip().lower().replace("-", "_").replace(" ", "_") if "kind" in p else ""
        kind = kind or self.default_kind
        if kind not in KINDS:
            raise RowRejected(f"unknown kind {kind!r}; one of {', '.join(sorted(KINDS))}")
        language = row[p["language"]].strip().lower()[:2] if "language" in p else ""
        language = language or self.default_language
        if language not in LANGUAGES:
            raise RowRejected(f"unknown language {language!r}; one of {', '.join(LANGUAGES)}")
        country = row[p["country"]].strip().upper() if "country" in p else ""
        if country and not (len(country) == 2 and country.isascii() and country.isalpha()):
            raise RowRejected(f"country must be a two-letter ISO code, not {country!r}")
        timezone = row[p["timezone"]].strip() if "timezone" in p else ""
        if timezone and timezone not in _timezones():
            raise RowRejected(f"unknown time zone {timezone!r}")
        tags = None
        if "tags" in p and row[p["tags"]].strip():
            names = sorted({t.strip() for t in re.split(r"[,;]", row[p["tags"]]) if t.strip()})
            if any(len(t) > MAX_TAG for t in names):
                raise RowRejected(f"a tag is longer than {MAX_TAG} characters")
            tags = json.dumps(names, ensure_ascii=False)
        digest = hashlib.sha256(normalized.encode()).hexdigest() if self.hash_emails else None
        code = next(self._codes) if self.active else None
        return (email, normalized, name or None, kind, language, country or None, timezone or None, tags,
                digest, code)


STAGE_COLUMNS = ("line", "email", "email_normalized", "name", "kind", "language", "country", "timezone", "tags",
                 "email_hash", "referral_code")


def read_rows(src: SourceFile, delimiter: str, positions_cb: Callable[[list[str]], int],
              ) -> Iterator[tuple[int, list[str] | None, str | None]]:
    """Yield (line, row, None) or (line, raw row or None, reject reason); the header goes to `positions_cb`."""
    with open(src.path, encoding=src.encoding, newline="") as fh:
        reader = csv.reader(fh, delimiter=delimiter, strict=True)
        try:
            header = next(reader)
        except StopIteration:
            raise ImportAborted(f"{src.path}: the file is empty") from None
        except csv.Error as exc:
            raise ImportAborted(f"line 1 (the header) cannot be read: {exc}", "header") from None
        width = positions_cb(header)
        previous = reader.line_num
        while True:
            start = previous + 1
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                previous = reader.line_num
                if "unexpected end of data" in str(exc):
                    yield start, None, "the file ends inside a quoted field (it stops mid-row)"
                    return
                yield start, None, f"malformed CSV: {exc}"
                continue
            previous = reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # a blank line
            if len(row) != width:
                last = previous >= src.lines and not src.ends_with_newline
                if last and len(row) < width:
                    yield start, row, f"the file stops in the middle of this row ({len(row)} of {width} fields)"
                else:
                    yield start, row, f"expected {width} fields, found {len(row)}"
                continue
            yield start, row, None
