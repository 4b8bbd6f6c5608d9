//! The database: the only module that knows SQL. One `Db` handle over a pool
//! of SQLite or PostgreSQL connections; each submodule owns the queries of
//! one table family. SQL is written once (with `$N` placeholders, which both
//! drivers accept) and `with_pool!` compiles it for each driver; a `match` on
//! the pool appears only where the dialects differ.

mod accounts;
mod control;
mod days;
mod deletions;
mod deliveries;
mod faults;
mod garbage;
mod intake;
mod job_rows;
mod jobs;
mod lines;
mod queue;
mod records;
mod stats;
mod users;

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::ConnectOptions;

pub use accounts::{Account, ApiKey};
pub use days::{DayRow, ExportConfigRow};
pub use deletions::{CallRecord, DeletionRow, StaleDay};
pub use deliveries::{AttemptRecord, AttemptRow, DeliveryFilter, DeliveryRow, NewDelivery};
pub use faults::FaultRow;
pub use intake::{Placed, Refused};
pub use jobs::{
    Admission, DayQuota, JobDayRow, JobKind, JobRow, NewJob, QueuePlace, ReadJob, ShownJob,
};
pub use queue::{Claimed, Finish, Settled};
pub use records::scan_day_sqlite;
pub use records::{Prepared, Preparer, RecordWriter, StoreOutcome};
pub use users::UserRow;

/// Page size of a new SQLite database (an existing one keeps its own). Every
/// commit writes each page it changed to the WAL whole, and a job creation
/// changes a page in each of several indexes keyed at random (the job's
/// SID): with 16 KiB pages 16 clients creating jobs wrote about 60 KB of WAL
/// a job and checkpointed many times a second. Bulk loads, which append,
/// gain from bigger pages. 8 KiB is between: against 16 KiB, creations went
/// from about 3,200 to 4,000–4,500 a second with a p99 of 17 ms instead of
/// 23 ms, and an ingest of 1M records from 374,000 to 335,000 a second
/// (4 KiB: 4,850 creations a second, 317,000 records a second).
const SQLITE_PAGE_SIZE: u32 = 8 * 1024;

/// Runs `$body` with `$pool` bound to the concrete pool: the body is written
/// once and compiled for each driver.
macro_rules! with_pool {
    ($db:expr, |$pool:ident| $body:expr) => {
        match &$db.pool {
            $crate::db::Pool::Sqlite($pool) => $body,
            $crate::db::Pool::Postgres($pool) => $body,
        }
    };
}
pub(crate) use with_pool;

/// See [`Db::write_turn`]; also taken by the job intake, which holds the
/// pool and the gate without a `Db`.
async fn write_turn<'a>(
    pool: &Pool,
    gate: &'a tokio::sync::Mutex<()>,
) -> Option<tokio::sync::MutexGuard<'a, ()>> {
    match pool {
        Pool::Sqlite(_) => Some(gate.lock().await),
        Pool::Postgres(_) => None,
    }
}

/// `($1, $2, $3), ($4, $5, $6)` for `rows` rows of `columns` values: the
/// placeholders of a multi-row `VALUES` (or, with one row, of an `IN` list).
pub(super) fn placeholders(rows: usize, columns: usize) -> String {
    let mut sql = String::with_capacity(rows * columns * 5);
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for column in 0..columns {
            if column > 0 {
                sql.push_str(", ");
            }
            sql.push('$');
            sql.push_str(&(row * columns + column + 1).to_string());
        }
        sql.push(')');
    }
    sql
}

