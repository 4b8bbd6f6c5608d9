//! The PostgreSQL record path: the bulk writer (binary `COPY` into
//! `line_segments` and `records`) and a day's lines read for an export
//! (binary `COPY … TO STDOUT` of their places, then their segments, see
//! [`super::segments`]).
//!
//! Records belong to a record set (`record_sets`, migration
//! `0007_record_sets.sql`) and are found through a hash index on their key
//! (one for each part a key can fall in, [`PARTS`], migration
//! `0017_records_by_key_parts.sql`);
//! no unique index holds a key unique: every writer of a set takes the
//! advisory lock of the keys' part of the set ([`PARTS`]) for its
//! transaction, looks the keys up (locking the rows found), deletes the rows
//! they replace (erasing their lines) and copies the new ones in.
//! Measured on a 1M-record day, that costs less than half of the text
//! primary key it replaced (see `docs/decisions.md`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::parts::PartState;
use super::pgcopy::{self, Place, PlaceDecoder};
use super::segments::{self, Resolver};
use super::{last_of_each_key, outcomes, StoreOutcome};
use crate::db::Result;
use crate::domain::record::Record;
use crate::domain::{Day, ResourceType};

/// The first key of the advisory locks writers of a record set take
/// (`pg_advisory_xact_lock(SET_LOCK + part, set_id)`, see [`PARTS`]): "recs"
/// and the part.
const SET_LOCK: i32 = 0x7265_6373;

/// Bytes of `COPY` data handed to the driver at a time.
const SEND_BYTES: usize = 1 << 20;

/// A bulk load into one record set.
pub(super) struct PgLoad {
    pub(super) pool: sqlx::PgPool,
    /// Found (or made) by the first batch.
    pub(super) set_id: Option<i32>,
    /// What the load knows about each part of the set (see [`super::parts`]).
    pub(super) parts: [PartState; PARTS],
}

/// The id of `account_sid`'s record set of `rt`, made if missing.
async fn ensure_set(pool: &sqlx::PgPool, account_sid: &str, rt: ResourceType) -> Result<i32> {
    sqlx::query(
        "INSERT INTO record_sets (account_sid, resource_type) VALUES ($1, $2) \
         ON CONFLICT (account_sid, resource_type) DO NOTHING",
    )
    .bind(account_sid)
    .bind(rt.as_str())
    .execute(pool)
    .await?;
    find_set(pool, account_sid, rt)
        .await?
        .ok_or(crate::db::Error::Misuse(
            "a record set vanished as it was made",
        ))
}

async fn find_set(pool: &sqlx::PgPool, account_sid: &str, rt: ResourceType) -> Result<Option<i32>> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM record_sets WHERE account_sid = $1 AND resource_type = $2",
    )
    .bind(account_sid)
    .bind(rt.as_str())
    .fetch_optional(pool)
    .await?)
}

/// The SID that orders a record within its second, in SQL: its key, or a
/// participant's call, after the `/` of its key (`<conference>/<call>`). A
/// record's sort key is its second (`YYYY-MM-DDTHH:MM:SSZ`), a `|` and this
/// (see `domain::record`); `records` holds neither the sort key nor the day
/// (migration `0019_records_without_derived_columns.sql`).
macro_rules! order_sid {
    () => {
        "substr(record_key, strpos(record_key, '/') + 1)"
    };
}
const ORDER_SID: &str = order_sid!();

/// A record's day (`YYYY-MM-DD`), in SQL, from its second.
pub(crate) const DAY: &str = "to_char(to_timestamp(at) AT TIME ZONE 'UTC', 'YYYY-MM-DD')";

/// A record's sort key, in SQL, from its second and [`ORDER_SID`].
pub(crate) const SORT_KEY: &str = concat!(
    "(to_char(to_timestamp(at) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z|\"') || ",
    order_sid!(),
    ") COLLATE \"C\""
);

/// Writers of a record set take one of its `PARTS` advisory locks for each
/// transaction, the one of the keys they write: a record's key belongs to
/// part `key_hash % PARTS` ([`part_of`]). A batch is stored as one
/// transaction a part, the parts at once on connections of their own, so
/// PostgreSQL works on a batch with as many backends (and cores). Each part
/// has a hash index of its own (`records_by_key_0` and `_1`, partial on the
/// row's `part`, migration 0017): a hash index counts every insert on its
/// metapage, under that page's lock, and the two writers queued there.
const PARTS: usize = 2;

/// The part of the record set `key` belongs to: the lowest bit of its
/// [`super::key_hash`] (migration 0017 computes the same in SQL).
pub(crate) fn part_of(key: &str) -> usize {
    (super::key_hash(key) as u64 % PARTS as u64) as usize
}

