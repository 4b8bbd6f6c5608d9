//! Loading activity records: NDJSON from files or HTTP bodies, and seeded
//! synthetic records. A bad line is reported and skipped; it never stops the rest.

use serde::Serialize;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, BufReader};

use super::{Exports, Result};
use crate::db::{Preparer, RecordWriter, StoreOutcome};
use crate::domain::record::{self, Record};
use crate::domain::{seed, Day, ResourceType};

/// Records parsed and handed to the writer at a time; one is stored while the
/// next is parsed. On PostgreSQL each batch is one transaction (2,000 → 20,000
/// cut ingest time by a quarter); on SQLite the writer commits every few batches.
const BATCH: usize = 50_000;
/// The first batch's size: batches then double up to [`BATCH`], so that the
/// writer starts after a few milliseconds of parsing rather than a batch's.
const FIRST_BATCH: usize = BATCH / 8;
/// Seeded records generated and stored at a time.
const SEED_CHUNK: usize = 50_000;
/// Rejections listed in a report; the count covers them all.
const LISTED_REJECTIONS: usize = 1000;

/// Where ingested lines come from, which decides how long a transaction may
/// stay open (see [`RecordWriter::group_commits`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// A regular file: the next batch is only a parse away, so on SQLite one
    /// transaction may span several batches.
    Steady,
    /// A request body or a pipe: the sender may stall, so each batch commits
    /// on its own and no write lock waits on it.
    Streamed,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct IngestReport {
    pub loaded: u64,
    pub replaced: u64,
    pub rejected: u64,
    pub rejections: Vec<Rejection>,
    /// True when more lines were rejected than are listed.
    pub rejections_truncated: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Rejection {
    pub source: String,
    pub line: u64,
    pub reason: String,
}

impl IngestReport {
    fn reject(&mut self, source: &str, line: u64, reason: String) {
        self.rejected += 1;
        if self.rejections.len() < LISTED_REJECTIONS {
            self.rejections.push(Rejection {
                source: source.to_string(),
                line,
                reason,
            });
        } else {
            self.rejections_truncated = true;
        }
    }

    fn count(&mut self, outcomes: &[StoreOutcome]) {
        for o in outcomes {
            match o {
                StoreOutcome::Loaded => self.loaded += 1,
                StoreOutcome::Replaced => self.replaced += 1,
            }
        }
    }
}

/// Wraps buffered input so that gzip input (by its magic bytes) is
/// decompressed; plain input is read as it is, without another buffer.
pub async fn maybe_gunzip<R: AsyncBufRead + Unpin + Send + 'static>(
    mut reader: R,
) -> std::io::Result<Box<dyn AsyncBufRead + Unpin + Send>> {
    let head = reader.fill_buf().await?;
    if head.starts_with(&[0x1f, 0x8b]) {
        let mut dec = async_compression::tokio::bufread::GzipDecoder::new(reader);
        dec.multiple_members(true);
        Ok(Box::new(BufReader::with_capacity(256 * 1024, dec)))
    } else {
        Ok(Box::new(reader))
    }
}

/// Bytes of a file read at a time by [`read_file`].
const FILE_CHUNK: usize = 4 << 20;

/// Reads `file` on a blocking thread, a few chunks ahead, and hands each chunk
/// over whole: lines are then parsed straight from the bytes read. Through
/// tokio's `File` and a `BufReader` every byte is copied twice more and each
/// 256 KiB crosses to a blocking thread and back (a fifth of the parsing
/// task's time went to reading).
pub fn read_file(file: std::fs::File) -> impl AsyncBufRead + Unpin + Send + 'static {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(2);
    tokio::task::spawn_blocking(move || {
        let mut file = file;
        loop {
            let mut chunk = Vec::with_capacity(FILE_CHUNK);
            let read = std::io::Read::read_to_end(
                &mut std::io::Read::take(&mut file, FILE_CHUNK as u64),
                &mut chunk,
            );
            let sent = match read {
                Ok(0) => break,
                Ok(_) => tx.blocking_send(Ok(chunk.into())),
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    break;
                }
            };
            if sent.is_err() {
                break;
            }
        }
    });
    tokio_util::io::StreamReader::new(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)))
}

