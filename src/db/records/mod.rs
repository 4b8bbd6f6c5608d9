//! Activity records, stored already serialised in the day-file shape, and
//! the bulk writer that loads them.
//!
//! # The SQLite record engine
//!
//! On SQLite a record is a row of `records` that points at its day-file line
//! in a segment file (`<database>-lines/`, see [`super::lines`]), and it is
//! found through integer keys. The invariants, in one place:
//!
//! - **Record sets.** Every record belongs to a record set (`record_sets`:
//!   account and resource type, `set_id`); rows are indexed by
//!   `(set_id, day, sort_key)`, the order an export reads.
//! - **Keys.** A record's key (its SID; for a Participant, conference and
//!   call) has a 64-bit hash ([`keys::key_hash`]). `record_keys` maps
//!   `(key_hash, set_id)` to the row, unique. The hash is not unique across
//!   keys: the rare key whose hash another key of the set holds is stored
//!   with `key_hash` NULL and no `record_keys` entry, and every lookup
//!   compares `record_key` too. A trigger removes a deleted row's key.
//! - **Rowids.** The writer numbers a batch's new rows itself (the next rowid
//!   of the set, read inside its transaction) so that keys point at their
//!   rows before the rows are written; keys go in hash order, rows in input
//!   order (appends).
//! - **Locks.** One writer at a time holds SQLite's write lock for its whole
//!   transaction, and a segment's file lock while it appends; it syncs its
//!   lines before the commit that points at them, and that commit records the
//!   segment's committed length (the next writer cuts off the rest). Readers
//!   hold the line directory's lock shared from before their query until
//!   they have read their lines.
//! - **Garbage.** A replaced or deleted record's old line is listed in
//!   `line_garbage` by the transaction that freed it; a sweep punches those
//!   ranges out under the exclusive lock, so no reader sees a line change.
//!
//! PostgreSQL keeps the lines in LZ4-compressed segments of a table of their
//! own ([`segments`]), rows in record sets too with hash indexes on the key
//! (one for each part a key can fall in), and loads through binary `COPY`,
//! each batch in its parts by key at once ([`postgres`]); a load into an
//! empty part looks up only keys it stored itself ([`parts`]).

mod keys;
mod parts;
mod pgcopy;
mod postgres;
mod scan;
mod segments;
mod sqlite;
mod stream;
#[cfg(test)]
mod tests;

use std::collections::HashSet;

pub use pgcopy::FormatError as CopyFormatError;
pub use scan::scan_day_sqlite;

use super::lines::{Lines, SegmentWriter};
use super::{with_pool, Db, Result};
use crate::domain::record::Record;
use crate::domain::{Day, ResourceType};
pub(super) use keys::key_hash;
pub(super) use postgres::{part_of, DAY as PG_DAY, SORT_KEY as PG_SORT_KEY};
use postgres::{prepare_postgres, store_postgres, stream_day_postgres, PgBatch, PgLoad};
use sqlite::{open_writer, BatchKeys, SqliteLoad, SQLITE_COMMIT_EVERY};

/// Where a line is kept in a PostgreSQL segment: the segment and line number.
pub(in crate::db) type SegmentPlace = pgcopy::Place;

/// Erasing the lines of records a transaction deleted, inside it: PostgreSQL
/// empties them in their segments (see [`segments`]); SQLite lists them in
/// `line_garbage` for the sweep instead, so this does nothing there.
pub(in crate::db) trait EraseLines {
    fn erase_lines(
        &mut self,
        places: &[SegmentPlace],
    ) -> impl std::future::Future<Output = Result<()>> + Send;
}

impl EraseLines for sqlx::SqliteConnection {
    async fn erase_lines(&mut self, _places: &[SegmentPlace]) -> Result<()> {
        Ok(())
    }
}

impl EraseLines for sqlx::PgConnection {
    async fn erase_lines(&mut self, places: &[SegmentPlace]) -> Result<()> {
        segments::erase(self, places).await
    }
}

/// Line `ord` of a PostgreSQL segment's stored data.
pub(in crate::db) fn segment_line(data: &[u8], ord: i32) -> Result<String> {
    let decoded = segments::Decoded::new(data)?;
    let line = decoded.line(ord)?;
    String::from_utf8(line.to_vec())
        .map_err(|_| pgcopy::FormatError("a line that is not UTF-8").into())
}

/// What storing one record did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOutcome {
    Loaded,
    Replaced,
}

/// Where in `batch` the last occurrence of each key is (the one stored), in
/// batch order.
fn last_of_each_key(batch: &[Record]) -> Vec<usize> {
    let mut last: foldhash::HashMap<&str, usize> = foldhash::HashMapExt::with_capacity(batch.len());
    for (i, r) in batch.iter().enumerate() {
        last.insert(r.key.as_str(), i);
    }
    (0..batch.len())
        .filter(|&i| last[batch[i].key.as_str()] == i)
        .collect()
}

