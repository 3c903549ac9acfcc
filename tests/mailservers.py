"""A throw-away Postfix and Dovecot on loopback, for the tests that need a real MTA.

Both run from a temporary directory of their own (configuration, queue, mailboxes, logs): nothing
system-wide is read or changed, and `stop()` removes everything. Both need root (Postfix's master
runs as root and drops to `postfix`; Dovecot drops to its own users); `available()` says why not.

The shape used by the bounce tests: Postfix accepts mail for `local.test` on an SMTP port and
knows no user there, so it bounces; the DSN goes to the envelope sender's domain `bounce.test`,
which Postfix hands over LMTP to Dovecot, which files it in the maildir of `bounces` (the VERP
detail after `+` stripped), readable over IMAP. Mail to `mailbox.test` is delivered the same way
to a maildir per user: the addresses that do not bounce.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.servers import free_port

LOCAL_DOMAIN = "local.test"  # Postfix's own domain: no user exists there, so every address bounces
BOUNCE_DOMAIN = "bounce.test"  # delivered over LMTP to Dovecot
MAILBOX_DOMAIN = "mailbox.test"  # also delivered to Dovecot: every user there exists
IMAP_USER, IMAP_PASSWORD = "bounces", "imap-test-password"


def available() -> str | None:
    """None when a real Postfix and Dovecot can run here, else the reason they cannot."""
    if os.geteuid() != 0:
        return "Postfix and Dovecot need root to start (their masters switch to their own users)"
    for tool in ("postfix", "postconf", "dovecot"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install postfix dovecot-imapd dovecot-lmtpd)"
    for user in ("postfix", "dovecot", "dovenull"):
        try:
            import pwd

            pwd.getpwnam(user)
        except KeyError:
            return f"the system user {user!r} is missing (comes with the Debian packages)"
    if not Path("/usr/lib/dovecot/lmtp").exists():
        return "Dovecot's LMTP server is missing (apt-get install dovecot-lmtpd)"
    return None


def _wait_for_port(port: int, what: str, log: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    detail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port}:\n{detail}")


# master.cf: the services Postfix needs, none chrooted (shared with tests/postfix.py's relay) (the chroot would need a copy of /etc).
MASTER_CF = """\
127.0.0.1:{smtp_port} inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
local     unix  - n n - - local
lmtp      unix  - - n - - lmtp
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


_QUEUE_DIRS = [(name, "postfix", 0o700) for name in ("active", "bounce", "corrupt", "defer", "deferred",
                                                     "flush", "hold", "incoming", "private", "saved", "trace")]
_QUEUE_DIRS += [("maildrop", "postdrop", 0o730), ("public", "postdrop", 0o710), ("pid", "root", 0o755)]


