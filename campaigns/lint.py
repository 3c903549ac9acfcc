"""Content lint for the campaign preview: what makes a mail look like spam or read badly.

Warnings, never refusals: the manager decides. Optionally a SpamAssassin score, when Debian's
`spamassassin` is installed (local tests only, no network; skipped cleanly otherwise).
"""

from __future__ import annotations

import re
import shutil
import subprocess

from campaigns.render import URL_IN_PARENS
from core.org_settings import Org

MAX_SUBJECT = 78  # RFC 5322's recommended line length; longer subjects are cut off in most inboxes
_LINK = re.compile(r"!?\[([^\]]*)\]\((" + URL_IN_PARENS + r")(?:\s+\"[^\"]*\")?\)")
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_PLACEHOLDER = re.compile(r"\{\{\s*\w+\s*\}\}")
_URL = re.compile(r"\b(?:https?|ftp)://[^\s)<>\"']+", re.IGNORECASE)
_SCORE = re.compile(r"^X-Spam-Status:.*?score=(-?[\d.]+)\s+required=(-?[\d.]+)", re.MULTILINE | re.DOTALL)
SPAMASSASSIN_TIMEOUT = 30


def _issue(code: str, message: str, severity: str = "warning") -> dict[str, str]:
    return {"code": code, "severity": severity, "message": message}


def lint_content(subject: str, body: str, org: Org | None = None) -> list[dict[str, str]]:
    """Warnings for one language's subject and Markdown body."""
    issues = []
    images = _IMAGE.findall(body)
    words = _PLACEHOLDER.sub(" ", _LINK.sub(lambda m: m.group(1) if not m.group(0).startswith("!") else " ", body))
    words = _URL.sub(" ", words)
    has_text = re.search(r"\w", words) is not None
    if not has_text:
        issues.append(_issue("no_text", "the body has no text apart from links, images and placeholders: the "
                                        "plain-text part would be empty, which spam filters and screen readers punish"))
    if images:
        if not has_text:
            issues.append(_issue("image_only", "the body consists of images only; campaign mails do not carry "
                                               "images (they are removed), so the reader would see nothing"))
        else:
            issues.append(_issue("images_removed", f"{len(images)} image(s) in the body are not sent: campaign "
                                                   "mails carry text and links only", "info"))
    insecure = sorted({u for u in _URL.findall(body) if not u.lower().startswith("https://")})
    if insecure:
        issues.append(_issue("insecure_link", "links without HTTPS: " + ", ".join(insecure[:5])
                             + (f" and {len(insecure) - 5} more" if len(insecure) > 5 else "")))
    if len(subject) > MAX_SUBJECT:
        issues.append(_issue("long_subject", f"the subject has {len(subject)} characters; above {MAX_SUBJECT} "
                                             "it is cut off in most inboxes"))
    if "unsubscribe_url" not in {m.strip("{} ") for m in _PLACEHOLDER.findall(body)}:
        issues.append(_issue("no_unsubscribe_placeholder", "the body has no {{unsubscribe_url}}; the footer adds "
                                                           "an unsubscribe link to every mail anyway", "info"))
    for problem in (org.missing() if org else []):
        field, _, message = problem.partition(": ")
        issues.append(_issue(f"settings.{field}", message + " (PUT /api/v1/settings)"))
    return issues


def spamassassin_score(message: bytes) -> dict[str, float] | None:
    """SpamAssassin's score of a rendered message (local tests only), or None if it is not installed."""
    binary = shutil.which("spamassassin")
    if binary is None:
        return None
    try:
        result = subprocess.run([binary, "-L", "-t", "--exit-code"], input=message, capture_output=True,  # noqa: S603
                                timeout=SPAMASSASSIN_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = _SCORE.search(result.stdout.decode("utf-8", "replace"))
    if not found:
        return None
    return {"score": float(found.group(1)), "required": float(found.group(2))}
