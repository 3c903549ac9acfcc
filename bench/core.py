"""Shared benchmark machinery: gunicorn servers on loopback and a bounded wrk load generator."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[1]


def ensure_wrk() -> str:
    path = shutil.which("wrk")
    if path:
        return path
    if os.geteuid() == 0:
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, stdout=subprocess.DEVNULL)
        return shutil.which("wrk") or sys.exit("wrk could not be installed")
    sys.exit("wrk is needed for HTTP benchmarks: apt-get install wrk")


@contextlib.contextmanager
def gunicorn(app_spec: str, env: dict[str, str], workers: int = 2, warmup_path: str = "/") -> Iterator[str]:
    """Serve `app_spec` with gunicorn sync workers on a free loopback port; yield the base URL."""
    port = free_port()
    cmd = [sys.executable, "-m", "gunicorn", "--workers", str(workers), "--worker-class", "sync",
           "--bind", f"127.0.0.1:{port}", "--log-level", "warning", "--backlog", "2048", app_spec]
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **env})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(base + warmup_path, timeout=2).read()
                break
            except OSError as exc:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"gunicorn did not start for {app_spec}: {exc}") from exc
                time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


@dataclass
class Load:
    name: str
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int

    def row(self) -> str:
        return f"{self.name:<34} {self.requests_per_second:>10,.0f} req/s   p50 {self.p50_ms:6.2f} ms   p99 {self.p99_ms:6.2f} ms   errors {self.errors}"


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip())
    if not match:
        raise ValueError(f"unparseable wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def wrk(name: str, url: str, seconds: int = 10, connections: int = 8, threads: int = 2,
        script: str | None = None) -> Load:
    """Run wrk (bounded by `seconds`) against a loopback URL and parse throughput and latency."""
    if not url.startswith(("http://127.", "http://localhost")):
        raise ValueError("benchmarks only target loopback")
    cmd = [ensure_wrk(), "--latency", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s"]
    if script:
        cmd += ["-s", script]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
    errors = 0
    for pattern in (r"Non-2xx or 3xx responses:\s+(\d+)", r"Socket errors:.*?(\d+)"):
        found = re.search(pattern, out)
        errors += int(found.group(1)) if found and "Non-2xx" in pattern else 0
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if socket_errors:
        errors += sum(int(x) for x in socket_errors.groups())
    return Load(name, rps, p50, p99, errors)


def print_comparison(title: str, subject: Load, baselines: list[Load]) -> None:
    print(f"\n== {title}")
    for load in [*baselines, subject]:
        print(load.row())
    for base in baselines:
        print(f"ratio {subject.name} / {base.name}: {subject.requests_per_second / base.requests_per_second:.2f}x")
