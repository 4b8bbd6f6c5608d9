//! The durable work queue over `job_days`: claim under a lease, heartbeat,
//! settle. Every transition checks the lease holder, so a node that lost its
//! lease can never overwrite the work of the node that took it over.

use super::jobs::OPEN_STATUSES;
use super::{Db, Result};

/// A job day claimed by a worker.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Claimed {
    pub id: i64,
    pub job_sid: String,
    pub account_sid: String,
    pub resource_type: String,
    pub day: String,
    pub attempts: i64,
    pub friendly_name: String,
}

/// How a claimed day ends.
#[derive(Debug, Clone)]
pub enum Finish {
    /// The file was written: publish it as the Day and end the day with `status`.
    Published {
        status: &'static str,
        blob_key: String,
        size: i64,
        record_count: i64,
        create_date: String,
        garbage_after: i64,
    },
    /// The attempt failed; try again after `run_after`.
    Retry { run_after: i64, error: String },
    /// The last attempt failed.
    Failed { error: String },
    /// Give the day back untouched (shutdown).
    Release,
}

impl Db {
    /// Claims the next runnable day (queue order: job, then day), or a day whose
    /// lease expired before `stale_before`.
    pub async fn claim(
        &self,
        worker: &str,
        now: i64,
        stale_before: i64,
    ) -> Result<Option<Claimed>> {
        let claimed: Option<(i64,)> = sqlx::query_as(
            "UPDATE job_days SET status = 'Running', locked_by = ?, heartbeat_at = ?, started_at = ?, \
             attempts = attempts + 1 \
             WHERE id = (SELECT id FROM job_days WHERE \
                 (status IN ('Submitted', 'ErrorDuringRun') AND run_after <= ?) \
                 OR (status = 'Running' AND heartbeat_at < ?) \
               ORDER BY job_seq, day LIMIT 1) \
             RETURNING id",
        )
        .bind(worker)
        .bind(now)
        .bind(now)
        .bind(now)
        .bind(stale_before)
        .fetch_optional(&self.pool)
        .await?;
        let Some((id,)) = claimed else {
            return Ok(None);
        };
        Ok(Some(
            sqlx::query_as(
                "SELECT d.id, d.job_sid, d.account_sid, d.resource_type, d.day, d.attempts, j.friendly_name \
                 FROM job_days d JOIN jobs j ON j.sid = d.job_sid WHERE d.id = ?",
            )
            .bind(id)
            .fetch_one(&self.pool)
            .await?,
        ))
    }

