//! The admin API (`/admin/v1/...`), behind a Bearer token from the settings:
//! accounts and keys, record ingest over HTTP, and draining the queue.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{FromRequestParts, OriginalUri, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::Response;
use futures::StreamExt;
use serde_json::json;
use subtle::ConstantTimeEq;
use tokio_util::io::StreamReader;

use super::error::{json_response, ApiError};
use super::request::{client_addr, subjects, throttled, Params, PathParams};
use super::throttle::Subject;
use super::AppState;
use crate::domain::ResourceType;
use crate::exports::{maybe_gunzip, IngestReport, Input};

/// A request that carried the admin Bearer token.
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // An empty token is never compared against: it would let in a
        // request without credentials (start-up refuses short tokens too).
        let Some(token) = state
            .admin_token
            .as_ref()
            .filter(|t| !t.expose().is_empty())
        else {
            return Err(ApiError::Forbidden(
                "The admin API is disabled: set admin_token (BULKEXPORT_ADMIN_TOKEN) to enable it"
                    .into(),
            ));
        };
        let given = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .filter(|v| !v.is_empty());
        let Some(given) = given else {
            return Err(ApiError::Unauthorized);
        };
        let subjects = subjects(Subject::AdminToken, client_addr(parts, state));
        let ok = throttled(state, &subjects, async {
            Ok(bool::from(
                given.as_bytes().ct_eq(token.expose().as_bytes()),
            ))
        })
        .await?;
        if ok {
            Ok(Admin)
        } else {
            Err(ApiError::Unauthorized)
        }
    }
}

pub async fn create_account(
    State(state): State<AppState>,
    _: Admin,
    params: Params,
) -> Result<Response, ApiError> {
    let name = params.get("FriendlyName").unwrap_or("account");
    let editions = match params.get("Editions") {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "Editions {other:?} must be true or false"
            )))
        }
    };
    let account = state
        .exports
        .create_account(name, params.get("ParentSid"))
        .await?;
    if editions {
        state.exports.set_editions(&account.sid, true).await?;
    }
    let mut shown =
        serde_json::to_value(&account).map_err(|e| ApiError::Internal(e.to_string()))?;
    shown["editions"] = serde_json::Value::Bool(editions);
    Ok(json_response(StatusCode::CREATED, &shown))
}

pub async fn create_key(
    State(state): State<AppState>,
    _: Admin,
    PathParams(account_sid): PathParams<String>,
    params: Params,
) -> Result<Response, ApiError> {
    let name = params.get("FriendlyName").unwrap_or("key");
    let key = state.exports.create_api_key(&account_sid, name).await?;
    Ok(json_response(StatusCode::CREATED, &key))
}

/// Loads an NDJSON body (plain or gzip) into an account's records.
pub async fn ingest_records(
    State(state): State<AppState>,
    _: Admin,
    PathParams((account_sid, rt)): PathParams<(String, String)>,
    body: Body,
) -> Result<Response, ApiError> {
    let rt: ResourceType = rt
        .parse()
        .map_err(|e: crate::domain::UnknownResourceType| ApiError::BadRequest(e.to_string()))?;
    let limit = state.max_ingest_bytes;
    let mut seen = 0u64;
    let stream = body.into_data_stream().map(move |chunk| {
        let chunk = chunk.map_err(std::io::Error::other)?;
        seen += chunk.len() as u64;
        if seen > limit {
            Err(std::io::Error::new(
                std::io::ErrorKind::FileTooLarge,
                "body over the ingest limit",
            ))
        } else {
            Ok(chunk)
        }
    });
    let reader = maybe_gunzip(StreamReader::new(stream))
        .await
        .map_err(|e| read_error(e, limit))?;
    let mut report = IngestReport::default();
    state
        .exports
        .ingest(
            &account_sid,
            rt,
            "body",
            Input::Streamed,
            reader,
            &mut report,
        )
        .await?
        .map_err(|e| read_error(e, limit))?;
    Ok(json_response(StatusCode::OK, &report))
}

fn read_error(e: std::io::Error, limit: u64) -> ApiError {
    if e.kind() == std::io::ErrorKind::FileTooLarge {
        ApiError::TooLarge(limit)
    } else {
        ApiError::BadRequest(format!("Could not read the request body: {e}"))
    }
}

