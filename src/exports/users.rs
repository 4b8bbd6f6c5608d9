//! The users of an account and their roles; unsubscribing from job-initiation emails.

use super::{unsubscribe_data, Error, Exports, Result};
use crate::db::UserRow;
use crate::domain::EmailAddress;

impl Exports {
    pub async fn add_user(&self, account_sid: &str, email: &str, role: &str) -> Result<()> {
        self.require_account(account_sid).await?;
        let email = EmailAddress::parse(email)
            .ok_or_else(|| Error::Invalid(format!("{email:?} is not an email address")))?;
        let role = role.trim().to_ascii_lowercase();
        if role.is_empty() {
            return Err(Error::Invalid(
                "a role is required (owner, admin, or another role)".into(),
            ));
        }
        self.db()
            .upsert_user(account_sid, email.as_str(), &role, self.clock().now_ms())
            .await?;
        Ok(())
    }

    pub async fn list_users(&self, account_sid: &str) -> Result<Vec<UserRow>> {
        self.require_account(account_sid).await?;
        Ok(self.db().list_users(account_sid).await?)
    }

    pub async fn remove_user(&self, account_sid: &str, email: &str) -> Result<()> {
        if self.db().remove_user(account_sid, email).await? {
            Ok(())
        } else {
            Err(Error::Invalid(format!(
                "account {account_sid} has no user {email}"
            )))
        }
    }

    /// Honours an unsubscribe link from a job-initiation email.
    pub async fn unsubscribe(&self, account_sid: &str, email: &str, signature: &str) -> Result<()> {
        if !self
            .inner
            .signer
            .verify(&unsubscribe_data(account_sid, email), signature)
        {
            return Err(Error::Forbidden("The unsubscribe link is not valid"));
        }
        self.db().unsubscribe_initiation(account_sid, email).await?;
        Ok(())
    }
}
