//! Export custom jobs and their days.

use std::sync::LazyLock;

use super::job_rows::{group_job_rows, JobWithDay, JOB_COLUMNS, SHOWN_COLUMNS, SHOWN_COLUMNS_OF_J};
pub use super::job_rows::{JobDayRow, JobRow, QueuePlace, ReadJob, ShownJob};
use super::{with_pool, Db, Result};
use crate::domain::DayStatus;

#[derive(Debug, Clone)]
pub struct NewJob {
    pub sid: String,
    pub account_sid: String,
    pub resource_type: String,
    pub friendly_name: String,
    pub start_day: String,
    pub end_day: String,
    pub webhook_url: Option<String>,
    pub webhook_method: Option<String>,
    pub email: Option<String>,
    pub created_at: i64,
    pub days: Vec<String>,
    pub kind: JobKind,
    /// The API request that created the job.
    pub request_id: Option<String>,
}

/// An ExportCustomJob, or the job behind an automatic daily export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    Custom,
    Daily,
    /// Rewrites a published Day whose records changed (a deleted call).
    Rewrite,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Custom => "custom",
            JobKind::Daily => "daily",
            JobKind::Rewrite => "rewrite",
        }
    }
}

impl std::str::FromStr for JobKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        [JobKind::Custom, JobKind::Daily, JobKind::Rewrite]
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown job kind {s:?}"))
    }
}

/// What must hold for a job to be stored.
#[derive(Debug, Clone)]
pub enum Admission {
    /// A custom job: within the family's requested-days quota.
    Quota(DayQuota),
    /// Nothing to check.
    Always,
}

/// The requested-days quota of an account family (the parent account and
/// its subaccounts) for one UTC day.
#[derive(Debug, Clone)]
pub struct DayQuota {
    /// Days a family may request per UTC day; 0 for no limit.
    pub limit: i64,
    /// The UTC day, as [start, end) in milliseconds.
    pub day_start: i64,
    pub day_end: i64,
}

/// A status as an SQL literal (`'Running'`): SQL names statuses only
/// through the domain's enum.
pub(super) fn lit(status: DayStatus) -> String {
    format!("'{}'", status.as_str())
}

/// Statuses as an SQL list (`('Submitted', 'Running')`).
pub(super) fn list(statuses: &[DayStatus]) -> String {
    let items: Vec<String> = statuses.iter().map(|s| lit(*s)).collect();
    format!("({})", items.join(", "))
}

/// Statuses a day can still leave, as an SQL list.
const OPEN: [DayStatus; 4] = [
    DayStatus::Submitted,
    DayStatus::Running,
    DayStatus::ErrorDuringRun,
    DayStatus::RunningToBeDeleted,
];

pub(super) static OPEN_STATUSES: LazyLock<String> = LazyLock::new(|| list(&OPEN));

/// Whether the job whose SID is the SQL expression `job` has a day still
/// open: read along the job's own days (`job_days (job_sid, day)`), the
/// status checked on each. The status is compared as an expression no index
/// serves (`status || ''`): PostgreSQL's generic plan otherwise intersected
/// the job's days with `job_days_queue`, visiting every open day of the
/// queue (a midnight's 40,000) for each job that ended.
pub(super) fn open_day_of(job: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM job_days WHERE job_sid = {job} AND status || '' IN {})",
        *OPEN_STATUSES
    )
}

/// The seq of the oldest job with an open day (NULL when none): the least
/// of one index lookup per open status (`job_days_queue`).
static OLDEST_OPEN_JOB: LazyLock<String> = LazyLock::new(|| {
    let each: Vec<String> = OPEN
        .iter()
        .map(|s| {
            format!(
                "SELECT MIN(job_seq) AS m FROM job_days WHERE status = {}",
                lit(*s)
            )
        })
        .collect();
    format!(
        "(SELECT MIN(m) FROM ({}) AS open_days)",
        each.join(" UNION ALL ")
    )
});

