#!/usr/bin/env bash
# Costs as tenants and jobs grow. Fills one service (the release binary; SQLite,
# or PostgreSQL with BENCH_DATABASE=postgres, see bench/lib.sh) over HTTP to
# each size of jobs in turn (default 1,000, 10,000 and 100,000 over 1,000
# accounts: a tenth subaccounts, a fifth calling with an API key; all but the
# last 500 jobs finished by the workers, those 500 left queued with the
# workers off: the queue stays the same while the tables grow), and at each
# size measures with 16 concurrent clients (wrk): FetchJob of the newest job,
# ListExportCustomJob (50 a page), ListDay and FetchDay for 5 s each, then
# CreateExportCustomJob for 2 s. Then it makes TENANTS Editions accounts (default 10,000)
# with the daily export of all four resource types, moves the service clock
# past midnight and the settle delay, and times the 4 × TENANTS daily days to
# the last, with a steady FetchJob load meanwhile (4 clients, about 200
# requests a second in all, bench/scale.py probe). Prints a table and each
# latency at the largest size ÷ the same at the smallest.
# Usage: bench/scale.sh   (BENCH_SCALE_SIZES="1000 10000 100000", BENCH_SCALE_TENANTS=10000)
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=(${BENCH_SCALE_SIZES:-1000 10000 100000})
TENANTS=${BENCH_SCALE_TENANTS:-10000}
ACCOUNTS=1000
QUEUED=${BENCH_SCALE_QUEUED:-500}   # jobs left queued at each size: the queue, not the table
ADMIN=bench-admin-token-0001
FIRST_DAY=2025-10-01

source bench/lib.sh
source scripts/services.sh
need wrk wrk
cargo build --release --locked --bin bulkexport 2>&1 | tail -n 1
B="$PWD/target/release/bulkexport"
work=$(mktemp -d /tmp/bulkexport-scale.XXXXXX)
server=""
s3s=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null
  [ -n "$s3s" ] && kill "$s3s" 2>/dev/null
  stop_services
  rm -rf "$work"
}
trap cleanup EXIT
start_backends
echo "on $STORE"
port=$(free_port)
BASE="http://127.0.0.1:$port"

# serve WORKERS: the service on $BASE with the quota off and a settable clock.
serve() {
  BULKEXPORT_ADMIN_TOKEN=$ADMIN RUST_LOG=warn "$B" --data-dir "$work/db" --workers "$1" \
    --set requested_days_per_day=0 serve --listen "127.0.0.1:$port" \
    --clock "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >>"$work/server.log" 2>&1 &
  server=$!
  until curl -sf "$BASE/readyz" >/dev/null; do sleep 0.05; done  # start-up only
}
stop() { kill "$server"; wait "$server" || true; server=""; }
drain() { curl -sf -X POST -H "Authorization: Bearer $ADMIN" "$BASE/admin/v1/Queue/Drain?TimeoutSeconds=3600" >/dev/null; }
# wrk_latency PATH USER PASSWORD [WRK OPTIONS]: "median p99" in ms for 16
# connections over 5 s. A read is first made for 1 s unmeasured: the
# service was just started, and on PostgreSQL each pool connection plans
# a statement afresh for its first five runs (custom plans, then the
# generic one), which is the cost of a restart, not of the tables' size.
# Creations (a script, -s) are measured from the first: a warm-up would
# add jobs to the table the run counts.
wrk_latency() {
  local auth
  auth="Authorization: Basic $(printf '%s:%s' "$2" "$3" | base64 -w0)"
  case " ${*:4} " in
    *" -s "*) ;;
    *) wrk -t2 -c16 -d1s -H "$auth" "$BASE$1" >/dev/null ;;
  esac
  wrk -t2 -c16 -d5s "${@:4}" --latency -H "$auth" "$BASE$1" >"$work/wrk.txt"
  ms() { awk -v q="$1" '$1==q {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) sub(/ms/,"",v); else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}' "$work/wrk.txt"; }
  echo "$(ms 50%) $(ms 99%)"
}
field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])$2)" "$1"; }

serve 2
echo "making $ACCOUNTS accounts ..."
python3 bench/scale.py accounts "$BASE" "$ADMIN" "$ACCOUNTS" "$work/creds.json"
# The first account's days are listed and fetched; the second one's creates
# are timed; the third one's jobs are listed: it gets 60 Messages jobs first,
# so that every size lists a full page of 50.
read -r U0 P0 U1 P1 U2 P2 < <(python3 -c "import json; c=json.load(open('$work/creds.json')); print(*[v for a in c[:3] for v in (a['user'], a['password'])])")
for i in $(seq 60); do
  curl -sf -u "$U2:$P2" -d StartDay=$FIRST_DAY -d EndDay=$FIRST_DAY -d FriendlyName="listed-$i" "$BASE/v1/Exports/Messages/Jobs" >/dev/null
done
stop

