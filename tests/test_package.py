"""The platform installs from its wheel: every module, template, static file and migration is in it,
and the installed package migrates, serves and runs a worker outside the checkout.

Building and installing take a minute, and nothing here depends on the database engine of the
run, so it runs once: on the SQLite pass of scripts/test.sh (skipped on the PostgreSQL pass).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ENGINE
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "supporters", "campaigns", "api", "migrations")
SKIP_DIRS = {".venv", ".git", "build", "dist", "instance", "__pycache__", ".pytest_cache", ".ruff_cache"}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(ENGINE != "sqlite", reason="the wheel is engine-independent: built and installed once, "
                                                  "on the SQLite pass"),
]


def _ignore(_directory: str, names: list[str]) -> set[str]:
    return {n for n in names if n in SKIP_DIRS or n.endswith((".egg-info", ".pyc"))}


def expected_files() -> set[str]:
    """Every file of the runtime packages in the checkout (computed, so a new module is checked too)."""
    files = {"wsgi.py", "config.py"}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*"):
            if path.is_file() and not (set(path.relative_to(ROOT).parts) & SKIP_DIRS) and path.suffix != ".pyc":
                files.add(path.relative_to(ROOT).as_posix())
    return files


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Build the wheel from a copy of the tree (no build/ or egg-info of ours leaks in, none is left behind)."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "src"
    shutil.copytree(ROOT, source, ignore=_ignore)
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp / "dist"),
                             str(source)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    (built,) = (tmp / "dist").glob("supporter_platform-*.whl")
    return built


def test_the_wheel_holds_every_module_template_static_file_and_migration(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = expected_files() - names
    assert not missing, f"not in the wheel: {sorted(missing)}"
    # Spot checks that the computed list really covers what the issue named.
    for required in ("core/db.py", "migrations/env.py", "migrations/alembic.ini", "migrations/script.py.mako",
                     "migrations/versions/0001_foundation.py", "supporters/templates/supporters/join.html",
                     "supporters/static/supporters.css", "campaigns/templates/mail/campaign.html",
                     "supporters/i18n.py", "core/gunicorn_conf.py"):
        assert required in names
    strays = [n for n in names if n.startswith(("tests/", "bench/", "docs/", "scripts/")) or n.endswith(".pyc")]
    assert strays == []


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> dict:
    """A fresh virtualenv outside the checkout with the wheel (and its dependencies) installed."""
    tmp = tmp_path_factory.mktemp("installed")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    result = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                             "--disable-pip-version-check", str(wheel)],
                            capture_output=True, text=True, timeout=900, cwd=tmp)
    assert result.returncode == 0, result.stderr
    run = tmp / "run"  # the working directory of every command: not the checkout
    run.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "SMTP_URL", "APP_ENV", "SECRET_KEY", "INSTANCE_PATH",
                        "PYTHONPATH", "FLASK_APP", "VIRTUAL_ENV")}
    env.update(PATH=f"{venv / 'bin'}:{env.get('PATH', '')}", DATABASE_URL=f"sqlite:///{tmp / 'installed.db'}",
               PYTHONUNBUFFERED="1")
    return {"venv": venv, "run": run, "env": env, "db": tmp / "installed.db"}


def in_venv(installed, *args, timeout=180) -> subprocess.CompletedProcess:
    return subprocess.run([str(installed["venv"] / "bin" / args[0]), *args[1:]], cwd=installed["run"],
                          env=installed["env"], capture_output=True, text=True, timeout=timeout)


def test_the_installed_package_is_imported_from_site_packages_not_the_checkout(installed):
    result = in_venv(installed, "python", "-c",
                     "import wsgi, config, core, supporters, campaigns, api; "
                     "print(wsgi.__file__); print(wsgi.MIGRATIONS); print(config.default_instance_path())")
    assert result.returncode == 0, result.stderr
    module, migrations, instance = result.stdout.split("\n")[:3]
    assert "site-packages" in module and str(ROOT) not in module
    assert Path(migrations, "versions", "0001_foundation.py").exists()
    # Outside a checkout the default instance folder is the working directory's, not site-packages.
    assert instance == str(installed["run"] / "instance")


def test_flask_db_upgrade_migrates_from_the_installed_package(installed):
    result = in_venv(installed, "flask", "--app", "wsgi", "db", "upgrade")
    assert result.returncode == 0, result.stderr
    import sqlite3

    with sqlite3.connect(installed["db"]) as conn:
        head = conn.execute("SELECT version_num FROM alembic_version").fetchone()[0]
    newest = sorted((ROOT / "migrations" / "versions").glob("0*.py"))[-1].stem
    assert head == newest


def test_gunicorn_serves_the_installed_package(installed):
    assert in_venv(installed, "flask", "--app", "wsgi", "db", "upgrade").returncode == 0
    port = free_port()
    proc = subprocess.Popen([str(installed["venv"] / "bin" / "gunicorn"), "--config", "python:core.gunicorn_conf",
                             "--workers", "1", "--bind", f"127.0.0.1:{port}", "wsgi:create_app()"],
                            cwd=installed["run"], env=installed["env"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        status = None
        while time.monotonic() < deadline and status is None and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
                    status = response.status
            except OSError:
                time.sleep(0.3)
        assert status == 200, "gunicorn did not answer /healthz"
        # Templates and static files come from the wheel too.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/join?lang=de", timeout=10) as response:
            assert response.status == 200 and 'name="email"' in response.read().decode()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/supporters/static/supporters.css", timeout=10) as r:
            assert r.status == 200 and r.read()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
    assert "Traceback" not in output, output


def test_flask_worker_runs_from_the_installed_package(installed):
    assert in_venv(installed, "flask", "--app", "wsgi", "db", "upgrade").returncode == 0
    helped = in_venv(installed, "flask", "--app", "wsgi", "worker", "--help")
    assert helped.returncode == 0 and "--burst" in helped.stdout, helped.stderr
    burst = in_venv(installed, "flask", "--app", "wsgi", "worker", "--burst", timeout=120)
    assert burst.returncode == 0, burst.stderr
    # The embedded default kept its files in the working directory's instance folder.
    assert (installed["run"] / "instance" / "secret_key").exists()