/// The jobs of `jobs` (as `j0`) that match `filter`, in seq `order`, at
/// most `limit`, joined with their days: `SHOWN_COLUMNS`, the day and its
/// status, then the job's place in the queue (`JobWithDay`). The place of an
/// unfinished job is the queue counters' totals (`COUNT_UP`) less what is
/// queued after it, counted in the unfinished part of `jobs_unfinished` and
/// `job_days_queue` from the job on: the jobs a client polls are mostly the
/// newest, and the entries jobs that finished leave behind until a vacuum
/// lie before them. The jobs are limited before the join, so the place is
/// computed once a job (never for a finished one), and the counters and the
/// recent pace, uncorrelated, once a statement. A job whose end recorded its
/// days (`final_days`) is joined with none (a NULL key: one row, none of its
/// days read; PostgreSQL's generic plan probed the days and then filtered
/// them out when the condition was `final_days IS NULL`). The rows come in
/// the jobs' order only, as the limited jobs and the join give them without
/// a sort; `job_rows::group_job_rows` puts each job's days in day order.
fn read_jobs_sql(filter: &str, order: &str, limit: &str) -> String {
    let unfinished = "CASE WHEN j0.finished_at IS NULL THEN";
    format!(
        "SELECT {}, d.day AS job_day, d.status AS job_day_status, \
         j.queue_position, j.open_days_ahead, j.recent_day_ms, j.final_days FROM \
         (SELECT {SHOWN_COLUMNS}, final_days, \
         {unfinished} {} - {} - (SELECT COUNT(*) FROM jobs later WHERE later.finished_at IS NULL AND later.seq > j0.seq) END \
         AS queue_position, \
         {unfinished} {} - {} - (SELECT COUNT(*) FROM job_days WHERE status IN {} AND job_seq > j0.seq) END \
         AS open_days_ahead, \
         {unfinished} ({}) END AS recent_day_ms \
         FROM jobs j0 WHERE {filter} ORDER BY seq {order} LIMIT {limit}) AS j \
         LEFT JOIN job_days d ON d.job_sid = CASE WHEN j.final_days IS NULL THEN j.sid END ORDER BY j.seq {order}",
        *SHOWN_COLUMNS_OF_J,
        counter("job_seq"),
        counter("jobs_finished"),
        counter("job_days_stored"),
        counter("job_days_closed"),
        *OPEN_STATUSES,
        *RECENT_DAY_MS
    )
}

/// The days of the job whose SID is the SQL expression `job`, with their
/// statuses, as `jobs.final_days` keeps them once the job finished:
/// `yyyy-mm-ddStatus` items, comma-separated, in no particular order
/// (`job_rows` sorts them). Set by the statement that records the end: a
/// finished job's days are all final, and a final status never changes.
pub(super) fn final_days_of(job: &str) -> String {
    format!("(SELECT string_agg(day || status, ',') FROM job_days WHERE job_sid = {job})")
}

/// Mean milliseconds one day took, over the completed ones among the 100
/// most recently finished days, as a scalar expression: read backwards
/// along `job_days_finished`, never through every completed day.
pub(super) static RECENT_DAY_MS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT AVG(CAST(finished_at - started_at AS DOUBLE PRECISION)) FROM (SELECT finished_at, started_at, status \
         FROM job_days WHERE finished_at IS NOT NULL ORDER BY finished_at DESC LIMIT 100) AS recent \
         WHERE status IN {} AND started_at IS NOT NULL",
        list(&[DayStatus::Completed, DayStatus::CompletedEmptyRecords])
    )
});

/// Takes the next value of a named counter inside a transaction; the row lock
/// orders concurrent takers, so values follow commit order.
pub(super) const NEXT_COUNTER: &str =
    "UPDATE service_counters SET value = value + 1 WHERE name = $1 RETURNING value";

/// The value of the counter `name`, as a scalar subquery.
pub(super) fn counter(name: &str) -> String {
    format!("(SELECT value FROM service_counters WHERE name = '{name}')")
}

/// Adds `$2` to the counter `$1`, in the transaction that made the change
/// it counts. The queue counters place a new job without counting the
/// queue: every job before a new one is older, so the unfinished ones are
/// `job_seq - jobs_finished` and their open days `job_days_stored -
/// job_days_closed`. `jobs_finished` counts jobs whose end was recorded,
/// `job_days_closed` days that went from an open status to a final one.
/// Each transaction takes these counters last, after the rows it changed,
/// so that two writers never hold a row and a counter the other waits for.
pub(super) const COUNT_UP: &str = "UPDATE service_counters SET value = value + $2 WHERE name = $1";

