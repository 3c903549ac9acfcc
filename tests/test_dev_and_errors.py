"""The embedded platform starts from nothing, and the command line fails with one clear line."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[1]


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "SMTP_URL", "APP_ENV", "SECRET_KEY", "INSTANCE_PATH")}
    env.update(extra)
    return env


def test_flask_dev_runs_web_and_worker_on_the_embedded_default_and_stops_on_ctrl_c(tmp_path):
    port = free_port()
    env = clean_env(INSTANCE_PATH=str(tmp_path / "instance"))
    proc = subprocess.Popen([sys.executable, "-m", "flask", "dev", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        body = None
        while time.monotonic() < deadline and body is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                    body = json.load(response)
            except OSError:
                time.sleep(0.3)
        assert body is not None, "the platform did not answer /healthz within 60 s"
        assert body["status"] == "ok" and body["database"]["engine"] == "sqlite"
        assert (tmp_path / "instance" / "supporters.db").exists()
        assert (tmp_path / "instance" / "secret_key").exists()
        # `--port` without PUBLIC_BASE_URL: the links in the mails point at this server, not at :5000.
        link = _join_and_read_confirm_link(port, tmp_path / "instance")
        assert link.startswith(f"http://127.0.0.1:{port}/confirm/"), link
        with urllib.request.urlopen(link, timeout=10) as response:
            assert response.status == 200
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output
    assert f"http://127.0.0.1:{port}/join" in output
    # Nothing is left running: no web server, no worker, no embedded Redis.
    leftovers = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True).stdout.split()
    assert leftovers == []


def _join_and_read_confirm_link(port: int, instance: Path) -> str:
    import re

    import requests

    web = requests.Session()
    page = web.get(f"http://127.0.0.1:{port}/join", timeout=10).text
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', page))
    fields.update(email="dev.port@example.org", name="Dev", kind="fan", language="en", consent="y")
    assert web.post(f"http://127.0.0.1:{port}/join", data=fields, timeout=10).status_code == 200
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        show = subprocess.run([sys.executable, "-m", "flask", "outbox", "show", "latest"], cwd=ROOT,
                              env=clean_env(INSTANCE_PATH=str(instance)), capture_output=True, text=True)
        found = re.search(r"https?://\S+/confirm/\S+", show.stdout)
        if found:
            assert "dev.port@example.org" in show.stdout
            return found.group(0)
        time.sleep(0.5)
    raise AssertionError("no confirmation mail in the outbox within 60 s")


def test_flask_dev_says_the_port_is_in_use_before_printing_a_url(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "flask", "dev", "--port", str(port)], cwd=ROOT,
                                env=clean_env(INSTANCE_PATH=str(tmp_path / "instance")),
                                capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert f"port {port} on 127.0.0.1 is in use" in result.stderr
    assert "http://" not in result.stdout


def test_an_unreachable_database_is_one_line_naming_the_variable(tmp_path):
    env = clean_env(INSTANCE_PATH=str(tmp_path), DATABASE_URL=f"postgresql://nobody@127.0.0.1:{free_port()}/x")
    result = subprocess.run([sys.executable, "-m", "flask", "db", "upgrade"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: DATABASE_URL: "), result.stderr


def test_an_unreachable_redis_is_one_line_naming_the_variable(tmp_path):
    env = clean_env(INSTANCE_PATH=str(tmp_path), REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    result = subprocess.run([sys.executable, "-m", "flask", "worker", "--burst"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("Error: REDIS_URL: cannot reach Redis at redis://127.0.0.1:")
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_malformed_database_url_is_one_line(tmp_path):
    env = clean_env(INSTANCE_PATH=str(tmp_path), DATABASE_URL="mysql://x@y/z")
    result = subprocess.run([sys.executable, "-m", "flask", "users", "list"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == \
        "Configuration error: DATABASE_URL: unsupported database 'mysql'; use sqlite or postgresql"
