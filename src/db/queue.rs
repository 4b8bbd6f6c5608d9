//! The durable work queue over `job_days`: claim under a lease, heartbeat,
//! settle. Every transition checks the lease holder, so a node that lost its
//! lease can never overwrite the work of the node that took it over.

use std::sync::LazyLock;

use super::garbage::ADD_GARBAGE;
use super::jobs::lit;
use super::jobs::{counter, final_days_of, open_day_of, COUNT_UP, NEXT_COUNTER};
use super::{with_pool, Db, Result};
use crate::domain::{Day, DayStatus, ResourceType};

/// A job day claimed by a worker.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Claimed {
    pub id: i64,
    pub job_sid: String,
    pub account_sid: String,
    #[sqlx(try_from = "String")]
    pub resource_type: ResourceType,
    #[sqlx(try_from = "String")]
    pub day: Day,
    /// Claims that ended in an error or a release, this one included.
    pub attempts: i64,
    /// Claims that took the day over from a worker whose lease ran out.
    pub takeovers: i64,
    /// 1 when this claim took the day over, else 0.
    pub claim_took_over: i64,
    pub friendly_name: String,
    /// Where this claim writes the day's file: a new key at every claim (the
    /// day's claims so far, this one included, are in its name), so each
    /// key is written once. Made by the claim's statement (`CLAIMED_COLUMNS`).
    pub blob_key: String,
}

/// How a claimed day ends.
#[derive(Debug, Clone)]
pub enum Finish {
    /// The file was written: publish it as the Day and end the day with `status`.
    Published {
        /// Completed or CompletedEmptyRecords.
        status: DayStatus,
        blob_key: String,
        size: i64,
        record_count: i64,
        create_date: String,
        garbage_after: i64,
        /// The day's content version the export read its records at.
        version: i64,
    },
    /// The attempt failed; try again after `run_after`.
    Retry { run_after: i64, error: String },
    /// The last attempt failed.
    Failed { error: String },
    /// Give the day back untouched (shutdown).
    Release,
}

/// How [`Db::finish`] left a claimed day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// Not settled: the lease was no longer ours, the job's deletion was
    /// requested (the day then ends DeletedByUserRequest), or the export read
    /// records a deletion has since changed (the day goes back to the
    /// queue). Nothing was published.
    Lost,
    /// Settled back into the queue: a retry or a release.
    Requeued,
    /// The day ended; its job may be complete.
    Ended,
    /// The day ended, and its job with it (`end_quiet_job`).
    EndedJob,
}

/// Which day to claim: the first runnable one in queue order, or one whose
/// lease expired (`$3`: now, `$4`: leases renewed before it expired).
/// The first of each status is read along `job_days_queue` (status, job_seq,
/// day) on its own, then the least of the three taken: one condition with
/// `OR` read every queued day and sorted them, for every claim (a midnight's
/// 40,000 daily days were claimed in quadratic time). Statuses are literals,
/// so that PostgreSQL's generic plan of the prepared statement still reads
/// the index. `lock` is appended to each branch (`Db::skip_locked`).
fn claimable(lock: &str) -> String {
    let first = |condition: &str| {
        format!(
            "SELECT id, job_seq, day FROM (SELECT id, job_seq, day FROM job_days WHERE {condition} \
             ORDER BY job_seq, day LIMIT 1{lock}) AS first_of_status"
        )
    };
    format!(
        "SELECT id FROM ({} UNION ALL {} UNION ALL {}) AS candidates ORDER BY job_seq, day LIMIT 1",
        first(&format!(
            "status = {} AND run_after <= $3",
            lit(DayStatus::Submitted)
        )),
        first(&format!(
            "status = {} AND run_after <= $3",
            lit(DayStatus::ErrorDuringRun)
        )),
        first(&format!(
            "status = {} AND heartbeat_at < $4",
            lit(DayStatus::Running)
        )),
    )
}

