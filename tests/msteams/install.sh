#!/usr/bin/env bash
# Installs Microsoft's Teams references the tests run into tests/msteams/node_modules: the Adaptive Cards
# library (the fake Bot Connector checks every card with it), the Teams app manifest schemas
# (@microsoft/app-manifest) and the Microsoft 365 Agents Playground (a real Teams client on loopback).
exec bash "$(dirname "$0")/../npm_ci.sh" "$(dirname "$0")"
