//! Day-file lines of SQLite records, kept outside the database file.
//!
//! A bulk load appends each record's line (and a newline) to a segment file
//! in `<database>-lines/` and stores in the row only where it is (migration
//! `0008_line_segments.sql`). Inside the database every line was written
//! twice, to the WAL and then by the checkpoint; here it is written once, and
//! an export reads a day loaded in order as a few long ranges.
//!
//! What keeps it safe:
//! - Only the writer holding a segment's file lock appends to it. It syncs
//!   what it appended before the commit whose rows point there, and that
//!   commit records the segment's committed length; the next writer cuts off
//!   anything past it (left by a writer that died or rolled back).
//! - Bytes a committed row points at never change while a reader may use
//!   them. Every reader holds the directory's lock shared from before its
//!   query until it has read the lines. A range that no row uses any more is
//!   listed in `line_garbage` by the transaction that freed it, and a sweep
//!   erases it only while holding the lock exclusively: every reader that
//!   could still see the old row has finished by then.
//!
//! The segments are plain files written through `std::fs` and `pwrite`; no
//! crate keeps append-only blobs beside a SQLite database with these rules.

use std::collections::HashMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::Result;

/// A writer appends to a segment holding less than this, else starts a new one.
const SEGMENT_CAP: i64 = 1 << 30;
/// Appended lines are written in pieces of about this size.
const WRITE_BUF: usize = 1 << 20;
/// Dead ranges erased per sweep.
const SWEEP_BATCH: i64 = 100_000;

/// Where a record's line is: `len` bytes of segment `seg` from `off`,
/// followed there by a newline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placed {
    pub seg: i64,
    pub off: i64,
    pub len: i64,
}

/// The segment directory of one SQLite database.
#[derive(Debug, Clone)]
pub struct Lines {
    dir: PathBuf,
}

impl Lines {
    /// The directory beside `db_file`: `<db_file>-lines`.
    pub fn beside(db_file: &Path) -> Lines {
        let mut name = db_file.as_os_str().to_owned();
        name.push("-lines");
        Lines {
            dir: PathBuf::from(name),
        }
    }

    /// The directory itself.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn segment(&self, id: i64) -> PathBuf {
        self.dir.join(format!("{id:08}.seg"))
    }

    fn lock_file(&self) -> io::Result<File> {
        std::fs::create_dir_all(&self.dir)?;
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(self.dir.join("lock"))
    }

    /// A reader; it waits while a sweep erases ranges. Take it before the
    /// query whose rows it reads.
    pub fn reader(&self) -> io::Result<LineReader> {
        let lock = self.lock_file()?;
        lock.lock_shared()?;
        Ok(self.reader_holding(lock))
    }

    /// A reader, or None when a sweep holds the lock right now.
    pub fn try_reader(&self) -> io::Result<Option<LineReader>> {
        let lock = self.lock_file()?;
        match lock.try_lock_shared() {
            Ok(()) => Ok(Some(self.reader_holding(lock))),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(e),
        }
    }

    fn reader_holding(&self, lock: File) -> LineReader {
        LineReader {
            lines: self.clone(),
            _lock: lock,
            open: HashMap::new(),
        }
    }

    /// Erases the dead ranges `garbage` (id, segment, offset, length; each
    /// range followed by its newline) if no reader holds the lock. Returns
    /// false, erasing nothing, when one does. Erasing punches a hole (the
    /// bytes read back as zeros and their blocks are freed), or writes zeros
    /// where the file system cannot punch; erasing a range twice is harmless.
    pub fn erase(&self, garbage: &[(i64, i64, i64, i64)]) -> io::Result<bool> {
        let lock = self.lock_file()?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Ok(false),
            Err(TryLockError::Error(e)) => return Err(e),
        }
        let mut ranges: Vec<(i64, u64, u64)> = garbage
            .iter()
            .map(|&(_, seg, off, len)| (seg, off as u64, (off + len + 1) as u64))
            .collect();
        ranges.sort_unstable();
        let mut merged: Vec<(i64, u64, u64)> = Vec::with_capacity(ranges.len());
        for (seg, start, end) in ranges {
            match merged.last_mut() {
                Some(last) if last.0 == seg && start <= last.2 => last.2 = last.2.max(end),
                _ => merged.push((seg, start, end)),
            }
        }
        let mut at = 0;
        while at < merged.len() {
            let seg = merged[at].0;
            let file = match OpenOptions::new().write(true).open(self.segment(seg)) {
                Ok(f) => Some(f),
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => return Err(e),
            };
            while at < merged.len() && merged[at].0 == seg {
                if let Some(f) = &file {
                    erase_range(f, merged[at].1, merged[at].2 - merged[at].1)?;
                }
                at += 1;
            }
            if let Some(f) = file {
                f.sync_data()?;
            }
        }
        Ok(true)
    }
}

