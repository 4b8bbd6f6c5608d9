//! The export workers: each claims one job day at a time from the durable
//! queue, holds it under a heartbeated lease, exports it and settles it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{Exports, Result};
use super::{FaultKind, FaultTarget};
use crate::db::{Claimed, Finish, Settled};
use crate::domain::DayStatus;
use crate::export::{self, export_day};
use crate::telemetry::ExportOutcome;

/// How long a file being written may stay unpublished before it counts as
/// an orphan of a dead process and is removed.
const ORPHAN_GRACE_MS: i64 = 24 * 3600 * 1000;
/// Garbage blobs removed per pass.
const GARBAGE_BATCH: i64 = 100;

/// The running workers of this process.
pub struct Workers {
    tasks: JoinSet<()>,
    stop: CancellationToken,
}

impl Workers {
    /// Starts `count` workers; they stop when `shutdown` fires.
    pub fn start(exports: &Exports, count: usize, shutdown: &CancellationToken) -> Workers {
        let stop = shutdown.child_token();
        let node = node_id();
        let mut tasks = JoinSet::new();
        for n in 0..count {
            let ex = exports.clone();
            let id = format!("{node}-{n}");
            let stop = stop.clone();
            tasks.spawn(async move { ex.work_loop(&id, &stop).await });
        }
        if count > 0 {
            let (ex, stop) = (exports.clone(), stop.clone());
            tasks.spawn(async move { ex.upkeep_loop(&stop).await });
        }
        Workers { tasks, stop }
    }

    /// Stops the workers; a day in flight is given back to the queue untouched.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        while self.tasks.join_next().await.is_some() {}
    }
}

/// This process among the nodes: host name and process id.
pub(crate) fn node_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".into());
    format!("{host}-{}", std::process::id())
}