#[derive(Clone, Debug)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    /// From a SQLite connection opened outside the pool (day scans, record writers).
    #[error("database error: {0}")]
    Direct(#[from] rusqlite::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The URL's scheme only: the rest may hold a password.
    #[error("unsupported database URL (scheme {0:?}): use sqlite://PATH or postgres://...")]
    Unsupported(String),
    #[error(
        "could not open the SQLite database {path} (is it readable and writable by this user?)"
    )]
    Open { path: String, source: sqlx::Error },
    #[error("could not create the database directory {path}: {source}")]
    Directory {
        path: String,
        source: std::io::Error,
    },
    /// Reading or writing the segment files of records' lines (see `lines`).
    #[error("record line storage failed: {0}")]
    Lines(#[from] std::io::Error),
    /// A `COPY` stream from PostgreSQL not in the format asked for.
    #[error(transparent)]
    Copy(#[from] records::CopyFormatError),
    #[error("{0}")]
    Misuse(&'static str),
}

impl Error {
    /// The disk (or the database server's) ran out of space.
    pub fn is_storage_full(&self) -> bool {
        match self {
            Error::Lines(e) => e.kind() == std::io::ErrorKind::StorageFull,
            Error::Direct(rusqlite::Error::SqliteFailure(e, _)) => {
                e.code == rusqlite::ErrorCode::DiskFull
            }
            Error::Sqlx(sqlx::Error::Database(e)) => {
                // SQLite's SQLITE_FULL (13); PostgreSQL's disk_full (53100).
                matches!(e.code().as_deref(), Some("13") | Some("53100"))
            }
            Error::Sqlx(sqlx::Error::Io(e)) => e.kind() == std::io::ErrorKind::StorageFull,
            _ => false,
        }
    }

    /// The database could not be reached in time (no connection within the
    /// timeout, or the connection failed): worth a 503, not a 500.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Error::Sqlx(
                sqlx::Error::PoolTimedOut
                | sqlx::Error::Io(_)
                | sqlx::Error::PoolClosed
                | sqlx::Error::Tls(_),
            ) => true,
            // PostgreSQL's connection exceptions (class 08) and its shutdown
            // and start-up answers (57P01-57P03).
            Error::Sqlx(sqlx::Error::Database(e)) => e.code().is_some_and(|c| {
                c.starts_with("08") || matches!(c.as_ref(), "57P01" | "57P02" | "57P03")
            }),
            _ => false,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// A handle to the database, cheap to clone.
#[derive(Clone, Debug)]
pub struct Db {
    pool: Pool,
    /// Held by this process's frequent writers on SQLite (job creations, and
    /// the workers' claims, heartbeats, garbage and finishes), which take the
    /// database's write lock: they queue here, in order, instead of in
    /// SQLite's busy handler, which sleeps up to 100 ms between tries (16
    /// clients creating jobs at once had a p99 of about 100 ms; two workers
    /// and the daily scheduler lost a third of their time there).
    write_gate: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// The queue of this process's job creations (`intake`).
    intake: std::sync::Arc<intake::Intake>,
    /// Export configurations and Editions flags changed through this handle
    /// (and its clones): the daily scheduler rescans when it moves.
    config_changes: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Jobs this process has read finished (see [`jobs::FinishedJobs`]).
    finished_jobs: std::sync::Arc<jobs::FinishedJobs>,
}

impl Db {
    /// Opens the database at `url`: `sqlite://PATH` (created if missing; WAL
    /// mode with a busy timeout, so several processes can share the file) or
    /// `postgres://…`.
    pub async fn connect(url: &str) -> Result<Db> {
        Db::connect_with_timeout(url, Duration::from_secs(5)).await
    }

    /// As [`Db::connect`]; a request waits at most `timeout` for a connection
    /// (PostgreSQL: connecting included) before it fails as unavailable.
    pub async fn connect_with_timeout(url: &str, timeout: Duration) -> Result<Db> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url)?
                .log_slow_statements(log::LevelFilter::Debug, Duration::from_secs(5));
            // No ping before each use: it doubled the round trips of every
            // query. A connection found broken fails its query with an I/O
            // error (503 to the caller, see `Error::is_unavailable`) and is
            // dropped from the pool.
            // An export holds two connections while it runs (the places of
            // its lines and their segments, `records::segments`) and there
            // is a worker a core by default: those come on top of the 6 the
            // API and the engine's other work share. More is slower: each
            // connection at work is a backend competing for PostgreSQL's
            // cores, and with 16 shared, FetchJob's p99 during an export was
            // two to three times as long (see docs/decisions.md).
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
            let pool = PgPoolOptions::new()
                .max_connections(6 + 2 * cores)
                .test_before_acquire(false)
                .acquire_timeout(timeout)
                .connect_with(options)
                .await?;
            return Ok(Db {
                pool: Pool::Postgres(pool),
                write_gate: Default::default(),
                intake: Default::default(),
                config_changes: Default::default(),
                finished_jobs: Default::default(),
            });
        }
        let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        else {
            let scheme = url.split_once(':').map_or("", |(s, _)| s);
            return Err(Error::Unsupported(scheme.to_string()));
        };
        let file = path.split('?').next().unwrap_or(path);
        if let Some(dir) = std::path::Path::new(file)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir).map_err(|source| Error::Directory {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .page_size(SQLITE_PAGE_SIZE)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true)
            // 16 MiB of pages a connection (SQLite's default is 2 MiB): with
            // 100,000 jobs the claim, finish and list statements otherwise
            // read their index pages back from the OS on every call.
            .pragma("cache_size", "-16384")
            // Exports stream a whole day through one statement; that is not slow, it is long.
            .log_slow_statements(log::LevelFilter::Debug, Duration::from_secs(5));
        // No ping before each use either: a ping is a round trip to the
        // connection's worker thread, and a file does not hang up.
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .test_before_acquire(false)
            .connect_with(options)
            .await
            .map_err(|source| Error::Open {
                path: file.to_string(),
                source,
            })?;
        Ok(Db {
            pool: Pool::Sqlite(pool),
            write_gate: Default::default(),
            intake: Default::default(),
            config_changes: Default::default(),
            finished_jobs: Default::default(),
        })
    }

    /// On SQLite, this process's turn at `write_gate`, held until dropped;
    /// nothing on PostgreSQL, whose writers lock rows.
    pub(super) async fn write_turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        write_turn(&self.pool, &self.write_gate).await
    }

    /// How many times export configurations or Editions flags were changed
    /// through this handle (see `config_changes`).
    pub fn config_changes(&self) -> u64 {
        self.config_changes
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    pub(super) fn config_changed(&self) {
        self.config_changes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    /// `sqlite` or `postgres`.
    pub fn kind(&self) -> &'static str {
        match self.pool {
            Pool::Sqlite(_) => "sqlite",
            Pool::Postgres(_) => "postgres",
        }
    }

    /// What a claiming subquery appends to skip rows that other nodes are
    /// claiming right now: PostgreSQL's `FOR UPDATE SKIP LOCKED`. SQLite has
    /// one writer at a time, so its plain subquery is already atomic.
    pub(super) fn skip_locked(&self) -> &'static str {
        match self.pool {
            Pool::Sqlite(_) => "",
            Pool::Postgres(_) => " FOR UPDATE SKIP LOCKED",
        }
    }

    fn migrator(&self) -> sqlx::migrate::Migrator {
        match self.pool {
            Pool::Sqlite(_) => sqlx::migrate!("./migrations/sqlite"),
            Pool::Postgres(_) => sqlx::migrate!("./migrations/postgres"),
        }
    }

    /// Brings the schema up to date. Safe to run from several processes at once.
    pub async fn migrate(&self) -> Result<()> {
        let migrator = self.migrator();
        with_pool!(self, |pool| migrator.run(pool).await?);
        Ok(())
    }

    /// True when the database answers and every migration is applied.
    pub async fn is_ready(&self) -> bool {
        matches!(self.applied_migration().await, Ok(v) if v >= self.latest_migration())
    }

    /// The newest migration this build knows.
    pub fn latest_migration(&self) -> i64 {
        self.migrator().iter().map(|m| m.version).max().unwrap_or(0)
    }

    /// The newest migration applied to the database (0 for none).
    pub async fn applied_migration(&self) -> Result<i64> {
        let sql = "SELECT MAX(version) FROM _sqlx_migrations WHERE success";
        let applied: Option<i64> =
            with_pool!(self, |pool| sqlx::query_scalar(sql).fetch_one(pool).await)?;
        Ok(applied.unwrap_or(0))
    }

    /// A named service secret, created with `make` on first use. Every process
    /// sharing the database sees the same value.
    pub async fn secret(&self, name: &str, make: impl FnOnce() -> String) -> Result<String> {
        let value = make();
        with_pool!(self, |pool| {
            sqlx::query("INSERT INTO service_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
                .bind(name)
                .bind(&value)
                .execute(pool)
                .await?;
            Ok(
                sqlx::query_scalar("SELECT value FROM service_secrets WHERE name = $1")
                    .bind(name)
                    .fetch_one(pool)
                    .await?,
            )
        })
    }

    pub async fn marker(&self, name: &str) -> Result<Option<String>> {
        with_pool!(self, |pool| Ok(sqlx::query_scalar(
            "SELECT value FROM service_markers WHERE name = $1"
        )
        .bind(name)
        .fetch_optional(pool)
        .await?))
    }

    pub async fn set_marker(&self, name: &str, value: &str) -> Result<()> {
        with_pool!(self, |pool| {
            sqlx::query(
            "INSERT INTO service_markers (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value"
        )
        .bind(name)
        .bind(value)
        .execute(pool)
        .await
        .map(|_| ())
        })?;
        Ok(())
    }

    pub async fn close(&self) {
        with_pool!(self, |pool| pool.close().await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_number_rows_then_columns() {
        assert_eq!(placeholders(1, 2), "($1, $2)");
        assert_eq!(placeholders(2, 3), "($1, $2, $3), ($4, $5, $6)");
    }

    async fn sqlite_pragma<T>(db: &Db, pragma: &str) -> T
    where
        T: Send + Unpin + for<'r> sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
    {
        let Pool::Sqlite(pool) = &db.pool else {
            panic!("a SQLite URL gives a SQLite pool");
        };
        sqlx::query_scalar(&format!("PRAGMA {pragma}"))
            .fetch_one(pool)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_new_sqlite_database_gets_big_pages_and_an_existing_one_keeps_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let new = Db::connect(&format!("sqlite://{}/new.db", dir.path().display()))
            .await
            .unwrap();
        new.migrate().await.unwrap();
        assert_eq!(
            sqlite_pragma::<i64>(&new, "page_size").await,
            i64::from(SQLITE_PAGE_SIZE)
        );
        assert_eq!(sqlite_pragma::<String>(&new, "journal_mode").await, "wal");

        let old = dir.path().join("old.db");
        rusqlite::Connection::open(&old)
            .unwrap()
            .execute_batch(
                "PRAGMA page_size = 4096; PRAGMA journal_mode = WAL; CREATE TABLE t (x);",
            )
            .unwrap();
        let old = Db::connect(&format!("sqlite://{}", old.display()))
            .await
            .unwrap();
        old.migrate().await.unwrap();
        assert_eq!(sqlite_pragma::<i64>(&old, "page_size").await, 4096);
    }
}