impl Exports {
    /// Loads NDJSON records from `reader` into `account_sid`'s `rt` records,
    /// adding to `report`. I/O errors of the reader end the load (the lines
    /// read before it are stored) and are returned.
    pub async fn ingest(
        &self,
        account_sid: &str,
        rt: ResourceType,
        source: &str,
        input: Input,
        reader: impl AsyncBufRead + Unpin,
        report: &mut IngestReport,
    ) -> Result<std::io::Result<()>> {
        self.require_account(account_sid).await?;
        let before = (report.loaded, report.replaced, report.rejected);
        let loaded = self
            .load_lines(account_sid, rt, source, input, reader, report)
            .await;
        self.metrics().ingest(
            rt,
            report.loaded - before.0,
            report.replaced - before.1,
            report.rejected - before.2,
        );
        match loaded {
            Err(super::Error::Db(e)) if e.is_storage_full() => {
                Err(super::Error::StorageFull(format!(
                    "The service ran out of disk space while storing records ({e}). \
                     Committed before that: {} loaded and {} replaced; {} rejected. \
                     Later lines were not stored; load them again once there is space \
                     (records already stored are replaced, not doubled).",
                    report.loaded, report.replaced, report.rejected
                )))
            }
            other => other,
        }
    }

    async fn load_lines(
        &self,
        account_sid: &str,
        rt: ResourceType,
        source: &str,
        input: Input,
        mut reader: impl AsyncBufRead + Unpin,
        report: &mut IngestReport,
    ) -> Result<std::io::Result<()>> {
        let mut writer = self.db().record_writer(account_sid, rt).await?;
        if input == Input::Steady {
            writer.group_commits();
        }
        let mut loader = Loader {
            rt,
            account_sid,
            source,
            line_no: 0,
            batch: Vec::with_capacity(FIRST_BATCH),
            batch_size: FIRST_BATCH,
            spare: Vec::new(),
            preparer: writer.preparer(),
            writer: Some(writer),
            storing: None,
        };
        let max_line = self.inner.engine.max_line_bytes;
        let max_total = self.inner.engine.max_ingest_bytes;
        let mut total = 0u64;
        // Lines are parsed where the reader holds them; only a line that runs
        // past the end of one buffer is gathered here, up to `max_line`
        // bytes: past that its bytes are skipped and the line is refused.
        let mut partial: Vec<u8> = Vec::new();
        let mut overlong = false;
        let outcome = loop {
            let chunk = match reader.fill_buf().await {
                Ok(chunk) => chunk,
                Err(e) => break Err(e),
            };
            if chunk.is_empty() {
                if overlong {
                    loader.too_long(report, max_line);
                } else if !partial.is_empty() && loader.line(&partial, report) {
                    loader.hand_over(report).await?;
                }
                break Ok(());
            }
            let read = chunk.len();
            total += read as u64;
            if total > max_total {
                break Err(std::io::Error::new(
                    std::io::ErrorKind::FileTooLarge,
                    format!("the input is larger than max_ingest_bytes ({max_total} bytes) once decompressed"),
                ));
            }
            let mut rest = chunk;
            if overlong || !partial.is_empty() {
                let Some(end) = memchr::memchr(b'\n', rest) else {
                    if partial.len() + rest.len() > max_line {
                        overlong = true;
                        partial = Vec::new();
                    } else if !overlong {
                        partial.extend_from_slice(rest);
                    }
                    reader.consume(read);
                    continue;
                };
                if overlong || partial.len() + end > max_line {
                    loader.too_long(report, max_line);
                } else {
                    partial.extend_from_slice(&rest[..end]);
                    if loader.line(&partial, report) {
                        loader.hand_over(report).await?;
                    }
                }
                partial.clear();
                overlong = false;
                rest = &rest[end + 1..];
            }
            loop {
                // Parsing is CPU work: off the async worker threads.
                let (used, full) = off_async_workers(|| loader.lines(rest, max_line, report));
                rest = &rest[used..];
                if !full {
                    break;
                }
                loader.hand_over(report).await?;
            }
            if rest.len() > max_line {
                overlong = true;
            } else {
                partial.extend_from_slice(rest);
            }
            reader.consume(read);
        };
        loader.finish(report).await?;
        Ok(outcome)
    }

