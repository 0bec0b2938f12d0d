#!/usr/bin/env bash
# Installs Debian's PostgreSQL server binaries for the suite, which starts a throwaway cluster of its own
# (tests/postgres/cluster.py) unless RELAY_TEST_DATABASE_URL names one. Quiet and idempotent; needs root
# for apt. The packaged cluster that apt may create is not used (nor started by the suite).
set -euo pipefail
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && exit 0
[[ -n "${RELAY_TEST_DATABASE_URL:-}" ]] && exit 0
if [[ $(id -u) -ne 0 ]]; then
  echo "tests/postgres/install.sh: install Debian's postgresql package (sudo apt-get install postgresql)," \
    "or set RELAY_TEST_DATABASE_URL to a database the suite may create databases with" >&2
  exit 1
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; } >"$log" 2>&1; then
  echo "tests/postgres/install.sh: could not install postgresql" >&2
  cat "$log" >&2
  exit 1
fi
