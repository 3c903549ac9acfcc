"""What every response and every access log line gets, whichever blueprint (or none) answered.

- Security headers on every response: pages that set their own (the supporter and action pages)
  keep them; everything else (the API, its docs, /healthz, 404 and 405 pages) gets a strict
  default that allows nothing to load and nobody to frame it.
- `Retry-After` only where it means something: on 429 and 503. (The rate limiter adds it to every
  response of a limited route, where a client would read it as "slow down".)
- Tokens out of the logs: link tokens in paths (/unsubscribe/<token>, /act/<token>, …), `token=`
  in query strings and bearer secrets are replaced by `[redacted]` in werkzeug's request log; the
  gunicorn logger class in core/gunicorn_conf.py does the same for the production access log.
"""

from __future__ import annotations

import logging
import re

from flask import Flask, Response

DEFAULT_CSP = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
REDACTED = "[redacted]"

# The public pages whose last path segment is a signed token (supporters.web, campaigns.web).
_PATH_TOKEN = re.compile(r"(/(?:unsubscribe|confirm|preferences|act|r)/)(?!new(?:[/?#\s]|$))[^/?#\s\"']+")
_QUERY_TOKEN = re.compile(r"((?:^|[?&;])token=)[^&#\s\"']+", re.IGNORECASE)
_BEARER = re.compile(r"spk_[A-Za-z0-9_\-]+")


def redact(text: str) -> str:
    """`text` with every link token, download token and API token replaced by [redacted]."""
    text = _PATH_TOKEN.sub(lambda m: m.group(1) + REDACTED, text)
    text = _QUERY_TOKEN.sub(lambda m: m.group(1) + REDACTED, text)
    return _BEARER.sub("spk_" + REDACTED, text)


class RedactTokens(logging.Filter):
    """A logging filter that redacts tokens from a record's final message."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True


def secure_headers(response: Response) -> Response:
    headers = response.headers
    if "Content-Security-Policy" not in headers:
        headers["Content-Security-Policy"] = DEFAULT_CSP
        headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")
    if response.status_code not in (429, 503):
        headers.pop("Retry-After", None)
    return response


def init_app(app: Flask) -> None:
    """Call before any extension registers an after-request hook: Flask runs them last-registered
    first, so this one sees the response after the rate limiter's headers were added."""
    app.after_request(secure_headers)
    werkzeug_log = logging.getLogger("werkzeug")
    if not any(isinstance(f, RedactTokens) for f in werkzeug_log.filters):
        werkzeug_log.addFilter(RedactTokens())
