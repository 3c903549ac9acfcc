"""gunicorn settings for the Procfile's `web` process (`gunicorn -c python:core.gunicorn_conf`).

The access log is kept (it is how operators see traffic), but the links supporters follow carry
their credentials in the path (/unsubscribe/<token>, /act/<token>, /r/<token>), downloads in
`?token=`: the logger class writes them as [redacted]. With LOG_FORMAT=json, gunicorn's own lines
and the access log are JSON objects too, the access line with the request id the app answered.
With PROMETHEUS_MULTIPROC_DIR set, an exited worker's live values are marked dead.
"""

from __future__ import annotations

import json

from gunicorn.glogging import Logger

# (gunicorn reads every module-level name here as a setting: `config` would be one.)
from config import log_format as _log_format
from config import prometheus_multiproc_env as _multiproc_env
from core.hygiene import redact
from core.logs import HEADER, JsonFormatter

accesslog = "-"
LOG_FORMAT = _log_format()


class RedactingLogger(Logger):
    """gunicorn's logger with tokens removed from every access-log field (request line, path,
    query, referrer, headers); JSON lines with LOG_FORMAT=json."""

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        return {key: redact(value) if isinstance(value, str) else value for key, value in atoms.items()}

    def setup(self, cfg):
        super().setup(cfg)
        if LOG_FORMAT == "json":
            for handler in (*self.error_log.handlers, *self.access_log.handlers):
                handler.setFormatter(_AccessFormatter())

    def access(self, resp, req, environ, request_time):
        if LOG_FORMAT != "json":
            return super().access(resp, req, environ, request_time)
        if not (self.cfg.accesslog or self.cfg.logconfig or self.cfg.logconfig_dict or self.cfg.syslog):
            return None
        atoms = self.atoms(resp, req, environ, request_time)
        request_id = next((value for name, value in resp.headers if name.lower() == HEADER.lower()), None)
        event = {"method": atoms["m"], "path": atoms["U"], "query": atoms["q"], "status": int(atoms["s"] or 0),
                 "bytes": atoms["B"], "duration_ms": round(request_time.total_seconds() * 1000, 3),
                 "remote": atoms["h"], "user_agent": atoms["a"], "request_id": request_id}
        self.access_log.info(json.dumps(event, ensure_ascii=False))
        return None


class _AccessFormatter(JsonFormatter):
    """The JSON line of core.logs; an access event's fields go to the top level, not into `message`."""

    def format(self, record):
        line = json.loads(super().format(record))
        if record.name == "gunicorn.access":
            try:
                line.update(json.loads(line.pop("message")))
                line["message"] = "request"
            except (ValueError, TypeError):
                pass
        return json.dumps(line, ensure_ascii=False)


def child_exit(_server, worker):
    if _multiproc_env():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


logger_class = RedactingLogger


def post_worker_init(worker) -> None:
    """Each web worker says loudly what ties its state to this host (config.single_host_warnings)."""
    for warning in getattr(worker.wsgi, "config", {}).get("SINGLE_HOST_WARNINGS", ()):
        worker.log.warning("WARNING (several hosts): %s", warning)
