# Throwaway servers for the test suite, sourced by scripts/test.sh:
#   start_postgres  a PostgreSQL cluster from Debian's packages (installed if missing)
#   start_s3        moto's S3-compatible server from PyPI (needs .venv)
#   need_prometheus Prometheus from Debian's packages (the metrics test starts it)
# Each exports the variables the tests read and registers its cleanup.

cleanups=()
stop_services() {
  local c
  for c in "${cleanups[@]}"; do eval "$c" || true; done
}
trap stop_services EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# PostgreSQL's settings beyond its defaults: the tests trade durability for
# speed; the bench (bench/export.sh) clears this to measure the defaults.
POSTGRES_SETTINGS=${POSTGRES_SETTINGS--c fsync=off -c synchronous_commit=off}

need_prometheus() {
  if ! command -v prometheus >/dev/null; then
    echo "installing Prometheus from Debian's packages"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  fi
  echo "$(prometheus --version 2>&1 | head -n 1)"
}

need_chromium() {
  if ! command -v chromium >/dev/null; then
    echo "installing Chromium from Debian's packages"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
  fi
  echo "$(chromium --version 2>&1 | head -n 1)"
}

start_postgres() {
  local pgbin dir port run=()
  pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$pgbin" ]; then
    echo "installing PostgreSQL from Debian's packages"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  fi
  dir=$(mktemp -d /tmp/bulkexport-pg.XXXXXX)
  port=$(free_port)
  if [ "$(id -u)" = 0 ]; then
    # PostgreSQL refuses to run as root; Debian's package made the postgres user.
    chown postgres "$dir"
    run=(runuser -u postgres --)
  fi
  "${run[@]}" "$pgbin/initdb" -D "$dir/data" -A trust -U bulkexport >"$dir/initdb.log"
  "${run[@]}" "$pgbin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=500 $POSTGRES_SETTINGS" \
    start >/dev/null
  cleanups+=("${run[*]} $pgbin/pg_ctl -D $dir/data -m immediate stop >/dev/null; rm -rf $dir")
  export BULKEXPORT_TEST_POSTGRES_URL="postgres://bulkexport@127.0.0.1:$port/postgres"
  echo "PostgreSQL $("$pgbin/postgres" --version | awk '{print $3}') on port $port"
}

start_s3() {
  local port dir pid
  .venv/bin/pip install --quiet --disable-pip-version-check "moto[server]==5.2.5"
  dir=$(mktemp -d /tmp/bulkexport-s3.XXXXXX)
  port=$(free_port)
  .venv/bin/moto_server -H 127.0.0.1 -p "$port" >"$dir/server.log" 2>&1 &
  pid=$!
  cleanups+=("kill $pid; rm -rf $dir")
  export AWS_ENDPOINT="http://127.0.0.1:$port" AWS_ALLOW_HTTP=true AWS_REGION=us-east-1 \
    AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
  .venv/bin/python - <<'PY'
import os, time, urllib.request
import boto3
deadline = time.monotonic() + 30
while True:
    try:
        urllib.request.urlopen(os.environ["AWS_ENDPOINT"], timeout=1)
        break
    except OSError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.1)  # waiting for the server process to bind
boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT"]).create_bucket(Bucket="bulkexport-test")
PY
  export BULKEXPORT_TEST_S3_BUCKET=bulkexport-test
  echo "moto S3 server on port $port"
}
