//! Activity records, stored already serialised in the day-file shape.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use super::lines::{LineReader, Lines, Placed, SegmentWriter};
use super::{with_pool, Db, Result};
use crate::domain::record::Record;
use crate::domain::{Day, ResourceType};

/// What storing one record did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOutcome {
    Loaded,
    Replaced,
}

/// Rows per multi-row statement on PostgreSQL: 6 parameters each, well under its limit.
const ROWS_PER_STATEMENT: usize = 200;

/// Page cache of a SQLite record writer's own connection. A batch inserts
/// keys all over `record_keys`; when its pages stay cached, each is read
/// once per load instead of once per batch. The connection, and
/// this memory, lives only as long as one load.
const WRITER_CACHE_KIB: i64 = 64 * 1024;

/// Records a SQLite writer with grouped commits (see
/// [`RecordWriter::group_commits`]) stores per transaction, across batches. A
/// commit writes every page the transaction touched to the WAL, and random
/// keys touch most of the key index (now `record_keys`), so fewer commits
/// write less: on 1M records with lines in the rows, 50,000 per commit took 15 s and
/// 250,000 took 11 s (the `sqlite3` shell). With lines in segments a row is
/// about 240 bytes with its index entries, and 500,000 per commit loaded 1M
/// Messages in 3.61-3.84 s against 3.84-3.97 s at 250,000 (three alternating
/// CLI runs each). Other writers wait at most one transaction, about 2 s.
const SQLITE_COMMIT_EVERY: usize = 500_000;

/// Rows per multi-row insert of a SQLite writer (9 parameters each; keys 3).
const SQLITE_ROWS_PER_INSERT: usize = 128;

/// The last occurrence of each key in `batch`, in batch order: the one stored.
fn last_of_each_key(batch: &[Record]) -> Vec<&Record> {
    let mut last: HashMap<&str, usize> = HashMap::with_capacity(batch.len());
    for (i, r) in batch.iter().enumerate() {
        last.insert(r.key.as_str(), i);
    }
    batch
        .iter()
        .enumerate()
        .filter(|(i, r)| last[r.key.as_str()] == *i)
        .map(|(_, r)| r)
        .collect()
}

/// What storing `batch` did to each of its records, given the keys that were
/// already stored: earlier occurrences of a key in the batch count as replaced.
fn outcomes(batch: &[Record], existing: &HashSet<String>) -> Vec<StoreOutcome> {
    let mut seen: HashSet<&str> = HashSet::with_capacity(batch.len());
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
/// [`WRITER_CACHE_KIB`]); through the pool, each statement would cross sqlx's
/// worker thread and each batch would meet a connection with a cold cache. On
/// PostgreSQL it uses the pool's multi-row upserts.
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
    Postgres(sqlx::PgPool),
}

/// A SQLite writer's connection and the outcomes of what its open
/// transaction holds, reported when that commits.
struct SqliteLoad {
    conn: rusqlite::Connection,
    /// Where this writer appends its records' lines (see [`super::lines`]).
    segment: SegmentWriter,
    uncommitted: Vec<StoreOutcome>,
    /// Commit once this many records are uncommitted: 1 (every batch) or
    /// [`SQLITE_COMMIT_EVERY`].
    commit_every: usize,
    /// The record set and its keys stored without a hash, read when the
    /// open transaction began (None while none is open).
    set: Option<SqliteSet>,
}

/// What a SQLite writer knows of its record set inside a transaction.
struct SqliteSet {
    id: i64,
    /// Keys whose hash another key of the set holds, stored with a NULL
    /// `key_hash`, and their rows. Almost always empty: SIDs are random.
    collided: HashMap<String, i64>,
    /// The rowid of the next new row. The writer numbers rows itself, in
    /// batch order, so that a key points at its row before the row is
    /// written (see [`store_sqlite`]); it holds the write lock meanwhile.
    next_row: i64,
}

/// Each byte's value in [`key_hash`]: hex digits (either case) their own,
/// anything else 15.
static NIBBLES: [u8; 256] = {
    let mut t = [15u8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// The 64-bit index key of a record key: the 8 hex digits after its
/// two-letter prefix, then the 8 that end 8 characters before its end (for a
/// Participant, "CF…/CA…", the first from the conference and the second from
/// the call). Other characters count as 15 (upper-case hex as lower-case).
/// Migration `0007_record_sets.sql` computes the same in SQL for the rows it
/// moves; keys that share a hash are told apart by `record_key`.
pub(super) fn key_hash(key: &str) -> i64 {
    let b = key.as_bytes();
    let nibble = |i: Option<usize>| -> u64 {
        i.and_then(|i| b.get(i))
            .map_or(0, |&c| u64::from(NIBBLES[usize::from(c)]))
    };
    let mut h = 0u64;
    for j in 0..8 {
        h = (h << 4) | nibble(Some(2 + j));
    }
    for j in 0..8 {
        h = (h << 4) | nibble((b.len() + j).checked_sub(16));
    }
    h as i64
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
        self.store_and_return(batch).await.1
    }

    /// [`RecordWriter::store`], handing the records back: a bulk load refills
    /// them (see [`crate::domain::record::normalize_line_into`]). Dropped on
    /// the writer's thread, a batch's 150,000 strings were freed into the
    /// parsing thread's heap under its lock, about a tenth of the writer's time.
    pub async fn store_and_return(
        &mut self,
        batch: Vec<Record>,
    ) -> (Vec<Record>, Result<Vec<StoreOutcome>>) {
        let slot = match &mut self.target {
            Target::Postgres(pool) => {
                let stored = store_postgres(pool, &self.account_sid, self.rt, &batch).await;
                return (batch, stored);
            }
            Target::Sqlite(slot) => slot,
        };
        let Some(mut load) = slot.take() else {
            return (batch, Err(super::Error::Sqlx(sqlx::Error::PoolClosed)));
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
            Target::Sqlite(None) => Err(super::Error::Sqlx(sqlx::Error::PoolClosed)),
            Target::Postgres(_) => Ok(Vec::new()),
        }
    }
}

impl SqliteLoad {
    fn store(
        &mut self,
        account_sid: &str,
        rt: ResourceType,
        batch: &[Record],
        keys: &BatchKeys,
        placed: &[Placed],
    ) -> Result<Vec<StoreOutcome>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        // The transaction reads and writes: it takes the write lock at once,
        // or a concurrent writer makes the upgrade fail.
        if self.conn.is_autocommit() {
            self.conn.execute_batch("BEGIN IMMEDIATE")?;
            match open_set(&self.conn, account_sid, rt) {
                Ok(set) => self.set = Some(set),
                Err(e) => {
                    self.abandon();
                    return Err(e);
                }
            }
        }
        let set = self.set.as_mut().expect("a transaction is open");
        match store_sqlite(&self.conn, set, batch, keys, placed) {
            Ok(outcomes) => self.uncommitted.extend(outcomes),
            Err(e) => {
                self.abandon();
                return Err(e);
            }
        }
        if self.uncommitted.len() >= self.commit_every {
            self.commit()
        } else {
            Ok(Vec::new())
        }
    }

    /// Syncs the lines appended in the open transaction, records the
    /// segment's new length in it, and commits.
    fn commit(&mut self) -> Result<Vec<StoreOutcome>> {
        if !self.conn.is_autocommit() {
            let committed = self
                .segment
                .sync()
                .map_err(super::Error::from)
                .and_then(|len| {
                    self.conn.execute(
                        "UPDATE line_segments SET committed_len = ?1 WHERE id = ?2",
                        (len, self.segment.id()),
                    )?;
                    Ok(self.conn.execute_batch("COMMIT")?)
                });
            if let Err(e) = committed {
                self.abandon();
                return Err(e);
            }
            self.segment.committed();
        }
        self.set = None;
        Ok(std::mem::take(&mut self.uncommitted))
    }

    /// After a failure: nothing of the open transaction was reported, and
    /// none of it stays.
    fn abandon(&mut self) {
        self.uncommitted.clear();
        self.set = None;
        let _ = self.conn.execute_batch("ROLLBACK");
        self.segment.rewind();
    }
}

