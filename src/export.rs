//! Exporting one day: records stream from the database, through the parallel
//! gzip compressor on blocking threads, into a staged blob. Memory stays bounded
//! by a few chunks whatever the number of records.

use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::blob::BlobStore;
use crate::db::Db;
use crate::domain::{Day, ResourceType};

/// gzip level: 6, as `gzip -6` and pigz's default.
const LEVEL: u32 = 6;
/// Lines read from the database per page (about 256 KiB of JSON lines).
const PAGE_LINES: i64 = 500;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Db(#[from] crate::db::Error),
    #[error("writing the day file: {0}")]
    Io(#[from] std::io::Error),
    #[error("the export was stopped")]
    Stopped,
    #[error("the compressor stopped unexpectedly")]
    Compressor,
}

/// What was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exported {
    pub size: u64,
    pub records: u64,
}

/// Writes the day file of (account, resource type, day) to `key`. On any error
/// or when `stop` fires, the staged upload is aborted and nothing is visible.
pub async fn export_day(
    db: &Db,
    blobs: &BlobStore,
    key: &str,
    account_sid: &str,
    rt: ResourceType,
    day: Day,
    stop: &CancellationToken,
) -> Result<Exported, Error> {
    let (raw_tx, raw_rx) = mpsc::channel::<Vec<u8>>(4);
    let (gz_tx, mut gz_rx) = mpsc::channel::<Vec<u8>>(4);
    let compressor = tokio::task::spawn_blocking(move || compress(raw_rx, gz_tx));

    let read = async move {
        let mut after = String::new();
        let mut records = 0u64;
        while let Some((mut text, last, n)) = db
            .day_page(account_sid, rt, day, &after, PAGE_LINES)
            .await?
        {
            if stop.is_cancelled() {
                return Err(Error::Stopped);
            }
            text.push('\n');
            records += n as u64;
            after = last;
            raw_tx
                .send(text.into_bytes())
                .await
                .map_err(|_| Error::Compressor)?;
        }
        drop(raw_tx);
        Ok::<u64, Error>(records)
    };

    let mut writer = blobs.writer(key);
    let sink = &mut writer;
    let write = async move {
        let mut size = 0u64;
        while let Some(bytes) = gz_rx.recv().await {
            size += bytes.len() as u64;
            sink.write_all(&bytes).await?;
        }
        Ok::<u64, Error>(size)
    };

    let outcome = tokio::try_join!(read, write);
    let compressed = compressor
        .await
        .map_err(|_| Error::Compressor)
        .and_then(|r| r.map_err(Error::from));
    match (outcome, compressed) {
        (Ok((records, size)), Ok(())) if !stop.is_cancelled() => {
            writer.shutdown().await?;
            Ok(Exported { size, records })
        }
        (outcome, compressed) => {
            let _ = writer.abort().await;
            outcome?;
            compressed?;
            Err(Error::Stopped)
        }
    }
}

/// The compressor stage: one gzip member over every chunk received,
/// compressed on every core (see `gzip`).
fn compress(mut raw: mpsc::Receiver<Vec<u8>>, out: mpsc::Sender<Vec<u8>>) -> std::io::Result<()> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let chunks = std::iter::from_fn(move || raw.blocking_recv());
    crate::gzip::compress_parallel(chunks, threads, LEVEL, |block| {
        out.blocking_send(block).is_ok()
    })
}