impl Exports {
    async fn work_loop(&self, worker: &str, stop: &CancellationToken) {
        let poll = Duration::from_millis(self.inner.engine.poll_ms.max(10));
        while !stop.is_cancelled() {
            let woken = self.inner.work_submitted.notified();
            match self.run_next(worker, stop).await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => tracing::error!(error = %e, worker, "export worker step failed"),
            }
            tokio::select! {
                _ = woken => {}
                _ = tokio::time::sleep(poll) => {}
                _ = stop.cancelled() => {}
            }
        }
    }

    /// The workers' upkeep, beside them: settles the deletions of days whose
    /// worker died, and removes old files in batches while a whole batch was
    /// due; then looks again after the poll interval, or when work is
    /// submitted or the clock moves. A worker used to do both before each
    /// claim: two more round trips to the database for every day exported.
    async fn upkeep_loop(&self, stop: &CancellationToken) {
        let poll = Duration::from_millis(self.inner.engine.poll_ms.max(10));
        while !stop.is_cancelled() {
            let woken = self.inner.work_submitted.notified();
            match self.upkeep().await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => tracing::error!(error = %e, "export upkeep failed"),
            }
            tokio::select! {
                _ = woken => {}
                _ = tokio::time::sleep(poll) => {}
                _ = stop.cancelled() => {}
            }
        }
    }

    /// One pass of upkeep. True when more may be due.
    async fn upkeep(&self) -> Result<bool> {
        let now = self.clock().now_ms();
        let stale_before = now - self.inner.engine.lease_ms;
        for job in self
            .db()
            .settle_abandoned_deletions(now, stale_before)
            .await?
        {
            self.finish_job_if_complete(&job).await?;
        }
        self.collect_garbage(now)
            .instrument(tracing::info_span!("periodic", task = "garbage"))
            .await
    }

    /// Claims and runs one job day. Returns false when there was nothing to do.
    pub(crate) async fn run_next(&self, worker: &str, stop: &CancellationToken) -> Result<bool> {
        let now = self.clock().now_ms();
        let stale_before = now - self.inner.engine.lease_ms;
        let orphan_after = now + ORPHAN_GRACE_MS;
        let Some(claimed) = self
            .db()
            .claim(worker, now, stale_before, orphan_after)
            .await?
        else {
            return Ok(false);
        };
        let span = tracing::info_span!("export_day", job = %claimed.job_sid, day = %claimed.day,
            resource_type = %claimed.resource_type, attempt = claimed.attempts);
        self.export_claimed(&claimed, worker, stop)
            .instrument(span)
            .await?;
        Ok(true)
    }

    /// Runs a claimed day, publishes what it made, and counts how it ended.
    async fn export_claimed(
        &self,
        claimed: &Claimed,
        worker: &str,
        stop: &CancellationToken,
    ) -> Result<()> {
        let started = std::time::Instant::now();
        let finish = self.run_claimed(claimed, worker, stop).await;
        let now = self.clock().now_ms();
        let (key, made) = match &finish {
            Finish::Published {
                blob_key,
                status,
                size,
                record_count,
                ..
            } => (
                Some(blob_key.clone()),
                Some((*status, *record_count as u64, *size as u64)),
            ),
            _ => (None, None),
        };
        let released = matches!(finish, Finish::Release);
        let settled = self.db().finish(claimed, worker, now, finish).await?;
        let lost = settled == Settled::Lost;
        if let (true, Some(key)) = (lost, key) {
            self.blobs().delete(&key).await?;
        }
        let (outcome, records, bytes) = match made {
            _ if lost => (ExportOutcome::LostLease, 0, 0),
            Some((DayStatus::CompletedEmptyRecords, r, b)) => (ExportOutcome::Empty, r, b),
            Some((_, r, b)) => (ExportOutcome::Completed, r, b),
            None if released => (ExportOutcome::Cancelled, 0, 0),
            None => (ExportOutcome::Error, 0, 0),
        };
        tracing::debug!(outcome = outcome.as_str(), records, bytes, "job day ended");
        self.metrics().day_export(
            claimed.resource_type,
            outcome,
            started.elapsed(),
            records,
            bytes,
        );
        // A day that went back to the queue leaves its job open, and a job
        // ended with its last day has nothing left to do.
        match settled {
            Settled::Lost | Settled::Ended => self.finish_job_if_complete(&claimed.job_sid).await,
            Settled::Requeued | Settled::EndedJob => Ok(()),
        }
    }

    async fn run_claimed(&self, c: &Claimed, worker: &str, shutdown: &CancellationToken) -> Finish {
        let engine = &self.inner.engine;
        if c.attempts > i64::from(engine.max_attempts) {
            return Finish::Failed {
                error: format!("gave up after {} attempts", c.attempts - 1),
            };
        }
        if c.takeovers > i64::from(engine.max_takeovers) {
            return Finish::Failed {
                error: format!(
                    "gave up after its worker was lost {} times (max_takeovers)",
                    c.takeovers
                ),
            };
        }
        let (rt, day) = (c.resource_type, c.day);
        let stop = shutdown.child_token();
        let heartbeat = self.spawn_heartbeat(c.id, worker.to_string(), stop.clone());
        // On the garbage list since the claim: publishing takes it off.
        let key = c.blob_key.clone();
        let version = match self
            .db()
            .day_version(&c.account_sid, rt.as_str(), &day.to_string())
            .await
        {
            Ok(v) => v,
            Err(e) => {
                heartbeat.abort();
                return Finish::Retry {
                    run_after: self.clock().now_ms() + engine.retry_base_ms,
                    error: e.to_string(),
                };
            }
        };
        let result = match self.day_faults(c, worker, &stop).await {
            DayFault::None => {
                export_day(
                    self.db(),
                    self.blobs(),
                    &key,
                    &c.account_sid,
                    rt,
                    day,
                    &stop,
                )
                .await
            }
            DayFault::Empty => export::export_empty(self.blobs(), &key).await,
            DayFault::Error(message) => Err(export::Error::Injected(message)),
            DayFault::Stopped => Err(export::Error::Stopped),
        };
        heartbeat.abort();
        let now = self.clock().now_ms();
        match result {
            Ok(done) => Finish::Published {
                status: if done.records == 0 {
                    DayStatus::CompletedEmptyRecords
                } else {
                    DayStatus::Completed
                },
                blob_key: key,
                size: done.size as i64,
                record_count: done.records as i64,
                create_date: self.clock().today().to_string(),
                garbage_after: now + engine.download_ttl_secs * 1000,
                version,
            },
            Err(export::Error::Stopped) => Finish::Release,
            Err(e) if c.attempts + c.claim_took_over < i64::from(engine.max_attempts) => {
                tracing::warn!(error = %e, job = %c.job_sid, day = %c.day, attempt = c.attempts, "export attempt failed; will retry");
                let backoff = engine
                    .retry_base_ms
                    .saturating_mul(1 << (c.attempts - 1).clamp(0, 20));
                Finish::Retry {
                    run_after: now + backoff,
                    error: e.to_string(),
                }
            }
            Err(e) => {
                tracing::error!(error = %e, job = %c.job_sid, day = %c.day, "export failed after the last attempt");
                Finish::Failed {
                    error: e.to_string(),
                }
            }
        }
    }

    /// The faults of a claimed day: a `DayDelay` is waited out here (on the
    /// service clock, the lease renewed meanwhile), then a `DayError` or a
    /// `DayEmpty` says how the export goes.
    async fn day_faults(&self, c: &Claimed, worker: &str, stop: &CancellationToken) -> DayFault {
        let target = FaultTarget {
            account_sid: Some(&c.account_sid),
            resource_type: Some(c.resource_type),
            day: Some(c.day),
            job_sid: Some(&c.job_sid),
            operation: None,
        };
        let fire = |kind| async move {
            match self.fire(kind, target).await {
                Ok(fired) => fired,
                Err(e) => {
                    tracing::warn!(error = %e, "could not read the fault rules; none applied");
                    None
                }
            }
        };
        if let Some(delay) = fire(FaultKind::DayDelay).await {
            let until = self.clock().now_ms() + delay.number("seconds").unwrap_or(0) * 1000;
            // The lease lasts the delay: no worker takes the day over while
            // the clock is moved through it.
            if let Err(e) = self.db().heartbeat(c.id, worker, until).await {
                tracing::warn!(error = %e, "could not extend the lease of a delayed day");
            }
            while self.clock().now_ms() < until {
                let woken = self.inner.work_submitted.notified();
                let left =
                    Duration::from_millis((until - self.clock().now_ms()).clamp(1, 1000) as u64);
                tokio::select! {
                    _ = woken => {}
                    _ = tokio::time::sleep(left) => {}
                    _ = stop.cancelled() => return DayFault::Stopped,
                }
            }
        }
        if let Some(error) = fire(FaultKind::DayError).await {
            let message = error
                .text("message")
                .unwrap_or("injected fault")
                .to_string();
            return DayFault::Error(format!("{message} (fault {})", error.sid));
        }
        if fire(FaultKind::DayEmpty).await.is_some() {
            return DayFault::Empty;
        }
        DayFault::None
    }

    /// Renews the lease every third of its length; cancels `stop` when the
    /// lease is lost or the job's deletion was requested.
    fn spawn_heartbeat(
        &self,
        id: i64,
        worker: String,
        stop: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let ex = self.clone();
        let every = Duration::from_millis((ex.inner.engine.lease_ms / 3).max(100) as u64);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(every) => {}
                }
                match ex.db().heartbeat(id, &worker, ex.clock().now_ms()).await {
                    Ok(true) => {}
                    Ok(false) => {
                        stop.cancel();
                        return;
                    }
                    Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
                }
            }
        })
    }

    /// Removes old day files whose time has come. Each is leased for one
    /// worker lease and taken off the list only once the store has removed
    /// it; a failed removal is tried again when the lease runs out. Also
    /// erases the stored lines of replaced and deleted records (SQLite).
    /// True when it removed a whole batch of files or erased lines: more may
    /// be due.
    pub async fn collect_garbage(&self, now: i64) -> Result<bool> {
        // Counted before leasing, so `wait_idle` never sees a leased file
        // that is neither due nor counted.
        let _collecting = Collecting::enter(&self.inner.collecting_garbage);
        let lease_until = now + self.inner.engine.lease_ms;
        let mut removed = Vec::new();
        for key in self
            .db()
            .lease_garbage(now, lease_until, GARBAGE_BATCH)
            .await?
        {
            match self.blobs().delete(&key).await {
                Ok(()) => removed.push(key),
                Err(e) => {
                    tracing::warn!(error = %e, key, "could not remove an old day file; will retry")
                }
            }
        }
        self.db().forget_garbage(&removed).await?;
        let erased = match self.db().sweep_lines().await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "could not erase the lines of replaced or deleted records; will retry");
                0
            }
        };
        Ok(removed.len() == GARBAGE_BATCH as usize || erased > 0)
    }

    /// Waits until no call deletion is due, no published Day is stale, no
    /// job day is queued, running or due for a retry, no notification is due,
    /// no old file is due for removal or being removed by this process, and no
    /// stored line waits to be erased: what tests and the admin API use
    /// instead of sleeping.
    pub async fn wait_idle(&self, timeout: Duration) -> Result<bool> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // While days are queued the workers are busy and nothing below
            // could say idle: wait for the queue without the periodic tasks,
            // whose scans would take the workers' cores.
            if self.db().pending_work(self.clock().now_ms()).await? > 0 {
                if tokio::time::Instant::now() >= deadline {
                    return Ok(false);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            self.schedule_daily_exports().await?;
            self.apply_deletions_if_due().await?;
            self.rewrite_stale_days().await?;
            self.collect_garbage(self.clock().now_ms()).await?;
            // Other tasks, here and on other nodes, move work along at the same
            // time: a deletion is applied, its day becomes stale, a rewrite is
            // queued and runs, its job finishes and notifies. The checks follow
            // that order, each reading the clock itself, so work that moves on
            // after its stage was checked is seen by a later check.
            let idle = !self.deletions_due().await?
                && self.db().stale_days(1).await?.is_empty()
                && self.db().pending_work(self.clock().now_ms()).await? == 0
                && self.db().complete_unfinished_jobs(1).await?.is_empty()
                && self.db().due_deliveries(self.clock().now_ms()).await? == 0
                // Due files first, then collections: a collection that leased
                // a file after the first read was counted before the second.
                && self.db().due_garbage(self.clock().now_ms()).await? == 0
                && self.inner.collecting_garbage.load(Ordering::SeqCst) == 0
                && self.db().line_garbage().await? == 0;
            if idle {
                return Ok(true);
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// How the faults of a claimed day say its export goes.
enum DayFault {
    None,
    Empty,
    Error(String),
    Stopped,
}

/// Counts one running garbage collection for as long as it lives.
struct Collecting<'a>(&'a AtomicUsize);

impl<'a> Collecting<'a> {
    fn enter(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Collecting(count)
    }
}

impl Drop for Collecting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
