#!/usr/bin/env bash
# Every test of the project, from a fresh machine: formatting and lints, then the
# whole integration suite and the official-client conformance suites twice — on
# SQLite with local files, and on PostgreSQL with S3 — then the multi-node test.
# It installs what it needs: the official clients at pinned versions (PyPI, npm),
# PostgreSQL, Prometheus and Chromium from Debian's packages if missing, and
# moto's S3 server and Playwright from PyPI.
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
need_chromium    # tests/clients/test_console.py drives the console in it (Playwright)

client_suites() {
  .venv/bin/python -m pytest -q tests/clients
  node --test tests/clients/node/
}

echo "== SQLite and local files: cargo test, twilio-python, twilio-node, twilio-cli through the proxy"
cargo test --locked
client_suites

echo "== the wheel and the npm package, each installed where no Rust toolchain is on PATH"
bash packaging/build.sh
bare_path=/usr/local/bin:/usr/bin:/bin
python=$(python3 -c 'import sys; print(sys.executable)')
if env PATH="$bare_path" sh -c 'command -v cargo' >/dev/null; then
  echo "cargo is on $bare_path: the package tests would not show a machine without Rust" >&2
  exit 1
fi
rm -rf target/consumer-venv target/consumer-node
env PATH="$bare_path" "$python" -m venv target/consumer-venv
env PATH="$bare_path" target/consumer-venv/bin/pip install --quiet --disable-pip-version-check \
  dist/bulkexport-*.whl twilio==9.13.0 pytest==8.3.4
(cd tests/packages/python && env -u BULKEXPORT_BIN PATH="$bare_path" \
  "$root/target/consumer-venv/bin/python" -m pytest -q -p no:cacheprovider)
mkdir -p target/consumer-node
cp tests/packages/node/* target/consumer-node/
(cd target/consumer-node && env -u BULKEXPORT_BIN -u NODE_PATH PATH="$bare_path" sh -c \
  'npm init -y >/dev/null && npm install --no-audit --no-fund --loglevel=error "$0"/dist/bulkexport-*.tgz twilio@6.2.0 && node --test consumer.test.js' "$root")

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
