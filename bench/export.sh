#!/usr/bin/env bash
# Export benchmark: one run, every figure a ratio against a baseline measured
# in the same run on the same bytes and cores. Installs its tools itself
# (pigz and wrk from Debian, duckdb from PyPI, the Stoplight Prism mock from
# npm). Usage: bench/export.sh [RECORDS] (default 1,000,000; the scaling run
# then also exports RECORDS/10 and RECORDS*5; BENCH_SCALING=0 skips it).
# BENCH_DATABASE=postgres and BENCH_STORAGE=s3 run it on PostgreSQL and an
# S3-compatible server (see bench/lib.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
N=${1:-${BENCH_RECORDS:-1000000}}
SCALING=${BENCH_SCALING:-1}
SPEC="$root/openapi/bulkexport.json"   # the description of the API this service serves
CORES=$(nproc)
DAY=2024-01-01

source bench/lib.sh
source scripts/services.sh
need pigz pigz
need wrk wrk
python3 -m venv .venv-bench
.venv-bench/bin/pip install --quiet --disable-pip-version-check duckdb
npm install --prefix .bench-node --no-audit --no-fund --silent @stoplight/prism-cli@5.14.2
cargo build --release --locked --bin bulkexport 2>&1 | tail -n 1
B="$root/target/release/bulkexport"

work=$(mktemp -d /tmp/bulkexport-bench.XXXXXX)
server=""
prism=""
s3s=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null
  [ -n "$prism" ] && kill "$prism" 2>/dev/null
  [ -n "$s3s" ] && kill "$s3s" 2>/dev/null
  stop_services
  rm -rf "$work"
}
trap cleanup EXIT
ratio() { echo "scale=2; $1 / $2" | bc; }
start_backends
echo "on $STORE"

echo "seeding $N Messages on $DAY ..."
t=$(now); seed_messages "$N"; seed_s=$(since "$t")
db_size=""
[ -n "$INGEST_DATABASE_URL" ] && db_size=$(psql -At "$BULKEXPORT_DATABASE_URL" -c "SELECT pg_total_relation_size('records') + pg_total_relation_size('line_segments')")
# Each phase starts with the previous one's writes on disk, so the kernel's
# write-back of one load does not land in the next measurement.
sync

start_server

echo "export: CreateExportCustomJob until FetchJob shows Completed ..."
t=$(now)
job=$(curl -sf -u "$SID:$TOKEN" -d StartDay=$DAY -d EndDay=$DAY -d FriendlyName=bench "$BASE/v1/Exports/Messages/Jobs" | json '["job_sid"]')
drain
status=$(curl -sf -u "$SID:$TOKEN" "$BASE/v1/Exports/Jobs/$job" | json '["details"][0]["status"]')
export_s=$(since "$t")
[ "$status" = Completed ] || { echo "job ended $status"; exit 1; }
rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$server/status")

link=$(curl -sf -u "$SID:$TOKEN" "$BASE/v1/Exports/Messages/Days/$DAY" | json '["redirect_to"]')
curl -sf "$link" -o "$work/day.json.gz"
gzip -t "$work/day.json.gz"
gzip -dc "$work/day.json.gz" > "$work/lines.jsonl"
raw=$(stat -c %s "$work/lines.jsonl"); ours_gz=$(stat -c %s "$work/day.json.gz")
lines=$(wc -l < "$work/lines.jsonl")
[ "$lines" -eq "$N" ] || { echo "the file has $lines lines, not $N"; exit 1; }
sync

echo "baselines on the same bytes ..."
t=$(now); pigz -6 -p "$CORES" -c "$work/lines.jsonl" > "$work/pigz.gz"; pigz_s=$(since "$t")
t=$(now); gzip -6 -c "$work/lines.jsonl" > "$work/gzip.gz"; gzip_s=$(since "$t")
gzip_gz=$(stat -c %s "$work/gzip.gz")
read -r duck_load_s duck_copy_s < <(.venv-bench/bin/python - "$work" <<'PY'
import sys, time, duckdb
work = sys.argv[1]
con = duckdb.connect()
t = time.time()
con.execute(f"CREATE TABLE t AS SELECT * FROM read_json_auto('{work}/lines.jsonl', format='newline_delimited')")
load = time.time() - t
t = time.time()
con.execute(f"COPY (SELECT * FROM t) TO '{work}/duck.json.gz' (FORMAT JSON, COMPRESSION GZIP)")
print(load, time.time() - t)
PY
)