/// A batch split into its parts, each part's lines already being put into
/// segments on a blocking thread ([`prepare_postgres`]).
pub(super) struct PgBatch {
    pub(super) batch: Arc<Vec<Record>>,
    parts: Vec<PartWork>,
}

/// One part of a [`PgBatch`].
struct PartWork {
    part: usize,
    /// The records of the part (unique keys), in batch order.
    records: Vec<usize>,
    shaping: tokio::task::JoinHandle<Shaped>,
}

/// A part's records sorted by day and sort key, its new segments, and each
/// record's place among them.
type Shaped = (Vec<usize>, Vec<segments::NewSegment>, Vec<(usize, i32)>);

/// Splits `batch` into its parts by key and starts putting each part's lines
/// into segments (sorting and LZ4) on a blocking thread. A load prepares its
/// next batch while the one before is still being stored: its segments are
/// then ready when its transactions begin, and the CPU work runs while the
/// other batch's backends wait on their commits. Call it off the async
/// workers (the split hashes every key).
pub(super) fn prepare_postgres(batch: Vec<Record>) -> PgBatch {
    let batch = Arc::new(batch);
    let mut parts: [Vec<usize>; PARTS] = Default::default();
    for i in last_of_each_key(&batch) {
        parts[part_of(&batch[i].key)].push(i);
    }
    let parts = parts
        .into_iter()
        .enumerate()
        .filter(|(_, records)| !records.is_empty())
        .map(|(part, records)| {
            let (batch, mut sorted) = (Arc::clone(&batch), records.clone());
            let shaping = tokio::task::spawn_blocking(move || {
                let (made, places) = segments::build(&batch, &mut sorted);
                (sorted, made, places)
            });
            PartWork {
                part,
                records,
                shaping,
            }
        })
        .collect();
    PgBatch { batch, parts }
}

/// One batch, in one transaction a part of the set; a record with a known
/// key replaces the old one (its deletion flags stay as they were). The
/// parts run on tasks of their own, so that the service's share of their
/// work runs on as many threads; each is awaited (and aborted, rolling its
/// transaction back, if this future is dropped first). When one part fails,
/// the others may have been stored.
pub(super) async fn store_postgres(
    load: &mut PgLoad,
    account_sid: &str,
    rt: ResourceType,
    prepared: PgBatch,
) -> Result<Vec<StoreOutcome>> {
    let set_id = match load.set_id {
        Some(id) => id,
        None => *load
            .set_id
            .insert(ensure_set(&load.pool, account_sid, rt).await?),
    };
    let PgBatch { batch, parts } = prepared;
    let tasks: Vec<_> = parts
        .into_iter()
        .map(|work| {
            // Taken for the transaction and given back after its commit: a
            // part whose transaction failed is known afresh (`PartState`'s
            // default looks every key up from then on).
            let part = work.part;
            let state = std::mem::take(&mut load.parts[part]);
            let store = store_part(load.pool.clone(), set_id, Arc::clone(&batch), work, state);
            (part, tokio::spawn(store))
        })
        .collect();
    let _abort = AbortOnDrop(tasks.iter().map(|(_, t)| t.abort_handle()).collect());
    let mut existing: HashSet<String> = HashSet::new();
    let mut failed = None;
    for (part, task) in tasks {
        match super::joined(task).await.and_then(|stored| stored) {
            Ok((found, state)) => {
                existing.extend(found);
                load.parts[part] = state;
            }
            Err(e) => {
                failed.get_or_insert(e);
            }
        }
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(outcomes(&batch, &existing)),
    }
}

