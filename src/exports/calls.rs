//! Deleting call records, and the 2010 REST API's Call resource served over
//! the same records.
//!
//! DeleteArchivedCall and DELETE of the Call resource are recorded at once and
//! applied by a batch on the service clock (every `deletion_batch_secs`, once
//! per slot across all nodes). Applying one takes the record out of every new
//! export; the REST resource goes too when the call is 13 months old or more,
//! or when the deletion came from the REST API. Every published Day that held
//! the record is then rewritten without it.

use chrono::{DateTime, Months, Utc};
use serde_json::{Map, Value};

use super::{Error, Exports, Result};
use crate::db::{Admission, CallRecord, JobKind, NewJob};
use crate::domain::record::parse_timestamp;
use crate::domain::{Day, SidKind};

/// Deletions applied per batch pass.
const BATCH: i64 = 500;

/// A page of Call resources, newest first.
#[derive(Debug, Clone)]
pub struct CallPage {
    pub calls: Vec<Value>,
    pub next_token: Option<String>,
    pub prev_token: Option<String>,
}

fn not_found(path: String) -> Error {
    Error::NotFound(path)
}

/// The `Date` of DeleteArchivedCall: `yyyy-mm-dd`, or what twilio-node sends
/// when given a JavaScript `Date` as its types ask: `Date.toString()`, such as
/// `Mon Nov 16 2026 00:00:00 GMT+0000 (Coordinated Universal Time)`, read as
/// the UTC day of that instant.
fn archive_day(raw: &str) -> Option<Day> {
    if let Ok(day) = Day::parse(raw) {
        return Some(day);
    }
    let without_zone_name = raw.split(" (").next().unwrap_or(raw).trim();
    DateTime::parse_from_str(without_zone_name, "%a %b %d %Y %H:%M:%S GMT%z")
        .ok()
        .map(|t| Day::from_date(t.with_timezone(&Utc).date_naive()))
}

fn rfc2822(iso: &str) -> Option<String> {
    parse_timestamp(iso).map(|t| t.format("%a, %d %b %Y %H:%M:%S +0000").to_string())
}

/// The REST API's shape of a stored day-file Call record.
pub(crate) fn rest_call(account_sid: &str, line: &str) -> Value {
    let Ok(Value::Object(mut rec)) = serde_json::from_str::<Value>(line) else {
        return Value::Null;
    };
    for field in ["date_created", "date_updated", "start_time", "end_time"] {
        if let Some(v) = rec.get_mut(field) {
            if let Some(s) = v.as_str().and_then(rfc2822) {
                *v = Value::String(s);
            }
        }
    }
    for field in ["duration", "queue_time"] {
        if let Some(v) = rec.get_mut(field) {
            if let Some(n) = v.as_i64() {
                *v = Value::String(n.to_string());
            }
        }
    }
    let sid = rec
        .get("sid")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let base = format!("/2010-04-01/Accounts/{account_sid}/Calls/{sid}");
    rec.insert("uri".into(), Value::String(format!("{base}.json")));
    let mut subs = Map::new();
    for (k, v) in [
        ("feedback", "Feedback"),
        ("notifications", "Notifications"),
        ("recordings", "Recordings"),
        ("streams", "Streams"),
        ("payments", "Payments"),
        ("siprec", "Siprec"),
        ("events", "Events"),
        ("transcriptions", "Transcriptions"),
    ] {
        subs.insert(k.into(), Value::String(format!("{base}/{v}.json")));
    }
    rec.insert("subresource_uris".into(), Value::Object(subs));
    Value::Object(rec)
}

impl Exports {
    /// DeleteArchivedCall: records the deletion; 404 when the account has no
    /// such call on that day. Repeating it is harmless.
    pub async fn delete_archived_call(
        &self,
        account_sid: &str,
        date: &str,
        sid: &str,
    ) -> Result<()> {
        let path = || not_found(format!("/Archives/{date}/Calls/{sid}"));
        let day = archive_day(date).ok_or_else(path)?;
        if !SidKind::Call.matches(sid) {
            return Err(path());
        }
        if self
            .db()
            .deletion_requested(account_sid, sid, "archive")
            .await?
        {
            return Ok(());
        }
        let call = self
            .db()
            .find_call(account_sid, sid)
            .await?
            .ok_or_else(path)?;
        if call.day != day.to_string() || call.export_deleted {
            return Err(path());
        }
        self.db()
            .request_deletion(
                account_sid,
                sid,
                "archive",
                &call.day,
                self.clock().now_ms(),
            )
            .await?;
        Ok(())
    }

