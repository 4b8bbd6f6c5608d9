#!/usr/bin/env bash
# Every test of the project, from a fresh machine: formatting and lints, unit and
# integration tests, then the conformance suites with the official Twilio clients
# (twilio-python and twilio-node at pinned versions, installed here).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

if [ ! -f ../shared/clients/local_twilio.py ]; then
  echo "error: ../shared/clients is missing (the shared/ folder must sit beside this checkout)" >&2
  exit 1
fi

echo "== cargo fmt, clippy"
cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings

echo "== cargo test"
cargo build --locked --bin bulkexport
cargo test --locked

echo "== installing the official clients"
python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -r tests/clients/requirements.txt
(cd tests/clients/node && npm ci --no-audit --no-fund --loglevel=error)

export BULKEXPORT_BIN="$root/target/debug/bulkexport"
echo "== twilio-python conformance"
.venv/bin/python -m pytest -q tests/clients
echo "== twilio-node conformance"
NODE_PATH="$root/tests/clients/node/node_modules" node --test tests/clients/node/
