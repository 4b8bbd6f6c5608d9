//! Outgoing notifications (webhooks, emails): stored before they are
//! attempted, claimed under a short lease, and settled with every attempt recorded.

use super::{with_pool, Db, Result};
use crate::domain::{AttemptOutcome, Channel, DeliveryStatus};

/// A notification to store.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    /// One event is delivered once per channel: a second insert with the same key is ignored.
    pub dedupe_key: String,
    pub account_sid: String,
    pub channel: Channel,
    pub target: String,
    pub method: String,
    pub params: String,
    pub idempotency_token: String,
    pub created_at: i64,
    /// When the first attempt is due (later than `created_at` when a fault delays it).
    pub next_attempt_at: i64,
    pub give_up_at: i64,
    /// The API request that caused it, directly or through its job.
    pub request_id: Option<String>,
    /// The job it announces, if any.
    pub job_sid: Option<String>,
    /// A `WebhookDelay` fault that held it back.
    pub fault: Option<String>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeliveryRow {
    pub id: i64,
    pub dedupe_key: String,
    pub account_sid: String,
    #[sqlx(try_from = "String")]
    pub channel: Channel,
    pub target: String,
    pub method: String,
    pub params: String,
    pub idempotency_token: String,
    #[sqlx(try_from = "String")]
    pub status: DeliveryStatus,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub give_up_at: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub finished_at: Option<i64>,
    pub request_id: Option<String>,
    pub job_sid: Option<String>,
    /// The headers of the last webhook request sent: a JSON list of pairs.
    pub headers: Option<String>,
    pub fault: Option<String>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AttemptRow {
    pub delivery_id: i64,
    pub attempt: i64,
    pub at: i64,
    pub outcome: String,
    pub detail: String,
    pub status_code: Option<i64>,
    pub fault: Option<String>,
}

/// One attempt to record: how it went, the answer's status code, the
/// headers sent (a webhook's) and the fault that shaped it.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub outcome: AttemptOutcome,
    pub detail: String,
    pub status_code: Option<u16>,
    pub headers: Option<String>,
    pub fault: Option<String>,
}

/// Filters of the delivery journal (each optional).
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub account_sid: Option<String>,
    pub job_sid: Option<String>,
    pub channel: Option<Channel>,
    pub status: Option<DeliveryStatus>,
}

const DELIVERY_COLUMNS: &str =
    "id, dedupe_key, account_sid, channel, target, method, params, idempotency_token, \
    status, attempts, next_attempt_at, give_up_at, last_error, created_at, finished_at, request_id, job_sid, headers, fault";

impl Db {
    /// Stores a delivery unless one with the same key exists. True when stored.
    pub async fn insert_delivery(&self, d: &NewDelivery) -> Result<bool> {
        let sql = "INSERT INTO deliveries (dedupe_key, account_sid, channel, target, method, params, idempotency_token, \
                   status, next_attempt_at, give_up_at, created_at, request_id, job_sid, fault) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $10, $12, $9, $8, $11, $13, $14) \
                   ON CONFLICT (dedupe_key) DO NOTHING";
        let n = with_pool!(self, |pool| sqlx::query(sql)
            .bind(&d.dedupe_key)
            .bind(&d.account_sid)
            .bind(d.channel.as_str())
            .bind(&d.target)
            .bind(&d.method)
            .bind(&d.params)
            .bind(&d.idempotency_token)
            .bind(d.created_at)
            .bind(d.give_up_at)
            .bind(DeliveryStatus::Pending.as_str())
            .bind(&d.request_id)
            .bind(d.next_attempt_at)
            .bind(&d.job_sid)
            .bind(&d.fault)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// Claims the next due delivery for `lease_ms`.
    pub async fn claim_delivery(
        &self,
        worker: &str,
        now: i64,
        lease_ms: i64,
    ) -> Result<Option<DeliveryRow>> {
        let lock = self.skip_locked();
        let sql = format!(
            "UPDATE deliveries SET locked_by = $1, locked_until = $2, attempts = attempts + 1 WHERE id = \
             (SELECT id FROM deliveries WHERE status = 'pending' AND next_attempt_at <= $3 \
              AND (locked_until IS NULL OR locked_until < $3) ORDER BY next_attempt_at, id LIMIT 1{lock}) \
             RETURNING {DELIVERY_COLUMNS}"
        );
        Ok(with_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(worker)
            .bind(now + lease_ms)
            .bind(now)
            .fetch_optional(pool)
            .await)?)
    }

    /// Records an attempt and its consequence: `status` is delivered, failed,
    /// or pending with the next attempt at `next_attempt_at`.
    pub async fn settle_delivery(
        &self,
        d: &DeliveryRow,
        worker: &str,
        now: i64,
        attempt: &AttemptRecord,
        status: DeliveryStatus,
        next_attempt_at: i64,
    ) -> Result<()> {
        let (outcome, detail) = (attempt.outcome, attempt.detail.as_str());
        let finished_at = (status != DeliveryStatus::Pending).then_some(now);
        with_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO delivery_attempts (delivery_id, attempt, at, outcome, detail, status_code, fault) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (delivery_id, attempt) DO NOTHING",
            )
            .bind(d.id)
            .bind(d.attempts)
            .bind(now)
            .bind(outcome.as_str())
            .bind(detail)
            .bind(attempt.status_code.map(i64::from))
            .bind(&attempt.fault)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE deliveries SET status = $1, next_attempt_at = $2, last_error = $3, finished_at = $4, \
                 locked_by = NULL, locked_until = NULL, headers = COALESCE($7, headers) WHERE id = $5 AND locked_by = $6",
            )
            .bind(status.as_str())
            .bind(next_attempt_at)
            .bind((outcome != AttemptOutcome::Delivered).then_some(detail))
            .bind(finished_at)
            .bind(d.id)
            .bind(worker)
            .bind(&attempt.headers)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Deliveries due now (pending and not waiting for a retry).
    pub async fn due_deliveries(&self, now: i64) -> Result<i64> {
        // The status is a literal, as in the claim: a generic plan of a
        // prepared statement still sees which part of the index to read.
        let sql =
            "SELECT COUNT(*) FROM deliveries WHERE status = 'pending' AND next_attempt_at <= $1";
        Ok(with_pool!(self, |pool| sqlx::query_scalar(sql)
            .bind(now)
            .fetch_one(pool)
            .await)?)
    }