    /// The Call resource, in the REST API's shape.
    pub async fn fetch_call(&self, account_sid: &str, sid: &str, path: &str) -> Result<Value> {
        match self.db().find_call(account_sid, sid).await? {
            Some(c) if !c.rest_deleted => Ok(rest_call(account_sid, &c.line)),
            _ => Err(not_found(path.to_string())),
        }
    }

    /// DELETE of the Call resource: gone from the REST API at once; its
    /// export record goes with the next deletion batch.
    pub async fn delete_call(&self, account_sid: &str, sid: &str, path: &str) -> Result<()> {
        let call = match self.db().find_call(account_sid, sid).await? {
            Some(c) if !c.rest_deleted => c,
            _ => return Err(not_found(path.to_string())),
        };
        self.db().hide_call_resource(account_sid, sid).await?;
        self.db()
            .request_deletion(account_sid, sid, "rest", &call.day, self.clock().now_ms())
            .await?;
        Ok(())
    }

    fn call_token(&self, account_sid: &str, tag: &str, sort_key: &str) -> String {
        let body = format!("{tag}{}", hex::encode(sort_key));
        let mac = self
            .inner
            .signer
            .sign(&format!("calls:{account_sid}:{body}"));
        format!("{body}-{}", &mac[..16])
    }

    fn read_call_token(&self, account_sid: &str, token: &str) -> Result<(bool, String)> {
        let bad = || {
            Error::Invalid(format!(
                "PageToken {token:?} is not a page token issued by this server for this list"
            ))
        };
        let (body, mac) = token.rsplit_once('-').ok_or_else(bad)?;
        if !self
            .inner
            .signer
            .verify_prefix(&format!("calls:{account_sid}:{body}"), mac)
        {
            return Err(bad());
        }
        let (after, hex_key) = match (body.strip_prefix("PA"), body.strip_prefix("PB")) {
            (Some(k), _) => (true, k),
            (_, Some(k)) => (false, k),
            _ => return Err(bad()),
        };
        let key = hex::decode(hex_key)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(bad)?;
        Ok((after, key))
    }

    /// One page of Call resources, newest first. `PA` tokens continue to
    /// older calls, `PB` tokens go back to newer ones.
    pub async fn list_calls(
        &self,
        account_sid: &str,
        page_size: i64,
        token: Option<&str>,
    ) -> Result<CallPage> {
        let cursor = token
            .filter(|t| !t.is_empty())
            .map(|t| self.read_call_token(account_sid, t))
            .transpose()?;
        let (older_than, newer_than) = match &cursor {
            Some((true, k)) => (Some(k.as_str()), None),
            Some((false, k)) => (None, Some(k.as_str())),
            None => (None, None),
        };
        let mut rows: Vec<CallRecord> = self
            .db()
            .list_calls(account_sid, older_than, newer_than, page_size + 1)
            .await?;
        let more = rows.len() as i64 > page_size;
        if more {
            if newer_than.is_some() {
                rows.remove(0);
            } else {
                rows.truncate(page_size as usize);
            }
        }
        let first = rows.first().map(|r| r.sort_key.clone());
        let last = rows.last().map(|r| r.sort_key.clone());
        let (next, prev) = match (&cursor, first, last) {
            (_, None, _) | (_, _, None) => (None, None),
            (None, _, Some(l)) => (more.then(|| self.call_token(account_sid, "PA", &l)), None),
            (Some((true, _)), Some(f), Some(l)) => (
                more.then(|| self.call_token(account_sid, "PA", &l)),
                Some(self.call_token(account_sid, "PB", &f)),
            ),
            (Some((false, _)), Some(f), Some(l)) => (
                Some(self.call_token(account_sid, "PA", &l)),
                more.then(|| self.call_token(account_sid, "PB", &f)),
            ),
        };
        Ok(CallPage {
            calls: rows
                .iter()
                .map(|r| rest_call(account_sid, &r.line))
                .collect(),
            next_token: next,
            prev_token: prev,
        })
    }

    /// True while deletions that the current batch slot should apply are not
    /// applied yet (another task may be applying them right now).
    pub(crate) async fn deletions_due(&self) -> Result<bool> {
        let period = self.inner.engine.deletion_batch_ms.max(1000);
        let slot_start = self.clock().now_ms() / period * period;
        Ok(!self.db().pending_deletions(slot_start, 1).await?.is_empty())
    }

