"""Scale-out across separate network hosts: two web hosts and two worker hosts behind haproxy.

Opt-in (MULTIHOST=1, root, iproute2 and haproxy; scripts/test.sh runs it in the PostgreSQL pass).
Every host is a network namespace on a private bridge (tests/netns.py): PostgreSQL, Redis, an SMTP
sink, haproxy, web-1 and web-2 (gunicorn) and worker-a and worker-b (`flask worker`), each web and
worker host with an INSTANCE_PATH of its own. The test itself stands outside: it talks HTTP from a
client host, and reads the database over PostgreSQL's unix socket and the sink's log file.

Through the load balancer: joins and confirmations; a campaign sent by both worker hosts, each
recipient exactly once; an export started on web-1 and downloaded from web-2, an import uploaded to
web-2 and processed by a worker host (TRANSFER_STORAGE=database, the default on PostgreSQL); then a
second campaign during which worker-a's processes are killed and its namespace deleted: worker-b
finishes, every recipient gets the mail, and every duplicate is a delivery counted as `reclaimed`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest

from tests import netns

ROOT = Path(__file__).resolve().parent.parent
CAMPAIGN_SIZE = int(os.environ.get("MULTIHOST_CAMPAIGN_SIZE", "2000"))
SECRET = "multi-host-secret-key-shared-by-every-host-0123456789"
BODY = "Hallo {{first_name}},\n\nes gibt **Neuigkeiten**.\n\n[Einstellungen]({{preferences_url}})\n"

pytestmark = [pytest.mark.multihost, pytest.mark.slow]


def _skip_reason() -> str | None:
    if os.environ.get("MULTIHOST") != "1":
        return "opt-in: set MULTIHOST=1 (scripts/test.sh does in its PostgreSQL pass)"
    if (why := netns.available()) is not None:
        return why
    for tool in ("haproxy", "redis-server", "initdb", "pg_ctl"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


class Deployment:
    """The hosts, their processes and how to reach them."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.net = netns.Network()
        self.pg_dir: Path | None = None
        self.sink_log = tmp / "sink.jsonl"
        names = ("db", "redis", "smtp", "lb", "web-1", "web-2", "worker-a", "worker-b", "client")
        self.hosts = {name: self.net.add_host(name) for name in names}
        self.base = f"http://{self.hosts['lb'].address}:8080"

    # --- infrastructure hosts --------------------------------------------------------------------

    def start_postgres(self) -> None:
        db = self.hosts["db"]
        self.pg_dir = Path(tempfile.mkdtemp(prefix="sp-mh-pg-"))
        shutil.chown(self.pg_dir, "postgres", "postgres")
        data = self.pg_dir / "data"
        subprocess.run(["runuser", "-u", "postgres", "--", "initdb", "-D", str(data), "-A", "trust", "-U", "postgres",
                        "-E", "UTF8", "--no-sync", "--locale=C"], check=True, capture_output=True)
        with open(data / "pg_hba.conf", "a") as hba:
            hba.write(f"host all all 10.213.{self.net.subnet}.0/24 trust\n")
        options = (f"-p 5432 -k {self.pg_dir} -c listen_addresses={db.address} -c max_connections=200 "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
        db.run(["runuser", "-u", "postgres", "--", "pg_ctl", "-D", str(data), "-o", options, "-w", "-t", "60",
                "-l", str(self.pg_dir / "log"), "start"], capture_output=True)
        self.sql("CREATE DATABASE supporters", database="postgres", autocommit=True)

    def stop_postgres(self) -> None:
        if self.pg_dir is not None:
            subprocess.run(["runuser", "-u", "postgres", "--", "pg_ctl", "-D", str(self.pg_dir / "data"), "-m",
                            "immediate", "stop"], capture_output=True)
            shutil.rmtree(self.pg_dir, ignore_errors=True)
            self.pg_dir = None

    def sql(self, statement: str, params=(), database: str = "supporters", autocommit: bool = False) -> list:
        """Run SQL as the operator does, over the server's unix socket (not through the bridge)."""
        import psycopg

        with psycopg.connect(host=str(self.pg_dir), port=5432, user="postgres", dbname=database,
                             autocommit=autocommit) as conn:
            cursor = conn.execute(statement, params)
            return cursor.fetchall() if cursor.description else []

    def start_redis(self) -> None:
        host = self.hosts["redis"]
        host.popen(["redis-server", "--port", "6379", "--bind", host.address, "--save", "", "--appendonly", "no",
                    "--protected-mode", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def start_sink(self) -> None:
        host = self.hosts["smtp"]
        proc = host.popen([sys.executable, "-m", "tests.multihost_tools", "sink", host.address, "2525",
                           str(self.sink_log)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        assert json.loads(proc.stdout.readline())["ready"]

    def start_haproxy(self) -> None:
        lb = self.hosts["lb"]
        config = self.tmp / "haproxy.cfg"
        config.write_text(f"""global
    maxconn 512
defaults
    mode http
    option forwardfor
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend public
    bind {lb.address}:8080
    unique-id-format %{{+X}}o%ci-%cp-%Ts-%rt
    unique-id-header X-Request-ID
    default_backend web
backend web
    balance roundrobin
    option httpchk GET /healthz
    server web-1 {self.hosts['web-1'].address}:8000 check inter 1s
    server web-2 {self.hosts['web-2'].address}:8000 check inter 1s
""")
        lb.popen(["haproxy", "-f", str(config), "-db"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    # --- the platform's hosts --------------------------------------------------------------------

    def env(self, host: str) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "VIRTUAL_ENV")}
        return {**keep, "APP_ENV": "development", "SECRET_KEY": SECRET, "PYTHONUNBUFFERED": "1",
                "DATABASE_URL": f"postgresql+psycopg://postgres@{self.hosts['db'].address}:5432/supporters",
                "REDIS_URL": f"redis://{self.hosts['redis'].address}:6379/0",
                "SMTP_URL": f"smtp://{self.hosts['smtp'].address}:2525",
                "MAIL_FROM": "Fans <fans@example.com>", "PUBLIC_BASE_URL": self.base,
                "INSTANCE_PATH": str(self.tmp / host / "instance"), "TRUSTED_PROXIES": "1",
                "JOIN_RATE_LIMIT": "10000 per minute", "LOG_FORMAT": "json",
                "CAMPAIGN_LEASE_SECONDS": "5", "CAMPAIGN_SWEEP_SECONDS": "2", "CAMPAIGN_RETRY_SECONDS": "1"}

    def flask(self, host: str, *args: str, stdin: str | None = None) -> str:
        result = self.hosts[host].run([sys.executable, "-m", "flask", "--app", "wsgi", *args], cwd=ROOT,
                                      env=self.env(host), input=stdin, capture_output=True, text=True, timeout=300)
        return result.stdout

    def start_web(self, name: str) -> None:
        log = open(self.tmp / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
        self.hosts[name].popen([sys.executable, "-m", "gunicorn", "--config", "python:core.gunicorn_conf",
                                "--workers", "1", "--worker-class", "sync", "--bind", "0.0.0.0:8000",
                                "--no-control-socket", "wsgi:create_app()"],
                               cwd=ROOT, env=self.env(name), stdout=log, stderr=subprocess.STDOUT)

    def start_worker(self, name: str) -> None:
        log = open(self.tmp / f"{name}.log", "w")  # noqa: SIM115
        self.hosts[name].popen([sys.executable, "-m", "flask", "--app", "wsgi", "worker", "--name", name],
                               cwd=ROOT, env=self.env(name), stdout=log, stderr=subprocess.STDOUT)

    def client(self, *args: str, timeout: float = 300):
        result = self.hosts["client"].run([sys.executable, "-m", "tests.multihost_tools", *args], cwd=ROOT,
                                          capture_output=True, text=True, timeout=timeout)
        return json.loads(result.stdout)

    def api(self, token: str, method: str, path: str, body: dict | None = None) -> dict:
        return self.client("api", self.base, token, method, path, *([json.dumps(body)] if body else []))

    def sink(self) -> list[dict]:
        if not self.sink_log.exists():
            return []
        return [json.loads(line) for line in self.sink_log.read_text().splitlines() if line.strip()]

    def close(self) -> None:
        try:
            self.stop_postgres()
        finally:
            self.net.close()


@pytest.fixture
def deployment():
    if (why := _skip_reason()) is not None:
        pytest.skip(why)
    tmp = Path(tempfile.mkdtemp(prefix="sp-multihost-"))
    d = Deployment(tmp)
    try:
        d.start_postgres()
        d.start_redis()
        d.start_sink()
        d.flask("web-1", "db", "upgrade")  # the release phase, from one host
        for name in ("web-1", "web-2"):
            d.start_web(name)
        for name in ("worker-a", "worker-b"):
            d.start_worker(name)
        d.start_haproxy()
        assert d.client("wait", f"{d.base}/healthz", "90")["status"] == 200
        yield d
    finally:
        prefix = d.net.prefix
        d.close()
        assert d.net.leftovers() == [], f"namespaces of {prefix} left behind"
        shutil.rmtree(tmp, ignore_errors=True)


def _wait(predicate, what: str, d: Deployment, seconds: float = 240):
    deadline = time.monotonic() + seconds
    while not (result := predicate()):
        if time.monotonic() > deadline:
            tails = {name: (d.tmp / f"{name}.log").read_text(errors="replace")[-1500:]
                     for name in ("web-1", "worker-a", "worker-b") if (d.tmp / f"{name}.log").exists()}
            raise AssertionError(f"timed out waiting for {what}; the sink has {len(d.sink())} mails; "
                                 f"log tails: {json.dumps(tails, indent=1)}")
        time.sleep(0.5)
    return result


def _campaign_mails(d: Deployment, campaign_id: int) -> list[dict]:
    return [m for m in d.sink() if m["message_id"] and f".c{campaign_id}@" in m["message_id"]]


def _launch(d: Deployment, token: str, name: str) -> int:
    created = d.api(token, "POST", "/campaigns", {"name": name, "contents": {"de": {"subject": "Neu für {{first_name}}",
                                                                                    "body": BODY}}})
    assert created["status"] == 201, created
    launched = d.api(token, "POST", f"/campaigns/{created['body']['id']}/launch")
    assert launched["status"] in (200, 202), launched
    return created["body"]["id"]


def _load_supporters(d: Deployment, count: int) -> None:
    d.sql("""INSERT INTO supporters (email, email_normalized, name, kind, language, status, engagement_score,
                                     created_at, updated_at)
             SELECT 'bulk' || i || '@example.net', 'bulk' || i || '@example.net', 'Bulk ' || i, 'fan', 'de', 'active',
                    0, now(), now() FROM generate_series(1, %s) AS i""", (count,))
    d.sql("""INSERT INTO consent_events (supporter_id, purpose, action, method, occurred_at)
             SELECT id, 'campaigns', 'granted', 'import', now() FROM supporters WHERE email LIKE 'bulk%%'""")


def test_two_web_and_two_worker_hosts_join_send_once_and_survive_losing_a_worker_host(deployment):
    d = deployment
    # --- joins and confirmations through the load balancer, mail sent by the worker hosts ----------
    joined = d.client("join", d.base, "12", "fan")
    assert [j["status"] for j in joined] == [200] * 12
    # haproxy's unique id arrived as the request id, and the app answered it back.
    assert all(j["request_id"] and "-" in j["request_id"] for j in joined)
    confirms = _wait(lambda: [m["confirm"] for m in d.sink() if m["confirm"]] if len(
        [m for m in d.sink() if m["confirm"]]) >= 12 else None, "12 confirmation mails", d)
    assert set(d.client("post", d.base, *confirms)) == {200}
    assert d.sql("SELECT count(*) FROM supporters WHERE status = 'active' AND email LIKE 'fan%%'") == [(12,)]
    served = {name: (d.tmp / f"{name}.log").read_text().count('"path": "/join"') for name in ("web-1", "web-2")}
    assert all(served.values()), served  # both web hosts took joins
    confirmation_peers = {m["peer"] for m in d.sink() if m["confirm"]}
    assert confirmation_peers <= {d.hosts["worker-a"].address, d.hosts["worker-b"].address}

    # --- a campaign sent by both worker hosts, exactly once ----------------------------------------
    d.flask("web-2", "users", "create", "admin@example.org", "--role", "admin", "--password-stdin",
            stdin="a long enough password 123\n")
    token = d.flask("web-2", "tokens", "create", "--user", "admin@example.org", "--name", "multihost").strip()
    _load_supporters(d, CAMPAIGN_SIZE)
    audience = first_audience = CAMPAIGN_SIZE + 12
    first = _launch(d, token, "Erste")
    _wait(lambda: d.sql("SELECT status FROM campaigns WHERE id = %s", (first,)) == [("sent",)], "the first campaign", d)
    mails = _campaign_mails(d, first)
    per_recipient = Counter(m["rcpt"][0] for m in mails)
    assert len(per_recipient) == audience and set(per_recipient.values()) == {1}
    by_host = Counter(m["peer"] for m in mails)
    assert set(by_host) == {d.hosts["worker-a"].address, d.hosts["worker-b"].address}, by_host

    # --- an export started through web-1 and downloaded through web-2; an import uploaded through
    # web-2, processed by a worker host and looked at through web-1 (shared transfer storage) --------
    web1, web2 = (f"http://{d.hosts[name].address}:8000" for name in ("web-1", "web-2"))
    started = d.client("api", web1, token, "POST", "/exports/supporters", json.dumps({"status": ["active"]}))
    assert started["status"] == 202, started
    job = _wait(lambda: (j := d.client("api", web1, token, "GET", f"/jobs/{started['body']['id']}"))["body"][
        "status"] in ("done", "failed") and j, "the export job", d)
    assert job["body"]["status"] == "done", job
    download = job["body"]["download"]["url"].replace(d.base, web2)
    got = d.client("get", download)
    assert got["status"] == 200 and got["lines"] == audience + 1 and got["first"].startswith("id,email")
    source = d.tmp / "import.csv"
    source.write_text("email,name\n" + "".join(f"imported{i}@example.net,Neu {i} ü\n" for i in range(40))
                      + "kaputt,X\n", encoding="utf-8")
    uploaded = d.client("upload", web2, token, str(source),
                        json.dumps({"consent_note": "Papierformular, Messe 2026", "consented_at": "2026-06-30",
                                                    "language": "de"}))
    assert uploaded["status"] == 202, uploaded
    job = _wait(lambda: (j := d.client("api", web1, token, "GET", f"/jobs/{uploaded['body']['id']}"))["body"][
        "status"] in ("done", "failed") and j, "the import job", d)
    assert job["body"]["status"] == "done" and job["body"]["summary"]["inserted"] == 40, job
    assert job["body"]["summary"]["rejected"] == 1
    assert d.sql("SELECT count(*) FROM supporters WHERE email LIKE 'imported%%'") == [(40,)]
    ran_on = [name for name in ("worker-a", "worker-b")
              if "run_transfer_job" in (d.tmp / f"{name}.log").read_text(errors="replace")]
    assert ran_on, "no worker host logged the transfer jobs"

    # --- a worker host goes down mid-send; the other finishes --------------------------------------
    second = _launch(d, token, "Zweite")
    # The imported supporters joined the audience (if their language has content): ask the snapshot.
    [(audience,)] = d.sql("SELECT count(*) FROM deliveries WHERE campaign_id = %s AND status <> 'skipped'", (second,))
    assert audience >= CAMPAIGN_SIZE + 12
    _wait(lambda: len(_campaign_mails(d, second)) >= audience // 4, "a quarter of the second campaign", d)
    worker_a = d.hosts["worker-a"].address
    d.hosts["worker-a"].destroy()  # processes killed, namespace and its interface deleted
    killed_at = time.time()
    _wait(lambda: d.sql("SELECT status FROM campaigns WHERE id = %s", (second,)) == [("sent",)],
          "the second campaign after losing worker-a", d)
    mails = _campaign_mails(d, second)
    per_recipient = Counter(m["rcpt"][0] for m in mails)
    assert len(per_recipient) == audience  # nothing lost
    duplicates = sum(n - 1 for n in per_recipient.values())
    [(sent, reclaimed)] = d.sql("SELECT count(*) FILTER (WHERE status = 'sent'), count(*) FILTER (WHERE reclaimed) "
                                "FROM deliveries WHERE campaign_id = %s", (second,))
    assert sent == audience  # nothing lost, nothing failed, nothing left queued
    assert duplicates <= reclaimed  # every duplicate is a counted one
    late = [m for m in mails if m["at"] > killed_at + 1]
    assert late and {m["peer"] for m in late} == {d.hosts["worker-b"].address}, "worker-b did not finish the send"
    assert any(m["peer"] == worker_a for m in mails)  # worker-a had its share before it went down
    print(f"\nmulti-host: first campaign {first_audience} mails, split {dict(by_host)}; second {audience} mails: "
          f"{duplicates} duplicates, {reclaimed} reclaimed deliveries after losing worker-a")