/// What the claim returns (the job's name from its row: SQLite's RETURNING
/// takes no joined table, but a subquery).
const CLAIMED_COLUMNS: &str =
    "id, job_sid, account_sid, resource_type, day, attempts, takeovers, claim_took_over, \
    (SELECT friendly_name FROM jobs WHERE jobs.sid = job_days.job_sid) AS friendly_name, \
    account_sid || '/' || resource_type || '/' || day || '/' || CAST(id AS TEXT) || '-' \
    || CAST(attempts + takeovers AS TEXT) || '.json.gz' AS blob_key";

const PUBLISH_DAY: &str = "INSERT INTO days (account_sid, resource_type, day, size, record_count, create_date, \
    friendly_name, job_sid, blob_key, generation, created_at, content_version) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
    ON CONFLICT (account_sid, resource_type, day) DO UPDATE SET size = excluded.size, \
    record_count = excluded.record_count, create_date = excluded.create_date, friendly_name = excluded.friendly_name, \
    job_sid = excluded.job_sid, blob_key = excluded.blob_key, generation = excluded.generation, \
    created_at = excluded.created_at, content_version = excluded.content_version";

/// `PUBLISH_DAY` on PostgreSQL, with its garbage list changes in the same
/// statement: the published file is no longer a possible orphan, and the
/// file it replaces (`old`, read in the statement's snapshot, taken after
/// the `day_generation` counter's lock) is due at `$13`.
static PUBLISH_REPLACING: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH old AS (SELECT blob_key FROM days WHERE account_sid = $1 AND resource_type = $2 AND day = $3), \
         published AS ({PUBLISH_DAY}), \
         unlisted AS (DELETE FROM blob_garbage WHERE blob_key = $9) \
         INSERT INTO blob_garbage (blob_key, not_before) SELECT blob_key, $13 FROM old \
         WHERE blob_key <> $9 ON CONFLICT (blob_key) DO NOTHING"
    )
});

pub(super) const TOUCH_VERSION: &str = "INSERT INTO day_versions (account_sid, resource_type, day, version) VALUES ($1, $2, $3, 0) \
    ON CONFLICT (account_sid, resource_type, day) DO UPDATE SET version = day_versions.version RETURNING version";

/// Records the end of job `$2` at `$1` when its last open day just ended and
/// it announces nothing (deleted, or no webhook or email on the job or, for
/// a daily export, on its configuration): in the transaction that ended the
/// day, instead of a commit of its own after it. A job that announces
/// something is ended by `Exports::finish_job_if_complete`, which stores its
/// notifications first, as is one whose row another transaction holds
/// (`lock`: on PostgreSQL skipped rather than waited for, since a deletion
/// holds the job's row while it waits for the day's).
fn end_quiet_job(lock: &str) -> String {
    format!(
        "UPDATE jobs SET finished_at = $1, final_days = {} WHERE sid = (SELECT sid FROM jobs WHERE sid = $2 AND finished_at IS NULL \
         AND NOT {} AND (deleted_at IS NOT NULL \
              OR (kind <> 'daily' AND webhook_url IS NULL AND email IS NULL) \
              OR (kind = 'daily' AND NOT EXISTS (SELECT 1 FROM export_configurations c \
                  WHERE c.account_sid = jobs.account_sid AND c.resource_type = jobs.resource_type \
                  AND (c.webhook_url IS NOT NULL OR c.email IS NOT NULL)))){lock})",
        final_days_of("$2"),
        open_day_of("$2")
    )
}

static END_QUIET_JOB_SQLITE: LazyLock<String> = LazyLock::new(|| end_quiet_job(""));

/// `end_quiet_job` on PostgreSQL, counted in `jobs_finished` by the same
/// statement: one row affected when the job ended.
static END_QUIET_JOB_COUNTED: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH ended AS ({} RETURNING sid) UPDATE service_counters SET value = value + 1 \
         WHERE name = 'jobs_finished' AND EXISTS (SELECT 1 FROM ended)",
        end_quiet_job(" FOR UPDATE SKIP LOCKED")
    )
});

/// The claim's garbage entry on PostgreSQL, from the claimed row.
const ADD_GARBAGE_SELECT: &str = "INSERT INTO blob_garbage (blob_key, not_before) SELECT blob_key,";

