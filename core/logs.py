"""Request ids and structured logs.

Every request gets an id: the incoming `X-Request-ID` when it is sane (1-64 characters of
`A-Za-z0-9._:-`, as a proxy or load balancer sets it), else a new random one. It is answered in
the `X-Request-ID` response header, stored in the meta of every RQ job the request enqueues
(core.queues) and set again while a worker runs that job, so one id follows a signup from the
form through its confirmation mail.

With LOG_FORMAT=json every log line is one JSON object (`ts`, `level`, `logger`, `message`, and
`request_id`, `job_id`, `exc` where they apply), tokens redacted like everywhere else
(core.hygiene). With the default `text`, logging is left as it was.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import uuid
from datetime import UTC, datetime

from flask import Flask, Response, request

from core.hygiene import redact

HEADER = "X-Request-ID"
_SANE = re.compile(r"[A-Za-z0-9._:\-]{1,64}")

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
job_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("job_id", default=None)


def sane_request_id(value: str | None) -> str | None:
    """`value` if it can be logged and passed on as it is, else None."""
    return value if value and _SANE.fullmatch(value) else None


def new_request_id() -> str:
    return uuid.uuid4().hex


def current_request_id() -> str | None:
    return request_id.get()


# --- requests ------------------------------------------------------------------------------------

def _begin_request() -> None:
    request_id.set(sane_request_id(request.headers.get(HEADER)) or new_request_id())


def _answer_request_id(response: Response) -> Response:
    rid = request_id.get()
    if rid:
        response.headers[HEADER] = rid
    return response


def _end_request(_exc: BaseException | None) -> None:
    request_id.set(None)


# --- JSON lines ----------------------------------------------------------------------------------

# Attributes every LogRecord has; anything else a caller passed with `extra=` is logged as a field.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, tokens redacted from the message, the exception and extra text."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        rid, jid = getattr(record, "request_id", None) or request_id.get(), job_id.get()
        if rid:
            entry["request_id"] = rid
        if jid:
            entry["job_id"] = jid
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in entry and not key.startswith("_"):
                entry[key] = redact(value) if isinstance(value, str) else value
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            entry["exc"] = redact(record.exc_text)
        # default=str: a value json cannot encode is logged as its text rather than losing the line.
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure(log_format: str, level: str = "INFO", stream=None) -> None:
    """Send every logger's records through one JSON handler on stderr (json); leave logging alone (text)."""
    if log_format != "json":
        return
    root = logging.getLogger()
    if any(getattr(h, "_sp_json", False) for h in root.handlers):
        return
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler._sp_json = True
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Loggers that carry handlers of their own would print twice or in another format.
    for name in ("werkzeug", "rq.worker", "rq.scheduler"):
        logger = logging.getLogger(name)
        for old in list(logger.handlers):
            logger.removeHandler(old)
        logger.propagate = True


def init_app(app: Flask) -> None:
    configure(app.config.get("LOG_FORMAT", "text"), app.config.get("LOG_LEVEL", "INFO"))
    if app.config.get("LOG_FORMAT") == "json":
        from flask.logging import default_handler

        app.logger.removeHandler(default_handler)
    app.before_request(_begin_request)
    app.after_request(_answer_request_id)
    app.teardown_request(_end_request)
