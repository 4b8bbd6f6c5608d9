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

    /// An account with the owners and admins, of it and of its parent, who
    /// still want job-initiation emails (its own first, then by email): what
    /// creating a job reads, in one statement.
    pub async fn account_with_recipients(
        &self,
        sid: &str,
    ) -> Result<Option<(super::Account, Vec<UserRow>)>> {
        #[derive(sqlx::FromRow)]
        struct Joined {
            #[sqlx(flatten)]
            account: super::Account,
            user_account_sid: Option<String>,
            user_email: Option<String>,
            user_role: Option<String>,
            user_created_at: Option<i64>,
        }
        let sql = "SELECT a.sid, a.friendly_name, a.auth_token, a.parent_sid, a.created_at, a.editions, \
                   u.account_sid AS user_account_sid, u.email AS user_email, u.role AS user_role, \
                   u.created_at AS user_created_at FROM accounts a LEFT JOIN users u \
                   ON u.account_sid IN (a.sid, a.parent_sid) AND u.role IN ('owner', 'admin') AND u.initiation_emails \
                   WHERE a.sid = $1 ORDER BY u.account_sid = a.sid DESC, u.email";
        let rows: Vec<Joined> = with_pool!(self, |pool| sqlx::query_as(sql)
            .bind(sid)
            .fetch_all(pool)
            .await)?;
        let Some(account) = rows.first().map(|r| r.account.clone()) else {
            return Ok(None);
        };
        let users = rows
            .into_iter()
            .filter_map(|r| {
                Some(UserRow {
                    account_sid: r.user_account_sid?,
                    email: r.user_email?,
                    role: r.user_role?,
                    initiation_emails: true,
                    created_at: r.user_created_at?,
                })
            })
            .collect();
        Ok(Some((account, users)))
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
