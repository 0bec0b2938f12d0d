#!/usr/bin/env bash
# Installs Microsoft's Teams references the tests run into tests/msteams/node_modules: the Adaptive Cards
# library (the fake Bot Connector checks every card with it), the Teams app manifest schemas
# (@microsoft/app-manifest) and the Microsoft 365 Agents Playground (a real Teams client on loopback).
# Idempotent and quiet: a second run with the same package-lock.json is a no-op; output only on failure.
#   bash tests/msteams/install.sh        (FORCE=1 to reinstall from scratch)
set -euo pipefail
cd "$(dirname "$0")"

command -v node >/dev/null || { echo "tests/msteams/install.sh: node (>= 20) is not installed" >&2; exit 1; }
command -v npm >/dev/null || { echo "tests/msteams/install.sh: npm is not installed" >&2; exit 1; }

want="$(sha256sum package-lock.json | cut -d' ' -f1)"
stamp=node_modules/.relay-install-stamp
if [[ "${FORCE:-}" != 1 && -f $stamp && "$(cat "$stamp")" == "$want" ]]; then
  exit 0
fi

rm -f "$stamp"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# --ignore-scripts: none of these packages needs a build step.
if ! npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >"$log" 2>&1; then
  echo "tests/msteams/install.sh: npm ci failed" >&2
  cat "$log" >&2
  exit 1
fi
echo "$want" >"$stamp"