    /// Ends days whose deletion was requested while a node that since died ran them.
    /// Returns the jobs touched.
    pub async fn settle_abandoned_deletions(
        &self,
        now: i64,
        stale_before: i64,
    ) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "UPDATE job_days SET status = 'DeletedByUserRequest', finished_at = ?, locked_by = NULL \
             WHERE status = 'RunningToBeDeleted' AND heartbeat_at < ? RETURNING job_sid",
        )
        .bind(now)
        .bind(stale_before)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Renews the lease. False when the lease is lost or the job's deletion was
    /// requested: the worker must stop.
    pub async fn heartbeat(&self, id: i64, worker: &str, now: i64) -> Result<bool> {
        Ok(sqlx::query("UPDATE job_days SET heartbeat_at = ? WHERE id = ? AND locked_by = ? AND status = 'Running'")
            .bind(now)
            .bind(id)
            .bind(worker)
            .execute(&self.pool)
            .await?
            .rows_affected()
            == 1)
    }

    /// Settles a claimed day. Returns false when the lease was no longer ours
    /// or the job's deletion was requested (the day then ends DeletedByUserRequest);
    /// nothing was published in that case.
    pub async fn finish(&self, c: &Claimed, worker: &str, now: i64, how: Finish) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let (status, run_after, finished_at, error, undo_attempt) = match &how {
            Finish::Published { status, .. } => (*status, None, Some(now), None, 0),
            Finish::Retry { run_after, error } => (
                "ErrorDuringRun",
                Some(*run_after),
                None,
                Some(error.clone()),
                0,
            ),
            Finish::Failed { error } => ("Failed", None, Some(now), Some(error.clone()), 0),
            Finish::Release => ("Submitted", None, None, None, 1),
        };
        let ours = sqlx::query(
            "UPDATE job_days SET status = ?, run_after = COALESCE(?, run_after), finished_at = ?, \
             last_error = COALESCE(?, last_error), attempts = attempts - ?, locked_by = NULL, heartbeat_at = NULL \
             WHERE id = ? AND locked_by = ? AND status = 'Running'",
        )
        .bind(status)
        .bind(run_after)
        .bind(finished_at)
        .bind(error)
        .bind(undo_attempt)
        .bind(c.id)
        .bind(worker)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !ours {
            sqlx::query(
                "UPDATE job_days SET status = 'DeletedByUserRequest', finished_at = ?, locked_by = NULL, heartbeat_at = NULL \
                 WHERE id = ? AND locked_by = ? AND status = 'RunningToBeDeleted'",
            )
            .bind(now)
            .bind(c.id)
            .bind(worker)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(false);
        }
        if let Finish::Published {
            blob_key,
            size,
            record_count,
            create_date,
            garbage_after,
            ..
        } = how
        {
            let old: Option<String> = sqlx::query_scalar(
                "SELECT blob_key FROM days WHERE account_sid = ? AND resource_type = ? AND day = ?",
            )
            .bind(&c.account_sid)
            .bind(&c.resource_type)
            .bind(&c.day)
            .fetch_optional(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO days (account_sid, resource_type, day, size, record_count, create_date, friendly_name, \
                 job_sid, blob_key, generation, created_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, (SELECT COALESCE(MAX(generation), 0) + 1 FROM days), ?) \
                 ON CONFLICT (account_sid, resource_type, day) DO UPDATE SET size = excluded.size, \
                 record_count = excluded.record_count, create_date = excluded.create_date, \
                 friendly_name = excluded.friendly_name, job_sid = excluded.job_sid, blob_key = excluded.blob_key, \
                 generation = excluded.generation, created_at = excluded.created_at",
            )
            .bind(&c.account_sid)
            .bind(&c.resource_type)
            .bind(&c.day)
            .bind(size)
            .bind(record_count)
            .bind(&create_date)
            .bind(&c.friendly_name)
            .bind(&c.job_sid)
            .bind(&blob_key)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if let Some(old) = old.filter(|k| *k != blob_key) {
                self.add_garbage_in(&mut tx, &old, garbage_after).await?;
            }
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn add_garbage_in(
        &self,
        tx: &mut sqlx::SqliteConnection,
        key: &str,
        not_before: i64,
    ) -> Result<()> {
        sqlx::query("INSERT INTO blob_garbage (blob_key, not_before) VALUES (?, ?) ON CONFLICT (blob_key) DO NOTHING")
            .bind(key)
            .bind(not_before)
            .execute(tx)
            .await?;
        Ok(())
    }

    /// Queues a blob for removal once `not_before` has passed.
    pub async fn add_garbage(&self, key: &str, not_before: i64) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        self.add_garbage_in(&mut conn, key, not_before).await
    }

    /// Takes up to `limit` blobs that are due for removal.
    pub async fn take_garbage(&self, now: i64, limit: i64) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "DELETE FROM blob_garbage WHERE blob_key IN \
             (SELECT blob_key FROM blob_garbage WHERE not_before <= ? LIMIT ?) RETURNING blob_key",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Days that are queued, running, or due for a retry.
    pub async fn pending_work(&self, now: i64) -> Result<i64> {
        Ok(sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM job_days WHERE status IN {OPEN_STATUSES} AND (status <> 'ErrorDuringRun' OR run_after <= ?)"
        ))
        .bind(now)
        .fetch_one(&self.pool)
        .await?)
    }
}
