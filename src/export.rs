//! Exporting one day: the day's lines stream from the database
//! ([`Db::stream_day`]), through the parallel gzip compressor on background
//! threads, into a staged blob. Memory stays bounded
//! by a few chunks whatever the number of records.

use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::blob::BlobStore;
use crate::db::Db;
use crate::domain::{Day, ResourceType};

/// zlib-rs level 5. Its files come out about 2% smaller than `gzip -6`'s on
/// the same bytes (zlib-rs, like zlib-ng, uses its "medium" strategy from
/// level 3 on) and it compresses about 20% faster than its own level 6, whose
/// files are 4% smaller than gzip -6's. Measured with `bench/export.sh`.
const LEVEL: u32 = 5;
/// Bytes of JSON lines per compressed chunk: at 1 MiB, priming each chunk
/// with its predecessor's 32 KiB window costs about 3%; at 256 KiB it was 12%.
const CHUNK_BYTES: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Db(#[from] crate::db::Error),
    #[error("writing the day file: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Blob(#[from] crate::blob::Error),
    #[error("the export was stopped")]
    Stopped,
    #[error("the compressor stopped unexpectedly")]
    Compressor,
    /// A `DayError` fault's message.
    #[error("{0}")]
    Injected(String),
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
    // The compressor runs at background priority, as the day's scan does,
    // so requests are answered first while a day exports.
    let compressor = crate::background::spawn("export-gzip", move || compress(raw_rx, gz_tx));

    let read = async move {
        let records = db
            .stream_day(account_sid, rt, day, CHUNK_BYTES, stop, raw_tx)
            .await?;
        if stop.is_cancelled() {
            return Err(Error::Stopped);
        }
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
        .ok_or(Error::Compressor)
        .and_then(|r| r.map_err(Error::from));
    match (outcome, compressed) {
        (Ok((records, size)), Ok(())) if !stop.is_cancelled() => {
            writer.shutdown().await?;
            // On disk before the transaction that publishes it commits.
            blobs.make_durable(key).await?;
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

/// A day file without records (one empty gzip member) at `key`: what a
/// `DayEmpty` fault makes of a day whatever it holds.
pub async fn export_empty(blobs: &BlobStore, key: &str) -> Result<Exported, Error> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(LEVEL));
    gz.write_all(b"")?;
    let bytes = gz.finish()?;
    let mut writer = blobs.writer(key);
    writer.write_all(&bytes).await?;
    writer.shutdown().await?;
    blobs.make_durable(key).await?;
    Ok(Exported {
        size: bytes.len() as u64,
        records: 0,
    })
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