    pub async fn list_deliveries(
        &self,
        account_sid: Option<&str>,
        limit: i64,
    ) -> Result<Vec<DeliveryRow>> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE (CAST($1 AS TEXT) IS NULL OR account_sid = $1) ORDER BY id DESC LIMIT $2"
        );
        Ok(with_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(account_sid)
            .bind(limit)
            .fetch_all(pool)
            .await)?)
    }

    pub async fn delivery_attempts(&self, delivery_id: i64) -> Result<Vec<AttemptRow>> {
        let sql = "SELECT delivery_id, attempt, at, outcome, detail, status_code, fault FROM delivery_attempts \
                   WHERE delivery_id = $1 ORDER BY attempt";
        Ok(with_pool!(self, |pool| sqlx::query_as(sql)
            .bind(delivery_id)
            .fetch_all(pool)
            .await)?)
    }

    /// The journal's notifications that match `f`, newest first.
    pub async fn filter_deliveries(
        &self,
        f: &DeliveryFilter,
        limit: i64,
    ) -> Result<Vec<DeliveryRow>> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE {} ORDER BY id DESC LIMIT $5",
            DELIVERY_FILTER
        );
        Ok(with_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(&f.account_sid)
            .bind(&f.job_sid)
            .bind(f.channel.map(|c| c.as_str()))
            .bind(f.status.map(|s| s.as_str()))
            .bind(limit)
            .fetch_all(pool)
            .await)?)
    }

    /// Removes the notifications that match `f`, with their attempts; how many.
    pub async fn delete_deliveries(&self, f: &DeliveryFilter) -> Result<u64> {
        let attempts = format!(
            "DELETE FROM delivery_attempts WHERE delivery_id IN (SELECT id FROM deliveries WHERE {DELIVERY_FILTER})"
        );
        let rows = format!("DELETE FROM deliveries WHERE {DELIVERY_FILTER}");
        macro_rules! filtered {
            ($sql:expr) => {
                sqlx::query($sql)
                    .bind(&f.account_sid)
                    .bind(&f.job_sid)
                    .bind(f.channel.map(|c| c.as_str()))
                    .bind(f.status.map(|s| s.as_str()))
            };
        }
        with_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            filtered!(&attempts).execute(&mut *tx).await?;
            let n = filtered!(&rows).execute(&mut *tx).await?.rows_affected();
            tx.commit().await?;
            Ok(n)
        })
    }
}

/// The journal's filter over `deliveries`, parameters $1 to $4.
const DELIVERY_FILTER: &str = "(CAST($1 AS TEXT) IS NULL OR account_sid = $1) AND (CAST($2 AS TEXT) IS NULL OR job_sid = $2) \
     AND (CAST($3 AS TEXT) IS NULL OR channel = $3) AND (CAST($4 AS TEXT) IS NULL OR status = $4)";
