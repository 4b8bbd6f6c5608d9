# Shared by the bench scripts (sourced): tools, timing, and one seeded
# database served by the release binary $B from $work.

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