fn erase_range(file: &File, off: u64, len: u64) -> io::Result<()> {
    use rustix::fs::FallocateFlags;
    let punch = FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE;
    match rustix::fs::fallocate(file, punch, off, len) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::OPNOTSUPP) => {
            let zeros = vec![0u8; len.min(WRITE_BUF as u64) as usize];
            let mut done = 0;
            while done < len {
                let n = (len - done).min(zeros.len() as u64) as usize;
                file.write_all_at(&zeros[..n], off + done)?;
                done += n as u64;
            }
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// Reads lines while holding the directory's lock shared.
pub struct LineReader {
    lines: Lines,
    _lock: File,
    open: HashMap<i64, File>,
}

impl LineReader {
    /// Appends `len` bytes of segment `seg` from `off` to `buf`.
    pub fn read(&mut self, seg: i64, off: i64, len: usize, buf: &mut Vec<u8>) -> io::Result<()> {
        let file = match self.open.entry(seg) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(File::open(self.lines.segment(seg))?)
            }
        };
        let start = buf.len();
        buf.resize(start + len, 0);
        let read = file.read_exact_at(&mut buf[start..], off as u64);
        if read.is_err() {
            buf.truncate(start);
        }
        read
    }

    /// The line at `placed`, as text.
    pub fn line(&mut self, placed: Placed) -> io::Result<String> {
        let mut buf = Vec::with_capacity(placed.len as usize);
        self.read(placed.seg, placed.off, placed.len as usize, &mut buf)?;
        String::from_utf8(buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }
}

/// The segment a writer appends to, with its file lock held.
pub(super) struct SegmentWriter {
    id: i64,
    file: File,
    /// Bytes that committed rows may point into.
    committed: u64,
    /// Bytes appended: written, or still in `buf`.
    end: u64,
    buf: Vec<u8>,
    /// The last write-back (see [`SegmentWriter::write_back`]), until the
    /// next sync collects it.
    write_back: Option<WriteBack>,
}

/// A sync of a segment started ahead of the commit that needs it.
enum WriteBack {
    Running(std::thread::JoinHandle<io::Result<()>>),
    /// Kept for the next sync to report: the kernel reports a failed write
    /// to one sync of the open file only.
    Failed(io::Error),
}

impl SegmentWriter {
    /// A segment to append to, found or made through `conn` outside any
    /// transaction: the newest one under [`SEGMENT_CAP`] that no other writer
    /// holds, cut to its committed length, or a new one.
    pub fn open(conn: &rusqlite::Connection, lines: &Lines) -> Result<SegmentWriter> {
        std::fs::create_dir_all(lines.dir())?;
        let candidates: Vec<i64> = conn
            .prepare(
                "SELECT id FROM line_segments WHERE committed_len < ?1 ORDER BY id DESC LIMIT 8",
            )?
            .query_map([SEGMENT_CAP], |row| row.get(0))?
            .collect::<std::result::Result<_, _>>()?;
        for id in candidates {
            if let Some(writer) = SegmentWriter::take(conn, lines, id)? {
                return Ok(writer);
            }
        }
        loop {
            conn.execute("INSERT INTO line_segments (committed_len) VALUES (0)", [])?;
            // Another writer may find the new row and take the segment before
            // this one does; it then holds it, and this one makes another.
            if let Some(writer) = SegmentWriter::take(conn, lines, conn.last_insert_rowid())? {
                return Ok(writer);
            }
        }
    }