have=0
rows=()
for n in "${SIZES[@]}"; do
  queued=$QUEUED; [ "$queued" -gt $((n / 2)) ] && queued=$((n / 2))
  finished=$((n - queued - have)); [ "$finished" -lt 0 ] && finished=0
  echo "filling to $n jobs: $finished finished, then $queued queued ..."
  serve 2
  # The jobs left queued at the size before, and those its creations added,
  # finish first: at each size only the 500 new ones are queued.
  drain
  # In chunks, each drained before the next: the queue stays short while
  # the tables fill, as it does in service.
  while [ "$finished" -gt 0 ]; do
    chunk=$((finished < 5000 ? finished : 5000))
    python3 bench/scale.py jobs "$BASE" "$work/creds.json" "$chunk" "$FIRST_DAY" >/dev/null
    drain
    finished=$((finished - chunk))
  done
  stop
  # What a fill of tens of thousands of jobs in a minute leaves PostgreSQL
  # to do (autovacuum of the new rows, the checkpoint of their pages) is
  # done before measuring: it is the fill's cost, not a request's at this size.
  if [ "${BENCH_DATABASE:-sqlite}" = postgres ]; then
    psql -q "$BULKEXPORT_DATABASE_URL" -c "VACUUM ANALYZE" -c "CHECKPOINT"
  fi
  serve 0
  created=$(python3 bench/scale.py jobs "$BASE" "$work/creds.json" "$queued" "$FIRST_DAY")
  have=$n
  read -r sid rt user password < <(python3 -c "import json,sys; l=json.loads(sys.argv[1])['last']; print(l['sid'], l['type'], l['user'], l['password'])" "$created")
  day=$(curl -sf -u "$U0:$P0" "$BASE/v1/Exports/Messages/Days?PageSize=1" | python3 -c "import json,sys; print(json.load(sys.stdin)['days'][0]['day'])")
  read -r fetch_m fetch_p < <(wrk_latency "/v1/Exports/Jobs/$sid" "$user" "$password")
  read -r list_m list_p < <(wrk_latency "/v1/Exports/Messages/Jobs?PageSize=50" "$U2" "$P2")
  read -r days_m days_p < <(wrk_latency "/v1/Exports/Messages/Days?PageSize=50" "$U0" "$P0")
  read -r day_m day_p < <(wrk_latency "/v1/Exports/Messages/Days/$day" "$U0" "$P0")
  # CreateExportCustomJob last, for 2 s (wrk; bench/scale.py's Python
  # clients were the bottleneck): the jobs it adds count towards the next size.
  read -r create_m create_p < <(wrk_latency "/v1/Exports/Calls/Jobs" "$U1" "$P1" -d2s -s bench/scale-create.lua)
  have=$((have + $(awk '/requests in/ {print $1}' "$work/wrk.txt")))
  rows+=("$n $create_m $create_p $fetch_m $fetch_p $list_m $list_p $days_m $days_p $day_m $day_p")
  stop
done

echo "making $TENANTS Editions tenants with four daily exports each ..."
serve 2
python3 bench/scale.py tenants "$BASE" "$ADMIN" "$TENANTS" "$work/tenants.json"
drain
settle=$(curl -sf -H "Authorization: Bearer $ADMIN" "$BASE/admin/v1/Clock" | python3 -c "
import json, sys, datetime
now = datetime.datetime.fromisoformat(json.load(sys.stdin)['now'].replace('Z', '+00:00'))
midnight = (now + datetime.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
print((midnight + datetime.timedelta(seconds=3601)).strftime('%Y-%m-%dT%H:%M:%SZ'))")
python3 bench/scale.py probe "$BASE" "$user" "$password" "/v1/Exports/Jobs/$sid" "$work/stop" >"$work/probe.json" &
loader=$!
t=$(now)
curl -sf -X POST -H "Authorization: Bearer $ADMIN" -d "Now=$settle" "$BASE/admin/v1/Clock" >/dev/null
drain
daily_s=$(since "$t")
touch "$work/stop"; wait "$loader"
daily_p99="$(python3 -c "import json; print(json.load(open('$work/probe.json'))['p99'])") ms"
daily_days=$((TENANTS * 4))
read -r tu tp < <(python3 -c "import json; c=json.load(open('$work/tenants.json'))[-1]; print(c['user'], c['password'])")
for t_rt in Messages Calls Conferences Participants; do  # the last tenant's daily days are there
  curl -sf -u "$tu:$tp" "$BASE/v1/Exports/$t_rt/Days" | python3 -c "import json,sys; sys.exit(0 if json.load(sys.stdin)['days'] else 'no daily day')"
done
stop

printf '\non %s, %s cores; latencies in ms (median / p99) under 16 clients\n' "$STORE" "$(nproc)"
printf '%-10s %17s %17s %17s %17s %17s\n' jobs CreateJob FetchJob ListJob ListDay FetchDay
for row in "${rows[@]}"; do
  read -r n cm cp fm fp lm lp dm dp ym yp <<<"$row"
  printf '%-10s %8s / %6s %8s / %6s %8s / %6s %8s / %6s %8s / %6s\n' "$n" "$cm" "$cp" "$fm" "$fp" "$lm" "$lp" "$dm" "$dp" "$ym" "$yp"
done
read -r n0 a0 b0 c0 d0 e0 f0 g0 h0 i0 j0 <<<"${rows[0]}"
read -r n1 a1 b1 c1 d1 e1 f1 g1 h1 i1 j1 <<<"${rows[-1]}"
r() { echo "scale=2; $1 / $2" | bc; }
printf '%-10s %8s / %6s %8s / %6s %8s / %6s %8s / %6s %8s / %6s\n' "$n1÷$n0" "$(r "$a1" "$a0")" "$(r "$b1" "$b0")" "$(r "$c1" "$c0")" "$(r "$d1" "$d0")" \
  "$(r "$e1" "$e0")" "$(r "$f1" "$f0")" "$(r "$g1" "$g0")" "$(r "$h1" "$h0")" "$(r "$i1" "$i0")" "$(r "$j1" "$j0")"
printf '\ndaily exports: %s days after midnight and the settle delay in %.1f s (%s days/s; target 3 minutes), FetchJob p99 meanwhile %s (target < 50 ms)\n' \
  "$daily_days" "$daily_s" "$(echo "$daily_days / $daily_s" | bc)" "$daily_p99"
