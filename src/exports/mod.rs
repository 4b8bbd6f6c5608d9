//! The use cases of the service: accounts, ingest, export jobs, days,
//! configuration, and the workers that run the queue. The API and the CLI
//! both call into this layer; it calls `db`, `blob` and `export`.

mod accounts;
mod calls;
mod config;
mod console;
mod daily;
mod days;
mod faults;
mod fixtures;
mod ingest;
mod jobs;
mod journal;
mod links;
mod notifications;
mod reset;
mod users;
mod worker;

use std::sync::Arc;

use tokio::sync::Notify;

use crate::blob::BlobStore;
use crate::clock::Clock;
use crate::config::Settings;
use crate::db::Db;

pub use accounts::{CreatedAccount, CreatedKey};
pub use calls::CallPage;
pub use config::{ConfigUpdate, ExportConfig};
pub use console::{signature_verifies, AccountSummary, DayPreview, QuotaStatus};
pub use days::{DayView, Download, DownloadLink};
pub use faults::{FaultKind, FaultRequest, FaultTarget, Fired};
pub use fixtures::Fixtures;
pub use ingest::{maybe_gunzip, read_file, IngestReport, Input, Rejection};
pub use jobs::{JobOrigin, JobRequest, JobView, StatusGroup};
pub use journal::{delivery_id, delivery_sid, RequestEntry, RequestFilter};
pub use links::{Cursor, Page, PageRequest, MAX_PAGE};
pub use notifications::Deliverer;
pub use worker::Workers;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A parameter is missing or wrong: the message names it.
    #[error("{0}")]
    Invalid(String),
    /// The resource (a path without `/v1`) does not exist for this account.
    #[error("The requested resource {0} was not found")]
    NotFound(String),
    /// PageSize over the list's maximum (Twilio's 20007).
    #[error("{0}")]
    PageSizeTooLarge(String),
    /// The disk ran out of space while storing records.
    #[error("{0}")]
    StorageFull(String),
    /// The database did not answer in time.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// The account family's requested-days allowance for today is used up.
    #[error("{0}")]
    /// The message, and the seconds until the allowance resets.
    QuotaExceeded(String, u64),
    /// A download link that was tampered with or has expired.
    #[error("{0}")]
    Forbidden(&'static str),
    #[error(transparent)]
    Db(#[from] crate::db::Error),
    #[error(transparent)]
    Blob(#[from] crate::blob::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

/// What an unsubscribe link signs: one user, one purpose.
pub(crate) fn unsubscribe_data(account_sid: &str, email: &str) -> String {
    format!("unsubscribe-initiation:{account_sid}:{email}")
}

/// Tuning of the job engine, taken from the settings.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    pub workers: usize,
    pub max_attempts: u32,
    pub max_takeovers: u32,
    pub retry_base_ms: i64,
    pub lease_ms: i64,
    pub poll_ms: u64,
    pub download_ttl_secs: i64,
    /// Hand out the object store's own pre-signed links where it can sign them.
    pub presigned_downloads: bool,
    pub webhook_timeout: std::time::Duration,
    pub delivery_retry_ms: i64,
    pub delivery_backoff_ms: i64,
    pub refuse_private_webhooks: bool,
    pub requested_days_per_day: i64,
    pub day_retention_ms: i64,
    pub job_retention_ms: i64,
    pub daily_settle_ms: i64,
    pub smtp_url: Option<crate::config::Secret>,
    pub email_from: String,
    pub deletion_batch_ms: i64,
    pub max_line_bytes: usize,
    pub max_ingest_bytes: u64,
    pub fixtures: Option<std::path::PathBuf>,
    pub journal_size: usize,
}

impl EngineSettings {
    pub fn from_settings(s: &Settings) -> EngineSettings {
        EngineSettings {
            workers: s.worker_count(),
            max_attempts: s.max_attempts,
            max_takeovers: s.max_takeovers,
            retry_base_ms: (s.retry_base_secs * 1000) as i64,
            lease_ms: (s.lease_secs * 1000) as i64,
            poll_ms: s.poll_ms,
            download_ttl_secs: s.download_ttl_secs as i64,
            presigned_downloads: s.presigned_downloads,
            webhook_timeout: std::time::Duration::from_secs(s.webhook_timeout_secs.max(1)),
            delivery_retry_ms: (s.delivery_retry_secs * 1000) as i64,
            delivery_backoff_ms: (s.delivery_backoff_secs.max(1) * 1000) as i64,
            refuse_private_webhooks: s.refuse_private_webhooks,
            requested_days_per_day: i64::from(s.requested_days_per_day),
            day_retention_ms: (s.day_retention_secs * 1000) as i64,
            job_retention_ms: (s.job_retention_secs * 1000) as i64,
            daily_settle_ms: (s.daily_settle_secs * 1000) as i64,
            smtp_url: s.smtp_url.clone(),
            email_from: s.email_from.clone(),
            deletion_batch_ms: (s.deletion_batch_secs * 1000) as i64,
            max_line_bytes: s.max_line_bytes,
            max_ingest_bytes: s.max_ingest_bytes,
            fixtures: s.fixtures.clone(),
            journal_size: s.journal_size,
        }
    }
}

/// The service's use cases over one database and one blob store.
#[derive(Clone, Debug)]
pub struct Exports {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    metrics: crate::telemetry::Metrics,
    faults: faults::FaultCache,
    requests: journal::RequestJournal,
    db: Db,
    blobs: BlobStore,
    clock: Clock,
    engine: EngineSettings,
    signer: links::Signer,
    /// Woken when work is submitted, so idle workers start at once.
    work_submitted: Notify,
    /// Woken when a notification is stored.
    delivery_queued: Notify,
    /// Garbage collections running in this process: their leased files are
    /// not due on the list, so `wait_idle` counts them here.
    collecting_garbage: std::sync::atomic::AtomicUsize,
    webhooks: crate::notify::WebhookSender,
    emails: crate::notify::EmailSender,
    auth_cache: accounts::AuthCache,
    /// The last daily scan that found nothing to queue (`daily`), locked
    /// for the length of a scan.
    daily_scan: tokio::sync::Mutex<Option<daily::QuietScan>>,
}

impl Exports {
    /// Builds the use-case layer; reads (or creates) the shared signing key.
    pub async fn new(
        db: Db,
        blobs: BlobStore,
        clock: Clock,
        engine: EngineSettings,
    ) -> Result<Exports> {
        let key = db
            .secret("link_signing_key", links::Signer::new_key)
            .await?;
        let emails = crate::notify::EmailSender::new(
            engine.smtp_url.as_ref().map(|u| u.expose()),
            &engine.email_from,
            engine.webhook_timeout,
        )
        .map_err(Error::Invalid)?;
        let metrics = crate::telemetry::Metrics::new(&crate::telemetry::BuildInfo {
            database: db.kind(),
            storage: blobs.kind(),
        });
        Ok(Exports {
            inner: Arc::new(Inner {
                metrics,
                faults: Default::default(),
                requests: Default::default(),
                db,
                blobs,
                clock,
                signer: links::Signer::from_hex(&key),
                work_submitted: Notify::new(),
                delivery_queued: Notify::new(),
                collecting_garbage: Default::default(),
                webhooks: crate::notify::WebhookSender::new(
                    engine.webhook_timeout,
                    engine.refuse_private_webhooks,
                ),
                emails,
                engine,
                auth_cache: Default::default(),
                daily_scan: Default::default(),
            }),
        })
    }

    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    pub fn metrics(&self) -> &crate::telemetry::Metrics {
        &self.inner.metrics
    }

    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// Moves the clock forward and wakes every time-driven loop, so that what
    /// became due happens at once.
    pub fn move_clock(
        &self,
        to: chrono::DateTime<chrono::Utc>,
    ) -> std::result::Result<(), crate::clock::BackwardClock> {
        self.inner.clock.set(to)?;
        self.inner.work_submitted.notify_waiters();
        self.inner.delivery_queued.notify_waiters();
        Ok(())
    }

    /// Days created before this are past retention.
    pub(crate) fn days_visible_since(&self) -> i64 {
        self.clock().now_ms() - self.inner.engine.day_retention_ms
    }

    /// Jobs that finished before this are past retention.
    pub(crate) fn jobs_visible_since(&self) -> i64 {
        self.clock().now_ms() - self.inner.engine.job_retention_ms
    }

    /// Removes what is past retention: Days (their files go with them) and
    /// finished jobs. Idempotent, and safe in several processes at once.
    pub async fn sweep_retention(&self) -> Result<()> {
        let now = self.clock().now_ms();
        while self
            .db()
            .expire_days(self.days_visible_since(), now, 500)
            .await?
            == 500
        {}
        self.db().expire_jobs(self.jobs_visible_since()).await?;
        Ok(())
    }

    pub fn blobs(&self) -> &BlobStore {
        &self.inner.blobs
    }
}