/// What storing `batch` did to each of its records, given the keys that were
/// already stored: earlier occurrences of a key in the batch count as replaced.
fn outcomes(batch: &[Record], existing: &HashSet<String>) -> Vec<StoreOutcome> {
    let mut seen: foldhash::HashSet<&str> = foldhash::HashSetExt::with_capacity(batch.len());
    batch
        .iter()
        .map(|r| {
            let first_time = seen.insert(r.key.as_str());
            if first_time && !existing.contains(r.key.as_str()) {
                StoreOutcome::Loaded
            } else {
                StoreOutcome::Replaced
            }
        })
        .collect()
}

/// Stores batches of one account's records of one type: a bulk load. On
/// SQLite it writes through its own connection on a blocking thread, with
/// prepared statements and a page cache sized for loading (see
/// `WRITER_CACHE_KIB`); through the pool, each statement would cross sqlx's
/// worker thread and each batch would meet a connection with a cold cache. On
/// PostgreSQL each batch is one transaction through the pool that copies the
/// batch in (see [`postgres`]).
///
/// Records are stored only once [`RecordWriter::store`] or
/// [`RecordWriter::finish`] returns their outcomes: a writer dropped before
/// `finish` (or after an error) leaves the records whose outcomes it never
/// returned unstored.
pub struct RecordWriter {
    account_sid: String,
    rt: ResourceType,
    target: Target,
}

enum Target {
    /// None only while a store has the connection on a blocking thread (or
    /// after such a store was cancelled).
    Sqlite(Option<Box<SqliteLoad>>),
    Postgres(PgLoad),
}

impl RecordWriter {
    /// Lets a SQLite writer keep its transaction, and the database's write
    /// lock, open between batches, committing every [`SQLITE_COMMIT_EVERY`]
    /// records. Only for input that never waits on anyone (a regular file,
    /// generated records): a stalled sender would hold the lock meanwhile.
    /// Without it, and always on PostgreSQL, each batch commits on its own.
    pub fn group_commits(&mut self) {
        if let Target::Sqlite(Some(load)) = &mut self.target {
            load.commit_every = SQLITE_COMMIT_EVERY;
        }
    }

    /// Stores `batch`; a record with a known key replaces the old one (also one
    /// stored earlier by this writer). Returns the outcomes of the records this
    /// call committed: the batch's, or with [`RecordWriter::group_commits`] on
    /// SQLite those of every batch since the last commit once they reach
    /// [`SQLITE_COMMIT_EVERY`], else none yet.
    pub async fn store(&mut self, batch: Vec<Record>) -> Result<Vec<StoreOutcome>> {
        let prepared = self.preparer().prepare(batch);
        self.store_and_return(prepared).await.1
    }

    /// What prepares batches for this writer, also while it stores one.
    pub fn preparer(&self) -> Preparer {
        match self.target {
            Target::Sqlite(_) => Preparer::Sqlite,
            Target::Postgres(_) => Preparer::Postgres,
        }
    }

    /// [`RecordWriter::store`] of a prepared batch, handing the records back:
    /// a bulk load refills them (see
    /// [`crate::domain::record::normalize_line_into`]). Dropped on the
    /// writer's thread, a batch's 150,000 strings were freed into the parsing
    /// thread's heap under its lock, about a tenth of the writer's time.
    pub async fn store_and_return(
        &mut self,
        prepared: Prepared,
    ) -> (Vec<Record>, Result<Vec<StoreOutcome>>) {
        let (slot, batch) = match (&mut self.target, prepared.0) {
            (Target::Postgres(load), Batch::Postgres(prepared)) => {
                let batch = std::sync::Arc::clone(&prepared.batch);
                let stored = store_postgres(load, &self.account_sid, self.rt, prepared).await;
                // The parts' tasks have ended and let go of the batch.
                let batch = std::sync::Arc::try_unwrap(batch).unwrap_or_default();
                return (batch, stored);
            }
            (Target::Sqlite(slot), Batch::Plain(batch)) => (slot, batch),
            _ => {
                let misuse = crate::db::Error::Misuse("a batch prepared for another database");
                return (Vec::new(), Err(misuse));
            }
        };
        let Some(mut load) = slot.take() else {
            return (batch, Err(crate::db::Error::Sqlx(sqlx::Error::PoolClosed)));
        };
        // The lines are appended, and the batch's keys hashed, on the
        // writer's blocking thread too: never on the async runtime's workers,
        // which keep answering requests during a load.
        let (account, rt) = (self.account_sid.clone(), self.rt);
        let done = on_blocking_thread(move || {
            let placed = match load.segment.append_all(&batch) {
                Ok(placed) => placed,
                Err(e) => {
                    load.segment.rewind();
                    return (load, batch, Err(e.into()));
                }
            };
            load.segment.write_back();
            let keys = BatchKeys::of(&batch);
            let stored = load.store(&account, rt, &batch, &keys, &placed);
            (load, batch, stored)
        })
        .await;
        match done {
            Ok((load, batch, stored)) => {
                *slot = Some(load);
                (batch, stored)
            }
            Err(e) => (Vec::new(), Err(e)),
        }
    }

