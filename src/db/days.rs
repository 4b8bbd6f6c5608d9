//! Published Days and per-resource export configuration.

use super::{with_pool, Db, Result};
use crate::domain::{Day, ResourceType};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DayRow {
    #[sqlx(try_from = "String")]
    pub day: Day,
    #[sqlx(try_from = "String")]
    pub resource_type: ResourceType,
    pub size: i64,
    pub record_count: i64,
    pub create_date: String,
    pub friendly_name: String,
    pub blob_key: String,
    pub generation: i64,
}

#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct ExportConfigRow {
    pub enabled: bool,
    pub webhook_url: Option<String>,
    pub webhook_method: Option<String>,
    pub email: Option<String>,
    /// When automatic exports were last switched on.
    pub enabled_at: Option<i64>,
}

const DAY_COLUMNS: &str =
    "day, resource_type, size, record_count, create_date, friendly_name, blob_key, generation";

impl Db {
    pub async fn find_day(
        &self,
        account_sid: &str,
        resource_type: &str,
        day: &str,
        created_since: i64,
    ) -> Result<Option<DayRow>> {
        let sql = format!(
            "SELECT {DAY_COLUMNS} FROM days WHERE account_sid = $1 AND resource_type = $2 AND day = $3 AND created_at >= $4"
        );
        Ok(with_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(account_sid)
            .bind(resource_type)
            .bind(day)
            .bind(created_since)
            .fetch_optional(pool)
            .await)?)
    }

    /// One page of Days in generation order, after or before a generation.
    pub async fn list_days(
        &self,
        account_sid: &str,
        resource_type: &str,
        after: Option<i64>,
        before: Option<i64>,
        limit: i64,
        created_since: i64,
    ) -> Result<Vec<DayRow>> {
        let (cmp, order, pos) = match before {
            Some(b) => ("<", "DESC", b),
            None => (">", "ASC", after.unwrap_or(0)),
        };
        let sql = format!(
            "SELECT {DAY_COLUMNS} FROM days WHERE account_sid = $1 AND resource_type = $2 AND generation {cmp} $3 \
             AND created_at >= $5 ORDER BY generation {order} LIMIT $4"
        );
        let mut rows: Vec<DayRow> = with_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(account_sid)
            .bind(resource_type)
            .bind(pos)
            .bind(limit)
            .bind(created_since)
            .fetch_all(pool)
            .await)?;
        if before.is_some() {
            rows.reverse();
        }
        Ok(rows)
    }

    pub async fn find_export_config(
        &self,
        account_sid: &str,
        resource_type: &str,
    ) -> Result<Option<ExportConfigRow>> {
        let sql = "SELECT enabled, webhook_url, webhook_method, email, enabled_at FROM export_configurations \
                   WHERE account_sid = $1 AND resource_type = $2";
        Ok(with_pool!(self, |pool| sqlx::query_as(sql)
            .bind(account_sid)
            .bind(resource_type)
            .fetch_optional(pool)
            .await)?)
    }

    pub async fn save_export_config(
        &self,
        account_sid: &str,
        resource_type: &str,
        c: &ExportConfigRow,
        now: i64,
    ) -> Result<()> {
        let sql = "INSERT INTO export_configurations (account_sid, resource_type, enabled, webhook_url, webhook_method, \
                   email, updated_at, enabled_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (account_sid, resource_type) \
                   DO UPDATE SET enabled = excluded.enabled, webhook_url = excluded.webhook_url, \
                   webhook_method = excluded.webhook_method, email = excluded.email, updated_at = excluded.updated_at, \
                   enabled_at = excluded.enabled_at";
        with_pool!(self, |pool| sqlx::query(sql)
            .bind(account_sid)
            .bind(resource_type)
            .bind(c.enabled)
            .bind(&c.webhook_url)
            .bind(&c.webhook_method)
            .bind(&c.email)
            .bind(now)
            .bind(c.enabled_at)
            .execute(pool)
            .await
            .map(|_| ()))?;
        self.config_changed();
        Ok(())
    }

    /// Removes Days created before `created_before`, queueing their files for
    /// removal in the same transaction. Returns how many were removed.
    pub async fn expire_days(&self, created_before: i64, now: i64, limit: i64) -> Result<usize> {
        with_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let keys: Vec<String> = sqlx::query_scalar(
                "DELETE FROM days WHERE (account_sid, resource_type, day) IN \
                 (SELECT account_sid, resource_type, day FROM days WHERE created_at < $1 LIMIT $2) RETURNING blob_key",
            )
            .bind(created_before)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
            for key in &keys {
                sqlx::query(super::garbage::ADD_GARBAGE)
                    .bind(key)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(keys.len())
        })
    }

    /// Configurations with automatic exports on, of accounts on an Editions plan:
    /// (account, resource type, enabled_at).
    /// The enabled daily exports of Editions accounts that have not exported
    /// `last_day` yet: account, resource type, when it was enabled, and the
    /// last day it exported. One statement however many tenants there are.
    pub async fn enabled_daily_exports(
        &self,
        last_day: &str,
    ) -> Result<Vec<(String, String, i64, Option<String>)>> {
        let sql = "SELECT account_sid, resource_type, enabled, last FROM (\
                   SELECT c.account_sid, c.resource_type, COALESCE(c.enabled_at, c.updated_at) AS enabled, \
                   (SELECT MAX(e.day) FROM daily_exports e WHERE e.account_sid = c.account_sid \
                   AND e.resource_type = c.resource_type) AS last \
                   FROM export_configurations c JOIN accounts a ON a.sid = c.account_sid \
                   WHERE c.enabled AND a.editions) AS due \
                   WHERE last IS NULL OR last < $1 ORDER BY account_sid, resource_type";
        Ok(with_pool!(self, |pool| sqlx::query_as(sql)
            .bind(last_day)
            .fetch_all(pool)
            .await)?)
    }
}
