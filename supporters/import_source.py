"""The import's reading side, for the file as a whole: options, encoding, header, columns.

Everything here is checked before any row is read or anything written (supporters.transfer_import):
a file that cannot be imported as a whole is refused with ImportAborted and one clear reason.
"""

from __future__ import annotations

import codecs
import csv
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from core.db import utcnow
from core.errors import ValidationFailed
from supporters.models import LANGUAGES, SupporterKind

FIELDS = ("email", "name", "kind", "language", "country", "timezone", "tags")
# Header names that mean a field without a --map (compared lower-cased, without spaces/_/-).
ALIASES = {
    "email": {"email", "emailaddress", "mail", "emailadresse", "mailadresse"},
    "name": {"name", "fullname", "vollername"},
    "kind": {"kind", "type", "art"},
    "language": {"language", "lang", "sprache", "locale"},
    "country": {"country", "countrycode", "land"},
    "timezone": {"timezone", "tz", "zeitzone"},
    "tags": {"tags", "tag"},
}
DELIMITERS = ",;\t|"
MAX_NAME = 200
MAX_TAG = 80
KINDS = {k.value for k in SupporterKind}


class ImportAborted(ValidationFailed):
    """The whole file cannot be imported (unreadable, wrong encoding, no email column, …)."""

    def __init__(self, message: str, where: str = "file"):
        super().__init__({where: [message]}, detail=message)


@dataclass
class ImportOptions:
    path: str
    mapping: dict[str, str] = field(default_factory=dict)  # field -> header column
    encoding: str | None = None
    delimiter: str | None = None
    kind: str | None = None
    language: str | None = None
    tags: list[str] = field(default_factory=list)
    consent_note: str | None = None
    consented_at: datetime | None = None
    send_opt_in: bool = False
    update: bool = False
    dry_run: bool = False
    rejects_path: str | None = None
    batch_size: int = 5000
    writers: int = 2  # parallel database connections on PostgreSQL (SQLite always uses one)


@dataclass
class ImportSummary:
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    duplicate_in_file: int = 0
    existing: int = 0
    rejected: int = 0
    suppressed: int = 0
    opt_in_queued: int = 0
    encoding: str = ""
    delimiter: str = ""
    rejects_path: str | None = None
    ignored_columns: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def skipped(self) -> int:
        return self.duplicate_in_file + self.existing


def parse_mapping(text: str | None) -> dict[str, str]:
    """`email=E-Mail,name=Name` -> {"email": "E-Mail", "name": "Name"}; unknown fields are refused."""
    mapping: dict[str, str] = {}
    if not text:
        return mapping
    for part in text.split(","):
        if not part.strip():
            continue
        target, sep, column = part.partition("=")
        target, column = target.strip().lower(), column.strip()
        if not sep or not target or not column:
            raise ImportAborted(f"--map expects FIELD=COLUMN pairs, got {part.strip()!r}", "map")
        if target not in FIELDS:
            raise ImportAborted(f"--map names the unknown field {target!r}; known fields: {', '.join(FIELDS)}", "map")
        if target in mapping:
            raise ImportAborted(f"--map names the field {target!r} twice", "map")
        mapping[target] = column
    return mapping


