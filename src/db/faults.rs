//! Fault rules of the control plane: stored so that every node applies
//! them, and counted as they fire.

use super::{with_pool, Db, Result};

/// A fault rule as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FaultRow {
    pub sid: String,
    pub kind: String,
    pub account_sid: Option<String>,
    pub resource_type: Option<String>,
    pub day: Option<String>,
    pub job_sid: Option<String>,
    pub operation: Option<String>,
    pub times: Option<i64>,
    pub probability: f64,
    /// The kind's own values as a JSON object.
    pub params: String,
    pub fired: i64,
    pub created_at: i64,
}

const FAULT_COLUMNS: &str =
    "sid, kind, account_sid, resource_type, day, job_sid, operation, times, \
     probability, params, fired, created_at";

impl Db {
    pub async fn insert_fault(&self, f: &FaultRow) -> Result<()> {
        let sql = format!(
            "INSERT INTO faults ({FAULT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        );
        with_pool!(self, |pool| sqlx::query(&sql)
            .bind(&f.sid)
            .bind(&f.kind)
            .bind(&f.account_sid)
            .bind(&f.resource_type)
            .bind(&f.day)
            .bind(&f.job_sid)
            .bind(&f.operation)
            .bind(f.times)
            .bind(f.probability)
            .bind(&f.params)
            .bind(f.fired)
            .bind(f.created_at)
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Every rule, oldest first.
    pub async fn list_faults(&self) -> Result<Vec<FaultRow>> {
        let sql = format!("SELECT {FAULT_COLUMNS} FROM faults ORDER BY seq");
        Ok(with_pool!(self, |pool| sqlx::query_as(&sql)
            .fetch_all(pool)
            .await)?)
    }

    /// Removes one rule (`Some(sid)`) or all; how many went.
    pub async fn delete_faults(&self, sid: Option<&str>) -> Result<u64> {
        Ok(with_pool!(self, |pool| match sid {
            Some(sid) =>
                sqlx::query("DELETE FROM faults WHERE sid = $1")
                    .bind(sid)
                    .execute(pool)
                    .await,
            None => sqlx::query("DELETE FROM faults").execute(pool).await,
        }
        .map(|r| r.rows_affected()))?)
    }

    /// Counts one firing of rule `sid` unless it has fired `times` already
    /// (or is gone); true when it fires. One statement: two nodes never
    /// both take the last firing.
    pub async fn fire_fault(&self, sid: &str) -> Result<bool> {
        let n = with_pool!(self, |pool| {
            sqlx::query(
            "UPDATE faults SET fired = fired + 1 WHERE sid = $1 AND (times IS NULL OR fired < times)"
        )
        .bind(sid)
        .execute(pool)
        .await
        .map(|r| r.rows_affected())
        })?;
        Ok(n == 1)
    }
}
