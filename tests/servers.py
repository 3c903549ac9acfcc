"""Throw-away PostgreSQL and Redis servers on loopback, for the test suite and the benchmarks.

PostgreSQL refuses to run as root, so when we are root the server runs as the `postgres` user.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(cmd: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


class PostgresServer:
    def __init__(self, fast: bool = True):
        self.fast = fast
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="sp-pg-"))
        self.data = self.dir / "data"
        self.started = False

    def start(self) -> PostgresServer:
        for tool in ("initdb", "pg_ctl"):
            if shutil.which(tool) is None:
                raise RuntimeError(f"{tool} is not on the PATH: install PostgreSQL 15 server binaries")
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        subprocess.run(_as_postgres(["initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres",
                                     "-E", "UTF8", "--no-sync", "--locale=C"]),
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c max_connections=200"
        if self.fast:  # durability is irrelevant for a throw-away test server
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self.options = options
        subprocess.run(_as_postgres(["pg_ctl", "-D", str(self.data), "-o", options, "-w", "-t", "60",
                                     "-l", str(self.dir / "log"), "start"]),
                       check=True, stdout=subprocess.DEVNULL)
        self.started = True
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def restart(self, down_seconds: float = 0) -> None:
        """Stop the server (fast shutdown: every connection is cut), wait, start it again."""
        subprocess.run(_as_postgres(["pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop"]),
                       check=True, stdout=subprocess.DEVNULL)
        time.sleep(down_seconds)
        subprocess.run(_as_postgres(["pg_ctl", "-D", str(self.data), "-o", self.options, "-w", "-t", "60",
                                     "-l", str(self.dir / "log"), "start"]), check=True, stdout=subprocess.DEVNULL)

    def stop(self) -> None:
        if self.started:
            subprocess.run(_as_postgres(["pg_ctl", "-D", str(self.data), "-m", "immediate", "stop"]),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.started = False
        shutil.rmtree(self.dir, ignore_errors=True)


class RedisServer:
    def __init__(self):
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.proc = subprocess.Popen([binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--protected-mode", "no"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def restart(self, down_seconds: float = 0) -> None:
        """Stop the server (its data goes: no persistence), wait, start it again on the same port."""
        self.stop()
        time.sleep(down_seconds)
        self.start()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


class PgBouncer:
    """A Debian `pgbouncer` on loopback in front of a PostgresServer (transaction pooling by default).

    Every database of the server is reachable through it by name; `single_<name>` is the same
    database with a pool of one server connection, so that sharing a connection is certain.
    """

    def __init__(self, postgres: PostgresServer, pool_mode: str = "transaction", pool_size: int = 10):
        self.postgres = postgres
        self.pool_mode = pool_mode
        self.pool_size = pool_size
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="sp-pgbouncer-"))
        self.proc: subprocess.Popen | None = None

    def start(self, databases: tuple[str, ...] = ()) -> PgBouncer:
        binary = shutil.which("pgbouncer") or ("/usr/sbin/pgbouncer" if os.path.exists("/usr/sbin/pgbouncer") else None)
        if binary is None:
            raise RuntimeError("pgbouncer is not installed (apt-get install pgbouncer)")
        server = f"host=127.0.0.1 port={self.postgres.port}"
        singles = "".join(f"single_{name} = {server} dbname={name} pool_size=1\n" for name in databases)
        (self.dir / "userlist.txt").write_text('"postgres" ""\n')
        (self.dir / "pgbouncer.ini").write_text(
            f"[databases]\n{singles}* = {server}\n\n[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {self.dir / 'userlist.txt'}\n"
            f"pool_mode = {self.pool_mode}\ndefault_pool_size = {self.pool_size}\nmax_client_conn = 500\n"
            "ignore_startup_parameters = extra_float_digits,options\n"
            f"logfile = {self.dir / 'pgbouncer.log'}\npidfile = {self.dir / 'pgbouncer.pid'}\n")
        for path in self.dir.iterdir():
            path.chmod(0o644)
        self.dir.chmod(0o777)  # pgbouncer runs as postgres (it refuses root) and writes its log here
        self.proc = subprocess.Popen(_as_postgres([binary, str(self.dir / "pgbouncer.ini")]),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pgbouncer exited: {self.proc.stderr.read().decode(errors='replace')}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("pgbouncer did not start")

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def log(self) -> str:
        try:
            return (self.dir / "pgbouncer.log").read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)
