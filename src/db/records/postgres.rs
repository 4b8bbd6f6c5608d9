//! The PostgreSQL record path: the bulk writer (binary `COPY` into
//! `records`) and a day's lines read for an export (binary `COPY … TO
//! STDOUT`).
//!
//! Records belong to a record set (`record_sets`, migration
//! `0007_record_sets.sql`) and are found through a hash index on their key;
//! no unique index holds a key unique: every writer of a set takes the set's
//! advisory lock for its transaction, looks the batch's keys up (locking the
//! rows found), deletes the rows they replace and copies the batch in.
//! Measured on a 1M-record day, that costs less than half of the text
//! primary key it replaced (see `docs/decisions.md`).

use std::collections::{HashMap, HashSet};

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::pgcopy::{self, LineDecoder};
use super::{last_of_each_key, outcomes, StoreOutcome};
use crate::db::Result;
use crate::domain::record::Record;
use crate::domain::{Day, ResourceType};

/// The first key of the advisory locks writers of a record set take
/// (`pg_advisory_xact_lock(SET_LOCK, set_id)`): "recs".
const SET_LOCK: i32 = 0x7265_6373;

/// Bytes of `COPY` data handed to the driver at a time.
const SEND_BYTES: usize = 1 << 20;

/// A bulk load into one record set.
pub(super) struct PgLoad {
    pub(super) pool: sqlx::PgPool,
    /// Found (or made) by the first batch.
    pub(super) set_id: Option<i32>,
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

/// One batch in one transaction; a record with a known key replaces the old
/// one (its deletion flags stay as they were).
pub(super) async fn store_postgres(
    load: &mut PgLoad,
    account_sid: &str,
    rt: ResourceType,
    batch: &[Record],
) -> Result<Vec<StoreOutcome>> {
    let set_id = match load.set_id {
        Some(id) => id,
        None => *load
            .set_id
            .insert(ensure_set(&load.pool, account_sid, rt).await?),
    };
    let unique = last_of_each_key(batch);
    let keys: Vec<&str> = unique.iter().map(|r| r.key.as_str()).collect();
    let mut tx = load.pool.begin().await?;
    // The lookup below is one index probe a key only as a nested loop: with
    // the statistics of a table still loading, PostgreSQL otherwise chose
    // plans that scanned the whole set for every key.
    sqlx::query(
        "SELECT pg_advisory_xact_lock($1, $2), set_config('enable_hashjoin', 'off', true), \
         set_config('enable_mergejoin', 'off', true)",
    )
    .bind(SET_LOCK)
    .bind(set_id)
    .execute(&mut *tx)
    .await?;
    // Rows with the batch's keys, locked so that nothing moves them before
    // they are deleted by their row address (`ctid`). The set is compared
    // here rather than in SQL: a condition on `set_id` invites the day index
    // into the plan. Another set's row with the same key is rare (the same
    // SIDs loaded into two accounts) and stays locked only for the batch.
    let found: Vec<(String, i32, String, bool, bool)> = sqlx::query_as(
        "SELECT r.ctid::text, r.set_id, r.record_key, r.rest_deleted, r.export_deleted \
         FROM UNNEST($1::text[]) AS k(key) JOIN records r ON r.record_key = k.key FOR UPDATE OF r",
    )
    .bind(&keys)
    .fetch_all(&mut *tx)
    .await?;
    let mut existing: HashMap<String, (bool, bool)> = HashMap::new();
    let mut rows: Vec<String> = Vec::new();
    for (row, set, key, rest, export) in found {
        if set == set_id {
            rows.push(row);
            existing.insert(key, (rest, export));
        }
    }
    if !rows.is_empty() {
        sqlx::query("DELETE FROM records WHERE ctid = ANY($1::text[]::tid[])")
            .bind(&rows)
            .execute(&mut *tx)
            .await?;
    }
    let mut copy = tx
        .copy_in_raw(
            "COPY records (set_id, record_key, day, sort_key, line, rest_deleted, export_deleted) \
             FROM STDIN (FORMAT binary)",
        )
        .await?;
    let mut buf = Vec::with_capacity(SEND_BYTES + 64 * 1024);
    pgcopy::header(&mut buf);
    let mut sent = Ok(());
    for r in &unique {
        let flags = existing.get(&r.key).copied().unwrap_or_default();
        pgcopy::record_row(&mut buf, set_id, r, flags);
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
    let existing: HashSet<String> = existing.into_keys().collect();
    Ok(outcomes(batch, &existing))
}

/// Streams one day's lines in file order to `sink`, in chunks of about
/// `chunk_bytes`, through one `COPY (SELECT line …) TO STDOUT` (one
/// statement, one snapshot, one index scan; lines cross the driver without
/// a row per line in sqlx). Returns the number of records; stops early when
/// `stop` fires or `sink` is closed, closing the connection rather than
/// reading the rest of the stream.
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
    // COPY takes no parameters: the set is an integer and the day's text is
    // digits and dashes.
    let sql = format!(
        "COPY (SELECT line FROM records WHERE set_id = {set_id} AND day = '{day}' \
         AND NOT export_deleted ORDER BY sort_key) TO STDOUT (FORMAT binary)"
    );
    let mut conn = pool.acquire().await?;
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    // Read in the day index's order, never sorted apart: before statistics
    // exist (a table just loaded), the planner would sort the whole day.
    sqlx::query("SET LOCAL enable_sort = off")
        .execute(&mut *tx)
        .await?;
    let mut decoder = LineDecoder::default();
    let mut records = 0u64;
    let mut buf: Vec<u8> = Vec::with_capacity(chunk_bytes + 64 * 1024);
    let mut complete = false;
    {
        let mut stream = tx.copy_out_raw(&sql).await?;
        loop {
            if stop.is_cancelled() {
                break;
            }
            match stream.next().await {
                Some(piece) => records += decoder.feed(&piece?, &mut buf)?,
                None => {
                    decoder.finish()?;
                    complete = true;
                    break;
                }
            }
            if buf.len() >= chunk_bytes {
                let full = std::mem::replace(&mut buf, Vec::with_capacity(chunk_bytes + 64 * 1024));
                if sink.send(full).await.is_err() {
                    break;
                }
            }
        }
    }
    if !complete {
        // The rest of the stream would be read (and thrown away) by the next
        // user of the connection.
        drop(tx);
        conn.close_on_drop();
        return Ok(records);
    }
    tx.commit().await?;
    if !buf.is_empty() {
        let _ = sink.send(buf).await;
    }
    Ok(records)
}
