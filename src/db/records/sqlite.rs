//! The SQLite side of the bulk writer: its own connection on a blocking
//! thread, keys in hash order into `record_keys`, rows in input order, lines
//! appended to the writer's segment (see the invariants in [`super`]).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use super::keys::key_hash;
use super::StoreOutcome;
use crate::db::lines::{Placed, SegmentWriter};
use crate::db::Result;
use crate::domain::record::Record;
use crate::domain::{Day, ResourceType};

/// Page cache of a SQLite record writer's own connection. A batch inserts
/// keys all over `record_keys`; when its pages stay cached, each is read
/// once per load instead of once per batch. The connection, and
/// this memory, lives only as long as one load.
pub(super) const WRITER_CACHE_KIB: i64 = 64 * 1024;

/// Records a SQLite writer with grouped commits (see
/// [`RecordWriter::group_commits`]) stores per transaction, across batches. A
/// commit writes every page the transaction touched to the WAL, and random
/// keys touch most of the key index (`record_keys`), so fewer commits write
/// less; past 500,000 the gain is within the noise. Other writers wait at
/// most one transaction, about 2 s.
pub(super) const SQLITE_COMMIT_EVERY: usize = 500_000;

/// Rows per multi-row insert of a SQLite writer (9 parameters each; keys 3).
pub(super) const SQLITE_ROWS_PER_INSERT: usize = 128;

/// A SQLite writer's connection and the outcomes of what its open
/// transaction holds, reported when that commits.
pub(super) struct SqliteLoad {
    pub(super) conn: rusqlite::Connection,
    /// Where this writer appends its records' lines (see [`super::lines`]).
    pub(super) segment: SegmentWriter,
    pub(super) uncommitted: Vec<StoreOutcome>,
    /// Commit once this many records are uncommitted: 1 (every batch) or
    /// [`SQLITE_COMMIT_EVERY`].
    pub(super) commit_every: usize,
    /// The record set and its keys stored without a hash, read when the
    /// open transaction began (None while none is open).
    pub(super) set: Option<SqliteSet>,
}

/// What a SQLite writer knows of its record set inside a transaction.
pub(super) struct SqliteSet {
    pub(super) id: i64,
    /// Keys whose hash another key of the set holds, stored with a NULL
    /// `key_hash`, and their rows. Almost always empty: SIDs are random.
    pub(super) collided: HashMap<String, i64>,
    /// The rowid of the next new row. The writer numbers rows itself, in
    /// batch order, so that a key points at its row before the row is
    /// written (see [`store_sqlite`]); it holds the write lock meanwhile.
    pub(super) next_row: i64,
}

impl SqliteLoad {
    pub(super) fn store(
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
    pub(super) fn commit(&mut self) -> Result<Vec<StoreOutcome>> {
        if !self.conn.is_autocommit() {
            let committed = self
                .segment
                .sync()
                .map_err(crate::db::Error::from)
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
    pub(super) fn abandon(&mut self) {
        self.uncommitted.clear();
        self.set = None;
        let _ = self.conn.execute_batch("ROLLBACK");
        self.segment.rewind();
    }
}

/// The writer's record set, created on first use, and its keys stored
/// without a hash; read inside the open transaction, so no other writer
/// changes them until it ends.
pub(super) fn open_set(
    conn: &rusqlite::Connection,
    account_sid: &str,
    rt: ResourceType,
) -> Result<SqliteSet> {
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
pub(super) enum Fate {
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
/// distinct rows per `UPDATE … FROM (VALUES …)` (a reload took half the time
/// of one row at a time).
pub(super) fn store_sqlite(
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
pub(super) struct BatchKeys {
    hashes: Vec<i64>,
    by_hash: Vec<(i64, usize)>,
}

impl BatchKeys {
    pub(super) fn of(batch: &[Record]) -> BatchKeys {
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
                return Err(crate::db::Error::Misuse(
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

/// The writer's connection: the pool's settings (WAL, NORMAL sync, busy
/// timeout) plus the loading cache.
pub(super) fn open_writer(file: &std::path::Path) -> Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open_with_flags(
        file,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)?;
    Ok(conn)
}
