"""gunicorn settings for the Procfile's `web` process (`gunicorn -c python:core.gunicorn_conf`).

The access log is kept (it is how operators see traffic), but the links supporters follow carry
their credentials in the path (/unsubscribe/<token>, /act/<token>, /r/<token>), downloads in
`?token=`: the logger class writes them as [redacted].
"""

from __future__ import annotations

from gunicorn.glogging import Logger

from core.hygiene import redact

accesslog = "-"


class RedactingLogger(Logger):
    """gunicorn's logger with tokens removed from every access-log field (request line, path,
    query, referrer, headers)."""

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        return {key: redact(value) if isinstance(value, str) else value for key, value in atoms.items()}


logger_class = RedactingLogger


def post_worker_init(worker) -> None:
    """Each web worker says loudly what ties its state to this host (config.single_host_warnings)."""
    for warning in getattr(worker.wsgi, "config", {}).get("SINGLE_HOST_WARNINGS", ()):
        worker.log.warning("WARNING (several hosts): %s", warning)
