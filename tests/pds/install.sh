#!/usr/bin/env bash
# Installs the local atproto PDS used by the Bluesky tests (tests/pds/serve.mjs) into tests/pds/node_modules.
# Idempotent and quiet: a second run with the same package-lock.json and Node is a no-op (~0.3 s); any
# output appears only on failure. Needs node >= 20, npm, and gcc/make/python3 for better-sqlite3.
#   bash tests/pds/install.sh        (FORCE=1 to reinstall from scratch)
set -euo pipefail
cd "$(dirname "$0")"

log=$(mktemp)
trap 'rm -f "$log"' EXIT
run() { # run quietly; on failure show what was said, and stop
  if ! "$@" >>"$log" 2>&1; then
    echo "tests/pds/install.sh: failed: $*" >&2
    cat "$log" >&2
    exit 1
  fi
}

command -v node >/dev/null || { echo "tests/pds/install.sh: node (>= 20) is not installed" >&2; exit 1; }
command -v npm >/dev/null || { echo "tests/pds/install.sh: npm is not installed" >&2; exit 1; }

# What an install is for: the lockfile and the Node ABI (better-sqlite3 is a native module).
want="$(sha256sum package-lock.json | cut -d' ' -f1) node-abi-$(node -p process.versions.modules)"
stamp=node_modules/.relay-install-stamp
sqlite_ok() { node -e "new (require('better-sqlite3'))(':memory:').close()" >/dev/null 2>&1; }

if [[ "${FORCE:-}" != 1 && -f $stamp && "$(cat "$stamp")" == "$want" ]] && sqlite_ok; then
  exit 0
fi

rm -f "$stamp"
# --ignore-scripts: the same on every npm version. Of the four packages with install scripts only
# better-sqlite3's matters (built below); sharp ships prebuilt binaries as npm packages, and
# core-js/protobufjs only print notices. It also keeps prebuild-install from trying to download.
run npm ci --ignore-scripts --no-audit --no-fund --loglevel=error

if [[ ! -f node_modules/better-sqlite3/build/Release/better_sqlite3.node ]] || ! sqlite_ok; then
  # npm's own node-gyp, with the installed Node's headers: nothing is downloaded.
  gyp="$(dirname "$(realpath "$(command -v npm)")")/../node_modules/node-gyp/bin/node-gyp.js"
  nodedir="$(dirname "$(dirname "$(realpath "$(command -v node)")")")"
  gyp_args=(rebuild --release)
  [[ -f "$nodedir/include/node/node.h" ]] && gyp_args+=("--nodedir=$nodedir")
  if [[ -f "$gyp" ]]; then
    (cd node_modules/better-sqlite3 && run node "$gyp" "${gyp_args[@]}")
  else
    (cd node_modules/better-sqlite3 && run npx --yes node-gyp "${gyp_args[@]}")
  fi
  sqlite_ok || { echo "tests/pds/install.sh: better-sqlite3 was built but does not load" >&2; cat "$log" >&2; exit 1; }
fi

echo "$want" >"$stamp"