/// The SIDs of jobs this process has read finished, as a hint of which
/// statement reads a job at the least cost: a finished job never becomes
/// unfinished, and either statement reads the job afresh, so a wrong hint
/// (a slot taken by another job, or a job since deleted) costs a statement,
/// never a wrong answer. A fixed table of 64-bit hashes of the SIDs, one
/// slot a hash: bounded memory, no lock.
pub(super) struct FinishedJobs {
    slots: Box<[std::sync::atomic::AtomicU64]>,
}

impl FinishedJobs {
    /// Slots in the table (8 bytes each).
    const SLOTS: usize = 4096;

    fn hash(sid: &str) -> u64 {
        use std::hash::BuildHasher;
        // Fixed seed: the hash only picks a slot and tells SIDs apart. Zero
        // marks an empty slot.
        foldhash::fast::FixedState::with_seed(0x6a6f_6273).hash_one(sid) | 1
    }

    fn slot(&self, hash: u64) -> &std::sync::atomic::AtomicU64 {
        &self.slots[(hash >> 1) as usize % self.slots.len()]
    }

    fn holds(&self, sid: &str) -> bool {
        let hash = Self::hash(sid);
        self.slot(hash).load(std::sync::atomic::Ordering::Relaxed) == hash
    }

    fn insert(&self, sid: &str) {
        let hash = Self::hash(sid);
        self.slot(hash)
            .store(hash, std::sync::atomic::Ordering::Relaxed);
    }
}

impl std::fmt::Debug for FinishedJobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FinishedJobs").finish_non_exhaustive()
    }
}

impl Default for FinishedJobs {
    fn default() -> Self {
        FinishedJobs {
            slots: (0..Self::SLOTS)
                .map(|_| std::sync::atomic::AtomicU64::new(0))
                .collect(),
        }
    }
}

impl Db {
    /// A custom job with its days (in day order) and its place in the queue,
    /// in one statement: FetchJob is the most frequent call, and each
    /// statement is a round trip (to PostgreSQL, or to SQLite's worker thread).
    ///
    /// A job this process has read finished before ([`FinishedJobs`]) is read
    /// by a narrow statement, when its days are on its row (`final_days`):
    /// PostgreSQL sets up every subquery of the statement for an unfinished
    /// job (the queue's counters and counts, the recent pace, the join with
    /// the days) on each execution, even when a finished job skips them,
    /// which made FetchJob of a finished job cost it twice the CPU
    /// (`pgbench`: 32,700 against 74,000 statements a second). Any other
    /// job, or one the narrow statement does not find (deleted, past the
    /// window, finished before `final_days`), takes the full statement.
    pub async fn find_job_with_days(
        &self,
        account_sid: &str,
        sid: &str,
        finished_since: i64,
    ) -> Result<Option<ReadJob>> {
        static FINISHED: LazyLock<String> = LazyLock::new(|| {
            format!(
                "SELECT {SHOWN_COLUMNS}, NULL AS job_day, NULL AS job_day_status, NULL AS queue_position, \
                 NULL AS open_days_ahead, NULL AS recent_day_ms, final_days FROM jobs \
                 WHERE sid = $1 AND account_sid = $2 AND kind = 'custom' AND finished_at >= $3 \
                 AND final_days IS NOT NULL"
            )
        });
        if self.finished_jobs.holds(sid) {
            let finished: Vec<JobWithDay> =
                with_pool!(self, |pool| sqlx::query_as(FINISHED.as_str())
                    .bind(sid)
                    .bind(account_sid)
                    .bind(finished_since)
                    .fetch_all(pool)
                    .await)?;
            if let Some(job) = group_job_rows(finished).pop() {
                return Ok(Some(job));
            }
        }
        static SQL: LazyLock<String> = LazyLock::new(|| {
            read_jobs_sql(
                "sid = $1 AND account_sid = $2 AND kind = 'custom' \
                 AND (finished_at IS NULL OR finished_at >= $3)",
                "ASC",
                "1",
            )
        });
        let rows: Vec<JobWithDay> = with_pool!(self, |pool| sqlx::query_as(SQL.as_str())
            .bind(sid)
            .bind(account_sid)
            .bind(finished_since)
            .fetch_all(pool)
            .await)?;
        let job = group_job_rows(rows).pop();
        if job.as_ref().is_some_and(|j| j.row.finished_at.is_some()) {
            self.finished_jobs.insert(sid);
        }
        Ok(job)
    }

