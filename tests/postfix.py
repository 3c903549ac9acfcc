"""A real Postfix (Debian `postfix`) on loopback as a strict relay in front of the test sink.

Its own configuration and queue directories under a temporary directory (`postfix -c DIR`), an
SMTP server on 127.0.0.1 at a free high port (master.cf), no local delivery, everything relayed
to `relayhost` (the aiosmtpd sink). Strict where it matters for us: `smtputf8_enable = yes` and
`smtpd_forbid_bare_newline = reject` with no exclusions (by default Postfix exempts $mynetworks,
which would exempt loopback and prove nothing).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tests.mailservers import MASTER_CF
from tests.servers import free_port

POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {dir}/queue
data_directory = {dir}/data
maillog_file = {dir}/maillog
maillog_file_prefixes = {dir}
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.test
mydomain = postfix.test
myorigin = $myhostname
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
relayhost = [127.0.0.1]:{relay_port}
smtp_tls_security_level = none
smtpd_tls_security_level = none
smtputf8_enable = yes
smtpd_forbid_bare_newline = {bare_newline}
smtpd_forbid_bare_newline_exclusions =
smtpd_forbid_unauth_pipelining = yes
smtpd_discard_ehlo_keywords =
strict_rfc821_envelopes = yes
message_size_limit = 10240000
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
biff = no
"""



def bare_newline_setting() -> str:
    """`reject` when this Postfix knows smtpd_forbid_bare_newline (3.5.23/3.6.13/3.7.9/3.8.4+), else ''."""
    out = subprocess.run(["postconf", "-d", "smtpd_forbid_bare_newline"], capture_output=True, text=True)
    return "reject" if out.returncode == 0 and "=" in out.stdout else ""


class PostfixRelay:
    def __init__(self, relay_port: int):
        self.relay_port = relay_port
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="sp-postfix-"))

    def start(self) -> PostfixRelay:
        bare = bare_newline_setting()
        main = MAIN_CF.format(dir=self.dir, relay_port=self.relay_port, bare_newline=bare or "no")
        (self.dir / "main.cf").write_text(main)
        (self.dir / "master.cf").write_text(MASTER_CF.format(smtp_port=self.port))
        for sub in ("queue", "data"):
            (self.dir / sub).mkdir()
        shutil.chown(self.dir / "data", "postfix", "postfix")
        self.dir.chmod(0o755)
        self._run("check")  # creates the queue subdirectories with Postfix's owners and modes
        self._run("start")
        deadline = time.monotonic() + 20
        import socket

        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"postfix did not listen on {self.port}: {self.log()}")

    def _run(self, *args: str) -> None:
        done = subprocess.run([POSTFIX, "-c", str(self.dir), *args], capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"postfix {' '.join(args)} failed: {done.stdout}{done.stderr}")

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def setting(self, name: str) -> str:
        out = subprocess.run(["postconf", "-c", str(self.dir), "-h", name], capture_output=True, text=True)
        return out.stdout.strip()

    def log(self) -> str:
        path = self.dir / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""

    def queue_empty(self) -> bool:
        out = subprocess.run(["postqueue", "-c", str(self.dir), "-j"], capture_output=True, text=True)
        return out.returncode == 0 and not out.stdout.strip()

    def stop(self) -> None:
        subprocess.run([POSTFIX, "-c", str(self.dir), "stop"], capture_output=True, timeout=60)
        time.sleep(0.3)
        shutil.rmtree(self.dir, ignore_errors=True)
