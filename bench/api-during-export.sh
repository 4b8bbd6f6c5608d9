#!/usr/bin/env bash
# The API while an export runs: 64 connections (wrk) against FetchJob for
# SECONDS (default 4, about as long as a 1M-record export takes here, so that
# every request meets the export), while one export of RECORDS Messages
# (default 1,000,000) runs; repeated RUNS times (default 3) on one seeded
# database. Prints, per run, the export's time alone and under the load, and
# FetchJob's requests/s and p50/p90/p99 latency. To compare two versions,
# run it on each checkout (or pass BULKEXPORT_BIN=path of another build).
# Usage: bench/api-during-export.sh [RECORDS] [SECONDS] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}; SECS=${2:-4}; RUNS=${3:-3}
DAY=2024-01-01

source bench/lib.sh
need wrk wrk
if [ -z "${BULKEXPORT_BIN:-}" ]; then
  cargo build --release --locked --bin bulkexport 2>&1 | tail -n 1
  BULKEXPORT_BIN="$PWD/target/release/bulkexport"
fi
B=$BULKEXPORT_BIN

work=$(mktemp -d /tmp/bulkexport-api-bench.XXXXXX)
server=""
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

echo "seeding $N Messages on $DAY ..."
seed_messages "$N"
sync
start_server
export_job() { curl -sf -u "$SID:$TOKEN" -d StartDay=$DAY -d EndDay=$DAY -d FriendlyName="$1" "$BASE/v1/Exports/Messages/Jobs" | json '["job_sid"]'; }
auth="Authorization: Basic $(printf '%s:%s' "$SID" "$TOKEN" | base64 -w0)"

printf '%-4s %12s %14s %10s %8s %8s %8s\n' run "export s" "under load s" "req/s" p50 p90 p99
for run in $(seq "$RUNS"); do
  t=$(now); job=$(export_job alone); drain; alone=$(since "$t")
  export_job loaded >/dev/null
  t=$(now)
  (drain; since "$t" > "$work/loaded") &
  drainer=$!
  wrk -t2 -c64 -d"${SECS}s" --latency -H "$auth" "$BASE/v1/Exports/Jobs/$job" > "$work/wrk.txt"
  wait "$drainer"
  lat() { awk -v q="$1" '$1==q {print $2}' "$work/wrk.txt"; }
  printf '%-4s %12.2f %14.2f %10s %8s %8s %8s\n' "$run" "$alone" "$(cat "$work/loaded")" \
    "$(awk '/Requests\/sec/ {print $2}' "$work/wrk.txt")" "$(lat 50%)" "$(lat 90%)" "$(lat 99%)"
done
