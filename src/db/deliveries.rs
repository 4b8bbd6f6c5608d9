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
    pub give_up_at: i64,
    /// The API request that caused it, directly or through its job.
    pub request_id: Option<String>,
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
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AttemptRow {
    pub delivery_id: i64,
    pub attempt: i64,
    pub at: i64,
    pub outcome: String,
    pub detail: String,
}

const DELIVERY_COLUMNS: &str =
    "id, dedupe_key, account_sid, channel, target, method, params, idempotency_token, \
    status, attempts, next_attempt_at, give_up_at, last_error, created_at, finished_at, request_id";

impl Db {
    /// Stores a delivery unless one with the same key exists. True when stored.
    pub async fn insert_delivery(&self, d: &NewDelivery) -> Result<bool> {
        let sql = "INSERT INTO deliveries (dedupe_key, account_sid, channel, target, method, params, idempotency_token, \
                   status, next_attempt_at, give_up_at, created_at, request_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $10, $8, $9, $8, $11) \
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
             (SELECT id FROM deliveries WHERE status = $4 AND next_attempt_at <= $3 \
              AND (locked_until IS NULL OR locked_until < $3) ORDER BY next_attempt_at, id LIMIT 1{lock}) \
             RETURNING {DELIVERY_COLUMNS}"
        );
        Ok(with_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(worker)
            .bind(now + lease_ms)
            .bind(now)
            .bind(DeliveryStatus::Pending.as_str())
            .fetch_optional(pool)
            .await)?)
    }

    /// Records an attempt and its consequence: `status` is delivered, failed,
    /// or pending with the next attempt at `next_attempt_at`.
    #[expect(
        clippy::too_many_arguments,
        reason = "one row of an attempt and the delivery's new state"
    )]
    pub async fn settle_delivery(
        &self,
        d: &DeliveryRow,
        worker: &str,
        now: i64,
        outcome: AttemptOutcome,
        detail: &str,
        status: DeliveryStatus,
        next_attempt_at: i64,
    ) -> Result<()> {
        let finished_at = (status != DeliveryStatus::Pending).then_some(now);
        with_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO delivery_attempts (delivery_id, attempt, at, outcome, detail) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (delivery_id, attempt) DO NOTHING",
            )
            .bind(d.id)
            .bind(d.attempts)
            .bind(now)
            .bind(outcome.as_str())
            .bind(detail)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE deliveries SET status = $1, next_attempt_at = $2, last_error = $3, finished_at = $4, \
                 locked_by = NULL, locked_until = NULL WHERE id = $5 AND locked_by = $6",
            )
            .bind(status.as_str())
            .bind(next_attempt_at)
            .bind((outcome != AttemptOutcome::Delivered).then_some(detail))
            .bind(finished_at)
            .bind(d.id)
            .bind(worker)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Deliveries due now (pending and not waiting for a retry).
    pub async fn due_deliveries(&self, now: i64) -> Result<i64> {
        let sql = "SELECT COUNT(*) FROM deliveries WHERE status = $2 AND next_attempt_at <= $1";
        Ok(with_pool!(self, |pool| sqlx::query_scalar(sql)
            .bind(now)
            .bind(DeliveryStatus::Pending.as_str())
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
        let sql = "SELECT delivery_id, attempt, at, outcome, detail FROM delivery_attempts WHERE delivery_id = $1 \
                   ORDER BY attempt";
        Ok(with_pool!(self, |pool| sqlx::query_as(sql)
            .bind(delivery_id)
            .fetch_all(pool)
            .await)?)
    }
}
