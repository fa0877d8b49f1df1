#!/usr/bin/env bash
# `pnpm test`: every package's tests, one package at a time. The log is long and CI keeps only its
# end, so when a test fails the failed tests (with the first lines of their errors) come last.
set -uo pipefail
cd "$(dirname "$0")/.."
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
pnpm exec nx run-many -t test --parallel=1 --output-style=stream "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
if [ "$status" -ne 0 ]; then
  echo
  echo "=== failed tests ==="
  sed -e 's/\x1b\[[0-9;]*m//g' "$log" | grep -E -A 12 "(FAIL| × |✗|Error:|Unhandled)" | grep -v -E "^\s*$" | head -80
fi
exit "$status"
