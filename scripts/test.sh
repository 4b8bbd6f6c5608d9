#!/usr/bin/env bash
# Every test of the project, from a fresh machine: formatting and lints, then the
# whole integration suite and the official-client conformance suites twice — on
# SQLite with local files, and on PostgreSQL with S3 — then the multi-node test.
# It installs what it needs: the official clients at pinned versions (PyPI, npm),
# PostgreSQL and Prometheus from Debian's packages if missing, and moto's S3
# server from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

source scripts/services.sh

echo "== cargo fmt, clippy"
cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings
cargo build --locked --bin bulkexport
export BULKEXPORT_BIN="$root/target/debug/bulkexport"

echo "== installing the official clients"
python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -r tests/clients/requirements.txt
(cd tests/clients/node && npm ci --no-audit --no-fund --loglevel=error)
(cd tests/clients/cli && npm ci --no-audit --no-fund --loglevel=error)  # the stock twilio-cli, for the proxy mode
export NODE_PATH="$root/tests/clients/node/node_modules"
need_prometheus  # tests/clients/test_prometheus.py scrapes /metrics with it

client_suites() {
  .venv/bin/python -m pytest -q tests/clients
  node --test tests/clients/node/
}

echo "== SQLite and local files: cargo test, twilio-python, twilio-node, twilio-cli through the proxy"
cargo test --locked
client_suites

echo "== PostgreSQL and S3: starting the servers"
start_postgres
start_s3
echo "== PostgreSQL and S3: cargo test, twilio-python, twilio-node, twilio-cli through the proxy"
cargo test --locked --test api
psql "$BULKEXPORT_TEST_POSTGRES_URL" -qc "CREATE DATABASE client_suites"
BULKEXPORT_DATABASE_URL="${BULKEXPORT_TEST_POSTGRES_URL%/*}/client_suites" \
BULKEXPORT_STORAGE_URL="s3://$BULKEXPORT_TEST_S3_BUCKET/client-suites" \
  client_suites
echo "== three nodes over PostgreSQL and S3, one SIGKILLed"
.venv/bin/python -m pytest -q tests/multinode
