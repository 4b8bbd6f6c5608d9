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

/// Accounts (`$1`…, as many as `n`) with the owners and admins, of each and
/// of its parent, who still want job-initiation emails (its own first, then
/// by email): what a batch of job creations reads, in one statement
/// (`db::intake`).
pub(super) fn recipients_sql(n: usize) -> String {
    format!(
        "SELECT a.sid, a.parent_sid, u.account_sid AS user_account_sid, u.email AS user_email, \
         u.role AS user_role, u.created_at AS user_created_at FROM accounts a LEFT JOIN users u \
         ON u.account_sid IN (a.sid, a.parent_sid) AND u.role IN ('owner', 'admin') AND u.initiation_emails \
         WHERE a.sid IN {} ORDER BY a.sid, u.account_sid = a.sid DESC, u.email",
        super::placeholders(1, n)
    )
}

/// A row of `recipients_sql`.
#[derive(sqlx::FromRow)]
pub(super) struct RecipientRow {
    sid: String,
    parent_sid: Option<String>,
    user_account_sid: Option<String>,
    user_email: Option<String>,
    user_role: Option<String>,
    user_created_at: Option<i64>,
}

/// An account's parent and its initiation-email recipients.
pub(super) type Recipients = (Option<String>, Vec<UserRow>);

/// The rows of `recipients_sql` by account.
pub(super) fn group_recipients(
    rows: Vec<RecipientRow>,
) -> std::collections::HashMap<String, Recipients> {
    let mut accounts = std::collections::HashMap::<String, Recipients>::new();
    for r in rows {
        let (_, users) = accounts
            .entry(r.sid)
            .or_insert_with(|| (r.parent_sid, Vec::new()));
        if let (Some(account_sid), Some(email), Some(role), Some(created_at)) = (
            r.user_account_sid,
            r.user_email,
            r.user_role,
            r.user_created_at,
        ) {
            users.push(UserRow {
                account_sid,
                email,
                role,
                initiation_emails: true,
                created_at,
            });
        }
    }
    accounts
}

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
