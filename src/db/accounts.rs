//! Accounts, subaccounts and API keys.

use super::{with_pool, Db, Result};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Account {
    pub sid: String,
    pub friendly_name: String,
    pub auth_token: String,
    pub parent_sid: Option<String>,
    pub created_at: i64,
    /// On an Editions plan: may enable automatic daily exports.
    pub editions: bool,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiKey {
    pub sid: String,
    pub account_sid: String,
    pub friendly_name: String,
    pub secret_sha256: String,
    pub created_at: i64,
}

const ACCOUNT_COLUMNS: &str = "sid, friendly_name, auth_token, parent_sid, created_at, editions";

impl Db {
    pub async fn insert_account(&self, a: &Account) -> Result<()> {
        self.store_account(a, "").await
    }

    /// Stores `a` as it is: created when missing, else its name, token,
    /// parent and plan set (its creation time kept).
    pub async fn upsert_account(&self, a: &Account) -> Result<()> {
        self.store_account(
            a,
            " ON CONFLICT (sid) DO UPDATE SET friendly_name = excluded.friendly_name, \
             auth_token = excluded.auth_token, parent_sid = excluded.parent_sid, editions = excluded.editions",
        )
        .await?;
        self.config_changed();
        Ok(())
    }

    /// One INSERT of `a`, followed by `on_conflict`.
    async fn store_account(&self, a: &Account, on_conflict: &str) -> Result<()> {
        let sql = format!(
            "INSERT INTO accounts ({ACCOUNT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6){on_conflict}"
        );
        with_pool!(self, |pool| sqlx::query(&sql)
            .bind(&a.sid)
            .bind(&a.friendly_name)
            .bind(&a.auth_token)
            .bind(&a.parent_sid)
            .bind(a.created_at)
            .bind(a.editions)
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    pub async fn find_account(&self, sid: &str) -> Result<Option<Account>> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE sid = $1");
        Ok(with_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(sid)
            .fetch_optional(pool)
            .await)?)
    }

    /// Account `sid` and, when it is a parent, its subaccounts: a page of
    /// them in creation order.
    pub async fn account_family(&self, sid: &str, offset: i64, limit: i64) -> Result<Vec<Account>> {
        let sql = format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE sid = $1 OR parent_sid = $1 \
             ORDER BY parent_sid IS NOT NULL, created_at, sid LIMIT $2 OFFSET $3"
        );
        Ok(with_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(sid)
            .bind(limit)
            .bind(offset)
            .fetch_all(pool)
            .await)?)
    }

    pub async fn list_accounts(&self) -> Result<Vec<Account>> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts ORDER BY created_at, sid");
        Ok(with_pool!(self, |pool| sqlx::query_as(&sql)
            .fetch_all(pool)
            .await)?)
    }

    pub async fn insert_api_key(&self, k: &ApiKey) -> Result<()> {
        self.store_api_key(k, "").await
    }

    /// Stores `k` as it is: created when missing, else its account, name and secret set.
    pub async fn upsert_api_key(&self, k: &ApiKey) -> Result<()> {
        self.store_api_key(
            k,
            " ON CONFLICT (sid) DO UPDATE SET account_sid = excluded.account_sid, \
             friendly_name = excluded.friendly_name, secret_sha256 = excluded.secret_sha256",
        )
        .await
    }

    /// One INSERT of `k`, followed by `on_conflict`.
    async fn store_api_key(&self, k: &ApiKey, on_conflict: &str) -> Result<()> {
        let sql = format!(
            "INSERT INTO api_keys (sid, account_sid, friendly_name, secret_sha256, created_at) \
             VALUES ($1, $2, $3, $4, $5){on_conflict}"
        );
        with_pool!(self, |pool| sqlx::query(&sql)
            .bind(&k.sid)
            .bind(&k.account_sid)
            .bind(&k.friendly_name)
            .bind(&k.secret_sha256)
            .bind(k.created_at)
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    pub async fn find_api_key(&self, sid: &str) -> Result<Option<ApiKey>> {
        let sql = "SELECT sid, account_sid, friendly_name, secret_sha256, created_at FROM api_keys WHERE sid = $1";
        Ok(with_pool!(self, |pool| sqlx::query_as(sql)
            .bind(sid)
            .fetch_optional(pool)
            .await)?)
    }

    /// The API keys of an account, oldest first.
    pub async fn list_api_keys(&self, account_sid: &str) -> Result<Vec<ApiKey>> {
        let sql =
            "SELECT sid, account_sid, friendly_name, secret_sha256, created_at FROM api_keys \
                   WHERE account_sid = $1 ORDER BY created_at, sid";
        Ok(with_pool!(self, |pool| sqlx::query_as(sql)
            .bind(account_sid)
            .fetch_all(pool)
            .await)?)
    }

    /// Days a family (by its root account) requested in the UTC day that
    /// starts at `day_start` (ms).
    pub async fn quota_used(&self, root_sid: &str, day_start: i64) -> Result<i64> {
        let sql = "SELECT days FROM quota_usage WHERE root_sid = $1 AND day_start = $2";
        let used: Option<i64> = with_pool!(self, |pool| sqlx::query_scalar(sql)
            .bind(root_sid)
            .bind(day_start)
            .fetch_optional(pool)
            .await)?;
        Ok(used.unwrap_or(0))
    }

    /// Puts an account on, or takes it off, an Editions plan. False when unknown.
    pub async fn set_editions(&self, sid: &str, editions: bool) -> Result<bool> {
        let n = with_pool!(self, |pool| sqlx::query(
            "UPDATE accounts SET editions = $1 WHERE sid = $2"
        )
        .bind(editions)
        .bind(sid)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        self.config_changed();
        Ok(n == 1)
    }
}