/// Aborts the tasks it holds when dropped.
struct AbortOnDrop(Vec<tokio::task::AbortHandle>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// Stores the records of `batch` that `work` lists (unique keys, all of its
/// part) in one transaction under the part's lock: their lines in new
/// segments, their rows pointing there. Looks up only the keys the part may
/// hold (see [`super::parts`]). Returns the keys that were already stored,
/// and what the load now knows about the part.
async fn store_part(
    pool: sqlx::PgPool,
    set_id: i32,
    batch: Arc<Vec<Record>>,
    work: PartWork,
    mut state: PartState,
) -> Result<(HashSet<String>, PartState)> {
    let PartWork {
        part,
        records,
        shaping,
    } = work;
    let keys: Vec<&str> = records.iter().map(|&i| batch[i].key.as_str()).collect();
    let mut tx = pool.begin().await?;
    // The lookup below is one index probe a key only as a nested loop: with
    // the statistics of a table still loading, PostgreSQL otherwise chose
    // plans that scanned the whole set for every key. Its estimated cost
    // (thousands of probes) passes `jit_above_cost`, and compiling it took a
    // tenth of PostgreSQL's CPU in a load: JIT is off for the transaction.
    sqlx::query(
        "SELECT pg_advisory_xact_lock($1, $2), set_config('enable_hashjoin', 'off', true), \
         set_config('enable_mergejoin', 'off', true), set_config('jit', 'off', true)",
    )
    .bind(SET_LOCK + part as i32)
    .bind(set_id)
    .execute(&mut *tx)
    .await?;
    // This transaction counts itself among the part's writers, under the lock.
    let writes: i64 = sqlx::query_scalar(
        "INSERT INTO record_set_parts (set_id, part, writes) VALUES ($1, $2, 1) \
         ON CONFLICT (set_id, part) DO UPDATE SET writes = record_set_parts.writes + 1 \
         RETURNING writes",
    )
    .bind(set_id)
    .bind(part as i16)
    .fetch_one(&mut *tx)
    .await?;
    let alone = state.alone_at(writes);
    let filtered: Vec<&str>;
    let lookup_keys: &[&str] = if alone {
        filtered = keys.iter().copied().filter(|k| state.may_hold(k)).collect();
        &filtered
    } else {
        &keys
    };
    // Rows with the batch's keys, locked so that nothing moves them before
    // they are deleted by their row address (`ctid`). The set is compared
    // here rather than in SQL: a condition on `set_id` invites the time index
    // into the plan. Another set's row with the same key is rare (the same
    // SIDs loaded into two accounts) and stays locked only for the batch.
    // The part is written into the statement: the planner uses a partial
    // index only for a condition it can prove from the text.
    type Found = (String, i32, String, bool, bool, i64, i32);
    let lookup = format!(
        "SELECT r.ctid::text, r.set_id, r.record_key, r.rest_deleted, r.export_deleted, r.seg, r.ord \
         FROM UNNEST($1::text[]) AS k(key) JOIN records r ON r.record_key = k.key AND r.part = {part} \
         FOR UPDATE OF r"
    );
    let found: Vec<Found> = if lookup_keys.is_empty() {
        Vec::new()
    } else {
        sqlx::query_as(&lookup)
            .bind(lookup_keys)
            .fetch_all(&mut *tx)
            .await?
    };
    let mut existing: HashMap<String, (bool, bool)> = HashMap::new();
    let mut rows: Vec<String> = Vec::new();
    let mut freed: Vec<Place> = Vec::new();
    for (row, set, key, rest, export, seg, ord) in found {
        if set == set_id {
            rows.push(row);
            existing.insert(key, (rest, export));
            freed.push((seg, ord));
        }
    }
    if !rows.is_empty() {
        sqlx::query("DELETE FROM records WHERE ctid = ANY($1::text[]::tid[])")
            .bind(&rows)
            .execute(&mut *tx)
            .await?;
        segments::erase(&mut tx, &freed).await?;
    }
    let (records, made, places) = super::joined(shaping).await?;
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT nextval(pg_get_serial_sequence('line_segments', 'id')) FROM generate_series(1, $1)",
    )
    .bind(made.len() as i64)
    .fetch_all(&mut *tx)
    .await?;
    let mut buf = Vec::with_capacity(made.iter().map(|s| s.data.len() + 64).sum::<usize>() + 64);
    pgcopy::header(&mut buf);
    for (id, s) in ids.iter().zip(&made) {
        pgcopy::segment_row(&mut buf, *id, set_id, s.day, s.lines, &s.data);
    }
    pgcopy::trailer(&mut buf);
    drop(made);
    let mut copy = tx
        .copy_in_raw("COPY line_segments (id, set_id, day, lines, data) FROM STDIN (FORMAT binary)")
        .await?;
    copy.send(buf).await?;
    copy.finish().await?;
    let mut copy = tx
        .copy_in_raw(
            "COPY records (at, seg, set_id, ord, part, rest_deleted, export_deleted, record_key) \
             FROM STDIN (FORMAT binary)",
        )
        .await?;
    let mut buf = Vec::with_capacity(SEND_BYTES + 64 * 1024);
    pgcopy::header(&mut buf);
    let mut sent = Ok(());
    for (r, &(segment, ord)) in records.iter().map(|&i| &batch[i]).zip(&places) {
        let flags = existing.get(&r.key).copied().unwrap_or_default();
        pgcopy::record_row(&mut buf, set_id, r, (ids[segment], ord), flags, part as i16);
        if buf.len() >= SEND_BYTES {
            if let Err(e) = copy.send(buf.as_slice()).await {
                sent = Err(e);
                break;
            }
            buf.clear();
        }
    }
    if sent.is_ok() {
        pgcopy::trailer(&mut buf);
        sent = copy.send(buf).await.map(|_| ());
    }
    match sent {
        Ok(()) => {
            copy.finish().await?;
        }
        Err(e) => {
            // The connection leaves COPY mode either way; the error that
            // matters is the first.
            let _ = copy.abort("the batch could not be sent").await;
            return Err(e.into());
        }
    }
    tx.commit().await?;
    state.committed(writes, alone, keys.iter().copied());
    Ok((existing.into_keys().collect(), state))
}

