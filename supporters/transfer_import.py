"""Safe, fast imports of supporter lists from CSV.

The file is checked as a whole before anything is written (readable, one encoding, a header with
an email column, a known mapping), then read row by row: a row that fails validation goes to the
reject file with its line number and the reason, a valid row is staged. Each batch of staged rows
becomes one transaction with a handful of set-based statements (suppressed addresses dropped,
`INSERT … SELECT … ON CONFLICT DO NOTHING`, consent events and tags for the new rows), so the
database never holds half a batch, and a re-run of the same file inserts nothing twice.

Nobody is imported without a stated consent basis: either evidence that these people agreed
(recorded as ConsentEvents with method "import") or `send_opt_in`, which imports them as pending
and queues the double-opt-in mail. Existing supporters are only touched with `update`, and their
status never changes (an unsubscribed or erased person is never made active by an import).
"""

from __future__ import annotations

import base64
import codecs
import csv
import hashlib
import itertools
import json
import os
import queue
import re
import threading
import zoneinfo
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from email_validator import SPECIAL_USE_DOMAIN_NAMES as _SPECIAL_USE
from email_validator import EmailNotValidError, validate_email
from flask import current_app
from sqlalchemy.dialects import postgresql

from core.db import UTCDateTime, utcnow
from core.errors import ValidationFailed
from core.extensions import db
from supporters.models import LANGUAGES, SupporterKind, Suppression, normalize_email

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
CONSENT_PURPOSE = "campaigns"
MAX_NAME = 200
MAX_TAG = 80
_KINDS = {k.value for k in SupporterKind}

# A conservative subset of what email-validator accepts, checked first because the validator
# costs ~20 µs per address (20 s per million); anything else gets the validator's full verdict.
_SIMPLE_EMAIL = re.compile(
    r"[A-Za-z0-9_%+\-]+(?:\.[A-Za-z0-9_%+\-]+)*@"
    r"((?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+([A-Za-z]{2,63}))"
)


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
    if opts.kind is not None and opts.kind not in _KINDS:
        raise ImportAborted(f"--kind must be one of {', '.join(sorted(_KINDS))}", "kind")
    if opts.language is not None and opts.language not in LANGUAGES:
        raise ImportAborted(f"--language must be one of {', '.join(LANGUAGES)}", "language")
    for tag in opts.tags:
        if not tag.strip() or len(tag.strip()) > MAX_TAG:
            raise ImportAborted(f"--tag must be a name of 1 to {MAX_TAG} characters", "tag")
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
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise ImportAborted(f"unknown encoding {encoding!r}", "encoding") from None
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
        if kind not in _KINDS:
            raise RowRejected(f"unknown kind {kind!r}; one of {', '.join(sorted(_KINDS))}")
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


# --- the database side -------------------------------------------------------------------------


