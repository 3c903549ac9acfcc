"""Metrics and JSON logs across real processes: gunicorn with two sync workers and a `flask worker`,
all writing into one PROMETHEUS_MULTIPROC_DIR, as on one production host."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from supporters import links
from tests.factories import make_supporter
from tests.metrics_helpers import AUTH, TOKEN, total, value
from tests.servers import free_port

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent


def _wait_http(url: str, deadline: float) -> None:
    while True:
        try:
            if requests.get(url, timeout=10).status_code < 500:
                return
        except requests.RequestException:  # not listening yet, or still importing
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} did not answer")
        time.sleep(0.2)


def _stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def _json_lines(path: Path) -> list[dict]:
    """Every line of a log file, each of which must be one JSON object."""
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [json.loads(line) for line in lines]


@pytest.fixture
def host(subprocess_env, tmp_path, app):
    """gunicorn (2 sync workers) and one `flask worker` sharing a metrics directory, logging JSON."""
    web_port, worker_metrics = free_port(), free_port()
    env = {**subprocess_env, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom"), "LOG_FORMAT": "json",
           "METRICS_TOKEN": TOKEN, "RATELIMIT_ENABLED": "0", "CAMPAIGN_SWEEP_SECONDS": "1"}
    (tmp_path / "prom").mkdir()
    logs = {name: open(tmp_path / f"{name}.log", "w") for name in ("web.out", "web.err", "worker.out", "worker.err")}
    procs = [
        subprocess.Popen([sys.executable, "-m", "gunicorn", "--config", "python:core.gunicorn_conf", "--workers", "2",
                          "--worker-class", "sync", "--bind", f"127.0.0.1:{web_port}", "--no-control-socket",
                          "wsgi:create_app()"],
                         cwd=ROOT, env=env, stdout=logs["web.out"], stderr=logs["web.err"], start_new_session=True),
        subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "worker", "--name", f"obs-{os.getpid()}"],
                         cwd=ROOT, env={**env, "WORKER_METRICS_ADDRESS": f"127.0.0.1:{worker_metrics}"},
                         stdout=logs["worker.out"], stderr=logs["worker.err"], start_new_session=True),
    ]
    try:
        deadline = time.monotonic() + 60
        _wait_http(f"http://127.0.0.1:{web_port}/healthz", deadline)
        _wait_http(f"http://127.0.0.1:{worker_metrics}/metrics", deadline)
        yield {"base": f"http://127.0.0.1:{web_port}", "worker_metrics": f"http://127.0.0.1:{worker_metrics}/metrics",
               "dir": tmp_path, "procs": procs}
    finally:
        _stop(procs)
        for fh in logs.values():
            fh.close()


def _scrape(base: str) -> str:
    response = requests.get(f"{base}/metrics", headers=AUTH, timeout=10)
    assert response.status_code == 200
    return response.text


def _wait_for(predicate, what: str, seconds: float = 60):
    deadline = time.monotonic() + seconds
    while not (result := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)
    return result


def test_one_host_counts_across_web_and_worker_processes_and_logs_json_with_the_request_id(host, app, settings):
    base = host["base"]
    before = _scrape(base)
    # Requests spread over both gunicorn workers: the sum is exact whichever answered.
    for _ in range(30):
        assert requests.get(f"{base}/healthz", timeout=10).status_code == 200
    supporter = make_supporter()
    token = links.unsubscribe_token(supporter.id)
    assert requests.get(f"{base}/unsubscribe/{token}", timeout=10).status_code == 200
    session = requests.Session()
    page = session.get(f"{base}/join", timeout=10)
    csrf = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    joined = session.post(f"{base}/join", headers={"X-Request-ID": "signup-42"}, timeout=10,
                          data={"email": "ada@example.org", "name": "Ada ü", "kind": "fan", "language": "en",
                                "consent": "y", "csrf_token": csrf})
    assert joined.status_code == 200 and joined.headers["X-Request-ID"] == "signup-42"
    outbox = Path(settings["OUTBOX_DIR"])
    _wait_for(lambda: outbox.exists() and any(outbox.glob("*.eml")), "the confirmation mail")

    after = _wait_for(lambda: (text := _scrape(base)) and total(text, "sp_jobs_total", queue="mail") >= 1 and text,
                      "the worker's job count")
    health = {"route": "/healthz", "method": "GET", "status": "200"}
    assert value(after, "sp_http_requests_total", **health) - value(before, "sp_http_requests_total", **health) == 30
    assert value(after, "sp_joins_total", outcome="created") == 1
    assert value(after, "sp_rq_workers_live") == 1
    assert value(after, "sp_redis_up") == 1
    assert token not in after
    pids = {p.name.rsplit("_", 1)[-1] for p in (host["dir"] / "prom").glob("*.db")}
    assert len(pids) >= 3  # two web workers and the worker (and its scheduler) wrote there
    # The sweeper runs in the worker: its counter reaches /metrics through the shared directory.
    _wait_for(lambda: value(_scrape(base), "sp_sweeper_runs_total") >= 1, "a sweep")
    # The worker serves the same figures on its own address.
    worker_side = requests.get(host["worker_metrics"], timeout=10).text
    assert total(worker_side, "sp_jobs_total", queue="mail") >= 1 and "sp_rq_queue_depth" in worker_side

    _stop(host["procs"])
    web = _json_lines(host["dir"] / "web.out.log") + _json_lines(host["dir"] / "web.err.log")
    worker = _json_lines(host["dir"] / "worker.out.log") + _json_lines(host["dir"] / "worker.err.log")
    everything = json.dumps(web + worker)
    assert token not in everything and "/unsubscribe/[redacted]" in everything
    access = [line for line in web if line.get("logger") == "gunicorn.access"]
    [join_line] = [line for line in access if line["path"] == "/join" and line["method"] == "POST"]
    assert join_line["request_id"] == "signup-42" and join_line["status"] in (200, 303)  # 303: Post/Redirect/Get
    assert all(line.get("request_id") for line in access)
    started = [line for line in worker if line["message"] == "job started: supporters.mail_jobs.send_confirmation"]
    assert [line["request_id"] for line in started] == ["signup-42"] and started[0]["job_id"]


def test_the_release_command_logs_json_too(subprocess_env, app):
    result = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"], cwd=ROOT,
                            env={**subprocess_env, "LOG_FORMAT": "json"}, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert any(line["logger"].startswith("alembic") for line in lines)