echo "ingest of the same NDJSON into a fresh database ..."
if [ -n "$INGEST_DATABASE_URL" ]; then b2() { BULKEXPORT_DATABASE_URL=$INGEST_DATABASE_URL "$B" --data-dir "$work/db2" "$@"; }
else b2() { "$B" --data-dir "$work/db2" "$@"; }; fi
acct2=$(b2 accounts create --friendly-name ingest)
SID2=$(echo "$acct2" | json '["sid"]')
sed "s/$SID/$SID2/g" "$work/lines.jsonl" > "$work/ingest.jsonl"  # the records now belong to the new account
sync
t=$(now); b2 ingest --account "$SID2" --resource-type Messages "$work/ingest.jsonl" > "$work/ingest.json"
[ "$(json '["loaded"]' < "$work/ingest.json")" -eq "$N" ] || { echo "ingest did not load every record"; exit 1; }
ingest_s=$(since "$t")
sync

echo "a job of 366 empty days ..."
# Another account: the quota allows 366 requested days per account family and UTC day.
acct3=$("$B" --data-dir "$work/db" accounts create --friendly-name empty)
SID3=$(echo "$acct3" | json '["sid"]'); TOKEN3=$(echo "$acct3" | json '["auth_token"]')
t=$(now)
curl -sf -u "$SID3:$TOKEN3" -d StartDay=2024-01-01 -d EndDay=2024-12-31 -d FriendlyName=empty "$BASE/v1/Exports/Calls/Jobs" >/dev/null
drain
empty_s=$(since "$t")

echo "API: 64 connections for 20 s against FetchJob, then ListDay, while an export runs ..."
curl -sf -u "$SID:$TOKEN" -d StartDay=$DAY -d EndDay=$DAY -d FriendlyName=again "$BASE/v1/Exports/Messages/Jobs" >/dev/null
auth="Authorization: Basic $(printf '%s:%s' "$SID" "$TOKEN" | base64 -w0)"
wrk -t2 -c64 -d20s --latency -H "$auth" "$BASE/v1/Exports/Jobs/$job" > "$work/wrk-job.txt"
wrk -t2 -c64 -d20s --latency -H "$auth" "$BASE/v1/Exports/Messages/Days" > "$work/wrk-days.txt"
rps() { awk '/Requests\/sec/ {print $2}' "$1"; }
p99() { awk '$1=="99%" {print $2}' "$1"; }
drain

echo "the same load against the Stoplight Prism mock serving the same spec ..."
pport=$(free_port)
.bench-node/node_modules/.bin/prism mock --port "$pport" "$SPEC" >"$work/prism.log" 2>&1 &
prism=$!
until curl -s -o /dev/null "http://127.0.0.1:$pport/v1/Exports/Messages/Days"; do sleep 0.2; done  # start-up only
wrk -t2 -c64 -d20s --latency -H "$auth" "http://127.0.0.1:$pport/v1/Exports/Jobs/$job" > "$work/wrk-prism-job.txt"
wrk -t2 -c64 -d20s --latency -H "$auth" "http://127.0.0.1:$pport/v1/Exports/Messages/Days" > "$work/wrk-prism-days.txt"
kill "$prism"; prism=""

# How cost grows: the same export at N/10, N and 5N records, each on its own
# day, with the peak RSS reset before each (/proc/PID/clear_refs).
scale_rows=()
if [ "$SCALING" = 1 ]; then
  echo "scaling: exports of $((N / 10)), $N and $((N * 5)) records ..."
  "$B" --data-dir "$work/db" seed --account "$SID" --resource-type Messages --start-day 2024-01-02 --end-day 2024-01-02 --per-day "$((N / 10))" >/dev/null
  "$B" --data-dir "$work/db" seed --account "$SID" --resource-type Messages --start-day 2024-01-03 --end-day 2024-01-03 --per-day "$((N * 5))" >/dev/null
  sync
  for pair in "2024-01-02 $((N / 10))" "$DAY $N" "2024-01-03 $((N * 5))"; do
    read -r d n <<<"$pair"
    echo 5 > "/proc/$server/clear_refs"
    t=$(now)
    curl -sf -u "$SID:$TOKEN" -d StartDay="$d" -d EndDay="$d" -d FriendlyName=scale "$BASE/v1/Exports/Messages/Jobs" >/dev/null
    drain
    s=$(since "$t")
    scale_rows+=("$n $s $(( $(awk '/VmHWM/ {print $2}' "/proc/$server/status") / 1024 ))")
  done
