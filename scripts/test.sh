#!/usr/bin/env bash
# Second command of the README: install what the tests need and run the whole suite, on SQLite
# with the embedded Redis and on PostgreSQL with a real redis-server (both started by the tests).
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages: redis-server for the PostgreSQL run, chromium for the browser tests, Postfix
# and Dovecot (IMAP + LMTP) for the real-bounce tests (tests/mailservers.py; run as root there) and
# the strict-relay tests (tests/postfix.py), PgBouncer for the transaction-pooling tests
# (tests/test_pgbouncer.py).
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v chromium >/dev/null || missing+=(chromium)
command -v postfix >/dev/null || missing+=(postfix)
[ -x /usr/lib/dovecot/imap ] || missing+=(dovecot-imapd)
[ -x /usr/lib/dovecot/lmtp ] || missing+=(dovecot-lmtpd)
command -v pgbouncer >/dev/null || [ -x /usr/sbin/pgbouncer ] || missing+=(pgbouncer)
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)  # tests/test_multihost.py
if ! command -v initdb >/dev/null; then
  pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -n "$pgbin" ]; then export PATH="$pgbin:$PATH"; else missing+=(postgresql); fi
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "Missing system packages: ${missing[*]} (install them as root: apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "Installing ${missing[*]} …"
  apt-get update -qq
  # The tests run their own Postfix; the package must not configure and start a system one.
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  if ! command -v initdb >/dev/null; then
    export PATH="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1):$PATH"
  fi
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -e '.[test]'

echo "== ruff"
.venv/bin/ruff check .

echo "== pytest on SQLite + embedded Redis"
TEST_DATABASE=sqlite .venv/bin/pytest "$@"

echo "== pytest on PostgreSQL + redis-server (and the multi-host test: network namespaces, haproxy)"
TEST_DATABASE=postgresql MULTIHOST=1 .venv/bin/pytest "$@"
