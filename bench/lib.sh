# Shared by the bench scripts (sourced): tools, timing, and one seeded
# database served by the release binary $B from $work.
#
# BENCH_DATABASE=postgres puts the databases in a throwaway PostgreSQL
# cluster from Debian's packages with its default settings (scripts/
# services.sh); BENCH_STORAGE=s3 puts the day files in a local S3-compatible
# server (s3s-fs, built from crates.io). The default is SQLite and local files.

need() { command -v "$1" >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null; }; }
now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc; }
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Creates an account in $work/db and seeds N Messages on DAY: sets SID, TOKEN.
seed_messages() {
  local acct
  acct=$("$B" --data-dir "$work/db" accounts create --friendly-name bench)
  SID=$(echo "$acct" | json '["sid"]'); TOKEN=$(echo "$acct" | json '["auth_token"]')
  "$B" --data-dir "$work/db" seed --account "$SID" --resource-type Messages --start-day "$DAY" --end-day "$DAY" --per-day "$1" >/dev/null
}

# Serves $work/db on a free port: sets BASE and server (the pid).
start_server() {
  local port
  port=$(free_port)
  BASE="http://127.0.0.1:$port"
  BULKEXPORT_ADMIN_TOKEN=bench-admin-token-0001 RUST_LOG=warn "$B" --data-dir "$work/db" serve --listen "127.0.0.1:$port" >"$work/server.log" 2>&1 &
  server=$!
  until curl -sf "$BASE/readyz" >/dev/null; do sleep 0.05; done  # start-up only
}

# Waits until the service's queue is idle.
drain() { curl -sf -X POST -H "Authorization: Bearer bench-admin-token-0001" "$BASE/admin/v1/Queue/Drain?TimeoutSeconds=3600" >/dev/null; }

# Starts what BENCH_DATABASE and BENCH_STORAGE ask for and exports the
# settings that point the service at them: BULKEXPORT_DATABASE_URL (the
# database of $work/db) and INGEST_DATABASE_URL (a second one, for the
# ingest), BULKEXPORT_STORAGE_URL and AWS_*. Sets STORE, a description.
start_backends() {
  STORE="SQLite, local files"
  INGEST_DATABASE_URL=""
  if [ "${BENCH_DATABASE:-sqlite}" = postgres ]; then
    need psql postgresql-client
    # PostgreSQL's defaults plus what the docs tell operators to set
    # (docs/postgresql.conf), each line `name = value` as `-c name=value`.
    POSTGRES_SETTINGS=$(sed -n 's/^\([a-z_]*\) *= *\([^ #]*\).*/-c \1=\2/p' docs/postgresql.conf | tr '\n' ' ') \
      start_postgres  # scripts/services.sh, sourced by the caller
    local base=${BULKEXPORT_TEST_POSTGRES_URL%/*}
    psql -q "$BULKEXPORT_TEST_POSTGRES_URL" -c "CREATE DATABASE bench" -c "CREATE DATABASE ingest"
    export BULKEXPORT_DATABASE_URL="$base/bench"
    INGEST_DATABASE_URL="$base/ingest"
    STORE="PostgreSQL $(psql -At "$BULKEXPORT_DATABASE_URL" -c 'SHOW server_version' | cut -d' ' -f1) (default settings and docs/postgresql.conf)"
  fi
  if [ "${BENCH_STORAGE:-files}" = s3 ]; then
    [ -x .bench-s3s/bin/s3s-fs ] || cargo install --quiet --locked --root .bench-s3s s3s-fs@0.14.1 --features binary
    local port dir
    port=$(free_port)
    dir="$work/s3"
    mkdir -p "$dir/bench"  # s3s-fs serves each directory of its root as a bucket
    .bench-s3s/bin/s3s-fs --host 127.0.0.1 --port "$port" --access-key bench --secret-key bench-secret-key "$dir" >"$work/s3.log" 2>&1 &
    s3s=$!
    until curl -s -o /dev/null "http://127.0.0.1:$port/"; do sleep 0.1; done  # start-up only
    export BULKEXPORT_STORAGE_URL="s3://bench/files" AWS_ENDPOINT="http://127.0.0.1:$port" AWS_ALLOW_HTTP=true \
      AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret-key
    STORE="$STORE with S3 (s3s-fs)"
    STORE=${STORE/, local files/}
  fi
}