class Stage:
    """A temporary table on the import's own connection, and the per-batch statements."""

    def __init__(self, conn: sa.Connection, opts: ImportOptions, tag_names: list[str], columns: set[str]):
        self.conn = conn
        self.opts = opts
        self.pg = conn.dialect.name == "postgresql"
        self.active = not opts.send_opt_in
        self.tag_names = tag_names
        self.columns = columns  # the fields the file has: an update never blanks the others

    def create(self) -> None:
        id_type = "BIGINT" if self.pg else "INTEGER"
        # The reader has already removed in-file duplicates. SQLite needs the key to note new ids
        # row by row; PostgreSQL joins the stage set-based and would only pay for the index.
        key = "NOT NULL" if self.pg else "PRIMARY KEY"
        with self.conn.begin():
            self.conn.exec_driver_sql("DROP TABLE IF EXISTS _import_stage")
            self.conn.exec_driver_sql(
                "CREATE TEMPORARY TABLE _import_stage (line INTEGER NOT NULL, email TEXT NOT NULL, "
                f"email_normalized TEXT {key}, name TEXT, kind TEXT NOT NULL, language TEXT NOT NULL, "
                f"country TEXT, timezone TEXT, tags TEXT, email_hash TEXT, referral_code TEXT, new_id {id_type})")

    def drop(self) -> None:
        with self.conn.begin():
            self.conn.exec_driver_sql("DROP TABLE IF EXISTS _import_stage")

    def load(self, rows: list[tuple]) -> None:
        # TRUNCATE, not DELETE, on PostgreSQL: deleted rows stay in the table until a vacuum, so
        # every batch's scan of the stage would also read all earlier batches (a million rows took
        # 13.8 s with DELETE, 10.9 s with TRUNCATE). SQLite's DELETE without WHERE is a truncate.
        self.conn.exec_driver_sql("TRUNCATE _import_stage" if self.pg else "DELETE FROM _import_stage")
        columns = ", ".join(STAGE_COLUMNS)
        if self.pg:
            # No wait for the WAL flush at each batch's commit: a crash can lose only the last
            # batches, and re-running the file completes exactly those (it is idempotent).
            self.conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
            raw = self.conn.connection.driver_connection
            with raw.cursor() as cur, cur.copy(f"COPY _import_stage ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            marks = ", ".join("?" for _ in STAGE_COLUMNS)
            self.conn.exec_driver_sql(f"INSERT INTO _import_stage ({columns}) VALUES ({marks})", rows)  # noqa: S608 - only constant identifiers are interpolated

    def drop_suppressed(self) -> int:
        return self.conn.exec_driver_sql(
            "DELETE FROM _import_stage WHERE email_hash IN (SELECT email_hash FROM suppressions)").rowcount

    def update_existing(self, now: datetime) -> int:
        """Update the profile of existing supporters (never their status); count real changes."""
        p = self.columns
        sets = [f"{c} = COALESCE(st.{c}, supporters.{c})" for c in ("name", "country", "timezone") if c in p]
        sets += [f"{c} = st.{c}" for c in ("kind", "language") if c in p]
        if not sets:
            return 0
        differs = " OR ".join(
            f"(st.{c} IS NOT NULL AND supporters.{c} IS DISTINCT FROM st.{c})" if self.pg else
            f"(st.{c} IS NOT NULL AND supporters.{c} IS NOT st.{c})"
            for c in ("name", "country", "timezone", "kind", "language") if c in p)
        sql = (f"UPDATE supporters SET {', '.join(sets)}, updated_at = :now FROM _import_stage AS st "  # noqa: S608 - only constant identifiers are interpolated
               f"WHERE supporters.email_normalized = st.email_normalized AND supporters.status <> 'erased' "
               f"AND ({differs})")
        return self.conn.execute(sa.text(sql).bindparams(sa.bindparam("now", now, type_=UTCDateTime()))).rowcount

    def insert_new(self, now: datetime, need_ids: bool, with_tag_column: bool = False) -> int:
        """Insert the new supporters (and their consent events); return how many were new.

        `need_ids`: note each new supporter's id in the stage, for tags and opt-in mails.
        With --tag names or a tags column, the batch's tags exist already (`ensure_tags`) and will
        be linked to the new rows.
        """
        status = "active" if self.active else "pending"
        params = [sa.bindparam("now", now, type_=UTCDateTime()), sa.bindparam("status", status)]
        tag_column = tag_value = ""
        if self.pg and (self.tag_names or with_tag_column):
            # The tag index column written with the row (the tags exist already): the trigger on
            # supporter_tags then finds it right and leaves the row alone instead of rewriting it.
            tag_column, tag_value = ", tag_ids", f", {self._tag_ids_of_row(with_tag_column)}"
            params.append(sa.bindparam("tag_names", self.tag_names, type_=postgresql.ARRAY(sa.Text)))
        insert = ("INSERT INTO supporters (email, email_normalized, name, kind, language, country, timezone, status, "  # noqa: S608 - only constant SQL is interpolated
                  f"referral_code, engagement_score, source, created_at, updated_at{tag_column}) "
                  "SELECT email, email_normalized, name, kind, language, country, timezone, :status, referral_code, "
                  f"0, 'import', :now, :now{tag_value} FROM _import_stage WHERE true "
                  "ON CONFLICT (email_normalized) DO NOTHING RETURNING id, email_normalized")
        with_consent = not self.opts.send_opt_in
        if self.pg:
            # One statement: supporters, their consent events and (if needed) the ids in the stage,
            # all from the INSERT's RETURNING, so nothing is read twice.
            ctes = [f"ins AS ({insert})"]
            if with_consent:
                ctes.append(f"ce AS ({self._consent_insert('ins', 'id')})")
                params += self._consent_params()
            if need_ids:
                tail = ("UPDATE _import_stage SET new_id = ins.id FROM ins "
                        "WHERE _import_stage.email_normalized = ins.email_normalized")
                sql = f"WITH {', '.join(ctes)} {tail}"
                return self.conn.execute(sa.text(sql).bindparams(*params)).rowcount
            sql = f"WITH {', '.join(ctes)} SELECT count(*) FROM ins"  # noqa: S608 - constant SQL only
            return self.conn.execute(sa.text(sql).bindparams(*params)).scalar_one()
        new = self.conn.execute(sa.text(insert).bindparams(*params)).all()
        if new:
            self.conn.exec_driver_sql("UPDATE _import_stage SET new_id = ? WHERE email_normalized = ?",
                                      [(r[0], r[1]) for r in new])
            if with_consent:
                self.conn.execute(sa.text(self._consent_insert("_import_stage", "new_id")
                                          + " WHERE new_id IS NOT NULL").bindparams(*self._consent_params()))
        return len(new)

    @staticmethod
    def _tag_ids_of_row(with_tag_column: bool) -> str:
        """SQL for a staged row's sorted tag ids: the --tag names plus its own tags column."""
        own = (" OR t.name IN (SELECT j.value FROM json_array_elements_text(_import_stage.tags::json) AS j(value))"
               if with_tag_column else "")
        return f"ARRAY(SELECT t.id FROM tags AS t WHERE t.name = ANY(:tag_names){own} ORDER BY t.id)"  # noqa: S608 - constant SQL only

    @staticmethod
    def _consent_insert(source: str, id_column: str) -> str:
        return ("INSERT INTO consent_events (supporter_id, purpose, action, method, occurred_at, note, text_version) "  # noqa: S608 - constant SQL only
                f"SELECT {id_column}, :purpose, 'granted', 'import', :at, :note, 'import' FROM {source}")

    def _consent_params(self) -> list:
        return [sa.bindparam("at", self.opts.consented_at, type_=UTCDateTime()),
                sa.bindparam("purpose", CONSENT_PURPOSE), sa.bindparam("note", self.opts.consent_note.strip())]

    def ensure_tags(self, now: datetime, with_column: bool) -> None:
        """Create the tags this batch names (not public: an operator decides what is offered)."""
        if self.tag_names:
            self.conn.execute(sa.text(
                "INSERT INTO tags (name, public, created_at) VALUES (:name, false, :now) "
                "ON CONFLICT (name) DO NOTHING").bindparams(sa.bindparam("now", type_=UTCDateTime())),
                [{"name": n, "now": now} for n in self.tag_names])
        if with_column:
            self.conn.execute(sa.text(
                f"INSERT INTO tags (name, public, created_at) SELECT DISTINCT j.value, false, :now "  # noqa: S608 - only constant identifiers are interpolated
                f"FROM _import_stage, {self._each('_import_stage.tags')} WHERE _import_stage.tags IS NOT NULL "
                f"ORDER BY 1 ON CONFLICT (name) DO NOTHING").bindparams(
                    sa.bindparam("now", now, type_=UTCDateTime())))

    def _each(self, column: str) -> str:
        if self.pg:
            return f"json_array_elements_text({column}::json) AS j(value)"
        return f"json_each({column}) AS j"

    def tag_rows(self, with_column: bool) -> None:
        # Targets: the new supporters, plus the existing ones when updating.
        if self.opts.update:
            target = ("(SELECT s.id AS sid, st.tags AS tags FROM _import_stage st JOIN supporters s "
                      "ON s.email_normalized = st.email_normalized WHERE s.status <> 'erased')")
        else:
            target = "(SELECT new_id AS sid, tags FROM _import_stage WHERE new_id IS NOT NULL)"
        # One statement for all links, so the tag trigger runs once, when each supporter's tags
        # are complete (and finds the new rows' tag_ids already right).
        parts, params = [], []
        if self.tag_names:
            parts.append(f"SELECT tags.id AS tag_id, t.sid AS sid FROM {target} AS t JOIN tags ON tags.name IN :names")  # noqa: S608 - only constant identifiers are interpolated
            params.append(sa.bindparam("names", self.tag_names, expanding=True))
        if with_column:
            parts.append(f"SELECT tags.id AS tag_id, t.sid AS sid FROM {target} AS t, {self._each('t.tags')} "  # noqa: S608 - only constant identifiers are interpolated
                         f"JOIN tags ON tags.name = j.value WHERE t.tags IS NOT NULL")
        self.conn.execute(sa.text(
            f"INSERT INTO supporter_tags (tag_id, supporter_id) SELECT tag_id, sid FROM ({' UNION '.join(parts)}) AS u "  # noqa: S608 - only constant identifiers are interpolated
            f"WHERE true ON CONFLICT DO NOTHING").bindparams(*params))

    def new_ids(self) -> list[int]:
        return [r[0] for r in self.conn.exec_driver_sql(
            "SELECT new_id FROM _import_stage WHERE new_id IS NOT NULL ORDER BY new_id")]


def _enqueue_opt_in(ids: list[int]) -> int:
    """Queue the double-opt-in mails of a committed batch: one throttled job per OPT_IN_BATCH people."""
    from supporters.mail_jobs import OPT_IN_BATCH, send_confirmations

    send_confirmations.enqueue_many([(ids[start:start + OPT_IN_BATCH],)
                                     for start in range(0, len(ids), OPT_IN_BATCH)])
    return len(ids)


def import_supporters(opts: ImportOptions, progress: Callable[[int], None] | None = None,
                      on_ready: Callable[[SourceFile, ImportSummary], None] | None = None) -> ImportSummary:
    """Import a CSV file; raises ImportAborted when the file as a whole cannot be imported."""
    check_options(opts)
    src = inspect_file(opts.path, opts.encoding)
    summary = ImportSummary(encoding=src.encoding)
    if src.note:
        summary.notes.append(src.note)
    delimiter = opts.delimiter or sniff_delimiter(src.path, src.encoding)
    summary.delimiter = delimiter
    tag_names = sorted({t.strip() for t in opts.tags})
    db.session.rollback()  # the import works on its own connection: end any open transaction here
    hash_emails = db.session.scalar(sa.select(Suppression.id).limit(1)) is not None
    db.session.rollback()

    state: dict = {}

    def take_header(header: list[str]) -> int:
        positions, ignored = resolve_columns(header, opts.mapping)
        state["positions"], state["header"] = positions, header
        summary.ignored_columns = ignored
        return len(header)

    rows = read_rows(src, delimiter, take_header)
    first = next(rows, None)  # reads the header: a bad header aborts before anything is written
    if "positions" not in state:
        raise ImportAborted(f"{src.path}: the file is empty")
    check = RowChecker(state["positions"], opts, active=not opts.send_opt_in, hash_emails=hash_emails)
    if on_ready:
        on_ready(src, summary)

    rejects_path = opts.rejects_path or f"{opts.path}.rejects.csv"
    if not opts.rejects_path and os.path.exists(rejects_path):
        os.unlink(rejects_path)  # our own file from an earlier run: it would describe another run
    rejects = _RejectFile(rejects_path, state["header"])
    seen: set[int] = set()  # hashes of normalised addresses already taken from this file
    with_tag_column = "tags" in state["positions"]

    engine = db.engine
    app = current_app._get_current_object()
    # SQLite has one writer at a time: a second connection would only wait for the lock.
    writers = 1 if engine.dialect.name == "sqlite" else opts.writers
    work: queue.Queue = queue.Queue(maxsize=2)
    stop = threading.Event()

    def produce() -> None:
        """Read, validate and deduplicate rows into batches (runs beside the database work)."""
        batch: list[tuple] = []
        read = 0

        def put(item) -> None:
            while not stop.is_set():
                try:
                    work.put(item, timeout=0.2)
                    return
                except queue.Full:
                    continue

        try:
            items = itertools.chain([first] if first is not None else [], rows)
            for line, row, reason in items:
                if stop.is_set():
                    return
                read += 1
                if reason is None:
                    try:
                        values = check(row)
                    except RowRejected as exc:
                        reason = str(exc)
                    else:
                        key = hash(values[1])
                        if key in seen:
                            summary.duplicate_in_file += 1
                            continue
                        seen.add(key)
                        batch.append((line, *values))
                        if len(batch) >= opts.batch_size:
                            put((batch, read))
                            batch, read = [], 0
                        continue
                summary.rejected += 1
                rejects.write(line, reason, row)
            put((batch, read))
            for _ in range(writers):
                put(None)
        except BaseException as exc:  # noqa: BLE001 - handed to a writer, which re-raises it
            put(exc)

    lock = threading.Lock()
    failures: list[BaseException] = []

    def write_batches() -> None:
        """Take batches off the queue and write each in its own transaction, on its own connection."""
        try:
            with app.app_context(), engine.connect() as conn:
                stage = Stage(conn, opts, tag_names, set(state["positions"]))
                stage.create()
                try:
                    while not stop.is_set():
                        try:
                            item = work.get(timeout=0.2)
                        except queue.Empty:
                            continue
                        if item is None:
                            return
                        if isinstance(item, BaseException):
                            raise item
                        batch, read = item
                        counts = _write_batch(stage, batch, opts, with_tag_column) if batch else {}
                        with lock:
                            summary.rows += read
                            for name, value in counts.items():
                                setattr(summary, name, getattr(summary, name) + value)
                            if progress:
                                progress(read)
                finally:
                    if not conn.invalidated:
                        stage.drop()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the calling thread
            with lock:
                failures.append(exc)
            stop.set()

    # One thread parses the file into batches while `writers` threads write them: parsing and
    # the database overlap (the driver releases the GIL while it waits for the server), and on
    # PostgreSQL two writers keep both cores of the server busy.
    producer = threading.Thread(target=produce, name="import-reader", daemon=True)
    threads = [threading.Thread(target=write_batches, name=f"import-writer-{i}", daemon=True)
               for i in range(writers)]
    producer.start()
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join()
    finally:
        stop.set()
        producer.join()
        rejects.close()
    if failures:
        raise failures[0]
    summary.rejects_path = rejects.path if rejects.count else None
    return summary


def _write_batch(stage: Stage, batch: list[tuple], opts: ImportOptions, with_tag_column: bool) -> dict[str, int]:
    """Write one batch in one transaction (rolled back on any error, and always in a dry run)."""
    conn = stage.conn
    now = utcnow()
    transaction = conn.begin()
    try:
        stage.load(batch)
        suppressed = stage.drop_suppressed() if batch[0][9] is not None else 0
        updated = stage.update_existing(now) if opts.update else 0
        tags = bool(stage.tag_names or with_tag_column)
        if tags:
            stage.ensure_tags(now, with_tag_column)
        inserted = stage.insert_new(now, need_ids=tags or opts.send_opt_in, with_tag_column=with_tag_column)
        if tags:
            stage.tag_rows(with_tag_column)
        new_ids = stage.new_ids() if opts.send_opt_in and not opts.dry_run else []
    except BaseException:
        transaction.rollback()
        raise
    if opts.dry_run:
        transaction.rollback()
    else:
        transaction.commit()
    counts = {"suppressed": suppressed, "updated": updated, "inserted": inserted,
              "existing": len(batch) - suppressed - inserted}
    if new_ids:
        # After the commit: the job re-reads rows that now exist.
        counts["opt_in_queued"] = _enqueue_opt_in(new_ids)
    return counts


class _RejectFile:
    """Rejected rows with their line number and reason, written only if there are any."""

    def __init__(self, path: str, header: list[str]):
        self.path = path
        self.header = header
        self.count = 0
        self._fh = None
        self._writer = None

    def write(self, line: int, reason: str, row: list[str] | None) -> None:
        if self._writer is None:
            self._fh = open(self.path, "w", encoding="utf-8", newline="")  # noqa: SIM115 - closed in close()
            self._writer = csv.writer(self._fh)
            self._writer.writerow(["line", "reason", *self.header])
        self._writer.writerow([line, reason, *(row or [])])
        self.count += 1

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