    /// One page of an account's jobs of one type with their days (in day
    /// order) and places in the queue, in submission order: after `after`
    /// (ascending) or before `before` (returned ascending). One statement.
    pub async fn list_jobs(
        &self,
        account_sid: &str,
        resource_type: &str,
        after: Option<i64>,
        before: Option<i64>,
        limit: i64,
        finished_since: i64,
    ) -> Result<Vec<ReadJob>> {
        static SQL: LazyLock<[String; 2]> = LazyLock::new(|| {
            [(">", "ASC"), ("<", "DESC")].map(|(cmp, order)| {
                read_jobs_sql(
                    &format!(
                        "account_sid = $1 AND resource_type = $2 AND seq {cmp} $3 AND kind = 'custom' \
                         AND (finished_at IS NULL OR finished_at >= $5)"
                    ),
                    order,
                    "$4",
                )
            })
        });
        let (sql, pos) = match before {
            Some(b) => (&SQL[1], b),
            None => (&SQL[0], after.unwrap_or(0)),
        };
        let rows: Vec<JobWithDay> = with_pool!(self, |pool| sqlx::query_as(sql.as_str())
            .bind(account_sid)
            .bind(resource_type)
            .bind(pos)
            .bind(limit)
            .bind(finished_since)
            .fetch_all(pool)
            .await)?;
        let mut jobs = group_job_rows(rows);
        if before.is_some() {
            jobs.reverse();
        }
        Ok(jobs)
    }

    /// The days of one account's jobs of one type whose seq lies in
    /// `first..=last`, by job and day: through the account's jobs (and each
    /// job's days by its SID), never the other accounts' jobs in between.
    pub async fn job_days_between(
        &self,
        account_sid: &str,
        resource_type: &str,
        first_seq: i64,
        last_seq: i64,
    ) -> Result<Vec<JobDayRow>> {
        let sql =
            "SELECT d.job_sid, d.day, d.status FROM jobs j JOIN job_days d ON d.job_sid = j.sid \
                   WHERE j.account_sid = $1 AND j.resource_type = $2 AND j.seq BETWEEN $3 AND $4 \
                   ORDER BY j.seq, d.day";
        Ok(with_pool!(self, |pool| sqlx::query_as(sql)
            .bind(account_sid)
            .bind(resource_type)
            .bind(first_seq)
            .bind(last_seq)
            .fetch_all(pool)
            .await)?)
    }

