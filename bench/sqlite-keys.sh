#!/usr/bin/env bash
# Where a record's key hash lives decides most of what storing a row costs in
# SQLite (migration 0009_record_keys.sql). With the `sqlite3` shell and no
# Rust, this stores N rows shaped like the service's (random SIDs, in time
# order, 50,000 per statement, 16 KiB pages, WAL, a 64 MiB cache) four ways,
# alternating, and prints the CPU time (user) and wall time of each run:
#
#   index      the key hash in a unique index on records (set_id, key_hash)
#   keytable   no such index; the keys in record_keys, each batch sorted by hash
#   sorted     the index, each batch's rows sorted by hash
#   none       no key at all (the floor)
#
# usage: bench/sqlite-keys.sh [N] [ROUNDS]   (defaults 1000000 3)
set -euo pipefail
n=${1:-1000000}
rounds=${2:-3}
source "$(dirname "$0")/lib.sh"
need sqlite3 sqlite3
work=$(mktemp -d /tmp/sqlite-keys.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work"

# src: the rows in input (time) order; by_hash: each batch of 50,000 sorted by hash.
sqlite3 src.db > /dev/null <<SQL
PRAGMA journal_mode = OFF;
CREATE TABLE src (n INTEGER PRIMARY KEY, key_hash INTEGER, record_key TEXT, day TEXT, sort_key TEXT, off INTEGER);
WITH RECURSIVE c(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM c WHERE n < $n - 1)
INSERT INTO src SELECT n, random(), 'SM' || lower(hex(randomblob(16))), '2024-06-01',
  printf('2024-06-01T%02d:%02d:%02dZ|', n * 86400 / $n / 3600, n * 86400 / $n / 60 % 60, n * 86400 / $n % 60), n * 544 FROM c;
UPDATE src SET sort_key = sort_key || record_key;
CREATE TABLE by_hash (n INTEGER PRIMARY KEY, key_hash INTEGER, row INTEGER);
INSERT INTO by_hash SELECT ROW_NUMBER() OVER (ORDER BY n / 50000, key_hash) - 1, key_hash, n + 1 FROM src;
CREATE TABLE rows_by_hash (n INTEGER PRIMARY KEY, key_hash INTEGER, record_key TEXT, day TEXT, sort_key TEXT, off INTEGER);
INSERT INTO rows_by_hash SELECT ROW_NUMBER() OVER (ORDER BY n / 50000, key_hash) - 1, key_hash, record_key, day, sort_key, off FROM src;
SQL

table="CREATE TABLE records (set_id INTEGER NOT NULL, key_hash INTEGER, record_key TEXT NOT NULL, day TEXT NOT NULL, \
sort_key TEXT NOT NULL, line TEXT NOT NULL, rest_deleted BOOLEAN NOT NULL DEFAULT FALSE, \
export_deleted BOOLEAN NOT NULL DEFAULT FALSE, line_seg INTEGER, line_off INTEGER, line_len INTEGER); \
CREATE INDEX records_by_day ON records (set_id, day, sort_key);"
columns="INSERT INTO records (rowid, set_id, key_hash, record_key, day, sort_key, line, line_seg, line_off, line_len)"
for variant in index keytable sorted none; do
  {
    echo "PRAGMA page_size = 16384; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA cache_size = -65536;"
    echo "ATTACH 'src.db' AS s; $table"
    case $variant in
      index|sorted) echo "CREATE UNIQUE INDEX records_by_key ON records (set_id, key_hash);" ;;
      keytable) echo "CREATE TABLE record_keys (key_hash INTEGER NOT NULL, set_id INTEGER NOT NULL, row INTEGER NOT NULL, PRIMARY KEY (key_hash, set_id)) WITHOUT ROWID;" ;;
    esac
    echo "BEGIN IMMEDIATE;"
    for ((lo = 0; lo < n; lo += 50000)); do
      where="WHERE n >= $lo AND n < $((lo + 50000)) ORDER BY n"
      case $variant in
        sorted) echo "$columns SELECT NULL, 1, key_hash, record_key, day, sort_key, '', 1, off, 544 FROM s.rows_by_hash $where;" ;;
        *) echo "$columns SELECT n + 1, 1, key_hash, record_key, day, sort_key, '', 1, off, 544 FROM s.src $where;" ;;
      esac
      [ "$variant" = keytable ] && echo "INSERT OR IGNORE INTO record_keys SELECT key_hash, 1, row FROM s.by_hash $where;"
      (( (lo + 50000) % 500000 == 0 )) && echo "COMMIT; BEGIN IMMEDIATE;"
    done
    echo "COMMIT;"
  } > "$variant.sql"
done

declare -A user wall
for ((i = 0; i < rounds; i++)); do
  for variant in index keytable sorted none; do
    rm -f t.db t.db-wal t.db-shm; sync
    read -r w u < <({ /usr/bin/time -f "%e %U" sqlite3 t.db < "$variant.sql" > /dev/null; } 2>&1 | tail -1)
    wall[$variant]+=" $w"; user[$variant]+=" $u"
  done
done
printf '%-9s %-28s %s\n' layout "CPU (user) s, each run" "wall s, each run"
for variant in index keytable sorted none; do
  printf '%-9s %-28s %s\n' "$variant" "${user[$variant]# }" "${wall[$variant]# }"
done
