//! Probes for load balancers and orchestrators (`/livez`, `/readyz`,
//! `/healthz`), and the metrics of `/metrics`.

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::AppState;

/// The process runs and answers; nothing else is checked.
pub async fn livez() -> Response {
    (StatusCode::OK, "ok\n").into_response()
}

/// One readiness check and how it went.
struct Check {
    name: &'static str,
    failure: Option<String>,
}

/// Ready to take traffic: the database answers, its migrations are all
/// applied, the store takes a write, and the node is not shutting down (it
/// then answers 503 while it finishes, so a load balancer drains it first).
/// `?verbose` lists each check.
pub async fn readyz(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let mut checks = Vec::new();
    let draining = state.draining.is_cancelled();
    checks.push(Check {
        name: "shutdown",
        failure: draining.then(|| "the node is shutting down".to_string()),
    });
    let db = state.exports.db();
    let (reachable, migrated) = match db.applied_migration().await {
        Ok(applied) => {
            let latest = db.latest_migration();
            let migrated = (applied < latest)
                .then(|| format!("migration {applied} applied, {latest} expected"));
            (None, migrated)
        }
        Err(e) => (
            Some(crate::telemetry::cause_chain(&e)),
            Some("unknown".into()),
        ),
    };
    checks.push(Check {
        name: "database",
        failure: reachable,
    });
    checks.push(Check {
        name: "migrations",
        failure: migrated,
    });
    let store = state.exports.blobs().probe_write().await.err();
    checks.push(Check {
        name: "storage",
        failure: store.map(|e| crate::telemetry::cause_chain(&e)),
    });
    let ready = checks.iter().all(|c| c.failure.is_none());
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let verbose = query.as_deref().is_some_and(|q| {
        q.split('&')
            .any(|p| p == "verbose" || p.starts_with("verbose="))
    });
    let mut body = String::new();
    if verbose {
        for c in &checks {
            match &c.failure {
                None => body.push_str(&format!("[+] {} ok\n", c.name)),
                Some(why) => body.push_str(&format!("[-] {} failed: {why}\n", c.name)),
            }
        }
    }
    if ready {
        body.push_str("ok\n");
    } else {
        if !verbose {
            for c in checks.iter().filter(|c| c.failure.is_some()) {
                body.push_str(&format!("[-] {} failed\n", c.name));
            }
        }
        body.push_str("not ready\n");
        tracing::warn!(checks = %body.trim_end().replace('\n', "; "), "not ready");
    }
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

/// The Prometheus text exposition: open, or behind `metrics_token`.
pub async fn metrics(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(token) = &state.metrics_token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !bool::from(given.as_bytes().ct_eq(token.expose().as_bytes())) {
            state.exports.metrics().auth_failure();
            let mut resp = ApiError::Unauthorized.into_response();
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"metrics\""),
            );
            return Ok(resp);
        }
    }
    let now = state.exports.clock().now_ms();
    let gauges = state
        .exports
        .db()
        .state_gauges(now)
        .await
        .map_err(|e| ApiError::from(crate::exports::Error::from(e)))?;
    let text = state.exports.metrics().render(&gauges);
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        text,
    )
        .into_response())
}
