#!/usr/bin/env bash
# Installs Debian's Chromium for the status-page tests, which drive it with Playwright (from PyPI) through
# executablePath: Playwright's own browser download is not used. Quiet and idempotent; needs root for apt.
set -euo pipefail
command -v chromium >/dev/null && exit 0
if [[ $(id -u) -ne 0 ]]; then
  echo "tests/browser/install.sh: install Debian's chromium package (sudo apt-get install chromium)" >&2
  exit 1
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >"$log" 2>&1; then
  echo "tests/browser/install.sh: could not install chromium" >&2
  cat "$log" >&2
  exit 1
fi