fi

mb=$(echo "scale=1; $raw / 1000000" | bc)
printf '\non %s, %s cores\n' "$STORE" "$CORES"
printf '%-44s %14s %14s %10s\n' "measure" "ours" "baseline" "ratio"
printf '%-44s %14s %14s %10s\n' "records exported (one day)" "$N" "" ""
printf '%-44s %13.2fs %13.2fs %10s\n' "export end to end vs pigz -6 -p$CORES" "$export_s" "$pigz_s" "$(ratio "$export_s" "$pigz_s")"
printf '%-44s %13.2fs %13.2fs %10s\n' "export vs gzip -6" "$export_s" "$gzip_s" "$(ratio "$export_s" "$gzip_s")"
printf '%-44s %13.2fs %13.2fs %10s\n' "DuckDB COPY ... GZIP / ours" "$export_s" "$duck_copy_s" "$(ratio "$duck_copy_s" "$export_s")"
printf '%-44s %14s %14s %10s\n' "records/s, MB/s of JSON lines ($mb MB)" "$(echo "$N / $export_s" | bc)/s" "$(echo "scale=1; $mb / $export_s" | bc) MB/s" ""
printf '%-44s %14s %14s %10s\n' "compressed size vs gzip -6" "$ours_gz" "$gzip_gz" "$(echo "scale=3; $ours_gz / $gzip_gz" | bc)"
printf '%-44s %13s MB %13s MB %10s\n' "peak RSS of the service vs 100 MB" "$((rss_kb / 1024))" "100" "$(echo "scale=2; $rss_kb / 1024 / 100" | bc)"
printf '%-44s %14s %14s %10s\n' "ingest records/s vs 300,000/s" "$(echo "$N / $ingest_s" | bc)" "300000" "$(echo "scale=2; $N / $ingest_s / 300000" | bc)"
printf '%-44s %13.2fs %13.2fs %10s\n' "ingest vs DuckDB loading the same NDJSON" "$ingest_s" "$duck_load_s" "$(ratio "$ingest_s" "$duck_load_s")"
printf '%-44s %13.2fs %13.2fs %10s\n' "366 empty days vs 5 s" "$empty_s" "5" "$(ratio "$empty_s" 5)"
printf '%-44s %14s %14s %10s\n' "FetchJob req/s vs 10,000 (p99 $(p99 "$work/wrk-job.txt"))" "$(rps "$work/wrk-job.txt")" "10000" "$(ratio "$(rps "$work/wrk-job.txt")" 10000)"
printf '%-44s %14s %14s %10s\n' "FetchJob req/s vs Prism mock (p99 $(p99 "$work/wrk-job.txt") vs $(p99 "$work/wrk-prism-job.txt"))" "$(rps "$work/wrk-job.txt")" "$(rps "$work/wrk-prism-job.txt")" "$(ratio "$(rps "$work/wrk-job.txt")" "$(rps "$work/wrk-prism-job.txt")")"
printf '%-44s %14s %14s %10s\n' "ListDay req/s vs Prism mock (p99 $(p99 "$work/wrk-days.txt") vs $(p99 "$work/wrk-prism-days.txt"))" "$(rps "$work/wrk-days.txt")" "$(rps "$work/wrk-prism-days.txt")" "$(ratio "$(rps "$work/wrk-days.txt")" "$(rps "$work/wrk-prism-days.txt")")"
printf '%-44s %13.2fs %14s %10s\n' "seeding (bulkexport seed)" "$seed_s" "" ""
[ -n "$db_size" ] && printf '%-44s %13s MB %14s %10s\n' "records table and indexes, per 1M records" "$((db_size * 1000000 / N / 1000000))" "" ""
if [ "${#scale_rows[@]}" -gt 0 ]; then
  read -r _ base_s _ <<<"${scale_rows[1]}"
  printf '\n%-12s %10s %16s %14s %12s\n' "records" "export" "s per 1M records" "vs the N run" "peak RSS"
  for row in "${scale_rows[@]}"; do
    read -r n s mb <<<"$row"
    per=$(echo "scale=3; $s * 1000000 / $n" | bc); base_per=$(echo "scale=3; $base_s * 1000000 / $N" | bc)
    printf '%-12s %9.2fs %16.2f %14s %9s MB\n' "$n" "$s" "$per" "$(echo "scale=2; $per / $base_per" | bc)" "$mb"
  done
fi