    /// Segment `id` with its file lock, cut to its committed length, or None
    /// when another writer holds it.
    fn take(conn: &rusqlite::Connection, lines: &Lines, id: i64) -> Result<Option<SegmentWriter>> {
        let file = open_segment(&lines.segment(id))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Ok(None),
            Err(TryLockError::Error(e)) => return Err(e.into()),
        }
        // Read under the lock: nobody else commits to this segment now.
        let committed: i64 = conn.query_row(
            "SELECT committed_len FROM line_segments WHERE id = ?1",
            [id],
            |row| row.get(0),
        )?;
        file.set_len(committed as u64)?;
        if committed == 0 {
            // A new file's name is durable before any row names it.
            File::open(lines.dir())?.sync_all()?;
        }
        Ok(Some(SegmentWriter::holding(id, file, committed as u64)))
    }

    fn holding(id: i64, file: File, committed: u64) -> SegmentWriter {
        SegmentWriter {
            id,
            file,
            committed,
            end: committed,
            buf: Vec::with_capacity(WRITE_BUF + 64 * 1024),
            write_back: None,
        }
    }

    pub fn id(&self) -> i64 {
        self.id
    }

    /// Appends the records' lines, each with a newline; returns where they are.
    pub fn append_all(
        &mut self,
        records: &[crate::domain::record::Record],
    ) -> io::Result<Vec<Placed>> {
        records.iter().map(|r| self.append(&r.line)).collect()
    }

    /// Starts syncing what was written so far on a thread of its own, unless
    /// one is still at it. The kernel would otherwise hold the lines until
    /// the sync before the commit, which the writer and the parsing would
    /// then wait on; after these it finds them on disk. An error is reported by the next
    /// [`SegmentWriter::sync`].
    pub fn write_back(&mut self) {
        match &self.write_back {
            Some(WriteBack::Running(t)) if !t.is_finished() => return,
            Some(WriteBack::Failed(_)) => return,
            _ => {}
        }
        if let Err(e) = self.written_back() {
            self.write_back = Some(WriteBack::Failed(e));
            return;
        }
        // A clone that cannot be made only means no head start.
        if let Ok(file) = self.file.try_clone() {
            self.write_back = Some(WriteBack::Running(std::thread::spawn(move || {
                file.sync_data()
            })));
        }
    }

    /// Waits for the write-back under way, if any; how it, or an earlier
    /// one, failed.
    fn written_back(&mut self) -> io::Result<()> {
        match self.write_back.take() {
            None => Ok(()),
            Some(WriteBack::Failed(e)) => Err(e),
            Some(WriteBack::Running(t)) => t
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
        }
    }

    /// Appends `line` and a newline; returns where the line is.
    pub fn append(&mut self, line: &str) -> io::Result<Placed> {
        let placed = Placed {
            seg: self.id,
            off: self.end as i64,
            len: line.len() as i64,
        };
        self.buf.extend_from_slice(line.as_bytes());
        self.buf.push(b'\n');
        self.end += line.len() as u64 + 1;
        if self.buf.len() >= WRITE_BUF {
            self.flush()?;
        }
        Ok(placed)
    }

    fn flush(&mut self) -> io::Result<()> {
        let at = self.end - self.buf.len() as u64;
        self.file.write_all_at(&self.buf, at)?;
        self.buf.clear();
        Ok(())
    }

    /// Makes everything appended durable and returns the segment's length:
    /// call it, and record the length, before the commit that points there.
    pub fn sync(&mut self) -> io::Result<i64> {
        self.written_back()?;
        if self.end > self.committed {
            self.flush()?;
            self.file.sync_data()?;
        }
        Ok(self.end as i64)
    }

    /// The commit that recorded [`SegmentWriter::sync`]'s length is done.
    pub fn committed(&mut self) {
        self.committed = self.end;
    }

    /// After a rollback: what was appended since the last commit is dropped.
    pub fn rewind(&mut self) {
        self.buf.clear();
        self.end = self.committed;
        let _ = self.file.set_len(self.committed);
    }
}