/// Streams one day's lines in file order to `sink`, in chunks of about
/// `chunk_bytes`: the places of its records come from one `COPY (SELECT seg,
/// ord …) TO STDOUT` (one statement, one index scan, without a row per
/// record in sqlx), their segments through a second connection in the same
/// snapshot, decoded into lines on a thread at background priority. Returns the number of records; stops early when `stop` fires
/// or `sink` is closed, closing the connections rather than reading the
/// rest of the stream.
pub(super) async fn stream_day_postgres(
    pool: &sqlx::PgPool,
    account_sid: &str,
    rt: ResourceType,
    day: Day,
    chunk_bytes: usize,
    stop: &CancellationToken,
    sink: mpsc::Sender<Vec<u8>>,
) -> Result<u64> {
    let Some(set_id) = find_set(pool, account_sid, rt).await? else {
        return Ok(0);
    };
    // COPY takes no parameters: the set and the seconds are integers. A
    // day's records are those of its seconds (`records_by_time`); ordered by
    // their second, then by their SID, they are in sort-key order. Only a
    // participant's key is more than the SID that orders it.
    let (from, to) = (day.first_second(), day.succ().first_second());
    let order_sid = match rt {
        ResourceType::Participants => ORDER_SID,
        _ => "record_key",
    };
    let sql = format!(
        "COPY (SELECT seg, ord FROM records WHERE set_id = {set_id} AND at >= {from} AND at < {to} \
         AND NOT export_deleted ORDER BY at, {order_sid}) TO STDOUT (FORMAT binary)"
    );
    let mut places_conn = pool.acquire().await?;
    let mut segments_conn = pool.acquire().await?;
    let mut places_tx = sqlx::Connection::begin(&mut *places_conn).await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *places_tx)
        .await?;
    // Read in the time index's order, sorted only within each second (an
    // incremental sort): before statistics exist (a table just loaded), the
    // planner would otherwise sort the whole day.
    let snapshot: String = sqlx::query_scalar(
        "SELECT pg_export_snapshot() FROM set_config('enable_sort', 'off', true)",
    )
    .fetch_one(&mut *places_tx)
    .await?;
    let mut segments_tx = sqlx::Connection::begin(&mut *segments_conn).await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *segments_tx)
        .await?;
    // The snapshot's name is PostgreSQL's: hex digits and dashes.
    let snapshot: String = snapshot
        .chars()
        .filter(|c| c.is_ascii_hexdigit() || *c == '-')
        .collect();
    sqlx::query(&format!("SET TRANSACTION SNAPSHOT '{snapshot}'"))
        .execute(&mut *segments_tx)
        .await?;
    let mut decoder = PlaceDecoder::default();
    let mut resolver = Resolver::new();
    let mut places: Vec<Place> = Vec::with_capacity(8192);
    let (work, work_rx) = mpsc::channel(2);
    let assembler = crate::background::spawn("export-lines", move || {
        segments::assemble(work_rx, sink, chunk_bytes)
    });
    let mut complete = false;
    {
        let mut stream = places_tx.copy_out_raw(&sql).await?;
        'read: loop {
            if stop.is_cancelled() {
                break;
            }
            let piece = stream.next().await.transpose()?;
            match &piece {
                Some(piece) => decoder.feed(piece, &mut places)?,
                None => decoder.finish()?,
            }
            let mut full = Vec::new();
            for place in places.drain(..) {
                if resolver.push(place) {
                    full.extend(resolver.resolve(&mut segments_tx).await?);
                }
            }
            if piece.is_none() {
                full.extend(resolver.resolve(&mut segments_tx).await?);
                complete = true;
            }
            for window in full {
                // Closed: the assembler stopped (its sink closed, or an error).
                if work.send(window).await.is_err() {
                    complete = false;
                    break 'read;
                }
            }
            if complete {
                break;
            }
        }
    }
    drop(work);
    let assembled = assembler.await.ok_or(crate::db::Error::Misuse(
        "the export's line assembler stopped",
    ));
    if !complete {
        // The rest of the stream would be read (and thrown away) by the next
        // user of the connection.
        drop((places_tx, segments_tx));
        places_conn.close_on_drop();
        segments_conn.close_on_drop();
        return Ok(assembled??);
    }
    let records = assembled??;
    places_tx.commit().await?;
    segments_tx.commit().await?;
    Ok(records)
}
