#!/usr/bin/env bash
# `npm ci` of one folder's package-lock.json, for the npm packages the tests run (tests/oracle, tests/msteams).
# Idempotent and quiet: a second run with the same package-lock.json is a no-op; output only on failure.
# --ignore-scripts: none of these packages needs an install step.
#   bash tests/npm_ci.sh FOLDER        (FORCE=1 to reinstall from scratch)
set -euo pipefail
name="$1/install"
cd "$1"

command -v node >/dev/null || { echo "$name: node (>= 20) is not installed" >&2; exit 1; }
command -v npm >/dev/null || { echo "$name: npm is not installed" >&2; exit 1; }

want="$(sha256sum package-lock.json | cut -d' ' -f1)"
stamp=node_modules/.relay-install-stamp
if [[ "${FORCE:-}" != 1 && -f $stamp && "$(cat "$stamp")" == "$want" ]]; then
  exit 0
fi
rm -f "$stamp"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >"$log" 2>&1; then
  echo "$name: npm ci failed" >&2
  cat "$log" >&2
  exit 1
fi
echo "$want" >"$stamp"
