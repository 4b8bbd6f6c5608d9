//! Automatic daily exports: for each enabled configuration of an Editions
//! account, once a UTC day has ended (plus the settle delay), that day is
//! exported as a job of kind `daily`. A unique row per (account, resource
//! type, day) makes it happen exactly once across restarts and processes;
//! days missed while no process ran are caught up as far back as retention allows.

use chrono::{DateTime, Utc};

use super::{Exports, Result};
use crate::db::{JobKind, NewJob};
use crate::domain::{Day, SidKind};

/// Daily jobs stored a transaction.
const DAILY_BATCH: usize = 200;

/// How long a scan that found nothing to queue is trusted while neither the
/// last due day nor this process's configurations change: changes made by
/// other processes (another node's API, the CLI) are seen within this time.
const QUIET_RESCAN: std::time::Duration = std::time::Duration::from_secs(60);

/// A scan of every enabled configuration that found nothing to queue: for
/// which last due day, after how many configuration changes, and when.
#[derive(Debug, Clone, Copy)]
pub(super) struct QuietScan {
    last: Day,
    config_changes: u64,
    at: std::time::Instant,
}

impl Exports {
    /// Queues every automatic export that is due and not yet queued.
    pub async fn schedule_daily_exports(&self) -> Result<usize> {
        let now = self.clock().now();
        let settled = now - chrono::Duration::milliseconds(self.inner.engine.daily_settle_ms);
        // Day D may be exported once D + 1 day + the settle delay has passed.
        let last = Day::from_date(settled.date_naive()).minus_days(1);
        let retained = Day::from_date(
            (now - chrono::Duration::milliseconds(self.inner.engine.day_retention_ms)).date_naive(),
        );
        // The scan reads every enabled configuration; it runs about once a
        // second, so a scan that found nothing is not repeated until the
        // due day or a configuration changes (10,000 tenants: 77 ms a scan).
        let config_changes = self.db().config_changes();
        // Held through the scan: this process's scans take turns. A drain's
        // scan and the periodic one used to run side by side after a
        // midnight, and the second stored every daily job again (each insert
        // a conflict: 40,000 wasted statements for 40,000 daily days).
        let mut quiet = self.inner.daily_scan.lock().await;
        if quiet.is_some_and(|q| {
            q.last == last && q.config_changes == config_changes && q.at.elapsed() < QUIET_RESCAN
        }) {
            return Ok(0);
        }
        let mut queued = 0;
        let mut batch = Vec::with_capacity(DAILY_BATCH);
        for (account_sid, resource_type, enabled_at, last_export) in
            self.db().enabled_daily_exports(&last.to_string()).await?
        {
            let enabled_day = DateTime::<Utc>::from_timestamp_millis(enabled_at)
                .map(|t| Day::from_date(t.date_naive()))
                .unwrap_or(last);
            let after_last_export = last_export.and_then(|d| Day::parse(&d).ok()).map(Day::succ);
            let first = [Some(enabled_day), Some(retained), after_last_export]
                .into_iter()
                .flatten()
                .max()
                .unwrap_or(last);
            if first > last {
                continue;
            }
            for day in first.through(last) {
                batch.push(self.daily_job(&account_sid, &resource_type, day));
                if batch.len() >= DAILY_BATCH {
                    queued += self.queue_daily_jobs(&mut batch).await?;
                }
            }
        }
        queued += self.queue_daily_jobs(&mut batch).await?;
        *quiet = (queued == 0).then(|| QuietScan {
            last,
            config_changes,
            at: std::time::Instant::now(),
        });
        Ok(queued)
    }

    /// Stores a batch of daily jobs (emptying it) and wakes the workers, so
    /// that the first days export while the rest are queued.
    async fn queue_daily_jobs(&self, batch: &mut Vec<NewJob>) -> Result<usize> {
        if batch.is_empty() {
            return Ok(0);
        }
        let stored = self.db().insert_daily_jobs(batch).await?;
        batch.clear();
        if stored > 0 {
            self.inner.work_submitted.notify_waiters();
        }
        Ok(stored)
    }

    /// The automatic export of one day.
    fn daily_job(&self, account_sid: &str, resource_type: &str, day: Day) -> NewJob {
        NewJob {
            sid: SidKind::Job.generate_ordered(self.clock().now_ms()),
            account_sid: account_sid.to_string(),
            resource_type: resource_type.to_string(),
            friendly_name: format!("Daily export {day}"),
            start_day: day.to_string(),
            end_day: day.to_string(),
            webhook_url: None,
            webhook_method: None,
            email: None,
            created_at: self.clock().now_ms(),
            days: vec![day.to_string()],
            kind: JobKind::Daily,
            request_id: None,
        }
    }
}
