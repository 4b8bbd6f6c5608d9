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
use crate::telemetry;

pub static TWILIO_REQUEST_ID: HeaderName = HeaderName::from_static("twilio-request-id");
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What handlers learn about a request that its access-log line reports.
#[derive(Debug, Default)]
pub struct RequestContext {
    account_sid: OnceLock<String>,
}

impl RequestContext {
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
    let id = telemetry::new_request_id();
    let echoed = req.headers().get(&X_REQUEST_ID).cloned();
    let method = method_label(req.method());
    let route = route_template(req.extensions().get::<MatchedPath>());
    let context = Arc::new(RequestContext::default());
    req.extensions_mut().insert(context.clone());
    let span = tracing::info_span!("request", request_id = %id, method = %method, route = %route,
        account_sid = tracing::field::Empty);
    let mut resp = telemetry::serving(id.clone(), next.run(req))
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
    span.in_scope(|| {
        tracing::info!(target: "bulkexport::access", status,
            duration_ms = took.as_micros() as f64 / 1000.0,
            account_sid = %context.account_sid.get().map(String::as_str).unwrap_or("-"),
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