/// Runs `f` on tokio's blocking pool; a panic in it is re-raised here. The
/// task is only ever cancelled by the runtime shutting down, reported as a
/// closed pool.
async fn on_blocking_thread<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(_) => super::Error::Sqlx(sqlx::Error::PoolClosed),
        })
}

/// The writer's record set, created on first use, and its keys stored
/// without a hash; read inside the open transaction, so no other writer
/// changes them until it ends.
fn open_set(conn: &rusqlite::Connection, account_sid: &str, rt: ResourceType) -> Result<SqliteSet> {
    conn.execute(
        "INSERT INTO record_sets (account_sid, resource_type) VALUES (?1, ?2) \
         ON CONFLICT (account_sid, resource_type) DO NOTHING",
        (account_sid, rt.as_str()),
    )?;
    let id: i64 = conn.query_row(
        "SELECT id FROM record_sets WHERE account_sid = ?1 AND resource_type = ?2",
        (account_sid, rt.as_str()),
        |row| row.get(0),
    )?;
    let mut stmt = conn
        .prepare("SELECT record_key, rowid FROM records WHERE set_id = ?1 AND key_hash IS NULL")?;
    let collided = stmt
        .query_map([id], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<std::result::Result<_, _>>()?;
    let next_row = conn.query_row(
        "SELECT COALESCE(MAX(rowid), 0) + 1 FROM records",
        [],
        |row| row.get(0),
    )?;
    Ok(SqliteSet {
        id,
        collided,
        next_row,
    })
}

/// What storing one record of a SQLite batch does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// A new row; its key points at it already.
    New,
    /// A new row without a key: another key of the set holds its hash.
    Unhashed,
    /// Replaces this row: its key's, stored before or earlier in the batch.
    Replace(i64),
}

/// One batch through a writer's own SQLite connection, inside its open
/// transaction: insert the rows pointing at the lines (already appended to
/// the writer's segment), and where the key exists, update (the range the old
/// row used becomes garbage for the sweep). Flags (`rest_deleted`,
/// `export_deleted`) stay as they were. A key repeated in the batch is stored
/// by its first occurrence and replaced by the later ones, as a key stored
/// before is. Outcomes come back in batch order.
///
/// Record `i` of the batch becomes row `next_row + i` if it is new. The keys
/// go first, sorted by hash (see migration `0009_record_keys.sql`): each
/// lands beside the one before, and an insert that skips a key says that
/// some key of the run is stored already; one query then finds the rows
/// holding the run's hashes. The rows then go in batch order, which for input
/// in time order appends to the table and to the day index. New rows go in
/// [`SQLITE_ROWS_PER_INSERT`] per `INSERT`, and replacements of as many
/// distinct rows per `UPDATE … FROM (VALUES …)` (a reload of 1M Messages took
/// 4.5 s instead of 7.9-9.9 s one row at a time).
fn store_sqlite(
    conn: &rusqlite::Connection,
    set: &mut SqliteSet,
    batch: &[Record],
    keys: &BatchKeys,
    placed: &[Placed],
) -> Result<Vec<StoreOutcome>> {
    let fates = place_keys(conn, set, batch, keys)?;
    store_rows(conn, set, batch, placed, &keys.hashes, &fates)
}

/// The [`key_hash`] of each record of a batch, and the records in the order
/// of their hash (equal hashes in batch order). Worked out on the task that
/// appends the batch's lines, beside the parsing, instead of on the writer's
/// thread, which sets the pace of a load: there reading each key, cold in
/// its cache, was a tenth of the thread's samples in a profile.
struct BatchKeys {
    hashes: Vec<i64>,
    by_hash: Vec<(i64, usize)>,
}

impl BatchKeys {
    fn of(batch: &[Record]) -> BatchKeys {
        let hashes: Vec<i64> = batch.iter().map(|r| key_hash(&r.key)).collect();
        let mut by_hash: Vec<(i64, usize)> = hashes.iter().copied().zip(0..).collect();
        by_hash.sort_unstable();
        BatchKeys { hashes, by_hash }
    }
}

/// `insert` (`INSERT`, `INSERT OR IGNORE`) of `rows` rows into a table.
fn insert_sql(insert: &str, table_and_columns: &str, row: &str, rows: usize) -> String {
    format!(
        "{insert} INTO {table_and_columns} VALUES {}",
        vec![row; rows].join(", ")
    )
}

