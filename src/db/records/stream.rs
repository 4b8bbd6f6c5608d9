//! One way to read a day's lines for an export, whatever the database: in
//! file order, each followed by a newline, in chunks handed to a channel.

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::db::{Db, Error, Pool, Result};
use crate::domain::{Day, ResourceType};

impl Db {
    /// Sends the day's lines to `sink` in chunks of about `chunk_bytes`;
    /// returns how many records were read. Stops early, without an error,
    /// when `stop` fires or `sink` is closed: the caller checks `stop`.
    ///
    /// On SQLite one statement scans the file and its line segments on a
    /// background thread ([`super::scan_day_sqlite`]); on PostgreSQL one
    /// binary `COPY … TO STDOUT` streams them ([`super::postgres`]).
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
            Pool::Postgres(pool) => {
                super::stream_day_postgres(pool, account_sid, rt, day, chunk_bytes, stop, sink)
                    .await
            }
        }
    }
}