/// Waits until the export queue is idle (TimeoutSeconds, default 60).
pub async fn drain_queue(
    State(state): State<AppState>,
    _: Admin,
    params: Params,
) -> Result<Response, ApiError> {
    let secs = match params.get("TimeoutSeconds") {
        None => 60,
        Some(s) => s
            .parse::<u64>()
            .ok()
            .filter(|n| (1..=3600).contains(n))
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "TimeoutSeconds {s:?} must be an integer from 1 to 3600"
                ))
            })?,
    };
    let idle = state.exports.wait_idle(Duration::from_secs(secs)).await?;
    let status = if idle {
        StatusCode::OK
    } else {
        StatusCode::GATEWAY_TIMEOUT
    };
    Ok(json_response(status, &json!({ "idle": idle })))
}

fn clock_body(now: chrono::DateTime<chrono::Utc>) -> serde_json::Value {
    json!({ "now": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true) })
}

/// The service clock; 404 unless the service was started with `--clock`.
pub async fn fetch_clock(
    State(state): State<AppState>,
    _: Admin,
    uri: OriginalUri,
) -> Result<Response, ApiError> {
    if !state.settable_clock {
        return Err(ApiError::not_found_path(uri.path()));
    }
    Ok(json_response(
        StatusCode::OK,
        &clock_body(state.exports.clock().now()),
    ))
}

/// Moves the service clock forward to `Now` (RFC 3339) or by `Advance` (a
/// duration such as `90s`, `36h`, `8d`); every time-driven behaviour follows
/// at once.
pub async fn set_clock(
    State(state): State<AppState>,
    _: Admin,
    uri: OriginalUri,
    params: Params,
) -> Result<Response, ApiError> {
    if !state.settable_clock {
        return Err(ApiError::not_found_path(uri.path()));
    }
    let to =
        match (params.get("Now"), params.get("Advance")) {
            (Some(_), Some(_)) => {
                return Err(ApiError::BadRequest("Give Now or Advance, not both".into()))
            }
            (None, None) => return Err(ApiError::BadRequest(
                "Missing required parameter Now (an instant) or Advance (a duration such as 36h)"
                    .into(),
            )),
            (Some(raw), None) => chrono::DateTime::parse_from_rfc3339(raw)
                .map_err(|_| {
                    ApiError::BadRequest(format!(
                        "Now {raw:?} is not an RFC 3339 instant such as 2026-01-10T00:00:00Z"
                    ))
                })?
                .with_timezone(&chrono::Utc),
            (None, Some(raw)) => {
                let by = parse_duration(raw).ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "Advance {raw:?} is not a duration such as 90s, 15m, 36h or 8d"
                    ))
                })?;
                state.exports.clock().now() + by
            }
        };
    state
        .exports
        .move_clock(to)
        .map_err(|e| ApiError::BadRequest(format!("Now: {e}")))?;
    Ok(json_response(
        StatusCode::OK,
        &clock_body(state.exports.clock().now()),
    ))
}

/// `90s`, `15m`, `36h`, `8d`, or several of them (`1d12h`); at most 10 years.
pub fn parse_duration(raw: &str) -> Option<chrono::Duration> {
    let mut total: i64 = 0;
    let mut digits = String::new();
    for c in raw.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return None,
        };
        let n: i64 = digits.parse().ok()?;
        digits.clear();
        total = total.checked_add(n.checked_mul(unit)?)?;
    }
    (digits.is_empty() && total > 0 && total <= 10 * 366 * 86_400)
        .then(|| chrono::Duration::seconds(total))
}

#[cfg(test)]
mod tests {
    use super::parse_duration;

    #[test]
    fn durations_read_as_tests_write_them() {
        let secs = |s: &str| parse_duration(s).map(|d| d.num_seconds());
        assert_eq!(secs("90s"), Some(90));
        assert_eq!(secs("36h"), Some(36 * 3600));
        assert_eq!(secs("8d"), Some(8 * 86_400));
        assert_eq!(secs("1d12h"), Some(36 * 3600));
        for bad in [
            "",
            "0s",
            "5",
            "h",
            "-3h",
            "3x",
            "1.5h",
            "99999999999999999999d",
        ] {
            assert_eq!(secs(bad), None, "{bad}");
        }
    }
}
