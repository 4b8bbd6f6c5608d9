//! Fault injection for test suites: rules stored in the database (so every
//! node applies them), matched against what the service is about to do,
//! and counted as they fire.
//!
//! Each process keeps the list of rules for a second ([`FAULT_CACHE`]):
//! a service without rules reads none per request or per day, and a rule
//! made on this node applies at once (one made on another node within a
//! second).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::{json, Map, Value};

use super::{Error, Exports, Result};
use crate::db::FaultRow;
use crate::domain::{Day, ResourceType, SidKind};

/// How long a process trusts its list of rules.
const FAULT_CACHE: Duration = Duration::from_secs(1);

/// The longest delay a rule may ask for.
const MAX_DELAY_SECS: i64 = 30 * 86_400;

/// What a rule does when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    DayError,
    DayDelay,
    DayEmpty,
    WebhookDuplicate,
    WebhookDelay,
    DownloadTruncate,
    DownloadExpired,
    ApiError,
}

impl FaultKind {
    pub const ALL: [FaultKind; 8] = [
        FaultKind::DayError,
        FaultKind::DayDelay,
        FaultKind::DayEmpty,
        FaultKind::WebhookDuplicate,
        FaultKind::WebhookDelay,
        FaultKind::DownloadTruncate,
        FaultKind::DownloadExpired,
        FaultKind::ApiError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::DayError => "DayError",
            FaultKind::DayDelay => "DayDelay",
            FaultKind::DayEmpty => "DayEmpty",
            FaultKind::WebhookDuplicate => "WebhookDuplicate",
            FaultKind::WebhookDelay => "WebhookDelay",
            FaultKind::DownloadTruncate => "DownloadTruncate",
            FaultKind::DownloadExpired => "DownloadExpired",
            FaultKind::ApiError => "ApiError",
        }
    }

    fn parse(s: &str) -> Option<FaultKind> {
        FaultKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// CreateFault's parameters as received (`Kind`, the filters, `Times`,
/// `Probability`, and the kind's own values).
#[derive(Debug, Clone, Default)]
pub struct FaultRequest {
    pub kind: Option<String>,
    pub account_sid: Option<String>,
    pub resource_type: Option<String>,
    pub day: Option<String>,
    pub job_sid: Option<String>,
    pub operation: Option<String>,
    pub times: Option<String>,
    pub probability: Option<String>,
    pub message: Option<String>,
    pub seconds: Option<String>,
    pub copies: Option<String>,
    pub bytes: Option<String>,
    pub status: Option<String>,
    pub code: Option<String>,
}

/// What a check is about; a rule's filter matches only a value given here.
#[derive(Debug, Clone, Copy, Default)]
pub struct FaultTarget<'a> {
    pub account_sid: Option<&'a str>,
    pub resource_type: Option<ResourceType>,
    pub day: Option<Day>,
    pub job_sid: Option<&'a str>,
    pub operation: Option<&'a str>,
}

/// A rule that fired, with its own values.
#[derive(Debug, Clone)]
pub struct Fired {
    pub sid: String,
    params: Map<String, Value>,
}

impl Fired {
    pub fn text(&self, name: &str) -> Option<&str> {
        self.params.get(name).and_then(Value::as_str)
    }

    pub fn number(&self, name: &str) -> Option<i64> {
        self.params.get(name).and_then(Value::as_i64)
    }
}

/// The rules as this process last read them.
#[derive(Debug, Default)]
pub(super) struct FaultCache(Mutex<Option<(Instant, Arc<Vec<FaultRow>>)>>);

impl FaultCache {
    fn fresh(&self) -> Option<Arc<Vec<FaultRow>>> {
        let held = self.0.lock().unwrap_or_else(|e| e.into_inner());
        held.as_ref()
            .filter(|(at, _)| at.elapsed() < FAULT_CACHE)
            .map(|(_, rules)| rules.clone())
    }