/// Inserts the keys of a batch's new records into `record_keys`, in the
/// order of their hash, and says what becomes of each record.
fn place_keys(
    conn: &rusqlite::Connection,
    set: &SqliteSet,
    batch: &[Record],
    keys: &BatchKeys,
) -> Result<Vec<Fate>> {
    const KEYS: &str = "record_keys (key_hash, set_id, row)";
    const INSERT: &str = "INSERT OR IGNORE";
    let mut insert_many = conn.prepare_cached(&insert_sql(
        INSERT,
        KEYS,
        "(?, ?, ?)",
        SQLITE_ROWS_PER_INSERT,
    ))?;
    let mut insert_one = conn.prepare_cached(&insert_sql(INSERT, KEYS, "(?, ?, ?)", 1))?;
    // The rows holding the hashes of a run of keys, and their records' keys.
    const HOLDERS: &str = "SELECT k.key_hash, k.row, r.record_key FROM record_keys k \
         LEFT JOIN records r ON r.rowid = k.row WHERE k.set_id = ? AND k.key_hash IN";
    let mut holders_many = conn.prepare_cached(&format!(
        "{HOLDERS} ({}) ORDER BY k.key_hash",
        vec!["?"; SQLITE_ROWS_PER_INSERT].join(", ")
    ))?;
    let mut holder_one = conn.prepare_cached(&format!("{HOLDERS} (?)"))?;
    let base = set.next_row;
    let row_of = |i: usize| base + i as i64;
    let mut fates = vec![Fate::New; batch.len()];
    // Equal hashes stay in batch order: a key's first occurrence takes it.
    // Keys stored without a hash (almost never any) replace their rows.
    let mut order = Cow::Borrowed(keys.by_hash.as_slice());
    if !set.collided.is_empty() {
        order
            .to_mut()
            .retain(|&(_, i)| match set.collided.get(&batch[i].key) {
                Some(&row) => {
                    fates[i] = Fate::Replace(row);
                    false
                }
                None => true,
            });
    }
    // Keys of this batch stored without a hash, and their rows.
    let mut unhashed: HashMap<&str, i64> = HashMap::new();
    for run in order.chunks(SQLITE_ROWS_PER_INSERT) {
        let inserted = if run.len() == SQLITE_ROWS_PER_INSERT {
            let mut param = 1;
            for &(hash, i) in run {
                insert_many.raw_bind_parameter(param, hash)?;
                insert_many.raw_bind_parameter(param + 1, set.id)?;
                insert_many.raw_bind_parameter(param + 2, row_of(i))?;
                param += 3;
            }
            insert_many.raw_execute()?
        } else {
            let mut n = 0;
            for &(hash, i) in run {
                n += insert_one.execute((hash, set.id, row_of(i)))?;
            }
            n
        };
        if inserted == run.len() {
            continue;
        }
        // Every hash of the run is held now: by the key just inserted, an
        // earlier record of the batch, or a row stored before.
        let holders: Vec<(i64, i64, Option<String>)> = if run.len() == SQLITE_ROWS_PER_INSERT {
            holders_many.raw_bind_parameter(1, set.id)?;
            for (n, &(hash, _)) in run.iter().enumerate() {
                holders_many.raw_bind_parameter(n + 2, hash)?;
            }
            let rows = holders_many.raw_query();
            rows.mapped(|h| Ok((h.get(0)?, h.get(1)?, h.get(2)?)))
                .collect::<std::result::Result<_, _>>()?
        } else {
            let mut all = Vec::new();
            for &(hash, _) in run {
                let found = holder_one
                    .query_map((set.id, hash), |h| Ok((h.get(0)?, h.get(1)?, h.get(2)?)))?;
                all.extend(found.collect::<std::result::Result<Vec<_>, _>>()?);
            }
            all.dedup_by_key(|h| h.0);
            all
        };
        let mut holders = holders.iter().peekable();
        for &(hash, i) in run {
            while holders.next_if(|h| h.0 < hash).is_some() {}
            let Some((_, row, stored)) = holders.peek().filter(|h| h.0 == hash) else {
                return Err(super::Error::Misuse(
                    "a record key has no row after its insert",
                ));
            };
            let key = batch[i].key.as_str();
            // A row of this batch is not written yet: its record says.
            let same = match stored {
                Some(stored) => stored == key,
                None => usize::try_from(row - base)
                    .ok()
                    .and_then(|j| batch.get(j))
                    .is_some_and(|earlier| earlier.key == key),
            };
            fates[i] = if *row == row_of(i) {
                Fate::New
            } else if same {
                Fate::Replace(*row)
            } else if let Some(&row) = unhashed.get(key) {
                Fate::Replace(row)
            } else {
                unhashed.insert(key, row_of(i));
                Fate::Unhashed
            };
        }
    }
    Ok(fates)
}

/// Writes a batch's rows as [`place_keys`] decided, in batch order.
fn store_rows(
    conn: &rusqlite::Connection,
    set: &mut SqliteSet,
    batch: &[Record],
    placed: &[Placed],
    hashes: &[i64],
    fates: &[Fate],
) -> Result<Vec<StoreOutcome>> {
    const ROWS: &str =
        "records (rowid, set_id, key_hash, record_key, day, sort_key, line, line_seg, line_off, line_len)";
    const ROW: &str = "(?, ?, ?, ?, ?, ?, '', ?, ?, ?)";
    // The statements that write many rows say `OR FAIL`: with SQLite's
    // default `ABORT`, each keeps a statement journal to undo itself alone,
    // which spilled to temporary files, about 1 GB of writes for 1M Messages.
    // A failure rolls the whole transaction back anyway (see
    // `SqliteLoad::abandon`), so undoing one statement is never needed.
    let mut insert_many = conn.prepare_cached(&insert_sql(
        "INSERT OR FAIL",
        ROWS,
        ROW,
        SQLITE_ROWS_PER_INSERT,
    ))?;
    let mut insert_one = conn.prepare_cached(&insert_sql("INSERT", ROWS, ROW, 1))?;
    let mut update = conn.prepare_cached(
        "UPDATE records SET day = ?1, sort_key = ?2, line = '', line_seg = ?3, line_off = ?4, line_len = ?5 \
         WHERE rowid = ?6",
    )?;
    let mut freed = conn.prepare_cached(
        "INSERT INTO line_garbage (seg, off, len) \
         SELECT line_seg, line_off, line_len FROM records WHERE rowid = ?1 AND line_seg IS NOT NULL",
    )?;
    // A run of replacements, each of another row: their old lines freed,
    // then their rows updated, in two statements.
    let marks = |row: &str| vec![row; SQLITE_ROWS_PER_INSERT].join(", ");
    let mut freed_many = conn.prepare_cached(&format!(
        "INSERT OR FAIL INTO line_garbage (seg, off, len) SELECT line_seg, line_off, line_len FROM records \
         WHERE rowid IN ({}) AND line_seg IS NOT NULL",
        marks("?")
    ))?;
    let mut update_many = conn.prepare_cached(&format!(
        "UPDATE OR FAIL records SET day = v.column2, sort_key = v.column3, line = '', line_seg = v.column4, \
         line_off = v.column5, line_len = v.column6 FROM (VALUES {}) AS v WHERE records.rowid = v.column1",
        marks("(?, ?, ?, ?, ?, ?)")
    ))?;
    let base = set.next_row;
    let mut outcomes = Vec::with_capacity(batch.len());
    // A batch's records mostly share their day: its text is made once per run.
    let mut day_text = DayText::default();
    // The rows a run of replacements replaces, each once.
    let mut replaced: Vec<i64> = Vec::with_capacity(SQLITE_ROWS_PER_INSERT);
    let mut distinct: HashSet<i64> = HashSet::with_capacity(SQLITE_ROWS_PER_INSERT);
    let mut at = 0;
    while at < batch.len() {
        distinct.clear();
        replaced.clear();
        replaced.extend(
            fates[at..]
                .iter()
                .take(SQLITE_ROWS_PER_INSERT)
                .map_while(|f| match *f {
                    Fate::Replace(row) if distinct.insert(row) => Some(row),
                    _ => None,
                }),
        );
        if replaced.len() == SQLITE_ROWS_PER_INSERT {
            for (n, &row) in replaced.iter().enumerate() {
                let i = at + n;
                freed_many.raw_bind_parameter(n + 1, row)?;
                update_many.raw_bind_parameter(6 * n + 1, row)?;
                bind_place(
                    &mut update_many,
                    6 * n + 2,
                    day_text.of(batch[i].day),
                    &batch[i],
                    placed[i],
                )?;
            }
            freed_many.raw_execute()?;
            update_many.raw_execute()?;
            outcomes.extend(std::iter::repeat_n(StoreOutcome::Replaced, replaced.len()));
            at += replaced.len();
            continue;
        }
        let run = fates[at..]
            .iter()
            .take(SQLITE_ROWS_PER_INSERT)
            .take_while(|f| **f == Fate::New)
            .count();
        if run == SQLITE_ROWS_PER_INSERT {
            for (n, i) in (at..at + run).enumerate() {
                let param = 9 * n + 1;
                insert_many.raw_bind_parameter(param, base + i as i64)?;
                insert_many.raw_bind_parameter(param + 1, set.id)?;
                insert_many.raw_bind_parameter(param + 2, hashes[i])?;
                insert_many.raw_bind_parameter(param + 3, &batch[i].key)?;
                bind_place(
                    &mut insert_many,
                    param + 4,
                    day_text.of(batch[i].day),
                    &batch[i],
                    placed[i],
                )?;
            }
            insert_many.raw_execute()?;
            outcomes.extend(std::iter::repeat_n(StoreOutcome::Loaded, run));
            at += run;
            continue;
        }
        let (r, p, row) = (&batch[at], placed[at], base + at as i64);
        let day = day_text.of(r.day);
        outcomes.push(match fates[at] {
            fate @ (Fate::New | Fate::Unhashed) => {
                let hash = (fate == Fate::New).then_some(hashes[at]);
                insert_one.execute((
                    row,
                    set.id,
                    hash,
                    &r.key,
                    day,
                    &r.sort_key,
                    p.seg,
                    p.off,
                    p.len,
                ))?;
                if hash.is_none() {
                    set.collided.insert(r.key.clone(), row);
                }
                StoreOutcome::Loaded
            }
            Fate::Replace(row) => {
                freed.execute([row])?;
                update.execute((day, &r.sort_key, p.seg, p.off, p.len, row))?;
                StoreOutcome::Replaced
            }
        });
        at += 1;
    }
    set.next_row = base + batch.len() as i64;
    Ok(outcomes)
}

