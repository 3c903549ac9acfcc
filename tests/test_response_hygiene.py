"""Security headers on every response, Retry-After only on 429/503, and no tokens in access logs."""

import logging
from datetime import timedelta
from types import SimpleNamespace

import pytest

from supporters import links
from tests.api_support import ApiCaller
from tests.factories import make_supporter

SECURITY_HEADERS = ("Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy")


@pytest.fixture
def api(app, db):
    return ApiCaller(app, db)


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/v1/docs"), ("GET", "/api/v1/openapi.json"), ("GET", "/healthz"), ("GET", "/no-such-page"),
    ("GET", "/api/v1/no-such-endpoint"), ("PUT", "/join"), ("DELETE", "/healthz"), ("GET", "/join"),
    ("GET", "/unsubscribe/not-a-token"), ("GET", "/act/not-a-token"), ("GET", "/api/v1/tags"),
])
def test_every_response_carries_the_security_headers(client, method, path):
    response = client.open(path, method=method)
    for name in SECURITY_HEADERS:
        assert response.headers.get(name), f"{method} {path} lacks {name} ({response.status_code})"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    policy = response.headers["Content-Security-Policy"]
    assert "frame-ancestors" in policy


def test_pages_keep_their_own_policies(client):
    join = client.get("/join")
    assert "form-action 'self'" in join.headers["Content-Security-Policy"]
    assert join.headers["Referrer-Policy"] == "same-origin"
    docs = client.get("/api/v1/docs")
    assert "script-src 'self'" in docs.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in docs.headers["Content-Security-Policy"]
    assert client.get("/healthz").headers["X-Frame-Options"] == "DENY"


def test_retry_after_only_on_429_and_503(api):
    api.app.config["API_RATE_LIMIT"] = "2/minute"
    ok = api.get("/tags", role="viewer")
    created = api.post("/tags", {"name": "a"}, role="manager")
    assert ok.status_code == 200 and created.status_code == 201
    assert "Retry-After" not in ok.headers and "Retry-After" not in created.headers
    api.get("/tags", role="viewer")
    limited = api.get("/tags", role="viewer")
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0


def test_link_and_download_tokens_never_reach_the_werkzeug_request_log(app, caplog):
    from werkzeug.serving import WSGIRequestHandler

    supporter = make_supporter()
    token = links.unsubscribe_token(supporter.id)
    handler = WSGIRequestHandler.__new__(WSGIRequestHandler)
    handler.requestline = f"GET /unsubscribe/{token}?lang=en HTTP/1.1"
    handler.client_address = ("127.0.0.1", 1234)
    handler.request_version = "HTTP/1.1"
    with caplog.at_level(logging.INFO, logger="werkzeug"):
        handler.log_request(200, 512)
        logging.getLogger("werkzeug").info('"GET /api/v1/jobs/1/download?token=%s HTTP/1.1" 200 -', token)
    assert caplog.text and token not in caplog.text
    assert "/unsubscribe/[redacted]?lang=en" in caplog.text and "token=[redacted]" in caplog.text


def test_the_gunicorn_access_log_redacts_tokens(app):
    from gunicorn.config import Config

    from core import gunicorn_conf

    supporter = make_supporter()
    token, act = links.unsubscribe_token(supporter.id), links.preferences_token(supporter.id)
    cfg = Config()
    cfg.set("accesslog", None)
    logger = gunicorn_conf.RedactingLogger(cfg)
    environ = {"REQUEST_METHOD": "GET", "RAW_URI": f"/unsubscribe/{token}", "PATH_INFO": f"/r/{act}",
               "QUERY_STRING": f"token={token}", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "10.0.0.1",
               "HTTP_REFERER": f"https://mail.example/act/{act}"}
    resp = SimpleNamespace(status="200 OK", headers=[], sent=10)
    req = SimpleNamespace(headers=[("AUTHORIZATION", "Bearer spk_0123456789ab_secretsecret"),
                                   ("REFERER", f"https://x.example/preferences/{act}")])
    atoms = logger.atoms(resp, req, environ, timedelta(milliseconds=5))
    line = cfg.access_log_format % gunicorn_conf.RedactingLogger.atoms_wrapper_class(atoms)
    text = repr(atoms) + line
    assert token not in text and act not in text and "secretsecret" not in text
    assert "/unsubscribe/[redacted]" in line


def test_the_procfile_runs_gunicorn_with_the_redacting_config():
    from pathlib import Path

    procfile = (Path(__file__).resolve().parent.parent / "Procfile").read_text()
    web = next(line for line in procfile.splitlines() if line.startswith("web:"))
    assert "--config python:core.gunicorn_conf" in web and "--access-logfile" not in web