    fn keep(&self, rules: Arc<Vec<FaultRow>>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), rules));
    }

    pub(super) fn forget(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

fn matches(rule: &FaultRow, t: &FaultTarget<'_>) -> bool {
    let same = |filter: &Option<String>, value: Option<&str>| {
        filter.as_deref().is_none_or(|f| value == Some(f))
    };
    same(&rule.account_sid, t.account_sid)
        && same(&rule.resource_type, t.resource_type.map(|r| r.as_str()))
        && same(&rule.day, t.day.map(|d| d.to_string()).as_deref())
        && same(&rule.job_sid, t.job_sid)
        && same(&rule.operation, t.operation)
}

/// The JSON view of a rule, as the admin API shows it.
pub fn fault_json(f: &FaultRow) -> Value {
    let mut v = json!({
        "sid": f.sid, "kind": f.kind, "account_sid": f.account_sid, "resource_type": f.resource_type,
        "day": f.day, "job_sid": f.job_sid, "operation": f.operation, "times": f.times,
        "probability": f.probability, "fired": f.fired,
        "date_created": chrono::DateTime::from_timestamp_millis(f.created_at).map(|t| t.to_rfc3339()),
    });
    if let (Some(obj), Ok(Value::Object(params))) =
        (v.as_object_mut(), serde_json::from_str(&f.params))
    {
        obj.extend(params);
    }
    v
}

fn invalid(m: String) -> Error {
    Error::Invalid(m)
}

fn number(
    name: &str,
    raw: Option<&str>,
    range: std::ops::RangeInclusive<i64>,
) -> Result<Option<i64>> {
    raw.map(|s| {
        s.trim()
            .parse::<i64>()
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| {
                invalid(format!(
                    "{name} {s:?} must be an integer from {} to {}",
                    range.start(),
                    range.end()
                ))
            })
    })
    .transpose()
}

