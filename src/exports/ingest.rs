//! Loading activity records: NDJSON from files or HTTP bodies, and seeded
//! synthetic records. A bad line is reported and skipped; it never stops the rest.

use serde::Serialize;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, BufReader};

use super::{Exports, Result};
use crate::db::{RecordWriter, StoreOutcome};
use crate::domain::record::{self, Record};
use crate::domain::{seed, Day, ResourceType};

/// Records parsed and handed to the writer at a time; one is stored while the
/// next is parsed. On PostgreSQL each batch is one transaction (2,000 → 20,000
/// cut ingest time by a quarter); on SQLite the writer commits every few batches.
const BATCH: usize = 50_000;
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

/// Wraps a reader so that gzip input (by its magic bytes) is decompressed.
pub async fn maybe_gunzip<R: AsyncRead + Unpin + Send + 'static>(
    reader: R,
) -> std::io::Result<Box<dyn AsyncBufRead + Unpin + Send>> {
    let mut buffered = BufReader::with_capacity(256 * 1024, reader);
    let head = buffered.fill_buf().await?;
    if head.starts_with(&[0x1f, 0x8b]) {
        let mut dec = async_compression::tokio::bufread::GzipDecoder::new(buffered);
        dec.multiple_members(true);
        Ok(Box::new(BufReader::with_capacity(256 * 1024, dec)))
    } else {
        Ok(Box::new(buffered))
    }
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
        mut reader: impl AsyncBufRead + Unpin,
        report: &mut IngestReport,
    ) -> Result<std::io::Result<()>> {
        self.require_account(account_sid).await?;
        let mut w = self.db().record_writer(account_sid, rt).await?;
        if input == Input::Steady {
            w.group_commits();
        }
        let mut writer = Some(w);
        let mut batch: Vec<Record> = Vec::with_capacity(BATCH);
        // One batch is stored while the next is parsed: on SQLite, storing
        // takes about twice as long as parsing and normalising.
        let mut storing: Option<Storing> = None;
        let mut buf = Vec::new();
        let mut line_no = 0u64;
        let outcome = loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf).await {
                Ok(0) => break Ok(()),
                Ok(_) => {}
                Err(e) => break Err(e),
            }
            line_no += 1;
            let text = match std::str::from_utf8(&buf) {
                Ok(t) => t.trim(),
                Err(_) => {
                    report.reject(source, line_no, "not valid UTF-8".into());
                    continue;
                }
            };
            if text.is_empty() {
                continue;
            }
            let parsed = record::normalize_line(rt, account_sid, text).map_err(|e| e.to_string());
            match parsed {
                Ok(r) => batch.push(r),
                Err(reason) => report.reject(source, line_no, reason),
            }
            if batch.len() >= BATCH {
                if let Some(previous) = storing.take() {
                    writer = Some(joined(previous, report).await?);
                }
                let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                let mut w = writer.take().expect("the writer is back after each store");
                storing = Some(tokio::spawn(async move {
                    let stored = w.store(full).await;
                    (w, stored)
                }));
            }
        };
        if let Some(previous) = storing.take() {
            writer = Some(joined(previous, report).await?);
        }
        let mut w = writer.expect("the writer is back after each store");
        if !batch.is_empty() {
            report.count(&w.store(batch).await?);
        }
        report.count(&w.finish().await?);
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
        for day in start.through(end) {
            let mut seeder = seed::DaySeeder::new(account_sid, rt, day, per_day, seed_value);
            while !seeder.is_done() {
                let (back, records) = tokio::task::spawn_blocking(move || {
                    let records = seeder.take(SEED_CHUNK);
                    (seeder, records)
                })
                .await
                .map_err(|e| super::Error::Invalid(format!("seeding failed: {e}")))?;
                seeder = back;
                report.count(&writer.store(records).await?);
            }
        }
        report.count(&writer.finish().await?);
        Ok(report)
    }
}

/// A batch being stored on its own task; it hands the writer back.
type Storing = tokio::task::JoinHandle<(RecordWriter, crate::db::Result<Vec<StoreOutcome>>)>;

/// Waits for a spawned store, counts its outcomes and returns the writer; a
/// panic in it is re-raised here. The task is only ever cancelled by the
/// runtime shutting down, which also closes the pool.
async fn joined(handle: Storing, report: &mut IngestReport) -> Result<RecordWriter> {
    match handle.await {
        Ok((writer, stored)) => {
            report.count(&stored?);
            Ok(writer)
        }
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(crate::db::Error::Sqlx(sqlx::Error::PoolClosed).into()),
    }
}
