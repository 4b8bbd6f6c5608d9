//! The people of an account, with their roles.

use super::{with_pool, Db, Result};

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct UserRow {
    pub account_sid: String,
    pub email: String,
    pub role: String,
    pub initiation_emails: bool,
    pub created_at: i64,
}

const USER_COLUMNS: &str = "account_sid, email, role, initiation_emails, created_at";

impl Db {
    /// Adds a user, or changes the role of an existing one.
    pub async fn upsert_user(
        &self,
        account_sid: &str,
        email: &str,
        role: &str,
        now: i64,
    ) -> Result<()> {
        let sql =
            "INSERT INTO users (account_sid, email, role, created_at) VALUES ($1, $2, $3, $4) \
                   ON CONFLICT (account_sid, email) DO UPDATE SET role = excluded.role";
        with_pool!(self, |pool| sqlx::query(sql)
            .bind(account_sid)
            .bind(email)
            .bind(role)
            .bind(now)
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    pub async fn list_users(&self, account_sid: &str) -> Result<Vec<UserRow>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE account_sid = $1 ORDER BY email");
        Ok(with_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(account_sid)
            .fetch_all(pool)
            .await)?)
    }

    /// False when the account has no such user.
    pub async fn remove_user(&self, account_sid: &str, email: &str) -> Result<bool> {
        let n = with_pool!(self, |pool| sqlx::query(
            "DELETE FROM users WHERE account_sid = $1 AND email = $2"
        )
        .bind(account_sid)
        .bind(email)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// Owners and admins of these accounts who still want job-initiation emails.
    pub async fn initiation_recipients(&self, account_sids: &[String]) -> Result<Vec<UserRow>> {
        let mut out = Vec::new();
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM users WHERE account_sid = $1 AND role IN ('owner', 'admin') \
             AND initiation_emails ORDER BY email"
        );
        for account in account_sids {
            let rows: Vec<UserRow> = with_pool!(self, |pool| sqlx::query_as(&sql)
                .bind(account)
                .fetch_all(pool)
                .await)?;
            out.extend(rows);
        }
        Ok(out)
    }

    /// Stops job-initiation emails to a user. False when there is no such user.
    pub async fn unsubscribe_initiation(&self, account_sid: &str, email: &str) -> Result<bool> {
        let sql =
            "UPDATE users SET initiation_emails = FALSE WHERE account_sid = $1 AND email = $2";
        let n = with_pool!(self, |pool| sqlx::query(sql)
            .bind(account_sid)
            .bind(email)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }
}
