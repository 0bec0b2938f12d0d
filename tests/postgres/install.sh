#!/usr/bin/env bash
# Installs Debian's PostgreSQL server binaries and PgBouncer for the suite, which starts throwaway servers
# of its own (tests/postgres/cluster.py) unless RELAY_TEST_DATABASE_URL names one. Quiet and idempotent;
# needs root for apt. The packaged cluster and service that apt may set up are not used (nor started).
set -euo pipefail
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && [[ -x /usr/sbin/pgbouncer ]]; then
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "tests/postgres/install.sh: install Debian's postgresql and pgbouncer packages" \
    "(sudo apt-get install postgresql pgbouncer)" >&2
  exit 1
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql pgbouncer; } >"$log" 2>&1; then
  echo "tests/postgres/install.sh: could not install postgresql" >&2
  cat "$log" >&2
  exit 1
fi
