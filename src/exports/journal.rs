//! The journals a test suite asserts against: the API requests this
//! process served (in memory, the last `journal_size`), and the
//! notifications and emails the service produced (from the database).

use std::collections::VecDeque;
use std::sync::Mutex;

use serde::Serialize;
use serde_json::{json, Value};

use super::notifications::parse_params;
use super::{Exports, Result};
use crate::db::{DeliveryFilter, DeliveryRow};
use crate::domain::{Channel, SidKind};

/// One API request as the request journal keeps it.
#[derive(Debug, Clone, Serialize)]
pub struct RequestEntry {
    pub request_id: String,
    /// RFC 3339, on the service clock.
    pub at: String,
    pub method: String,
    /// The path as requested (without its query).
    pub path: String,
    pub operation: Option<&'static str>,
    pub status: u16,
    pub account_sid: Option<String>,
    pub duration_ms: f64,
    /// The fault rule that fired while serving it.
    pub fault: Option<String>,
}

/// The last requests, newest at the back.
#[derive(Debug, Default)]
pub(super) struct RequestJournal(Mutex<VecDeque<RequestEntry>>);

/// Filters of the request journal (each optional).
#[derive(Debug, Clone, Default)]
pub struct RequestFilter {
    pub account_sid: Option<String>,
    pub operation: Option<String>,
    pub status: Option<u16>,
}

impl Exports {
    /// Adds a served request to the journal, dropping the oldest past
    /// `journal_size`.
    pub fn journal_request(&self, entry: RequestEntry) {
        let cap = self.inner.engine.journal_size;
        if cap == 0 {
            return;
        }
        let mut q = self
            .inner
            .requests
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        while q.len() >= cap {
            q.pop_front();
        }
        q.push_back(entry);
    }

    /// The journal's requests that match `f`, newest first.
    pub fn journal_requests(&self, f: &RequestFilter, limit: usize) -> Vec<RequestEntry> {
        let q = self
            .inner
            .requests
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        q.iter()
            .rev()
            .filter(|e| {
                f.account_sid
                    .as_ref()
                    .is_none_or(|a| e.account_sid.as_ref() == Some(a))
            })
            .filter(|e| {
                f.operation
                    .as_deref()
                    .is_none_or(|o| e.operation == Some(o))
            })
            .filter(|e| f.status.is_none_or(|s| e.status == s))
            .take(limit)
            .cloned()
            .collect()
    }

    pub fn clear_request_journal(&self) {
        self.inner
            .requests
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// The delivery journal: notifications matching `f`, newest first, with
    /// every attempt.
    pub async fn journal_deliveries(&self, f: &DeliveryFilter, limit: i64) -> Result<Vec<Value>> {
        let mut out = Vec::new();
        for d in self.db().filter_deliveries(f, limit).await? {
            let attempts: Vec<Value> = self
                .db()
                .delivery_attempts(d.id)
                .await?
                .into_iter()
                .map(|a| {
                    json!({
                        "attempt": a.attempt, "at": rfc3339(a.at), "outcome": a.outcome,
                        "status_code": a.status_code,
                        "error": (a.outcome != "delivered").then_some(a.detail),
                        "fault": a.fault,
                    })
                })
                .collect();
            let headers: Value = d
                .headers
                .as_deref()
                .and_then(|h| serde_json::from_str::<Vec<(String, String)>>(h).ok())
                .map(|pairs| {
                    pairs
                        .into_iter()
                        .map(|(k, v)| (k, Value::String(v)))
                        .collect()
                })
                .map(Value::Object)
                .unwrap_or(Value::Null);
            let params: serde_json::Map<String, Value> = parse_params(&d.params)
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect();
            out.push(json!({
                "sid": delivery_sid(d.id), "channel": d.channel.as_str(), "account_sid": d.account_sid,
                "job_sid": d.job_sid, "event": d.dedupe_key, "target": d.target, "method": d.method,
                "params": params, "headers": headers, "idempotency_token": d.idempotency_token,
                "status": d.status.as_str(), "request_id": d.request_id, "fault": d.fault,
                "date_created": rfc3339(d.created_at), "attempts": attempts,
            }));
        }
        Ok(out)
    }

    /// The email journal: every email the service produced (sent, logged
    /// or pending), newest first.
    pub async fn journal_emails(
        &self,
        f: &DeliveryFilter,
        kind: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Value>> {
        let mut f = f.clone();
        f.channel = Some(Channel::Email);
        let from = &self.inner.engine.email_from;
        Ok(self
            .db()
            .filter_deliveries(&f, limit)
            .await?
            .into_iter()
            .map(|d| email_json(&d, from))
            .filter(|e| kind.is_none_or(|k| e["kind"] == k))
            .collect())
    }
}

/// A notification's SID in the journal: `NO` and its id in 32 hex digits.
pub fn delivery_sid(id: i64) -> String {
    format!("{}{:032x}", SidKind::Notification.prefix(), id)
}

/// The id a journal SID names.
pub fn delivery_id(sid: &str) -> Option<i64> {
    SidKind::Notification
        .matches(sid)
        .then(|| i64::from_str_radix(&sid[2..], 16).ok())
        .flatten()
}

fn rfc3339(ms: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// What kind of email a notification's event key says it is.
fn email_kind(event: &str) -> &'static str {
    if event.starts_with("daily:") {
        "daily"
    } else if event.contains(":initiated:") {
        "initiation"
    } else {
        "completion"
    }
}

fn email_json(d: &DeliveryRow, from: &str) -> Value {
    let params = parse_params(&d.params);
    let field = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    json!({
        "sid": delivery_sid(d.id), "to": d.target, "from": from, "subject": field("Subject"),
        "text": field("Body"), "kind": email_kind(&d.dedupe_key), "account_sid": d.account_sid,
        "job_sid": d.job_sid, "created_at": rfc3339(d.created_at), "delivery_status": d.status.as_str(),
        "request_id": d.request_id,
    })
}
