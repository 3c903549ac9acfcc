"""What a supporter may write in a post, and how it is shown.

Plain text with a tiny Markdown subset: paragraphs, line breaks, `**bold**`, `*italic*` and
`- ` lists. No links, no images, no HTML: markup in the text is refused (not silently stripped),
so what is stored is exactly what the author meant and what every reader sees. The HTML is built
here from escaped text, so nothing the author wrote can become a tag.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

from markupsafe import Markup, escape

TITLE_MIN, TITLE_MAX = 3, 200
BODY_MIN, BODY_MAX = 10, 5000
REASON_MAX = 1000
ANSWER_MAX = 10_000

_MARKUP = re.compile(r"<\s*[a-zA-Z/!?]|&(#\d+|#x[0-9a-fA-F]+|[a-zA-Z]+);")
_LINK = re.compile(r"\]\(|!\[")
# Control characters (TAB, LF, CR allowed in multi-line text), unpaired surrogates, line/paragraph separators.
_BAD_CATEGORIES = ("Cc", "Cs", "Co", "Zl", "Zp")


def _bad_characters(text: str, multiline: bool) -> bool:
    allowed = "\t\n\r" if multiline else ""
    return any(unicodedata.category(c) in _BAD_CATEGORIES and c not in allowed for c in text)


def check_line(value: object, *, minimum: int, maximum: int) -> tuple[str | None, str | None]:
    """A single-line field: (clean value, None) or (None, error code)."""
    if not isinstance(value, str):
        return None, "required"
    text = value.strip()
    if not text:
        return None, "required"
    if _bad_characters(text, multiline=False):
        return None, "control"
    if _MARKUP.search(text):
        return None, "markup"
    if len(text) < minimum:
        return None, "too_short"
    if len(text) > maximum:
        return None, "too_long"
    return text, None


def check_body(value: object, *, minimum: int = BODY_MIN, maximum: int = BODY_MAX) -> tuple[str | None, str | None]:
    """Multi-line text: (clean value, None) or (None, error code)."""
    if not isinstance(value, str):
        return None, "required"
    text = value.replace("\r\n", "\n").replace("\r", "\n").strip()
    if not text:
        return None, "required"
    if _bad_characters(text, multiline=True):
        return None, "control"
    if _MARKUP.search(text) or _LINK.search(text):
        return None, "markup"
    if len(text) < minimum:
        return None, "too_short"
    if len(text) > maximum:
        return None, "too_long"
    return text, None


def body_hash(text: str) -> str:
    """The duplicate key: case, spacing and Unicode form do not make a text new."""
    normal = " ".join(unicodedata.normalize("NFKC", text).casefold().split())
    return hashlib.sha256(normal.encode()).hexdigest()


_BOLD = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*")
_ITALIC = re.compile(r"(?<![*\w])\*(?=\S)(.+?)(?<=\S)\*(?![*\w])")


def _inline(line: str) -> str:
    html = str(escape(line))
    html = _BOLD.sub(r"<strong>\1</strong>", html)
    return _ITALIC.sub(r"<em>\1</em>", html)


def to_html(text: str) -> Markup:
    """The subset as HTML: every character of the author's text is escaped first."""
    blocks = re.split(r"\n\s*\n", text.strip())
    out = []
    for block in blocks:
        lines = block.split("\n")
        if all(line.lstrip().startswith("- ") for line in lines):
            items = "".join(f"<li>{_inline(line.lstrip()[2:])}</li>" for line in lines)
            out.append(f"<ul>{items}</ul>")
        else:
            out.append("<p>" + "<br>".join(_inline(line) for line in lines) + "</p>")
    return Markup("".join(out))


def to_plain(text: str) -> str:
    """The subset as plain text for mails (the emphasis markers dropped)."""
    return _ITALIC.sub(r"\1", _BOLD.sub(r"\1", text))