class PostfixServer:
    """Postfix on 127.0.0.1:`port`, with its own configuration and queue directories."""

    def __init__(self, lmtp_port: int):
        self.port = free_port()
        self.lmtp_port = lmtp_port
        self.dir = Path(tempfile.mkdtemp(prefix="sp-postfix-"))
        self.etc, self.log = self.dir / "etc", self.dir / "maillog"
        self.started = False

    def start(self) -> PostfixServer:
        # Postfix's daemons run as `postfix` and must reach the queue and data directories.
        self.dir.chmod(0o755)
        self.etc.mkdir()
        (self.dir / "queue").mkdir()
        (self.dir / "data").mkdir()
        shutil.chown(self.dir / "data", "postfix")
        (self.etc / "master.cf").write_text(MASTER_CF.format(smtp_port=self.port))
        (self.etc / "main.cf").write_text("")
        settings = {
            "compatibility_level": "3.6",
            "queue_directory": str(self.dir / "queue"),
            "data_directory": str(self.dir / "data"),
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "myhostname": f"mx.{LOCAL_DOMAIN}",
            "mydomain": LOCAL_DOMAIN,
            "myorigin": LOCAL_DOMAIN,
            "mydestination": LOCAL_DOMAIN,
            "inet_interfaces": "loopback-only",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            # Accept any local recipient at RCPT time, so the unknown user bounces *after* the
            # SMTP transaction, as a DSN (a refusal during the transaction would be no mail).
            "local_recipient_maps": "",
            "alias_maps": "",
            "alias_database": "",
            "recipient_delimiter": "+",
            "transport_maps": f"inline:{{{BOUNCE_DOMAIN}=lmtp:inet:127.0.0.1:{self.lmtp_port}, "
                              f"{MAILBOX_DOMAIN}=lmtp:inet:127.0.0.1:{self.lmtp_port}}}",
            "smtputf8_enable": "yes",
            "smtpd_forbid_bare_newline": "reject",
            "maillog_file": str(self.log),
            "maillog_file_prefixes": str(self.dir),
            "biff": "no",
            "smtp_dns_support_level": "disabled",
            "disable_dns_lookups": "yes",
            "delay_warning_time": "0",
            "bounce_queue_lifetime": "1h",
        }
        subprocess.run(["postconf", "-c", str(self.etc), "-e", *(f"{k}={v}" for k, v in settings.items())],
                       check=True, capture_output=True)
        # The queue's subdirectories with the owners and modes of Postfix's postfix-files; with
        # `quick-start` present, `postfix start` skips its integrity check (6 s of scanning).
        queue = self.dir / "queue"
        for name, group, mode in _QUEUE_DIRS:
            (queue / name).mkdir(mode=mode)
            (queue / name).chmod(mode)
            shutil.chown(queue / name, "root" if name == "pid" else "postfix", group)
        (queue / "quick-start").touch()
        result = subprocess.run(["postfix", "-c", str(self.etc), "start"], capture_output=True, text=True)
        if result.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"postfix start failed: {result.stderr or result.stdout}{log}")
        self.started = True
        _wait_for_port(self.port, "Postfix", self.log)
        return self

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def queue_is_empty(self) -> bool:
        result = subprocess.run(["postqueue", "-c", str(self.etc), "-j"], capture_output=True, text=True)
        return result.returncode == 0 and not result.stdout.strip()

    def stop(self) -> None:
        if self.started:
            pid_file = self.dir / "queue" / "pid" / "master.pid"
            try:
                pid = int(pid_file.read_text().strip())
            except (OSError, ValueError):
                pid = None
            subprocess.run(["postfix", "-c", str(self.etc), "stop"], capture_output=True)
            # `stop` returns before the master has gone; wait, or rmtree races its last writes.
            deadline = time.monotonic() + 10
            while pid and time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)
            self.started = False
        shutil.rmtree(self.dir, ignore_errors=True)


class DovecotServer:
    """Dovecot with IMAP and LMTP on loopback and one maildir user, `bounces`."""

    def __init__(self):
        self.imap_port, self.lmtp_port = free_port(), free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="sp-dovecot-"))
        self.log = self.dir / "dovecot.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> DovecotServer:
        self.dir.chmod(0o755)  # the mail user must reach its maildir
        for name in ("run", "state", "mail"):
            (self.dir / name).mkdir()
        shutil.chown(self.dir / "mail", "nobody", "nogroup")
        conf = self.dir / "dovecot.conf"
        conf.write_text(f"""\
protocols = imap lmtp
listen = 127.0.0.1
base_dir = {self.dir}/run
state_dir = {self.dir}/state
log_path = {self.log}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_username_format = %Ln
recipient_delimiter = +
lmtp_save_to_detail_mailbox = no
first_valid_uid = 1
mail_location = maildir:{self.dir}/mail/%n
passdb {{
  driver = static
  args = password={IMAP_PASSWORD}
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={self.dir}/mail/%n
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.imap_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {self.lmtp_port}
  }}
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
""")
        # -F: stay in the foreground, so the process is ours to stop.
        self.proc = subprocess.Popen(["dovecot", "-F", "-c", str(conf)], stdout=subprocess.DEVNULL,
                                     stderr=open(self.dir / "stderr", "wb"))
        _wait_for_port(self.imap_port, "Dovecot IMAP", self.dir / "stderr")
        _wait_for_port(self.lmtp_port, "Dovecot LMTP", self.log)
        return self

    def imap_url(self, user: str = IMAP_USER) -> str:
        return f"imap://{user}:{IMAP_PASSWORD}@127.0.0.1:{self.imap_port}/INBOX"

    def wait_for_mail(self, user: str, count: int = 1, timeout: float = 30) -> int:
        """Wait until `user`'s INBOX holds at least `count` messages; return how many it holds."""
        import imaplib

        deadline = time.monotonic() + timeout
        while True:
            imap = imaplib.IMAP4("127.0.0.1", self.imap_port)
            try:
                imap.login(user, IMAP_PASSWORD)
                imap.select("INBOX")
                found = len((imap.search(None, "ALL")[1][0] or b"").split())
            finally:
                imap.logout()
            if found >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)