/// Binds a row's day, sort key and line position (segment, offset, length)
/// to five parameters from `param` on.
fn bind_place(
    stmt: &mut rusqlite::CachedStatement<'_>,
    param: usize,
    day: &str,
    r: &Record,
    p: Placed,
) -> rusqlite::Result<()> {
    stmt.raw_bind_parameter(param, day)?;
    stmt.raw_bind_parameter(param + 1, &r.sort_key)?;
    stmt.raw_bind_parameter(param + 2, p.seg)?;
    stmt.raw_bind_parameter(param + 3, p.off)?;
    stmt.raw_bind_parameter(param + 4, p.len)
}

/// A day's text, made once for each run of records on that day.
#[derive(Default)]
struct DayText(Option<(Day, String)>);

impl DayText {
    fn of(&mut self, day: Day) -> &str {
        match self.0 {
            Some((d, _)) if d == day => {}
            _ => self.0 = Some((day, day.to_string())),
        }
        &self.0.as_ref().expect("just set").1
    }
}

/// One batch in one PostgreSQL transaction; a record with a known key replaces
/// the old one. Existing keys are looked up per batch and rows are written
/// with multi-row upserts, so a batch costs a few statements, not two per record.
async fn store_postgres(
    pool: &sqlx::PgPool,
    account_sid: &str,
    rt: ResourceType,
    batch: &[Record],
) -> Result<Vec<StoreOutcome>> {
    let unique = last_of_each_key(batch);
    let mut tx = pool.begin().await?;
    let mut existing: HashSet<String> = HashSet::new();
    for chunk in unique.chunks(ROWS_PER_STATEMENT) {
        let marks: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 3)).collect();
        let sql = format!(
            "SELECT record_key FROM records WHERE account_sid = $1 AND resource_type = $2 AND record_key IN ({})",
            marks.join(", ")
        );
        let mut q = sqlx::query_scalar::<_, String>(&sql)
            .bind(account_sid)
            .bind(rt.as_str());
        for r in chunk {
            q = q.bind(&r.key);
        }
        existing.extend(q.fetch_all(&mut *tx).await?);
    }
    for chunk in unique.chunks(ROWS_PER_STATEMENT) {
        let rows: Vec<String> = (0..chunk.len())
            .map(|i| {
                let m: Vec<String> = (1..=6).map(|k| format!("${}", i * 6 + k)).collect();
                format!("({})", m.join(", "))
            })
            .collect();
        let sql = format!(
            "INSERT INTO records (account_sid, resource_type, record_key, day, sort_key, line) VALUES {} \
             ON CONFLICT (account_sid, resource_type, record_key) DO UPDATE SET day = excluded.day, \
             sort_key = excluded.sort_key, line = excluded.line",
            rows.join(", ")
        );
        let mut q = sqlx::query(&sql);
        for r in chunk {
            q = q
                .bind(account_sid)
                .bind(rt.as_str())
                .bind(&r.key)
                .bind(r.day.to_string())
                .bind(&r.sort_key)
                .bind(&r.line);
        }
        q.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(outcomes(batch, &existing))
}

/// The writer's connection: the pool's settings (WAL, NORMAL sync, busy
/// timeout) plus the loading cache.
fn open_writer(file: &std::path::Path) -> Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open_with_flags(
        file,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)?;
    Ok(conn)
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
                    Ok::<_, super::Error>((conn, segment))
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
            super::Pool::Postgres(pool) => Target::Postgres(pool.clone()),
        };
        Ok(RecordWriter {
            account_sid: account_sid.to_string(),
            rt,
            target,
        })
    }

    /// Up to `limit` day-file lines of one day after `after` (a sort key), in
    /// file order, joined by newlines by PostgreSQL itself: one row crosses
    /// the driver per page instead of one per record. Returns the text, the
    /// last sort key and how many lines it holds; None when no line is left.
    pub async fn day_page(
        &self,
        account_sid: &str,
        rt: ResourceType,
        day: Day,
        after: &str,
        limit: i64,
    ) -> Result<Option<(String, String, i64)>> {
        let super::Pool::Postgres(pool) = &self.pool else {
            return Err(super::Error::Misuse(
                "day pages are for PostgreSQL; a SQLite day is read with scan_day_sqlite",
            ));
        };
        let sql = format!(
            "SELECT string_agg(line, E'\\n' ORDER BY sort_key), MAX(sort_key), COUNT(*) FROM (\
             SELECT line, sort_key FROM records WHERE {} AND day = $3 \
             AND NOT export_deleted AND sort_key > $4 ORDER BY sort_key LIMIT $5) AS page",
            self.record_set()
        );
        let row: (Option<String>, Option<String>, i64) = sqlx::query_as(&sql)
            .bind(account_sid)
            .bind(rt.as_str())
            .bind(day.to_string())
            .bind(after)
            .bind(limit)
            .fetch_one(pool)
            .await?;
        Ok(match row {
            (Some(text), Some(last), n) if n > 0 => Some((text, last, n)),
            _ => None,
        })
    }

    /// The condition on `records` that selects the records of account `$1`
    /// and resource type `$2`: on SQLite through their record set (see
    /// migration `0007_record_sets.sql`), on PostgreSQL by the columns.
    pub(super) fn record_set(&self) -> &'static str {
        match self.pool {
            super::Pool::Sqlite(_) => {
                "set_id = (SELECT id FROM record_sets WHERE account_sid = $1 AND resource_type = $2)"
            }
            super::Pool::Postgres(_) => "account_sid = $1 AND resource_type = $2",
        }
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
        let sql = format!(
            "SELECT COUNT(*) FROM records WHERE {} AND day = $3 AND NOT export_deleted",
            self.record_set()
        );
        Ok(with_pool!(self, |pool| sqlx::query_scalar(&sql)
            .bind(account_sid)
            .bind(rt.as_str())
            .bind(day.to_string())
            .fetch_one(pool)
            .await)?)
    }
}