impl Db {
    /// Claims the next runnable day (queue order: job, then day), or a day whose
    /// lease expired before `stale_before`. The claim's file key is put on the
    /// garbage list (due at `orphan_after`) in the same transaction, before
    /// anything is written under it: a file whose writer dies before
    /// publishing it is removed later instead of lying unreferenced. On
    /// PostgreSQL both are one statement, so one round trip.
    pub async fn claim(
        &self,
        worker: &str,
        now: i64,
        stale_before: i64,
        orphan_after: i64,
    ) -> Result<Option<Claimed>> {
        let update = format!(
            "UPDATE job_days SET status = {running}, locked_by = $1, heartbeat_at = $2, started_at = $2, \
             attempts = attempts + CASE WHEN status = {running} THEN 0 ELSE 1 END, \
             takeovers = takeovers + CASE WHEN status = {running} THEN 1 ELSE 0 END, \
             claim_took_over = CASE WHEN status = {running} THEN 1 ELSE 0 END \
             WHERE id = ({}) RETURNING {CLAIMED_COLUMNS}",
            claimable(self.skip_locked()),
            running = lit(DayStatus::Running),
        );
        let _turn = self.write_turn().await;
        match &self.pool {
            super::Pool::Postgres(pool) => {
                let sql = format!(
                    "WITH claimed AS ({update}), listed AS ({ADD_GARBAGE_SELECT} $5 FROM claimed \
                     ON CONFLICT (blob_key) DO NOTHING) SELECT * FROM claimed"
                );
                Ok(sqlx::query_as(&sql)
                    .bind(worker)
                    .bind(now)
                    .bind(now)
                    .bind(stale_before)
                    .bind(orphan_after)
                    .fetch_optional(pool)
                    .await?)
            }
            super::Pool::Sqlite(pool) => {
                // SQLite has no data-modifying WITH; a round trip costs nothing.
                let mut tx = pool.begin().await?;
                let claimed: Option<Claimed> = sqlx::query_as(&update)
                    .bind(worker)
                    .bind(now)
                    .bind(now)
                    .bind(stale_before)
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(claimed) = claimed else {
                    tx.rollback().await?;
                    return Ok(None);
                };
                sqlx::query(ADD_GARBAGE)
                    .bind(&claimed.blob_key)
                    .bind(orphan_after)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(Some(claimed))
            }
        }
    }