impl Exports {
    /// Stores a rule after checking every parameter; its JSON view.
    pub async fn create_fault(&self, r: &FaultRequest) -> Result<Value> {
        let kind_raw = r
            .kind
            .as_deref()
            .ok_or_else(|| invalid("Missing required parameter Kind".into()))?;
        let kind = FaultKind::parse(kind_raw).ok_or_else(|| {
            let all: Vec<&str> = FaultKind::ALL.iter().map(|k| k.as_str()).collect();
            invalid(format!(
                "Kind {kind_raw:?} is not one of {}",
                all.join(", ")
            ))
        })?;
        if let Some(a) = &r.account_sid {
            if !SidKind::Account.matches(a) {
                return Err(invalid(format!("AccountSid {a:?} is not an account SID")));
            }
        }
        if let Some(j) = &r.job_sid {
            if !SidKind::Job.matches(j) {
                return Err(invalid(format!("JobSid {j:?} is not a job SID")));
            }
        }
        let resource_type = r
            .resource_type
            .as_deref()
            .map(|s| {
                s.parse::<ResourceType>().map_err(|_| {
                    invalid(format!(
                        "ResourceType {s:?} is not Messages, Calls, Conferences or Participants"
                    ))
                })
            })
            .transpose()?;
        let day = r
            .day
            .as_deref()
            .map(|s| {
                Day::parse(s).map_err(|_| invalid(format!("Day {s:?} is not a day (yyyy-mm-dd)")))
            })
            .transpose()?;
        if let Some(op) = &r.operation {
            if !crate::domain::operations::is_operation(op) {
                return Err(invalid(format!("Operation {op:?} is not an operation id of the API (FetchJob, CreateExportCustomJob, FetchDay, …)")));
            }
        }
        let times = number("Times", r.times.as_deref(), 1..=1_000_000)?;
        let probability = match r.probability.as_deref() {
            None => 1.0,
            Some(s) => s
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|p| (0.0..=1.0).contains(p))
                .ok_or_else(|| {
                    invalid(format!("Probability {s:?} must be a number from 0 to 1"))
                })?,
        };
        let mut params = Map::new();
        let seconds = number("Seconds", r.seconds.as_deref(), 1..=MAX_DELAY_SECS)?;
        match kind {
            FaultKind::DayError => {
                let m = r
                    .message
                    .clone()
                    .unwrap_or_else(|| "injected fault: DayError".into());
                params.insert(
                    "message".into(),
                    m.chars().take(500).collect::<String>().into(),
                );
            }
            FaultKind::DayDelay | FaultKind::WebhookDelay => {
                let s =
                    seconds.ok_or_else(|| invalid(format!("{} needs Seconds", kind.as_str())))?;
                params.insert("seconds".into(), s.into());
            }
            FaultKind::WebhookDuplicate => {
                let c = number("Copies", r.copies.as_deref(), 2..=20)?
                    .ok_or_else(|| invalid("WebhookDuplicate needs Copies (2 to 20)".into()))?;
                params.insert("copies".into(), c.into());
            }
            FaultKind::DownloadTruncate => {
                let b = number("Bytes", r.bytes.as_deref(), 0..=i64::MAX)?
                    .ok_or_else(|| invalid("DownloadTruncate needs Bytes".into()))?;
                params.insert("bytes".into(), b.into());
            }
            FaultKind::ApiError => {
                let status = number("Status", r.status.as_deref(), 400..=599)?
                    .ok_or_else(|| invalid("ApiError needs Status (400 to 599)".into()))?;
                let code =
                    number("Code", r.code.as_deref(), 1..=99_999)?.unwrap_or(20_000 + status);
                let m = r.message.clone().unwrap_or_else(|| "Injected fault".into());
                params.insert("status".into(), status.into());
                params.insert("code".into(), code.into());
                params.insert(
                    "message".into(),
                    m.chars().take(500).collect::<String>().into(),
                );
            }
            FaultKind::DayEmpty | FaultKind::DownloadExpired => {}
        }
        let row = FaultRow {
            sid: SidKind::Fault.generate(),
            kind: kind.as_str().into(),
            account_sid: r.account_sid.clone(),
            resource_type: resource_type.map(|t| t.as_str().into()),
            day: day.map(|d| d.to_string()),
            job_sid: r.job_sid.clone(),
            operation: r.operation.clone(),
            times,
            probability,
            params: Value::Object(params).to_string(),
            fired: 0,
            created_at: self.clock().now_ms(),
        };
        self.db().insert_fault(&row).await?;
        self.inner.faults.forget();
        Ok(fault_json(&row))
    }

    pub async fn list_faults(&self) -> Result<Vec<Value>> {
        Ok(self
            .db()
            .list_faults()
            .await?
            .iter()
            .map(fault_json)
            .collect())
    }

    /// Removes one rule or all; false when the one named does not exist.
    pub async fn delete_faults(&self, sid: Option<&str>) -> Result<bool> {
        let n = self.db().delete_faults(sid).await?;
        self.inner.faults.forget();
        Ok(sid.is_none() || n == 1)
    }

    async fn rules(&self) -> Result<Arc<Vec<FaultRow>>> {
        Ok(match self.inner.faults.fresh() {
            Some(rules) => rules,
            None => {
                let rules = Arc::new(self.db().list_faults().await?);
                self.inner.faults.keep(rules.clone());
                rules
            }
        })
    }

    /// True when a rule of `kind` that may still fire matches `target`
    /// (nothing is counted).
    pub async fn may_fire(&self, kind: FaultKind, target: FaultTarget<'_>) -> Result<bool> {
        Ok(self.rules().await?.iter().any(|r| {
            r.kind == kind.as_str() && matches(r, &target) && r.times.is_none_or(|t| r.fired < t)
        }))
    }

    /// The first rule of `kind` that matches `target` and fires now (its
    /// probability drawn, its `Times` not used up), counted as fired.
    pub async fn fire(&self, kind: FaultKind, target: FaultTarget<'_>) -> Result<Option<Fired>> {
        let rules = self.rules().await?;
        for rule in rules
            .iter()
            .filter(|r| r.kind == kind.as_str() && matches(r, &target))
        {
            if rule.probability < 1.0 && rand::thread_rng().gen::<f64>() >= rule.probability {
                continue;
            }
            if self.db().fire_fault(&rule.sid).await? {
                tracing::info!(fault = %rule.sid, kind = kind.as_str(), "fault fired");
                crate::telemetry::note_fault(&rule.sid);
                let params = match serde_json::from_str(&rule.params) {
                    Ok(Value::Object(m)) => m,
                    _ => Map::new(),
                };
                return Ok(Some(Fired {
                    sid: rule.sid.clone(),
                    params,
                }));
            }
        }
        Ok(None)
    }
}