def parse_timestamp(value: str, what: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ImportAborted(f"{what} is not an ISO 8601 date or date-time: {value!r}", what) from None
    parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    if parsed > utcnow():
        raise ImportAborted(f"{what} lies in the future", what)
    return parsed


def check_options(opts: ImportOptions) -> None:
    evidence = opts.consent_note is not None or opts.consented_at is not None
    if evidence and opts.send_opt_in:
        raise ImportAborted("give either consent evidence (--consent-note and --consented-at) or --send-opt-in, "
                            "not both", "consent")
    if not evidence and not opts.send_opt_in:
        raise ImportAborted("state the consent basis: --consent-note TEXT --consented-at DATE (these people "
                            "agreed, and you can show how) or --send-opt-in (ask them by mail)", "consent")
    if evidence and (not (opts.consent_note or "").strip() or opts.consented_at is None):
        raise ImportAborted("consent evidence needs both --consent-note and --consented-at", "consent")
    if evidence and len(opts.consent_note) > 500:
        raise ImportAborted("--consent-note is longer than 500 characters", "consent")
    if opts.kind is not None and opts.kind not in KINDS:
        raise ImportAborted(f"--kind must be one of {', '.join(sorted(KINDS))}", "kind")
    if opts.language is not None and opts.language not in LANGUAGES:
        raise ImportAborted(f"--language must be one of {', '.join(LANGUAGES)}", "language")
    for tag in opts.tags:
        if not tag.strip() or len(tag.strip()) > MAX_TAG:
            raise ImportAborted(f"--tag must be a name of 1 to {MAX_TAG} characters", "tag")
    if opts.encoding is not None:
        text_codec(opts.encoding)
    if opts.delimiter is not None and len(opts.delimiter) != 1:
        raise ImportAborted("--delimiter must be one character", "delimiter")
    if not 1 <= opts.writers <= 8:
        raise ImportAborted("--writers must be between 1 and 8", "writers")
    if not 1 <= opts.batch_size <= 100_000:
        raise ImportAborted("--batch-size must be between 1 and 100000", "batch_size")


# --- the file as a whole -----------------------------------------------------------------------


@dataclass
class SourceFile:
    path: Path
    encoding: str
    lines: int
    ends_with_newline: bool
    note: str | None = None


# Codecs Python knows that turn bytes into text but are not how a spreadsheet stores a CSV file
# (rot13, base64, zlib_codec, … are not text encodings at all and fail later in odd ways).
_NOT_FILE_ENCODINGS = {"idna", "punycode", "unicode_escape", "raw_unicode_escape", "undefined", "mbcs", "oem"}


def text_codec(name: str) -> str:
    """The codec's canonical name if `name` is a text encoding a CSV file can be in; else ImportAborted."""
    try:
        info = codecs.lookup(name)
    except (LookupError, TypeError, ValueError):
        raise ImportAborted(f"unknown encoding {name!r}", "encoding") from None
    if not getattr(info, "_is_text_encoding", True) or info.name.replace("-", "_") in _NOT_FILE_ENCODINGS:
        raise ImportAborted(f"{name!r} is not a text encoding for a CSV file; use e.g. utf-8, cp1252, latin-1 "
                            f"or utf-16", "encoding")
    return info.name


def inspect_file(path: str, encoding: str | None) -> SourceFile:
    """Check that the file is readable text in one encoding; count its lines (for progress)."""
    p = Path(path)
    if not p.exists():
        raise ImportAborted(f"{path}: no such file")
    if p.is_dir():
        raise ImportAborted(f"{path}: is a directory, not a CSV file")
    if not os.access(p, os.R_OK):
        raise ImportAborted(f"{path}: not readable (permission denied)")
    try:
        with open(p, "rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        raise ImportAborted(f"{path}: cannot be read: {exc.strerror or exc}") from None
    if not head:
        raise ImportAborted(f"{path}: the file is empty")
    note = None
    if encoding is None:
        if head.startswith(codecs.BOM_UTF8):
            encoding = "utf-8-sig"
        elif head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            encoding = "utf-16"
        else:
            encoding = "utf-8"
        candidates = [encoding] if encoding != "utf-8" else ["utf-8", "cp1252"]
    else:
        encoding = text_codec(encoding)
        candidates = [encoding]
    first_error = None
    for candidate in candidates:
        try:
            lines, ends = _scan(p, candidate)
        except _DecodeProblem as exc:
            first_error = first_error or exc  # the reason it is not the encoding we expected
            continue
        if candidate != candidates[0]:
            note = (f"the file is not UTF-8 ({first_error}); read it as {candidate}. "
                    f"Give --encoding if that is wrong.")
        return SourceFile(p, candidate, lines, ends, note)
    raise ImportAborted(f"{path}: {first_error}; give the file's encoding with --encoding (e.g. cp1252, latin-1, "
                        f"utf-16)", "encoding")


class _DecodeProblem(Exception):
    pass


def _scan(path: Path, encoding: str) -> tuple[int, bool]:
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    lines, offset, last = 0, 0, ""
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            try:
                text = decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                line = lines + _count_lines_before(chunk, exc.start) + 1
                raise _DecodeProblem(f"line {line} is not valid {encoding} (byte 0x{chunk[exc.start]:02x} at "
                                     f"offset {offset + exc.start})") from None
            if "\x00" in text:
                raise _DecodeProblem(f"line {lines + text[:text.index(chr(0))].count(chr(10)) + 1} holds a NUL "
                                     f"byte: this is not {encoding} text")
            lines += text.count("\n")
            offset += len(chunk)
            if text:
                last = text[-1]
        try:
            text = decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise _DecodeProblem(f"the file ends in the middle of a {encoding} character") from None
        if text:
            last = text[-1]
    ends = last in ("\n", "\r")
    return lines + (0 if ends else 1), ends


def _count_lines_before(chunk: bytes, index: int) -> int:
    return chunk.count(b"\n", 0, index)


def _normalise_header(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", name.strip().lower())


def resolve_columns(header: list[str], mapping: dict[str, str]) -> tuple[dict[str, int], list[str]]:
    """Field -> column index, from --map first and the header names otherwise; and the ignored columns."""
    header = [h.strip().lstrip("\ufeff") for h in header]
    positions: dict[str, int] = {}
    for target, column in mapping.items():
        matches = [i for i, h in enumerate(header) if h == column] or \
                  [i for i, h in enumerate(header) if h.lower() == column.lower()]
        if not matches:
            raise ImportAborted(f"--map {target}={column}: the header has no column {column!r} "
                                f"(columns: {', '.join(header)})", "map")
        if len(matches) > 1:
            raise ImportAborted(f"--map {target}={column}: the header has the column {column!r} twice", "map")
        positions[target] = matches[0]
    taken = set(positions.values())
    for target in FIELDS:
        if target in positions:
            continue
        matches = [i for i, h in enumerate(header) if _normalise_header(h) in ALIASES[target] and i not in taken]
        if len(matches) > 1:
            raise ImportAborted(f"the header has more than one {target} column "
                                f"({', '.join(header[i] for i in matches)}); choose one with --map {target}=COLUMN",
                                "header")
        if matches:
            positions[target] = matches[0]
            taken.add(matches[0])
    if "email" not in positions:
        raise ImportAborted(f"the header has no email column (columns: {', '.join(header) or 'none'}); "
                            f"name it with --map email=COLUMN", "header")
    ignored = [h for i, h in enumerate(header) if i not in positions.values()]
    return positions, ignored


def sniff_delimiter(path: Path, encoding: str) -> str:
    with open(path, encoding=encoding, newline="") as fh:
        sample = "".join(fh.readline() for _ in range(20))
    try:
        return csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:
        # One column, or too little to tell: the header line decides.
        first = sample.splitlines()[0] if sample else ""
        counts = {d: first.count(d) for d in DELIMITERS}
        best = max(counts, key=counts.get)
        return best if counts[best] else ","