    /// Applies the deletions requested so far, once per batch slot across all
    /// nodes. Returns how many were applied.
    pub async fn apply_deletions_if_due(&self) -> Result<usize> {
        let now = self.clock().now_ms();
        let period = self.inner.engine.deletion_batch_ms.max(1000);
        let slot = now / period;
        let due = self.db().pending_deletions(slot * period, 1).await?;
        if due.is_empty()
            || !self
                .db()
                .claim_periodic("deletions", slot, &super::worker::node_id(), now)
                .await?
        {
            return Ok(0);
        }
        let thirteen_months_ago = DateTime::<Utc>::from_timestamp_millis(now)
            .and_then(|t| t.checked_sub_months(Months::new(13)))
            .map(|t| t.date_naive().to_string())
            .unwrap_or_default();
        let mut applied = 0;
        loop {
            let batch = self.db().pending_deletions(slot * period, BATCH).await?;
            if batch.is_empty() {
                break;
            }
            for d in &batch {
                let old = d.day < thirteen_months_ago;
                let (remove_row, outcome) = match (d.source.as_str(), old) {
                    ("rest", _) => (true, "removed from the exports and the REST API"),
                    (_, true) => (
                        true,
                        "removed from the exports and, 13 months old or more, from the REST API",
                    ),
                    _ => (false, "removed from the exports; the Call resource stays"),
                };
                self.db()
                    .apply_deletion(d, remove_row, outcome, self.clock().now_ms())
                    .await?;
                applied += 1;
            }
        }
        self.rewrite_stale_days().await?;
        Ok(applied)
    }

    /// Queues a rewrite of every published Day whose records changed since
    /// its file was made. Idempotent: a Day with an open job is left alone.
    pub async fn rewrite_stale_days(&self) -> Result<usize> {
        let mut queued = 0;
        for day in self.db().stale_days(BATCH).await? {
            let job = NewJob {
                sid: SidKind::Job.generate_ordered(self.clock().now_ms()),
                account_sid: day.account_sid.clone(),
                resource_type: day.resource_type.to_string(),
                friendly_name: day.friendly_name.clone(),
                start_day: day.day.to_string(),
                end_day: day.day.to_string(),
                webhook_url: None,
                webhook_method: None,
                email: None,
                created_at: self.clock().now_ms(),
                days: vec![day.day.to_string()],
                kind: JobKind::Rewrite,
                request_id: crate::telemetry::request_id(),
            };
            if self
                .db()
                .insert_job(&job, &Admission::Always)
                .await?
                .is_ok()
            {
                queued += 1;
            }
        }
        if queued > 0 {
            self.inner.work_submitted.notify_waiters();
        }
        Ok(queued)
    }

    pub async fn list_deletions(&self, account_sid: &str) -> Result<Vec<crate::db::DeletionRow>> {
        Ok(self.db().list_deletions(account_sid).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_dates_from_both_clients() {
        assert_eq!(
            archive_day("2024-06-05").map(|d| d.to_string()),
            Some("2024-06-05".into())
        );
        let node = "Mon Nov 16 2026 00:00:00 GMT+0000 (Coordinated Universal Time)";
        assert_eq!(
            archive_day(node).map(|d| d.to_string()),
            Some("2026-11-16".into())
        );
        let eastern = "Sun Nov 15 2026 19:00:00 GMT-0500 (Eastern Standard Time)";
        assert_eq!(
            archive_day(eastern).map(|d| d.to_string()),
            Some("2026-11-16".into())
        );
        assert!(archive_day("2024-13-01").is_none());
    }

    #[test]
    fn rest_shape_has_rfc2822_dates_string_counters_and_uris() {
        let line = r#"{"sid":"CA0123456789abcdef0123456789abcdef","date_created":"2020-07-26T22:21:20Z","duration":12,"queue_time":0,"start_time":null}"#;
        let v = rest_call("AC1", line);
        assert_eq!(v["date_created"], "Sun, 26 Jul 2020 22:21:20 +0000");
        assert_eq!(v["duration"], "12");
        assert_eq!(v["start_time"], Value::Null);
        assert_eq!(
            v["uri"],
            "/2010-04-01/Accounts/AC1/Calls/CA0123456789abcdef0123456789abcdef.json"
        );
        assert!(v["subresource_uris"]["recordings"]
            .as_str()
            .unwrap_or_default()
            .ends_with("/Recordings.json"));
    }
}
