//! Accounts, API keys and HTTP Basic credentials.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::distributions::Alphanumeric;
use rand::Rng;
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{Error, Exports, Result};
use crate::db::{Account, ApiKey};
use crate::domain::SidKind;

#[derive(Debug, Clone, Serialize)]
pub struct CreatedAccount {
    pub sid: String,
    pub friendly_name: String,
    pub auth_token: String,
    pub parent_sid: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CreatedKey {
    pub sid: String,
    pub account_sid: String,
    pub friendly_name: String,
    /// Shown once; only its SHA-256 is stored.
    pub secret: String,
}

fn random_hex32() -> String {
    hex::encode(rand::thread_rng().gen::<[u8; 16]>())
}

pub(super) fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// How long a credential that authenticated is trusted without asking the
/// database again.
const AUTH_CACHE_TTL: Duration = Duration::from_secs(5);
/// Entries kept at most; a full cache starts again empty.
const AUTH_CACHE_ENTRIES: usize = 10_000;

/// Credentials that authenticated in the last [`AUTH_CACHE_TTL`], so a busy
/// client's requests do not each look its account up (on PostgreSQL a round
/// trip, about half of a FetchJob's cost). Only successes are kept, under
/// the SHA-256 of the password: a wrong password always goes to the database
/// and its throttling. Nothing changes a stored credential today (accounts
/// and keys are only ever created); whatever comes to change or remove one
/// must empty this cache too.
#[derive(Default)]
pub(super) struct AuthCache {
    entries: Mutex<HashMap<CredentialKey, (String, Instant)>>,
}

/// A user name and the SHA-256 of its password.
type CredentialKey = (String, [u8; 32]);

impl AuthCache {
    fn get(&self, key: &CredentialKey) -> Option<String> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match entries.get(key) {
            Some((sid, at)) if at.elapsed() < AUTH_CACHE_TTL => Some(sid.clone()),
            _ => None,
        }
    }

    fn put(&self, key: CredentialKey, account_sid: String) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= AUTH_CACHE_ENTRIES {
            entries.clear();
        }
        entries.insert(key, (account_sid, Instant::now()));
    }

    fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

/// Never prints a credential.
impl std::fmt::Debug for AuthCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let len = self.entries.lock().map_or(0, |e| e.len());
        f.debug_struct("AuthCache").field("entries", &len).finish()
    }
}

impl Exports {
    pub async fn create_account(
        &self,
        friendly_name: &str,
        parent_sid: Option<&str>,
    ) -> Result<CreatedAccount> {
        if let Some(parent) = parent_sid {
            let p = self.db().find_account(parent).await?;
            match p {
                None => {
                    return Err(Error::Invalid(format!(
                        "parent account {parent} does not exist"
                    )))
                }
                Some(p) if p.parent_sid.is_some() => {
                    return Err(Error::Invalid(format!(
                        "{parent} is itself a subaccount; subaccounts cannot be nested"
                    )))
                }
                Some(_) => {}
            }
        }
        let account = Account {
            sid: SidKind::Account.generate(),
            friendly_name: friendly_name.to_string(),
            auth_token: random_hex32(),
            parent_sid: parent_sid.map(str::to_string),
            created_at: self.clock().now_ms(),
            editions: false,
        };
        self.db().insert_account(&account).await?;
        Ok(CreatedAccount {
            sid: account.sid,
            friendly_name: account.friendly_name,
            auth_token: account.auth_token,
            parent_sid: account.parent_sid,
        })
    }

    pub async fn create_api_key(
        &self,
        account_sid: &str,
        friendly_name: &str,
    ) -> Result<CreatedKey> {
        self.require_account(account_sid).await?;
        let secret: String = rand::thread_rng()
            .sample_iter(&Alphanumeric)
            .take(32)
            .map(char::from)
            .collect();
        let key = ApiKey {
            sid: SidKind::ApiKey.generate(),
            account_sid: account_sid.to_string(),
            friendly_name: friendly_name.to_string(),
            secret_sha256: sha256_hex(&secret),
            created_at: self.clock().now_ms(),
        };
        self.db().insert_api_key(&key).await?;
        Ok(CreatedKey {
            sid: key.sid,
            account_sid: key.account_sid,
            friendly_name: key.friendly_name,
            secret,
        })
    }

    /// Puts an account on, or takes it off, an Editions plan.
    pub async fn set_editions(&self, account_sid: &str, editions: bool) -> Result<()> {
        if self.db().set_editions(account_sid, editions).await? {
            Ok(())
        } else {
            Err(Error::Invalid(format!(
                "account {account_sid} does not exist"
            )))
        }
    }

    /// Forgets every remembered credential: after a change of tokens, keys
    /// or accounts (fixtures, reset), each is checked against the database again.
    pub fn forget_credentials(&self) {
        self.inner.auth_cache.clear();
    }

    pub async fn require_account(&self, account_sid: &str) -> Result<Account> {
        self.db()
            .find_account(account_sid)
            .await?
            .ok_or_else(|| Error::Invalid(format!("account {account_sid} does not exist")))
    }

    /// The account a Basic credential acts as: an account with its auth token,
    /// a subaccount with its parent's auth token, or an API key with its secret.
    pub async fn authenticate(&self, user: &str, password: &str) -> Result<Option<String>> {
        let key = (user.to_string(), Sha256::digest(password.as_bytes()).into());
        if let Some(account_sid) = self.inner.auth_cache.get(&key) {
            return Ok(Some(account_sid));
        }
        let found = self.authenticate_stored(user, password).await?;
        if let Some(account_sid) = &found {
            self.inner.auth_cache.put(key, account_sid.clone());
        }
        Ok(found)
    }

    /// [`Exports::authenticate`] against the database.
    async fn authenticate_stored(&self, user: &str, password: &str) -> Result<Option<String>> {
        if SidKind::Account.matches(user) {
            let Some(account) = self.db().find_account(user).await? else {
                return Ok(None);
            };
            if same(&account.auth_token, password) {
                return Ok(Some(account.sid));
            }
            if let Some(parent) = &account.parent_sid {
                if let Some(p) = self.db().find_account(parent).await? {
                    if same(&p.auth_token, password) {
                        return Ok(Some(account.sid));
                    }
                }
            }
            return Ok(None);
        }
        if SidKind::ApiKey.matches(user) {
            let Some(key) = self.db().find_api_key(user).await? else {
                return Ok(None);
            };
            return Ok(same(&key.secret_sha256, &sha256_hex(password)).then_some(key.account_sid));
        }
        Ok(None)
    }
}
