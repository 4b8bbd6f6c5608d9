//! Accounts, subaccounts and API keys.

use super::{Db, Result};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Account {
    pub sid: String,
    pub friendly_name: String,
    pub auth_token: String,
    pub parent_sid: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiKey {
    pub sid: String,
    pub account_sid: String,
    pub friendly_name: String,
    pub secret_sha256: String,
    pub created_at: i64,
}

impl Db {
    pub async fn insert_account(&self, a: &Account) -> Result<()> {
        sqlx::query("INSERT INTO accounts (sid, friendly_name, auth_token, parent_sid, created_at) VALUES (?, ?, ?, ?, ?)")
            .bind(&a.sid)
            .bind(&a.friendly_name)
            .bind(&a.auth_token)
            .bind(&a.parent_sid)
            .bind(a.created_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn find_account(&self, sid: &str) -> Result<Option<Account>> {
        Ok(sqlx::query_as("SELECT sid, friendly_name, auth_token, parent_sid, created_at FROM accounts WHERE sid = ?")
            .bind(sid)
            .fetch_optional(&self.pool)
            .await?)
    }

    pub async fn list_accounts(&self) -> Result<Vec<Account>> {
        Ok(sqlx::query_as("SELECT sid, friendly_name, auth_token, parent_sid, created_at FROM accounts ORDER BY created_at, sid")
            .fetch_all(&self.pool)
            .await?)
    }

    pub async fn insert_api_key(&self, k: &ApiKey) -> Result<()> {
        sqlx::query("INSERT INTO api_keys (sid, account_sid, friendly_name, secret_sha256, created_at) VALUES (?, ?, ?, ?, ?)")
            .bind(&k.sid)
            .bind(&k.account_sid)
            .bind(&k.friendly_name)
            .bind(&k.secret_sha256)
            .bind(k.created_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn find_api_key(&self, sid: &str) -> Result<Option<ApiKey>> {
        Ok(sqlx::query_as("SELECT sid, account_sid, friendly_name, secret_sha256, created_at FROM api_keys WHERE sid = ?")
            .bind(sid)
            .fetch_optional(&self.pool)
            .await?)
    }
}
