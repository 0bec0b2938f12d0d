#!/usr/bin/env bash
# Installs the reference code used as test oracles (tests/oracle/oracle.mjs): twitter-text 3.1.0 and
# @atproto/api, from npm, into tests/oracle/node_modules. Idempotent and quiet: a second run with the same
# package-lock.json is a no-op; any output appears only on failure.
#   bash tests/oracle/install.sh        (FORCE=1 to reinstall from scratch)
set -euo pipefail
cd "$(dirname "$0")"

command -v node >/dev/null || { echo "tests/oracle/install.sh: node (>= 20) is not installed" >&2; exit 1; }
command -v npm >/dev/null || { echo "tests/oracle/install.sh: npm is not installed" >&2; exit 1; }

want="$(sha256sum package-lock.json | cut -d' ' -f1)"
stamp=node_modules/.relay-install-stamp
if [[ "${FORCE:-}" != 1 && -f $stamp && "$(cat "$stamp")" == "$want" ]]; then
  exit 0
fi
rm -f "$stamp"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# --ignore-scripts: none of these packages needs one (core-js only prints a notice).
if ! npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >"$log" 2>&1; then
  echo "tests/oracle/install.sh: npm ci failed" >&2
  cat "$log" >&2
  exit 1
fi
echo "$want" >"$stamp"
