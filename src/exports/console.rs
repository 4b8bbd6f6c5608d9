//! What the web console reads that the API does not answer as such: a
//! day's first records, the family's quota of today, whether a webhook's
//! signature verifies, the accounts with their users and keys, the queue's
//! state, and the key its session cookies are signed with.

use serde_json::{Map, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt};

use super::{Error, Exports, Result};
use crate::domain::{Day, ResourceType};

/// The most decompressed bytes a preview reads, whatever the lines' length.
const PREVIEW_BYTES: u64 = 8 << 20;

/// A day's first records, as a table.
#[derive(Debug, Clone, Default)]
pub struct DayPreview {
    /// Every field of the records shown, in the order first seen.
    pub columns: Vec<String>,
    pub rows: Vec<Map<String, Value>>,
    /// Records in the whole day.
    pub records: i64,
}

/// The requested days of an account's family in the current UTC day.
#[derive(Debug, Clone)]
pub struct QuotaStatus {
    pub used: i64,
    pub limit: i64,
    /// RFC 3339: the next UTC midnight of the service clock.
    pub resets_at: String,
}

/// An account as the operator's console lists it.
#[derive(Debug, Clone)]
pub struct AccountSummary {
    pub sid: String,
    pub friendly_name: String,
    pub parent_sid: Option<String>,
    pub editions: bool,
    /// (email, role)
    pub users: Vec<(String, String)>,
    /// (SID, friendly name)
    pub keys: Vec<(String, String)>,
}

impl Exports {
    /// 64 bytes for signing the console's cookies, derived from the key
    /// every node shares: a session started on one node is good on all.
    pub fn console_key(&self) -> [u8; 64] {
        let derive = |label: &str| hex::decode(self.inner.signer.sign(label)).unwrap_or_default();
        let mut key = [0u8; 64];
        key[..32].copy_from_slice(&derive("console-key:1"));
        key[32..].copy_from_slice(&derive("console-key:2"));
        key
    }

    /// The first `n` records of a published day, with the day's count.
    pub async fn preview_day(
        &self,
        account_sid: &str,
        rt: ResourceType,
        day: &str,
        n: usize,
    ) -> Result<DayPreview> {
        let missing = || Error::NotFound(format!("/Exports/{rt}/Days/{day}"));
        Day::parse(day).map_err(|_| missing())?;
        let row = self
            .db()
            .find_day(account_sid, rt.as_str(), day, self.days_visible_since())
            .await?
            .ok_or_else(missing)?;
        let mut preview = DayPreview {
            records: row.record_count,
            ..Default::default()
        };
        if row.record_count == 0 {
            return Ok(preview);
        }
        let whole = super::Download {
            key: row.blob_key,
            size: row.size as u64,
            etag: String::new(),
        };
        let reader = tokio_util::io::StreamReader::new(self.download_body(&whole, None).await?);
        let mut gz = async_compression::tokio::bufread::GzipDecoder::new(reader);
        gz.multiple_members(true);
        let mut lines = tokio::io::BufReader::new(gz.take(PREVIEW_BYTES));
        let mut line = Vec::new();
        while preview.rows.len() < n {
            line.clear();
            let read = lines
                .read_until(b'\n', &mut line)
                .await
                .map_err(|e| Error::Unavailable(format!("the day file could not be read: {e}")))?;
            if read == 0 || line.last() != Some(&b'\n') {
                break; // the end, or a line cut by the preview's bound
            }
            if let Ok(Value::Object(record)) = serde_json::from_slice::<Value>(&line) {
                for field in record.keys() {
                    if !preview.columns.iter().any(|c| c == field) {
                        preview.columns.push(field.clone());
                    }
                }
                preview.rows.push(record);
            }
        }
        // The SID first: what a reader looks for.
        if let Some(i) = preview.columns.iter().position(|c| c == "sid") {
            let sid = preview.columns.remove(i);
            preview.columns.insert(0, sid);
        }
        Ok(preview)
    }

    /// The family's requested days in the current UTC day, and its allowance.
    pub async fn quota_status(&self, account_sid: &str) -> Result<QuotaStatus> {
        let account = self.require_account(account_sid).await?;
        let quota = self.day_quota();
        let root_sid = account.parent_sid.as_deref().unwrap_or(&account.sid);
        let used = self.db().quota_used(root_sid, quota.day_start).await?;
        let resets_at = chrono::DateTime::from_timestamp_millis(quota.day_end)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default();
        Ok(QuotaStatus {
            used,
            limit: quota.limit,
            resets_at,
        })
    }

    /// Every account with its users and API keys, in creation order.
    pub async fn account_summaries(&self) -> Result<Vec<AccountSummary>> {
        let mut out = Vec::new();
        for a in self.db().list_accounts().await? {
            let users = self.db().list_users(&a.sid).await?;
            let keys = self.db().list_api_keys(&a.sid).await?;
            out.push(AccountSummary {
                users: users.into_iter().map(|u| (u.email, u.role)).collect(),
                keys: keys.into_iter().map(|k| (k.sid, k.friendly_name)).collect(),
                sid: a.sid,
                friendly_name: a.friendly_name,
                parent_sid: a.parent_sid,
                editions: a.editions,
            });
        }
        Ok(out)
    }

    /// Job days per status and the oldest queued day's age, now.
    pub async fn queue_state(&self) -> Result<crate::telemetry::StateGauges> {
        Ok(self.db().state_gauges(self.clock().now_ms()).await?)
    }
}

/// Whether a journal entry's webhook carries the `X-Twilio-Signature` that
/// `auth_token` makes; `None` for an email or an unsent webhook.
pub fn signature_verifies(delivery: &Value, auth_token: &str) -> Option<bool> {
    let sent = delivery["headers"]["X-Twilio-Signature"].as_str()?;
    let params: Vec<(String, String)> = delivery["params"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();
    let expected = crate::notify::expected_signature(
        auth_token,
        delivery["target"].as_str().unwrap_or_default(),
        delivery["method"].as_str().unwrap_or("POST"),
        &params,
    );
    Some(expected.as_deref() == Some(sent))
}