    /// Commits what is left and returns its outcomes.
    pub async fn finish(self) -> Result<Vec<StoreOutcome>> {
        match self.target {
            Target::Sqlite(Some(mut load)) => on_blocking_thread(move || load.commit()).await?,
            Target::Sqlite(None) => Err(crate::db::Error::Sqlx(sqlx::Error::PoolClosed)),
            Target::Postgres(_) => Ok(Vec::new()),
        }
    }
}

/// Prepares batches for a [`RecordWriter`] ([`RecordWriter::preparer`]).
#[derive(Debug, Clone, Copy)]
pub enum Preparer {
    Sqlite,
    Postgres,
}

impl Preparer {
    /// Starts the work on `batch` that needs no database: on PostgreSQL its
    /// split into parts and its segments (see [`postgres`]); nothing on
    /// SQLite. CPU work: call it off the async workers.
    pub fn prepare(self, batch: Vec<Record>) -> Prepared {
        Prepared(match self {
            Preparer::Sqlite => Batch::Plain(batch),
            Preparer::Postgres => Batch::Postgres(prepare_postgres(batch)),
        })
    }
}

/// A batch ready for [`RecordWriter::store_and_return`].
pub struct Prepared(Batch);

enum Batch {
    Plain(Vec<Record>),
    Postgres(PgBatch),
}

/// Runs `f` on tokio's blocking pool; a panic in it is re-raised here. The
/// task is only ever cancelled by the runtime shutting down, reported as a
/// closed pool.
async fn on_blocking_thread<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    joined(tokio::task::spawn_blocking(f)).await
}

/// Waits for a task (a `spawn_blocking` started early and awaited later, or
/// a spawned part of a PostgreSQL batch) as [`on_blocking_thread`] does: a
/// panic in it is re-raised, a cancelled one reported as a closed pool.
async fn joined<T>(handle: tokio::task::JoinHandle<T>) -> Result<T> {
    handle.await.map_err(|e| match e.try_into_panic() {
        Ok(panic) => std::panic::resume_unwind(panic),
        Err(_) => crate::db::Error::Sqlx(sqlx::Error::PoolClosed),
    })
}

impl Db {
    /// A writer for bulk loads of `account_sid`'s `rt` records.
    pub async fn record_writer(&self, account_sid: &str, rt: ResourceType) -> Result<RecordWriter> {
        let target = match &self.pool {
            super::Pool::Sqlite(pool) => {
                let file = pool.connect_options().get_filename().to_path_buf();
                let (conn, segment) = on_blocking_thread(move || {
                    let conn = open_writer(&file)?;
                    let segment = SegmentWriter::open(&conn, &Lines::beside(&file))?;
                    Ok::<_, crate::db::Error>((conn, segment))
                })
                .await??;
                Target::Sqlite(Some(Box::new(SqliteLoad {
                    conn,
                    segment,
                    uncommitted: Vec::new(),
                    commit_every: 1,
                    set: None,
                })))
            }
            super::Pool::Postgres(pool) => Target::Postgres(PgLoad {
                pool: pool.clone(),
                set_id: None,
                parts: Default::default(),
            }),
        };
        Ok(RecordWriter {
            account_sid: account_sid.to_string(),
            rt,
            target,
        })
    }

    /// The condition on `records` that selects the records of account `$1`
    /// and resource type `$2`: through their record set (migration
    /// `0007_record_sets.sql`, on either database).
    pub(super) fn record_set(&self) -> &'static str {
        "set_id = (SELECT id FROM record_sets WHERE account_sid = $1 AND resource_type = $2)"
    }

    /// The SQLite file, when the database is SQLite: exports scan it with
    /// their own read-only connection (see [`scan_day_sqlite`]).
    pub fn sqlite_file(&self) -> Option<std::path::PathBuf> {
        match &self.pool {
            super::Pool::Sqlite(pool) => Some(pool.connect_options().get_filename().to_path_buf()),
            super::Pool::Postgres(_) => None,
        }
    }

    pub async fn count_records(
        &self,
        account_sid: &str,
        rt: ResourceType,
        day: Day,
    ) -> Result<i64> {
        // PostgreSQL's rows hold no day: a day's records are its seconds'.
        let (from, to) = (day.first_second(), day.succ().first_second());
        let on_day = match self.pool {
            super::Pool::Sqlite(_) => format!("day = '{day}'"),
            super::Pool::Postgres(_) => format!("at >= {from} AND at < {to}"),
        };
        let sql = format!(
            "SELECT COUNT(*) FROM records WHERE {} AND {on_day} AND NOT export_deleted",
            self.record_set()
        );
        Ok(with_pool!(self, |pool| sqlx::query_scalar(&sql)
            .bind(account_sid)
            .bind(rt.as_str())
            .fetch_one(pool)
            .await)?)
    }
}
