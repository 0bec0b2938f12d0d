#!/usr/bin/env bash
# Installs the reference code used as test oracles (tests/oracle/oracle.mjs): twitter-text 3.1.0 and
# @atproto/api, from npm, into tests/oracle/node_modules (see tests/npm_ci.sh).
exec bash "$(dirname "$0")/../npm_ci.sh" "$(dirname "$0")"