    /// Generates and stores `per_day` synthetic records for each day of the range.
    pub async fn seed(
        &self,
        account_sid: &str,
        rt: ResourceType,
        start: Day,
        end: Day,
        per_day: u32,
        seed_value: u64,
    ) -> Result<IngestReport> {
        self.require_account(account_sid).await?;
        let mut report = IngestReport::default();
        let mut writer = self.db().record_writer(account_sid, rt).await?;
        writer.group_commits();
        // The next chunk is generated while this one is stored.
        let generate = |mut seeder: seed::DaySeeder| {
            tokio::task::spawn_blocking(move || {
                let records = seeder.take(SEED_CHUNK);
                (seeder, records)
            })
        };
        for day in start.through(end) {
            let first = seed::DaySeeder::new(account_sid, rt, day, per_day, seed_value);
            let mut next = (!first.is_done()).then(|| generate(first));
            while let Some(generating) = next.take() {
                let (seeder, records) = generating
                    .await
                    .map_err(|e| super::Error::Invalid(format!("seeding failed: {e}")))?;
                if !seeder.is_done() {
                    next = Some(generate(seeder));
                }
                report.count(&writer.store(records).await?);
            }
        }
        report.count(&writer.finish().await?);
        Ok(report)
    }
}

/// Parses lines into batches and hands each full batch to the writer: one
/// batch is stored while the next is parsed (on SQLite, storing a batch takes
/// about as long as parsing it).
struct Loader<'a> {
    rt: ResourceType,
    account_sid: &'a str,
    source: &'a str,
    line_no: u64,
    batch: Vec<Record>,
    /// The records a batch takes (see [`FIRST_BATCH`]).
    batch_size: usize,
    /// Records of a stored batch, refilled by the next lines.
    spare: Vec<Record>,
    /// None while a batch is being stored.
    writer: Option<RecordWriter>,
    /// Prepares each batch before the writer is back ([`Preparer`]).
    preparer: Preparer,
    storing: Option<Storing>,
}

