"""Header-safe text: refused at the edges, defused and folded again when a message is built.

A header line ends at CR or LF, so any text that can reach a header (a subject, a sender name, a
supporter's name through `{{first_name}}`, a tag name) must never carry one. The edges refuse such
text with a message naming the field (`check_header_text`); rendering replaces whatever control
characters still arrive (old rows, a bypassed edge) with spaces and encodes/folds the result
(`header_line`), so no built message can hold an injected header whatever the data says.
"""

from __future__ import annotations

import re
from email.header import Header

from core.errors import ValidationFailed

# C0 and C1 controls (CR, LF, NUL, TAB …), DEL, the Unicode line/paragraph separators (str.splitlines
# breaks on them), and lone surrogates (not encodable).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_PRINTABLE_ASCII = re.compile("[\x20-\x7e]*").fullmatch  # the fast path's test, one C call
MAX_LINE = 78  # RFC 5322 2.1.1: lines SHOULD be at most 78 characters


def unsafe_characters(value: str) -> list[str]:
    """The distinct unsafe characters in `value`, as U+XXXX names (empty when it is header-safe)."""
    return sorted({f"U+{ord(c):04X}" for c in _UNSAFE.findall(value)})


def header_text_problem(value: str | None) -> str | None:
    """Why `value` cannot go into a mail header, or None."""
    if not value:
        return None
    bad = unsafe_characters(value)
    if bad:
        return ("must not contain line breaks or control characters (found "
                + ", ".join(bad) + "): the text is used in mail headers")
    return None


def check_header_text(fields: dict[str, str | None]) -> None:
    """Raise ValidationFailed naming every field whose text cannot go into a mail header."""
    errors = {field: [problem] for field, value in fields.items() if (problem := header_text_problem(value))}
    if errors:
        raise ValidationFailed(errors)


def defuse(value: str) -> str:
    """`value` with every unsafe character replaced by a space (the render-time safety net)."""
    return _UNSAFE.sub(" ", value) if _UNSAFE.search(value) else value


def header_line(name: str, value: str) -> str:
    """`Name: value` ready for the wire: defused, RFC 2047-encoded when not ASCII, folded with CRLF.

    The common cases (short ASCII, or one unfoldable ASCII word) are a plain join; everything else goes through `email.header`,
    which encodes and folds at 76 characters. The output never contains CR or LF except as a
    fold (CRLF followed by a space).
    """
    if _PRINTABLE_ASCII(value) and (len(name) + 2 + len(value) <= MAX_LINE or (" " not in value and len(value) < 900)):
        return f"{name}: {value}"  # short, or one word (a URL, a Message-ID) that cannot be folded
    value = defuse(value)
    charset = "us-ascii" if value.isascii() else "utf-8"
    return f"{name}: " + Header(value, charset, header_name=name).encode(linesep="\r\n")