    /// The unfinished jobs and open job days, counted and as the queue
    /// counters have them (`COUNT_UP`): for checks that the two agree.
    pub async fn queue_tallies(&self) -> Result<[(i64, i64); 2]> {
        static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            format!(
                "SELECT (SELECT COUNT(*) FROM jobs WHERE finished_at IS NULL), \
                 (SELECT COUNT(*) FROM job_days WHERE status IN {}), {} - {}, {} - {}",
                *OPEN_STATUSES,
                counter("job_seq"),
                counter("jobs_finished"),
                counter("job_days_stored"),
                counter("job_days_closed")
            )
        });
        let (a, b, c, d): (i64, i64, i64, i64) =
            with_pool!(self, |pool| sqlx::query_as(SQL.as_str())
                .fetch_one(pool)
                .await)?;
        Ok([(a, b), (c, d)])
    }

    /// Marks a job deleted: queued days will never run, a running day is told
    /// to stop. Returns false when the account has no such job.
    pub async fn delete_job(&self, account_sid: &str, sid: &str, now: i64) -> Result<bool> {
        let found = with_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let found = sqlx::query("UPDATE jobs SET deleted_at = COALESCE(deleted_at, $1) WHERE sid = $2 AND account_sid = $3")
                .bind(now)
                .bind(sid)
                .bind(account_sid)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 1;
            if found {
                let closed = sqlx::query(
                    "UPDATE job_days SET status = $3, finished_at = $1, locked_by = NULL \
                     WHERE job_sid = $2 AND status IN ($4, $5)",
                )
                .bind(now)
                .bind(sid)
                .bind(DayStatus::DeletedByUserRequest.as_str())
                .bind(DayStatus::Submitted.as_str())
                .bind(DayStatus::ErrorDuringRun.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected();
                sqlx::query("UPDATE job_days SET status = $2 WHERE job_sid = $1 AND status = $3")
                    .bind(sid)
                    .bind(DayStatus::RunningToBeDeleted.as_str())
                    .bind(DayStatus::Running.as_str())
                    .execute(&mut *tx)
                    .await?;
                // The counter last, as every writer takes it: after the day
                // rows. A worker finishing a running day of this job holds
                // that day's row and then takes the counter; taking the
                // counter before that row would wait on each other.
                if closed > 0 {
                    sqlx::query(COUNT_UP)
                        .bind("job_days_closed")
                        .bind(closed as i64)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            tx.commit().await?;
            Ok::<bool, super::Error>(found)
        })?;
        if found {
            self.mark_job_finished(sid, now).await?;
        }
        Ok(found)
    }

    /// The job, if every one of its days is final but its end is not recorded yet.
    pub async fn job_if_complete(&self, sid: &str) -> Result<Option<JobRow>> {
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE sid = $1 AND finished_at IS NULL AND NOT {}",
            open_day_of("$1")
        );
        Ok(with_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(sid)
            .fetch_optional(pool)
            .await)?)
    }

    /// Jobs whose days are all final but whose end is not recorded (a process
    /// died in between): the sweep finishes them.
    pub async fn complete_unfinished_jobs(&self, limit: i64) -> Result<Vec<String>> {
        // Only jobs older than the oldest one with an open day: their days
        // are all final, so the answer comes from the unfinished end of
        // `jobs_unfinished` without checking the queue job by job. A job
        // that ends ahead of an older open one is found once the queue has
        // moved past it; with no open day, every unfinished job is checked.
        let sql = format!(
            "SELECT sid FROM jobs j WHERE finished_at IS NULL AND seq < COALESCE({oldest}, 9223372036854775807) \
             AND NOT {open} ORDER BY seq LIMIT $1",
            oldest = *OLDEST_OPEN_JOB,
            open = open_day_of("j.sid")
        );
        Ok(with_pool!(self, |pool| sqlx::query_scalar(&sql)
            .bind(limit)
            .fetch_all(pool)
            .await)?)
    }

    /// Records that a job finished, once all its days are final. Returns true
    /// for the one call that records it.
    pub async fn mark_job_finished(&self, sid: &str, now: i64) -> Result<bool> {
        let sql = format!(
            "UPDATE jobs SET finished_at = $1, final_days = {} WHERE sid = $2 AND finished_at IS NULL AND NOT {}",
            final_days_of("$2"),
            open_day_of("$2")
        );
        let _turn = self.write_turn().await;
        Ok(with_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let done = sqlx::query(&sql)
                .bind(now)
                .bind(sid)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 1;
            if done {
                sqlx::query(COUNT_UP)
                    .bind("jobs_finished")
                    .bind(1_i64)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok::<bool, super::Error>(done)
        })?)
    }

    /// Removes jobs (and their days) that finished before `finished_before`,
    /// and the quota counters of UTC days over a day older than that.
    pub async fn expire_jobs(&self, finished_before: i64) -> Result<u64> {
        with_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM job_days WHERE job_sid IN (SELECT sid FROM jobs WHERE finished_at < $1)")
                .bind(finished_before)
                .execute(&mut *tx)
                .await?;
            let n = sqlx::query("DELETE FROM jobs WHERE finished_at < $1")
                .bind(finished_before)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            // A UTC day's quota counter outlives the day by the same retention.
            sqlx::query("DELETE FROM quota_usage WHERE day_start < $1 - 86400000")
                .bind(finished_before)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(n)
        })
    }

    /// The newest day already exported automatically for (account, resource type).
    pub async fn last_daily_export(
        &self,
        account_sid: &str,
        resource_type: &str,
    ) -> Result<Option<String>> {
        let sql =
            "SELECT MAX(day) FROM daily_exports WHERE account_sid = $1 AND resource_type = $2";
        Ok(with_pool!(self, |pool| sqlx::query_scalar(sql)
            .bind(account_sid)
            .bind(resource_type)
            .fetch_one(pool)
            .await)?)
    }
}