/// One day's lines in order, each followed by a newline, read from the SQLite
/// file and its line segments on the calling thread through one statement
/// (one snapshot) and handed to `chunk` in pieces of at least `chunk_bytes`.
/// Returns the number of records, or stops early (returning what was read)
/// when `chunk` returns false.
///
/// Exports use this instead of the sqlx pool: sqlx's SQLite driver moves each
/// row (or each aggregated page) through its worker thread, which cost about
/// five times SQLite's own scan; a day export is one long sequential read that
/// belongs on a blocking thread. rusqlite links the same libsqlite3-sys as sqlx.
/// Lines that follow each other in a segment (a day loaded in order) are read
/// as one range, straight into the chunk.
pub fn scan_day_sqlite(
    file: &std::path::Path,
    account_sid: &str,
    rt: ResourceType,
    day: Day,
    chunk_bytes: usize,
    mut chunk: impl FnMut(Vec<u8>) -> bool,
) -> Result<u64> {
    use rusqlite::{Connection, OpenFlags};
    // Before the query: no sweep erases what its rows point at until it is done.
    let mut lines = Lines::beside(file).reader()?;
    let conn = Connection::open_with_flags(
        file,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    let mut stmt = conn.prepare(
        "SELECT line, line_seg, line_off, line_len FROM records WHERE set_id = (SELECT id FROM record_sets \
         WHERE account_sid = ?1 AND resource_type = ?2) AND day = ?3 AND NOT export_deleted ORDER BY sort_key",
    )?;
    let mut rows = stmt.query((account_sid, rt.as_str(), day.to_string()))?;
    let mut records = 0u64;
    let mut buf: Vec<u8> = Vec::with_capacity(chunk_bytes + 64 * 1024);
    // A range of one segment (start, end) not read into `buf` yet.
    let mut pending: Option<(i64, i64, i64)> = None;
    while let Some(row) = rows.next()? {
        match row.get::<_, Option<i64>>(1)? {
            Some(seg) => {
                let (off, len): (i64, i64) = (row.get(2)?, row.get(3)?);
                match &mut pending {
                    Some((s, _, end)) if *s == seg && *end == off => *end = off + len + 1,
                    _ => {
                        read_pending(&mut lines, pending.take(), &mut buf)?;
                        pending = Some((seg, off, off + len + 1));
                    }
                }
            }
            None => {
                read_pending(&mut lines, pending.take(), &mut buf)?;
                if let rusqlite::types::ValueRef::Text(line) = row.get_ref(0)? {
                    buf.extend_from_slice(line);
                }
                buf.push(b'\n');
            }
        }
        records += 1;
        let waiting = pending.map_or(0, |(_, start, end)| (end - start) as usize);
        if buf.len() + waiting >= chunk_bytes {
            read_pending(&mut lines, pending.take(), &mut buf)?;
            let full = std::mem::replace(&mut buf, Vec::with_capacity(chunk_bytes + 64 * 1024));
            if !chunk(full) {
                return Ok(records);
            }
        }
    }
    read_pending(&mut lines, pending, &mut buf)?;
    if !buf.is_empty() {
        chunk(buf);
    }
    Ok(records)
}

fn read_pending(
    lines: &mut LineReader,
    pending: Option<(i64, i64, i64)>,
    buf: &mut Vec<u8>,
) -> Result<()> {
    if let Some((seg, start, end)) = pending {
        lines.read(seg, start, (end - start) as usize, buf)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(n: u32, body: &str) -> Record {
        Record {
            key: format!("SM{n:032x}"),
            day: Day::parse("2024-06-01").unwrap(),
            sort_key: format!("2024-06-01T00:00:00Z|SM{n:032x}"),
            line: format!("{{\"sid\":\"SM{n:032x}\",\"body\":\"{body}\"}}"),
        }
    }

    /// The pool of a SQLite `db`, for a test's own statements.
    fn sqlite_pool(db: &Db) -> &sqlx::SqlitePool {
        match &db.pool {
            super::super::Pool::Sqlite(p) => p,
            super::super::Pool::Postgres(_) => unreachable!("a SQLite database"),
        }
    }

    /// A writer of account AC1's Messages.
    async fn messages_writer(db: &Db) -> RecordWriter {
        db.record_writer("AC1", ResourceType::Messages)
            .await
            .unwrap()
    }

    /// A migrated SQLite database in a directory that lives as long as the
    /// returned guard.
    async fn migrated_sqlite() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&format!("sqlite://{}/t.db", dir.path().display()))
            .await
            .unwrap();
        db.migrate().await.unwrap();
        (dir, db)
    }

    /// The day's lines, read the way an export reads them.
    fn day_lines(file: &std::path::Path, day: Day) -> Vec<String> {
        let mut lines = Vec::new();
        scan_day_sqlite(file, "AC1", ResourceType::Messages, day, 1, |c| {
            lines.push(String::from_utf8(c).unwrap());
            true
        })
        .unwrap();
        lines
    }

    /// What the pool (any other connection) sees of the day.
    async fn stored(db: &Db) -> i64 {
        let day = Day::parse("2024-06-01").unwrap();
        db.count_records("AC1", ResourceType::Messages, day)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_sqlite_writer_reports_records_as_it_commits_them_and_a_dropped_one_keeps_only_those()
    {
        use StoreOutcome::{Loaded, Replaced};
        let (_dir, db) = migrated_sqlite().await;
        let mut w = messages_writer(&db).await;
        let Target::Sqlite(Some(load)) = &mut w.target else {
            panic!("a SQLite database gets a SQLite writer");
        };
        load.commit_every = 4;

        assert_eq!(w.store(vec![]).await.unwrap(), vec![]);
        let first = w.store(vec![message(1, "a"), message(2, "a")]).await;
        assert_eq!(first.unwrap(), vec![], "nothing committed yet");
        assert_eq!(stored(&db).await, 0, "other connections see nothing yet");

        // Reaching four records commits both batches and reports them; a key
        // stored earlier in the open transaction counts as replaced.
        let second = w.store(vec![message(2, "b"), message(3, "b")]).await;
        assert_eq!(second.unwrap(), vec![Loaded, Loaded, Replaced, Loaded]);
        assert_eq!(stored(&db).await, 3);

        let third = w.store(vec![message(4, "c"), message(1, "c")]).await;
        assert_eq!(third.unwrap(), vec![], "below the threshold again");
        drop(w);
        assert_eq!(
            stored(&db).await,
            3,
            "a dropped writer's open transaction is rolled back"
        );

        let mut w = messages_writer(&db).await;
        w.group_commits();
        let fourth = w.store(vec![message(4, "d"), message(1, "d")]).await;
        assert_eq!(fourth.unwrap(), vec![]);
        assert_eq!(
            w.finish().await.unwrap(),
            vec![Loaded, Replaced],
            "finish commits the rest"
        );
        assert_eq!(stored(&db).await, 4);

        // Without grouped commits, each batch commits on its own.
        let mut w = messages_writer(&db).await;
        let fifth = w.store(vec![message(5, "e"), message(2, "e")]).await;
        assert_eq!(fifth.unwrap(), vec![Loaded, Replaced]);
        assert_eq!(stored(&db).await, 5, "committed before finish");
        assert_eq!(w.finish().await.unwrap(), vec![]);
        let file = db.sqlite_file().unwrap();
        let day = Day::parse("2024-06-01").unwrap();
        let lines = day_lines(&file, day);
        let bodies: Vec<&str> = lines.iter().map(|l| &l[l.len() - 4..l.len() - 3]).collect();
        assert_eq!(
            bodies,
            ["d", "e", "b", "d", "e"],
            "the last version of each record"
        );

        // A key repeated in a batch is loaded by its first occurrence and
        // left holding its last; outcomes come back in batch order.
        let mut w = messages_writer(&db).await;
        let sixth = w
            .store(vec![message(7, "f"), message(7, "g"), message(6, "f")])
            .await;
        assert_eq!(sixth.unwrap(), vec![Loaded, Replaced, Loaded]);
        w.finish().await.unwrap();
        let lines = day_lines(&file, day);
        assert_eq!(lines.len(), 7);
        assert!(lines[6].contains(&format!("SM{:032x}\",\"body\":\"g", 7)));
    }

    /// Two SIDs of `prefix` whose hashes are equal: they differ only in hex
    /// digits the hash leaves out.
    fn colliding(prefix: &str) -> (String, String) {
        let a = format!("{prefix}0123456700000000cafebabe00000000");
        let b = format!("{prefix}01234567ffffffffcafebabe12345678");
        assert_eq!(key_hash(&a), key_hash(&b));
        (a, b)
    }

    fn record(key: &str, body: &str) -> Record {
        Record {
            key: key.to_string(),
            day: Day::parse("2024-06-01").unwrap(),
            sort_key: format!("2024-06-01T00:00:00Z|{key}"),
            line: format!("{{\"sid\":\"{key}\",\"body\":\"{body}\"}}"),
        }
    }

    #[test]
    fn the_hash_takes_both_halves_of_a_sid_and_both_sids_of_a_participant() {
        assert_eq!(
            key_hash("SM0123456789abcdefABCDEF0123456789") as u64,
            0x0123_4567_abcd_ef01,
            "upper-case hex counts as lower-case"
        );
        let participant = format!(
            "CF00000001{}/CA{}00000002{}",
            "0".repeat(24),
            "0".repeat(16),
            "0".repeat(8)
        );
        assert_eq!(key_hash(&participant) as u64, 0x0000_0001_0000_0002);
        assert_eq!(key_hash("") as u64, 0, "short keys are hashed too");
    }

    /// Two calls whose keys share a hash, stored with these bodies.
    async fn stored_calls(db: &Db, bodies: [&str; 2]) -> (String, String) {
        let (c, d) = colliding("CA");
        let mut w = db.record_writer("AC1", ResourceType::Calls).await.unwrap();
        w.store(vec![record(&c, bodies[0]), record(&d, bodies[1])])
            .await
            .unwrap();
        w.finish().await.unwrap();
        (c, d)
    }

    #[tokio::test]
    async fn keys_that_share_a_hash_are_stored_and_replaced_apart() {
        use StoreOutcome::{Loaded, Replaced};
        let (_dir, db) = migrated_sqlite().await;
        let (a, b) = colliding("SM");
        let mut w = messages_writer(&db).await;
        let first = w.store(vec![record(&a, "1"), record(&b, "1")]).await;
        assert_eq!(first.unwrap(), vec![Loaded, Loaded]);
        let again = w.store(vec![record(&b, "2"), record(&a, "2")]).await;
        assert_eq!(again.unwrap(), vec![Replaced, Replaced]);
        w.finish().await.unwrap();
        // A new writer finds the key stored without a hash.
        let mut w = messages_writer(&db).await;
        let third = w.store(vec![record(&b, "3")]).await;
        assert_eq!(third.unwrap(), vec![Replaced]);
        w.finish().await.unwrap();
        let lines = day_lines(
            &db.sqlite_file().unwrap(),
            Day::parse("2024-06-01").unwrap(),
        );
        assert_eq!(lines.len(), 2);
        assert!(lines
            .iter()
            .any(|l| l.contains(&a) && l.contains("\"body\":\"2")));
        assert!(lines
            .iter()
            .any(|l| l.contains(&b) && l.contains("\"body\":\"3")));

        // Calls are found, hidden and deleted by their own key.
        let (c, d) = stored_calls(&db, ["c", "d"]).await;
        let found = db.find_call("AC1", &d).await.unwrap().unwrap();
        assert!(found.line.contains(&d));
        db.hide_call_resource("AC1", &d).await.unwrap();
        assert!(db.find_call("AC1", &d).await.unwrap().unwrap().rest_deleted);
        assert!(!db.find_call("AC1", &c).await.unwrap().unwrap().rest_deleted);
        let other = colliding("CA").0.replace("cafebabe", "cafebab0");
        assert!(db.find_call("AC1", &other).await.unwrap().is_none());
    }

    /// A load of records stored before replaces them many rows at a time; a
    /// record given twice is replaced twice, the later last, and each old
    /// line is freed once.
    #[tokio::test]
    async fn a_reload_replaces_rows_many_at_a_time() {
        let (_dir, db) = migrated_sqlite().await;
        let mut w = messages_writer(&db).await;
        let first: Vec<Record> = (0..300).map(|n| spread(n, "1")).collect();
        w.store(first).await.unwrap();
        let mut again: Vec<Record> = (0..300).map(|n| spread(n, "2")).collect();
        again.insert(160, spread(150, "3")); // in the statement of its first time
        again.insert(200, spread(5, "3")); // in a later one
        let outcomes = w.store(again).await.unwrap();
        assert_eq!(outcomes, vec![StoreOutcome::Replaced; 302]);
        w.finish().await.unwrap();
        let lines = day_lines(
            &db.sqlite_file().unwrap(),
            Day::parse("2024-06-01").unwrap(),
        );
        assert_eq!(lines.len(), 300);
        for n in [5, 150] {
            let found: Vec<&String> = lines
                .iter()
                .filter(|l| l.contains(&spread(n, "").key))
                .collect();
            assert_eq!(found.len(), 1);
            assert!(found[0].contains("\"body\":\"3"), "{found:?}");
        }
        assert_eq!(
            lines.iter().filter(|l| l.contains("\"body\":\"2")).count(),
            298
        );
        assert_eq!(db.line_garbage().await.unwrap(), 302);
    }

    /// Of two new keys with one hash in a batch, the first takes the hash;
    /// the second, given twice, is stored once, without it, and replaced.
    #[tokio::test]
    async fn a_key_without_a_hash_given_twice_in_one_batch_is_stored_once() {
        use StoreOutcome::{Loaded, Replaced};
        let (_dir, db) = migrated_sqlite().await;
        let (a, b) = colliding("SM");
        let mut w = messages_writer(&db).await;
        let batch = vec![record(&a, "1"), record(&b, "1"), record(&b, "2")];
        assert_eq!(
            w.store(batch).await.unwrap(),
            vec![Loaded, Loaded, Replaced]
        );
        let again = w.store(vec![record(&b, "3"), record(&a, "3")]).await;
        assert_eq!(again.unwrap(), vec![Replaced, Replaced]);
        w.finish().await.unwrap();
        let lines = day_lines(
            &db.sqlite_file().unwrap(),
            Day::parse("2024-06-01").unwrap(),
        );
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines.iter().all(|l| l.contains("\"body\":\"3")));
        let keys: Vec<(Option<i64>, String)> = sqlx::query_as(
            "SELECT k.key_hash, r.record_key FROM records r LEFT JOIN record_keys k ON k.row = r.rowid \
             ORDER BY r.rowid",
        )
        .fetch_all(sqlite_pool(&db))
        .await
        .unwrap();
        assert_eq!(keys, vec![(Some(key_hash(&a)), a), (None, b)]);
    }

    /// A message whose key's hash is `n` (in its first half).
    fn spread(n: u32, body: &str) -> Record {
        record(&format!("SM{n:08x}{}{n:08x}", "0".repeat(16)), body)
    }

    /// The day as an export reads it, in chunks of at least `chunk_bytes`.
    fn day_text(file: &std::path::Path, chunk_bytes: usize) -> String {
        let mut text = String::new();
        let day = Day::parse("2024-06-01").unwrap();
        scan_day_sqlite(file, "AC1", ResourceType::Messages, day, chunk_bytes, |c| {
            text.push_str(std::str::from_utf8(&c).unwrap());
            true
        })
        .unwrap();
        text
    }

    fn segment_bytes(file: &std::path::Path) -> Vec<u8> {
        let mut all = Vec::new();
        for entry in std::fs::read_dir(Lines::beside(file).dir()).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "seg") {
                all.extend(std::fs::read(path).unwrap());
            }
        }
        all
    }

    fn count(haystack: &[u8], needle: &str) -> usize {
        haystack
            .windows(needle.len())
            .filter(|w| *w == needle.as_bytes())
            .count()
    }

    /// Rows go in many at a time; what each record did, and what is stored,
    /// is what storing them one at a time gives: new keys, known keys, a key
    /// twice in one statement, and a key whose hash another key holds. The
    /// lines of replaced records are erased by a sweep, but not while a
    /// reader that could still see them holds the lock; rows that keep their
    /// line (stored before segments) are read in their place.
    #[tokio::test]
    async fn rows_stored_many_at_a_time_match_one_at_a_time_and_dead_lines_are_swept() {
        use StoreOutcome::{Loaded, Replaced};
        let (_dir, db) = migrated_sqlite().await;
        let file = db.sqlite_file().unwrap();
        let (a, b) = colliding("SM");
        let mut w = messages_writer(&db).await;
        let mut first: Vec<Record> = (0..300).map(|n| spread(n, "1")).collect();
        first.insert(10, record(&a, "1"));
        let stored = w.store(first).await.unwrap();
        assert_eq!(stored, vec![Loaded; 301]);
        let mut second: Vec<Record> = (150..450).map(|n| spread(n, "2")).collect();
        second.insert(60, spread(200, "2b")); // 200 again, in the same statement
        second.insert(70, record(&b, "2")); // a's hash, another key
        let mut expected = vec![Replaced; 150];
        expected.extend(vec![Loaded; 150]);
        expected.insert(60, Replaced);
        expected.insert(70, Loaded);
        assert_eq!(w.store(second).await.unwrap(), expected);
        w.finish().await.unwrap();

        // A row stored before segments existed keeps its line in the row.
        let inline_key = format!("SM{:08x}{}{:08x}a", 100, "0".repeat(16), 100);
        sqlx::query(
            "INSERT INTO records (set_id, key_hash, record_key, day, sort_key, line) \
             SELECT id, NULL, $1, '2024-06-01', $2, $3 FROM record_sets WHERE account_sid = 'AC1'",
        )
        .bind(&inline_key)
        .bind(format!("2024-06-01T00:00:00Z|{inline_key}"))
        .bind(format!("{{\"sid\":\"{inline_key}\",\"inline\":true}}"))
        .execute(sqlite_pool(&db))
        .await
        .unwrap();

        let text = day_text(&file, 1);
        assert_eq!(
            text,
            day_text(&file, 1 << 20),
            "ranges read whole give the same bytes"
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 450 + 2 + 1);
        let body_of = |key: &str| {
            let line = lines
                .iter()
                .find(|l| l.contains(&format!("\"{key}\"")))
                .unwrap();
            line.split("\"body\":\"")
                .nth(1)
                .map(|b| b.trim_end_matches("\"}").to_string())
        };
        assert_eq!(body_of(&spread(149, "").key).as_deref(), Some("1"));
        assert_eq!(body_of(&spread(150, "").key).as_deref(), Some("2"));
        assert_eq!(
            body_of(&spread(200, "").key).as_deref(),
            Some("2b"),
            "the later 200 wins"
        );
        assert_eq!(body_of(&a).as_deref(), Some("1"));
        assert_eq!(body_of(&b).as_deref(), Some("2"));
        let inline_at = lines
            .iter()
            .position(|l| l.contains("\"inline\":true"))
            .unwrap();
        assert!(lines[inline_at - 1].contains(&spread(100, "").key));

        // The 150 lines replaced, and the earlier 200 of the second batch, are dead.
        assert_eq!(db.line_garbage().await.unwrap(), 151);
        let old = format!("\"sid\":\"{}\",\"body\":\"1\"", spread(150, "").key);
        assert_eq!(count(&segment_bytes(&file), &old), 1);
        let reading = Lines::beside(&file).reader().unwrap();
        assert_eq!(
            db.sweep_lines().await.unwrap(),
            0,
            "a reader holds the lock"
        );
        assert_eq!(db.line_garbage().await.unwrap(), 151);
        drop(reading);
        assert_eq!(db.sweep_lines().await.unwrap(), 151);
        assert_eq!(db.line_garbage().await.unwrap(), 0);
        let segments = segment_bytes(&file);
        assert_eq!(count(&segments, &old), 0, "the replaced line is erased");
        let earlier_200 = format!("\"sid\":\"{}\",\"body\":\"2\"", spread(200, "").key);
        assert_eq!(count(&segments, &earlier_200), 0);
        assert_eq!(count(&segments, "\"body\":\"2b\""), 1);
        assert_eq!(day_text(&file, 1 << 20), text, "live lines are untouched");
    }

    /// A call removed by a deletion leaves nothing of its line once swept.
    #[tokio::test]
    async fn a_deleted_calls_line_is_erased_by_the_sweep() {
        let (_dir, db) = migrated_sqlite().await;
        let (c, d) = stored_calls(&db, ["kept", "secret"]).await;
        let file = db.sqlite_file().unwrap();
        assert_eq!(count(&segment_bytes(&file), &d), 1);
        let deletion = super::super::DeletionRow {
            account_sid: "AC1".into(),
            call_sid: d.clone(),
            source: "archive".into(),
            day: "2024-06-01".into(),
            requested_at: 0,
            applied_at: None,
            outcome: None,
        };
        db.apply_deletion(&deletion, true, "deleted", 1)
            .await
            .unwrap();
        assert!(db.find_call("AC1", &d).await.unwrap().is_none());
        assert_eq!(db.sweep_lines().await.unwrap(), 1);
        let segments = segment_bytes(&file);
        assert_eq!(count(&segments, &d), 0);
        assert_eq!(count(&segments, "secret"), 0);
        assert!(db
            .find_call("AC1", &c)
            .await
            .unwrap()
            .unwrap()
            .line
            .contains("kept"));

        // The hashed call goes too, and its key with it: loaded again, it is new.
        let deletion = super::super::DeletionRow {
            call_sid: c.clone(),
            ..deletion
        };
        db.apply_deletion(&deletion, true, "deleted", 2)
            .await
            .unwrap();
        let keys: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM record_keys")
            .fetch_one(sqlite_pool(&db))
            .await
            .unwrap();
        assert_eq!(keys, 0);
        let mut w = db.record_writer("AC1", ResourceType::Calls).await.unwrap();
        let stored = w.store(vec![record(&c, "back")]).await.unwrap();
        assert_eq!(stored, vec![StoreOutcome::Loaded]);
        w.finish().await.unwrap();
        let found = db.find_call("AC1", &c).await.unwrap().unwrap();
        assert!(found.line.contains("back"));
    }

    /// Migration 0007 moves the rows of the text-keyed table and computes in
    /// SQL the hash [`key_hash`] computes; of two keys with one hash, one
    /// keeps it and the other is stored without. Migration 0009 moves the
    /// hashes to `record_keys`.
    #[test]
    fn the_migration_keeps_every_record_and_hashes_keys_as_the_writer_does() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        for sql in [
            include_str!("../../migrations/sqlite/0001_init.sql"),
            include_str!("../../migrations/sqlite/0002_counters.sql"),
            include_str!("../../migrations/sqlite/0003_deliveries.sql"),
            include_str!("../../migrations/sqlite/0004_daily_exports.sql"),
            include_str!("../../migrations/sqlite/0005_users.sql"),
            include_str!("../../migrations/sqlite/0006_call_deletions.sql"),
        ] {
            conn.execute_batch(sql).unwrap();
        }
        let (a, b) = colliding("SM");
        let rows = [
            ("AC1", "Messages", a.clone(), false),
            ("AC1", "Messages", b.clone(), false),
            (
                "AC1",
                "Messages",
                "SM0123456789ABCDEF0123456789abcdef".to_string(),
                false,
            ),
            ("AC2", "Messages", a.clone(), false),
            (
                "AC1",
                "Calls",
                "CA00000000111111112222222233333333".to_string(),
                true,
            ),
            (
                "AC1",
                "Participants",
                "CF0123456789abcdef0123456789abcdef/CAfedcba9876543210fedcba9876543210".to_string(),
                false,
            ),
        ];
        for (account, rt, key, deleted) in &rows {
            conn.execute(
                "INSERT INTO records (account_sid, resource_type, record_key, day, sort_key, line, export_deleted) \
                 VALUES (?1, ?2, ?3, '2024-06-01', ?3, ?3, ?4)",
                (account, rt, key, deleted),
            )
            .unwrap();
        }
        conn.execute_batch(include_str!("../../migrations/sqlite/0007_record_sets.sql"))
            .unwrap();
        let mut stmt = conn
            .prepare(
                "SELECT s.account_sid, s.resource_type, r.record_key, r.key_hash, r.export_deleted, r.line \
                 FROM records r JOIN record_sets s ON s.id = r.set_id",
            )
            .unwrap();
        let moved: Vec<(String, String, String, Option<i64>, bool, String)> = stmt
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(moved.len(), rows.len());
        for (account, rt, key, deleted) in &rows {
            let m = moved
                .iter()
                .find(|m| m.0 == *account && m.1 == *rt && m.2 == *key)
                .unwrap();
            assert_eq!((m.4, m.5.as_str()), (*deleted, key.as_str()));
            if !(account == &"AC1" && key == &b) {
                assert_eq!(m.3, Some(key_hash(key)), "{key}");
            } else {
                assert_eq!(m.3, None, "the second key with one hash in a set");
            }
        }

        // Migration 0009 points each hash at its row; a removed row takes its key along.
        for sql in [
            include_str!("../../migrations/sqlite/0008_line_segments.sql"),
            include_str!("../../migrations/sqlite/0009_record_keys.sql"),
        ] {
            conn.execute_batch(sql).unwrap();
        }
        let unpointed = "SELECT COUNT(*) FROM records r WHERE key_hash IS NOT NULL AND NOT EXISTS \
             (SELECT 1 FROM record_keys k WHERE k.key_hash = r.key_hash AND k.set_id = r.set_id AND k.row = r.rowid)";
        let count = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
        assert_eq!(count(unpointed), 0);
        assert_eq!(
            count("SELECT COUNT(*) FROM record_keys"),
            rows.len() as i64 - 1
        );
        conn.execute("DELETE FROM records WHERE record_key = ?1", [&a])
            .unwrap();
        assert_eq!(
            count("SELECT COUNT(*) FROM record_keys"),
            rows.len() as i64 - 3
        );
        assert_eq!(count(unpointed), 0);
    }
}
