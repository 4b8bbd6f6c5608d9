//! One way to read a day's lines for an export, whatever the database: in
//! file order, each followed by a newline, in chunks handed to a channel.

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::db::{Db, Error, Pool, Result};
use crate::domain::{Day, ResourceType};

/// Lines per page when PostgreSQL joins them itself (about 1 MiB).
const PAGE_LINES: i64 = 2000;

impl Db {
    /// Sends the day's lines to `sink` in chunks of about `chunk_bytes`;
    /// returns how many records were read. Stops early, without an error,
    /// when `stop` fires or `sink` is closed: the caller checks `stop`.
    ///
    /// On SQLite one statement scans the file and its line segments on a
    /// background thread ([`super::scan_day_sqlite`]); on PostgreSQL the
    /// server joins each page of lines itself, so one row crosses the driver
    /// per page.
    pub async fn stream_day(
        &self,
        account_sid: &str,
        rt: ResourceType,
        day: Day,
        chunk_bytes: usize,
        stop: &CancellationToken,
        sink: mpsc::Sender<Vec<u8>>,
    ) -> Result<u64> {
        match &self.pool {
            Pool::Sqlite(_) => {
                let file = self.sqlite_file().ok_or(Error::Misuse("no SQLite file"))?;
                let (account_sid, stopped) = (account_sid.to_string(), stop.clone());
                crate::background::spawn("export-scan", move || {
                    super::scan_day_sqlite(&file, &account_sid, rt, day, chunk_bytes, |chunk| {
                        !stopped.is_cancelled() && sink.blocking_send(chunk).is_ok()
                    })
                })
                .await
                .ok_or(Error::Misuse("the day's scan stopped unexpectedly"))?
            }
            Pool::Postgres(_) => {
                let mut after = String::new();
                let mut records = 0u64;
                while let Some((mut text, last, n)) = self
                    .day_page(account_sid, rt, day, &after, PAGE_LINES)
                    .await?
                {
                    if stop.is_cancelled() {
                        break;
                    }
                    text.push('\n');
                    records += n as u64;
                    after = last;
                    if sink.send(text.into_bytes()).await.is_err() {
                        break;
                    }
                }
                Ok(records)
            }
        }
    }
}