impl Loader<'_> {
    /// Parses one line (without its newline) into the batch, or reports why
    /// not; true when the batch is full.
    fn line(&mut self, bytes: &[u8], report: &mut IngestReport) -> bool {
        self.line_no += 1;
        let text = match std::str::from_utf8(bytes) {
            Ok(t) => t.trim(),
            Err(_) => {
                report.reject(self.source, self.line_no, "not valid UTF-8".into());
                return false;
            }
        };
        if text.is_empty() {
            return false;
        }
        let mut r = self.spare.pop().unwrap_or_else(Record::empty);
        match record::normalize_line_into(self.rt, self.account_sid, text, &mut r) {
            Ok(()) => self.batch.push(r),
            Err(e) => {
                self.spare.push(r);
                report.reject(self.source, self.line_no, e.to_string());
            }
        }
        self.batch.len() >= self.batch_size
    }

    /// Parses the whole lines at the start of `bytes` until the batch is
    /// full; returns the bytes used and whether the batch is full.
    fn lines(&mut self, bytes: &[u8], max_line: usize, report: &mut IngestReport) -> (usize, bool) {
        let mut used = 0;
        while let Some(end) = memchr::memchr(b'\n', &bytes[used..]) {
            let line = &bytes[used..used + end];
            used += end + 1;
            if line.len() > max_line {
                self.too_long(report, max_line);
            } else if self.line(line, report) {
                return (used, true);
            }
        }
        (used, false)
    }

    /// Refuses a line longer than `max_line` bytes (not held in memory).
    fn too_long(&mut self, report: &mut IngestReport, max_line: usize) {
        self.line_no += 1;
        report.reject(
            self.source,
            self.line_no,
            format!("the line is longer than max_line_bytes ({max_line} bytes)"),
        );
    }

    /// Prepares this batch (see [`Preparer`]), waits for the batch before to
    /// be stored, then starts storing this one.
    async fn hand_over(&mut self, report: &mut IngestReport) -> Result<()> {
        // Prepared while the batch before is still being stored.
        self.batch_size = (self.batch_size * 2).min(BATCH);
        let full = std::mem::replace(&mut self.batch, Vec::with_capacity(self.batch_size));
        let preparer = self.preparer;
        let prepared = off_async_workers(|| preparer.prepare(full));
        if let Some(previous) = self.storing.take() {
            let (writer, stored) = joined(previous, report).await?;
            self.writer = Some(writer);
            self.spare.extend(stored);
        }
        let mut w = self
            .writer
            .take()
            .expect("the writer is back after each store");
        self.storing = Some(tokio::spawn(async move {
            let (batch, stored) = w.store_and_return(prepared).await;
            (w, batch, stored)
        }));
        Ok(())
    }

    /// Stores what is left and commits.
    async fn finish(mut self, report: &mut IngestReport) -> Result<()> {
        if let Some(previous) = self.storing.take() {
            self.writer = Some(joined(previous, report).await?.0);
        }
        let mut w = self.writer.expect("the writer is back after each store");
        if !self.batch.is_empty() {
            report.count(&w.store(self.batch).await?);
        }
        report.count(&w.finish().await?);
        Ok(())
    }
}

/// Runs CPU-bound `work` where it does not hold up the async worker threads
/// (on a multi-threaded runtime, whose other tasks move elsewhere meanwhile).
fn off_async_workers<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}

/// A batch being stored on its own task; it hands the writer and the
/// batch's records back.
type Storing = tokio::task::JoinHandle<(
    RecordWriter,
    Vec<Record>,
    crate::db::Result<Vec<StoreOutcome>>,
)>;

/// Waits for a spawned store, counts its outcomes and returns the writer and
/// the stored records; a panic in it is re-raised here. The task is only ever
/// cancelled by the runtime shutting down, which also closes the pool.
async fn joined(handle: Storing, report: &mut IngestReport) -> Result<(RecordWriter, Vec<Record>)> {
    match handle.await {
        Ok((writer, batch, stored)) => {
            report.count(&stored?);
            Ok((writer, batch))
        }
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(crate::db::Error::Sqlx(sqlx::Error::PoolClosed).into()),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use tokio::io::AsyncReadExt;

    use super::*;

    async fn read_all(path: &std::path::Path) -> Vec<u8> {
        let file = std::fs::File::open(path).unwrap();
        let mut reader = maybe_gunzip(read_file(file)).await.unwrap();
        let mut out = Vec::new();
        reader.read_to_end(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn a_file_reads_whole_across_chunks_plain_and_gzip() {
        let dir = tempfile::tempdir().unwrap();
        // Two chunks and a part of a third, with bytes that show any misplaced piece.
        let text: Vec<u8> = (0..FILE_CHUNK * 2 + 12_345)
            .map(|i| (i % 251) as u8)
            .collect();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, &text).unwrap();
        assert!(read_all(&plain).await == text);

        let gz = dir.path().join("gz");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&text).unwrap();
        std::fs::write(&gz, enc.finish().unwrap()).unwrap();
        assert!(read_all(&gz).await == text);

        let empty = dir.path().join("empty");
        std::fs::write(&empty, b"").unwrap();
        assert!(read_all(&empty).await.is_empty());
    }
}
