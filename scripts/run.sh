#!/usr/bin/env bash
# First command of the README: install everything and run the platform on the embedded default
# (SQLite + embedded Redis + file outbox under instance/) with a web server and a worker.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -e .
.venv/bin/flask db upgrade
if .venv/bin/flask demo --help >/dev/null 2>&1 && [ "${DEMO:-ask}" != "no" ] && .venv/bin/flask demo --is-empty >/dev/null 2>&1; then
  if [ "${DEMO:-ask}" = "yes" ] || { [ -t 0 ] && read -r -p "The database is empty. Fill it with demo data? [y/N] " answer && [ "${answer,,}" = "y" ]; }; then
    .venv/bin/flask demo
  fi
fi
exec .venv/bin/flask dev "$@"
