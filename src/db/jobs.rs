//! Export custom jobs and their days.

use super::{Db, Result};

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
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JobRow {
    pub seq: i64,
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
    pub deleted_at: Option<i64>,
    pub finished_at: Option<i64>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JobDayRow {
    pub job_sid: String,
    pub day: String,
    pub status: String,
}

const JOB_COLUMNS: &str =
    "seq, sid, account_sid, resource_type, friendly_name, start_day, end_day, webhook_url, \
                           webhook_method, email, created_at, deleted_at, finished_at";

/// Statuses a day can still leave.
pub(super) const OPEN_STATUSES: &str =
    "('Submitted', 'Running', 'ErrorDuringRun', 'RunningToBeDeleted')";

impl Db {
    /// Stores a job and queues each of its days, atomically.
    pub async fn insert_job(&self, job: &NewJob) -> Result<i64> {
        let mut tx = self.pool.begin().await?;
        let seq: i64 = sqlx::query_scalar(
            "INSERT INTO jobs (sid, account_sid, resource_type, friendly_name, start_day, end_day, webhook_url, \
             webhook_method, email, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq",
        )
        .bind(&job.sid)
        .bind(&job.account_sid)
        .bind(&job.resource_type)
        .bind(&job.friendly_name)
        .bind(&job.start_day)
        .bind(&job.end_day)
        .bind(&job.webhook_url)
        .bind(&job.webhook_method)
        .bind(&job.email)
        .bind(job.created_at)
        .fetch_one(&mut *tx)
        .await?;
        for day in &job.days {
            sqlx::query(
                "INSERT INTO job_days (job_seq, job_sid, account_sid, resource_type, day, status, run_after) \
                 VALUES (?, ?, ?, ?, ?, 'Submitted', ?)",
            )
            .bind(seq)
            .bind(&job.sid)
            .bind(&job.account_sid)
            .bind(&job.resource_type)
            .bind(day)
            .bind(job.created_at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(seq)
    }

    pub async fn find_job(&self, account_sid: &str, sid: &str) -> Result<Option<JobRow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE sid = ? AND account_sid = ?"
        ))
        .bind(sid)
        .bind(account_sid)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// One page of an account's jobs of one resource type, in submission
    /// order: after `after` (ascending) or before `before` (returned ascending).
    pub async fn list_jobs(
        &self,
        account_sid: &str,
        resource_type: &str,
        after: Option<i64>,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<JobRow>> {
        let mut rows: Vec<JobRow> = match before {
            Some(b) => sqlx::query_as(&format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE account_sid = ? AND resource_type = ? AND seq < ? ORDER BY seq DESC LIMIT ?"
            ))
            .bind(account_sid)
            .bind(resource_type)
            .bind(b)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?,
            None => sqlx::query_as(&format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE account_sid = ? AND resource_type = ? AND seq > ? ORDER BY seq LIMIT ?"
            ))
            .bind(account_sid)
            .bind(resource_type)
            .bind(after.unwrap_or(0))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?,
        };
        if before.is_some() {
            rows.reverse();
        }
        Ok(rows)
    }

    /// The days of the jobs whose seq lies in `first..=last`, by job and day.
    pub async fn job_days_between(&self, first_seq: i64, last_seq: i64) -> Result<Vec<JobDayRow>> {
        Ok(sqlx::query_as(
            "SELECT job_sid, day, status FROM job_days WHERE job_seq BETWEEN ? AND ? ORDER BY job_seq, day",
        )
        .bind(first_seq)
        .bind(last_seq)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The job's place among unfinished jobs, from 1; None once it finished.
    pub async fn queue_position(&self, seq: i64) -> Result<Option<i64>> {
        let unfinished: Option<i64> =
            sqlx::query_scalar("SELECT seq FROM jobs WHERE seq = ? AND finished_at IS NULL")
                .bind(seq)
                .fetch_optional(&self.pool)
                .await?;
        if unfinished.is_none() {
            return Ok(None);
        }
        Ok(Some(
            sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE finished_at IS NULL AND seq <= ?")
                .bind(seq)
                .fetch_one(&self.pool)
                .await?,
        ))
    }

    /// Unfinished job days at or before job `seq` in the queue.
    pub async fn open_days_ahead(&self, seq: i64) -> Result<i64> {
        Ok(sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM job_days WHERE job_seq <= ? AND status IN {OPEN_STATUSES}"
        ))
        .bind(seq)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Mean milliseconds one day took, over the most recently finished days.
    pub async fn recent_day_duration_ms(&self, sample: i64) -> Result<Option<f64>> {
        Ok(sqlx::query_scalar(
            "SELECT AVG(CAST(finished_at - started_at AS REAL)) FROM (SELECT finished_at, started_at FROM job_days \
             WHERE status IN ('Completed', 'CompletedEmptyRecords') AND started_at IS NOT NULL \
             ORDER BY finished_at DESC LIMIT ?) AS recent",
        )
        .bind(sample)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Marks a job deleted: queued days will never run, a running day is told
    /// to stop. Returns false when the account has no such job.
    pub async fn delete_job(&self, account_sid: &str, sid: &str, now: i64) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let found = sqlx::query("UPDATE jobs SET deleted_at = COALESCE(deleted_at, ?) WHERE sid = ? AND account_sid = ?")
            .bind(now)
            .bind(sid)
            .bind(account_sid)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        if found {
            sqlx::query(
                "UPDATE job_days SET status = 'DeletedByUserRequest', finished_at = ?, locked_by = NULL \
                 WHERE job_sid = ? AND status IN ('Submitted', 'ErrorDuringRun')",
            )
            .bind(now)
            .bind(sid)
            .execute(&mut *tx)
            .await?;
            sqlx::query("UPDATE job_days SET status = 'RunningToBeDeleted' WHERE job_sid = ? AND status = 'Running'")
                .bind(sid)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        if found {
            self.mark_job_finished(sid, now).await?;
        }
        Ok(found)
    }

    /// Records that a job finished, once all its days are final. Returns true
    /// for the one call that records it.
    pub async fn mark_job_finished(&self, sid: &str, now: i64) -> Result<bool> {
        Ok(sqlx::query(&format!(
            "UPDATE jobs SET finished_at = ? WHERE sid = ? AND finished_at IS NULL \
             AND NOT EXISTS (SELECT 1 FROM job_days WHERE job_sid = ? AND status IN {OPEN_STATUSES})"
        ))
        .bind(now)
        .bind(sid)
        .bind(sid)
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1)
    }
}