fn open_segment(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

impl super::Db {
    /// The segment directory, on SQLite.
    pub(super) fn lines(&self) -> Option<Lines> {
        self.sqlite_file().map(|file| Lines::beside(&file))
    }

    /// A reader of lines for rows about to be queried through the pool; None
    /// on PostgreSQL, where rows hold their lines.
    pub(super) async fn line_reader(&self) -> Result<Option<LineReader>> {
        let Some(lines) = self.lines() else {
            return Ok(None);
        };
        if let Some(reader) = lines.try_reader()? {
            return Ok(Some(reader));
        }
        // A sweep is erasing: wait for it off the async threads.
        let reader = tokio::task::spawn_blocking(move || lines.reader())
            .await
            .map_err(|_| super::Error::Sqlx(sqlx::Error::PoolClosed))??;
        Ok(Some(reader))
    }

    /// Erases line ranges that no record uses any more (see the module
    /// notes), unless a reader holds the lock; then a later sweep does.
    /// Returns how many ranges it erased.
    pub async fn sweep_lines(&self) -> Result<usize> {
        let (super::Pool::Sqlite(pool), Some(lines)) = (&self.pool, self.lines()) else {
            return Ok(0);
        };
        let garbage: Vec<(i64, i64, i64, i64)> =
            sqlx::query_as("SELECT id, seg, off, len FROM line_garbage ORDER BY id LIMIT $1")
                .bind(SWEEP_BATCH)
                .fetch_all(pool)
                .await?;
        let Some(&(last, ..)) = garbage.last() else {
            return Ok(0);
        };
        let n = garbage.len();
        let erased = tokio::task::spawn_blocking(move || lines.erase(&garbage))
            .await
            .map_err(|_| super::Error::Sqlx(sqlx::Error::PoolClosed))??;
        if !erased {
            return Ok(0);
        }
        // Ids grow in commit order (one writer at a time, AUTOINCREMENT), so
        // every range listed up to `last` was among those read above.
        sqlx::query("DELETE FROM line_garbage WHERE id <= $1")
            .bind(last)
            .execute(pool)
            .await?;
        Ok(n)
    }

    /// Removes every segment file (a reset, after the rows are gone): waits
    /// for readers, and holds the lock meanwhile.
    pub async fn remove_line_segments(&self) -> Result<()> {
        let Some(lines) = self.lines() else {
            return Ok(());
        };
        tokio::task::spawn_blocking(move || -> io::Result<()> {
            let lock = lines.lock_file()?;
            lock.lock()?;
            for entry in std::fs::read_dir(lines.dir())? {
                let path = entry?.path();
                if path.extension().is_some_and(|e| e == "seg") {
                    std::fs::remove_file(path)?;
                }
            }
            Ok(())
        })
        .await
        .map_err(|_| super::Error::Sqlx(sqlx::Error::PoolClosed))??;
        Ok(())
    }

    /// Line ranges waiting for a sweep.
    pub async fn line_garbage(&self) -> Result<i64> {
        let super::Pool::Sqlite(pool) = &self.pool else {
            return Ok(0);
        };
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM line_garbage")
            .fetch_one(pool)
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writers that start together each append to a segment no other
    /// writer holds: a segment made by one and taken by another before its
    /// maker locked it keeps what the other committed there. Every line
    /// reads back as its writer committed it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writers_starting_together_never_share_or_cut_a_segment() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::db::Db::connect(&format!("sqlite://{}/t.db", dir.path().display()))
            .await
            .unwrap();
        db.migrate().await.unwrap();
        let file = db.sqlite_file().unwrap();
        let lines = Lines::beside(&file);
        let writers: Vec<_> = (0..8)
            .map(|t| {
                let (file, lines) = (file.clone(), lines.clone());
                std::thread::spawn(move || {
                    let conn = rusqlite::Connection::open(&file).unwrap();
                    conn.busy_timeout(std::time::Duration::from_secs(30))
                        .unwrap();
                    let mut placed = Vec::new();
                    // Each holds its last segment while it takes the next, so
                    // that new segments are made all the time.
                    let mut held = None;
                    for n in 0..100 {
                        let mut w = SegmentWriter::open(&conn, &lines).unwrap();
                        let line = format!("writer {t} line {n}");
                        let at = w.append(&line).unwrap();
                        let len = w.sync().unwrap();
                        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
                        conn.execute(
                            "UPDATE line_segments SET committed_len = ?1 WHERE id = ?2",
                            (len, w.id()),
                        )
                        .unwrap();
                        conn.execute_batch("COMMIT").unwrap();
                        w.committed();
                        held = Some(w);
                        placed.push((at, line));
                    }
                    drop(held);
                    placed
                })
            })
            .collect();
        let placed: Vec<(Placed, String)> = writers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect();
        let mut reader = lines.reader().unwrap();
        for (at, line) in placed {
            assert_eq!(reader.line(at).unwrap(), line, "at {at:?}");
        }
    }
}