    /// Ends days whose deletion was requested while a node that since died ran them.
    /// Returns the jobs touched.
    pub async fn settle_abandoned_deletions(
        &self,
        now: i64,
        stale_before: i64,
    ) -> Result<Vec<String>> {
        // Looked for first: the upkeep asks every poll interval, and the answer
        // is nearly always none (a write would queue for the write lock).
        // The status is a literal, so that PostgreSQL's generic plan of the
        // prepared statement still reads it along `job_days_queue`.
        static ANY: LazyLock<String> = LazyLock::new(|| {
            format!(
                "SELECT 1 FROM job_days WHERE status = {} AND heartbeat_at < $1 LIMIT 1",
                lit(DayStatus::RunningToBeDeleted)
            )
        });
        static SETTLE: LazyLock<String> = LazyLock::new(|| {
            format!(
                "UPDATE job_days SET status = {}, finished_at = $1, locked_by = NULL \
                 WHERE status = {} AND heartbeat_at < $2 RETURNING job_sid",
                lit(DayStatus::DeletedByUserRequest),
                lit(DayStatus::RunningToBeDeleted)
            )
        });
        let any: Option<i32> = with_pool!(self, |pool| sqlx::query_scalar(ANY.as_str())
            .bind(stale_before)
            .fetch_optional(pool)
            .await)?;
        if any.is_none() {
            return Ok(Vec::new());
        }
        let _turn = self.write_turn().await;
        with_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let jobs: Vec<String> = sqlx::query_scalar(SETTLE.as_str())
                .bind(now)
                .bind(stale_before)
                .fetch_all(&mut *tx)
                .await?;
            if !jobs.is_empty() {
                sqlx::query(COUNT_UP)
                    .bind("job_days_closed")
                    .bind(jobs.len() as i64)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(jobs)
        })
    }

    /// Renews the lease. False when the lease is lost or the job's deletion was
    /// requested: the worker must stop.
    pub async fn heartbeat(&self, id: i64, worker: &str, now: i64) -> Result<bool> {
        // Never backwards: a delayed day (a `DayDelay` fault) holds its lease
        // until the end of the delay, whatever the heartbeats in between say.
        let sql = "UPDATE job_days SET heartbeat_at = CASE WHEN heartbeat_at > $1 THEN heartbeat_at ELSE $1 END \
                   WHERE id = $2 AND locked_by = $3 AND status = $4";
        let _turn = self.write_turn().await;
        let n = with_pool!(self, |pool| sqlx::query(sql)
            .bind(now)
            .bind(id)
            .bind(worker)
            .bind(DayStatus::Running.as_str())
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// Settles a claimed day (see [`Settled`]). A day that ends its job also
    /// records the job's end when the job announces nothing (`end_quiet_job`).
    pub async fn finish(
        &self,
        c: &Claimed,
        worker: &str,
        now: i64,
        how: Finish,
    ) -> Result<Settled> {
        // PostgreSQL runs the same steps in fewer statements (data-modifying
        // WITH): each is a round trip there, and SQLite has no such WITH.
        let postgres = self.kind() == "postgres";
        let _turn = self.write_turn().await;
        with_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            // An export that read the day's records before a deletion changed
            // them must not publish: it goes back to the queue instead. The
            // upsert locks the version row until commit.
            let stale = match &how {
                Finish::Published { version, .. } => {
                    let current: i64 = sqlx::query_scalar(TOUCH_VERSION)
                        .bind(&c.account_sid)
                        .bind(c.resource_type.as_str())
                        .bind(c.day.to_string())
                        .fetch_one(&mut *tx)
                        .await?;
                    current != *version
                }
                _ => false,
            };
            // `undo`: the claim is given back, so the count it added goes;
            // an error after a takeover counts as an attempt too.
            let (status, run_after, finished_at, error, undo): (
                DayStatus,
                Option<i64>,
                Option<i64>,
                Option<String>,
                i64,
            ) = match (&how, stale) {
                (Finish::Published { status, .. }, false) => (*status, None, Some(now), None, 0),
                (Finish::Retry { run_after, error }, _) => (
                    DayStatus::ErrorDuringRun,
                    Some(*run_after),
                    None,
                    Some(error.clone()),
                    0,
                ),
                (Finish::Failed { error }, _) => {
                    (DayStatus::Failed, None, Some(now), Some(error.clone()), 0)
                }
                (Finish::Release | Finish::Published { .. }, _) => {
                    (DayStatus::Submitted, None, None, None, 1)
                }
            };
            let ours = sqlx::query(
                "UPDATE job_days SET status = $1, run_after = COALESCE($2, run_after), finished_at = $3, \
                 last_error = COALESCE($4, last_error), \
                 attempts = attempts - $5 * (1 - claim_took_over) + CASE WHEN $4 IS NULL THEN 0 ELSE claim_took_over END, \
                 takeovers = takeovers - $5 * claim_took_over, locked_by = NULL, heartbeat_at = NULL \
                 WHERE id = $6 AND locked_by = $7 AND status = $8",
            )
            .bind(status.as_str())
            .bind(run_after)
            .bind(finished_at)
            .bind(&error)
            .bind(undo)
            .bind(c.id)
            .bind(worker)
            .bind(DayStatus::Running.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if !ours {
                let closed = sqlx::query(
                    "UPDATE job_days SET status = $4, finished_at = $1, locked_by = NULL, \
                     heartbeat_at = NULL WHERE id = $2 AND locked_by = $3 AND status = $5",
                )
                .bind(now)
                .bind(c.id)
                .bind(worker)
                .bind(DayStatus::DeletedByUserRequest.as_str())
                .bind(DayStatus::RunningToBeDeleted.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if closed > 0 {
                    sqlx::query(COUNT_UP)
                        .bind("job_days_closed")
                        .bind(closed as i64)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                return Ok(Settled::Lost);
            }
            if stale {
                tx.commit().await?;
                return Ok(Settled::Lost);
            }
            if let Finish::Published {
                blob_key,
                size,
                record_count,
                create_date,
                garbage_after,
                version,
                ..
            } = &how
            {
                // The counter's row lock serialises publishers until commit, so the
                // old key read next is the one this upsert replaces, on every database.
                let generation: i64 = sqlx::query_scalar(NEXT_COUNTER)
                    .bind("day_generation")
                    .fetch_one(&mut *tx)
                    .await?;
                let publish = |sql| {
                    sqlx::query(sql)
                        .bind(&c.account_sid)
                        .bind(c.resource_type.as_str())
                        .bind(c.day.to_string())
                        .bind(size)
                        .bind(record_count)
                        .bind(create_date)
                        .bind(&c.friendly_name)
                        .bind(&c.job_sid)
                        .bind(blob_key)
                        .bind(generation)
                        .bind(now)
                        .bind(version)
                };
                if postgres {
                    publish(&PUBLISH_REPLACING)
                        .bind(garbage_after)
                        .execute(&mut *tx)
                        .await?;
                } else {
                    let old: Option<String> = sqlx::query_scalar(
                        "SELECT blob_key FROM days WHERE account_sid = $1 AND resource_type = $2 AND day = $3",
                    )
                    .bind(&c.account_sid)
                    .bind(c.resource_type.as_str())
                    .bind(c.day.to_string())
                    .fetch_optional(&mut *tx)
                    .await?;
                    publish(PUBLISH_DAY).execute(&mut *tx).await?;
                    // The new file is published: it is no longer a possible orphan.
                    sqlx::query("DELETE FROM blob_garbage WHERE blob_key = $1")
                        .bind(blob_key)
                        .execute(&mut *tx)
                        .await?;
                    if let Some(old) = old.filter(|k| k != blob_key) {
                        sqlx::query(ADD_GARBAGE)
                            .bind(&old)
                            .bind(garbage_after)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
            }
            let mut settled = Settled::Requeued;
            if finished_at.is_some() {
                sqlx::query(COUNT_UP)
                    .bind("job_days_closed")
                    .bind(1_i64)
                    .execute(&mut *tx)
                    .await?;
                let end = if postgres {
                    END_QUIET_JOB_COUNTED.as_str()
                } else {
                    END_QUIET_JOB_SQLITE.as_str()
                };
                let ended = sqlx::query(end)
                    .bind(now)
                    .bind(&c.job_sid)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                settled = Settled::Ended;
                if ended == 1 {
                    if !postgres {
                        sqlx::query(COUNT_UP)
                            .bind("jobs_finished")
                            .bind(1_i64)
                            .execute(&mut *tx)
                            .await?;
                    }
                    settled = Settled::EndedJob;
                }
            }
            tx.commit().await?;
            Ok(settled)
        })
    }

    /// Whether days are queued, running, or due for a retry: 1 if any, else 0.
    pub async fn pending_work(&self, now: i64) -> Result<i64> {
        // The open days (queue counters, `jobs::COUNT_UP`) less the retries
        // not yet due, counted along `job_days_queue`. Looking for a day of
        // each status instead walked, on PostgreSQL, the index entries the
        // days that moved on leave at the front of each status until a
        // vacuum (2 ms a look during a midnight's 40,000 daily days, and a
        // drain asks every 20 ms).
        static SQL: LazyLock<String> = LazyLock::new(|| {
            format!(
                "SELECT CAST(CASE WHEN {} - {} > (SELECT COUNT(*) FROM job_days WHERE status = {} AND run_after > $1) \
                 THEN 1 ELSE 0 END AS BIGINT)",
                counter("job_days_stored"),
                counter("job_days_closed"),
                lit(DayStatus::ErrorDuringRun)
            )
        });
        Ok(with_pool!(self, |pool| sqlx::query_scalar(SQL.as_str())
            .bind(now)
            .fetch_one(pool)
            .await)?)
    }
}
