//! What every request leaves behind: its ids (`Twilio-Request-Id`, and
//! `X-Request-Id` echoed or set), a span that every log line written while
//! serving it carries, one access-log line, and its metrics.
//!
//! One middleware instead of tower-http's request-id layers: Twilio's id is
//! always the service's own, while `X-Request-Id` keeps what the client
//! sent, and both, the route template and the account belong to one span.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use super::AppState;
use crate::domain::{operations, Day, ResourceType};
use crate::exports::{FaultTarget, RequestEntry};
use crate::telemetry;

/// Operations the request journal leaves out: probes and scrapes, which
/// come every few seconds and say nothing of a test's traffic (the admin
/// API's own calls are left out too).
const UNJOURNALED: &[&str] = &["Livez", "Healthz", "Readyz", "Metrics"];

pub static TWILIO_REQUEST_ID: HeaderName = HeaderName::from_static("twilio-request-id");
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What the middleware knows of a request before it is served (its
/// operation and the values its path names), and what handlers learn
/// (the account): for its access-log line, its journal entry and faults.
#[derive(Debug, Default)]
pub struct RequestContext {
    account_sid: OnceLock<String>,
    pub operation: Option<&'static str>,
    pub resource_type: Option<ResourceType>,
    pub day: Option<Day>,
    pub job_sid: Option<String>,
}

impl RequestContext {
    fn new(operation: Option<&'static str>, template: &str, path: &str) -> RequestContext {
        let mut c = RequestContext {
            operation,
            ..Default::default()
        };
        for (name, value) in template.split('/').zip(path.split('/')) {
            match name {
                "{ResourceType}" => c.resource_type = value.parse().ok(),
                "{Day}" => c.day = Day::parse(value).ok(),
                "{JobSid}" => c.job_sid = Some(value.to_string()),
                _ => {}
            }
        }
        c
    }

    /// What a fault rule of this request is matched against.
    pub fn fault_target(&self) -> FaultTarget<'_> {
        FaultTarget {
            account_sid: self.account_sid.get().map(String::as_str),
            resource_type: self.resource_type,
            day: self.day,
            job_sid: self.job_sid.as_deref(),
            operation: self.operation,
        }
    }

    /// The request acts as this account (set once it is authenticated).
    pub fn set_account(&self, sid: &str) {
        let _ = self.account_sid.set(sid.to_string());
        tracing::Span::current().record("account_sid", tracing::field::display(sid));
    }
}

/// The route's template in Twilio's spelling (`/v1/Exports/{ResourceType}/Jobs`),
/// or `unmatched` for a path no route serves: never the path itself, whose
/// SIDs would make a label per job.
pub fn route_template(matched: Option<&MatchedPath>) -> String {
    matched.map_or_else(|| "unmatched".into(), |m| spell(m.as_str()))
}

/// `{resource_type}` as `{ResourceType}`; the rest as it is.
fn spell(template: &str) -> String {
    let mut out = String::with_capacity(template.len());
    let (mut in_name, mut upper) = (false, false);
    for c in template.chars() {
        match c {
            '{' => (in_name, upper) = (true, true),
            '}' => in_name = false,
            '_' if in_name => {
                upper = true;
                continue;
            }
            _ => {}
        }
        if upper && c != '{' {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// A method as a label: the ones the API knows, else `other`.
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

pub async fn observe(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let at = state.exports.clock().now();
    let id = telemetry::new_request_id();
    let echoed = req.headers().get(&X_REQUEST_ID).cloned();
    let method = method_label(req.method());
    let route = route_template(req.extensions().get::<MatchedPath>());
    let path = req.uri().path().to_string();
    let operation = operations::operation_of(method, &route);
    let context = Arc::new(RequestContext::new(operation, &route, &path));
    req.extensions_mut().insert(context.clone());
    let span = tracing::info_span!("request", request_id = %id, method = %method, route = %route,
        account_sid = tracing::field::Empty);
    let serving = telemetry::Serving::new(id.clone());
    let mut resp = telemetry::serving(serving.clone(), next.run(req))
        .instrument(span.clone())
        .await;
    let took = started.elapsed();
    let status = resp.status().as_u16();
    if let Ok(value) = HeaderValue::from_str(&id) {
        resp.headers_mut()
            .insert(TWILIO_REQUEST_ID.clone(), value.clone());
        resp.headers_mut()
            .insert(X_REQUEST_ID.clone(), echoed.unwrap_or(value));
    }
    let account = context.account_sid.get().cloned();
    let duration_ms = took.as_micros() as f64 / 1000.0;
    span.in_scope(|| {
        tracing::info!(target: "bulkexport::access", status, duration_ms,
            account_sid = %account.as_deref().unwrap_or("-"),
            "{method} {route} {status}");
    });
    let metrics = state.exports.metrics();
    metrics.http_request(method, &route, status, took);
    if route.starts_with("/v1/Downloads/") {
        let sent = resp
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .filter(|_| method == "GET" && (status == 200 || status == 206))
            .unwrap_or(0);
        metrics.download(status, sent);
    }
    if !operation.is_some_and(|op| UNJOURNALED.contains(&op)) && !route.starts_with("/admin/") {
        state.exports.journal_request(RequestEntry {
            request_id: id,
            at: at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            method: method.to_string(),
            path,
            operation,
            status,
            account_sid: account,
            duration_ms,
            fault: serving.fault(),
        });
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_are_spelled_as_twilio_spells_them() {
        assert_eq!(
            spell("/v1/Exports/{resource_type}/Jobs"),
            "/v1/Exports/{ResourceType}/Jobs"
        );
        assert_eq!(
            spell("/v1/Downloads/{account_sid}/{resource_type}/{file}"),
            "/v1/Downloads/{AccountSid}/{ResourceType}/{File}"
        );
        assert_eq!(spell("/a_b/{x}.json"), "/a_b/{X}.json");
        assert_eq!(route_template(None), "unmatched");
    }
}
