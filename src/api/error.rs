//! Twilio-style error bodies: `code`, `message`, `more_info`, `status`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::exports;

/// Content type of every JSON answer.
pub const JSON_UTF8: &str = "application/json; charset=utf-8";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("Authenticate")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    /// The path of the missing resource, without `/v1`.
    #[error("The requested resource {0} was not found")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    TooManyRequests(String),
    /// The daily allowance is used up: the message, and `Retry-After` (the
    /// seconds until it resets).
    #[error("{0}")]
    QuotaExceeded(String, u64),
    /// Too many failed authentications: wait this many seconds.
    #[error("Too many failed authentication attempts; try again in {0} seconds")]
    Throttled(u64),
    #[error("{0}")]
    PageSizeTooLarge(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    InsufficientStorage(String),
    #[error("The request body is larger than the limit of {0} bytes")]
    TooLarge(u64),
    #[error("The requested range is not satisfiable")]
    RangeNotSatisfiable(u64),
    #[error("{0}")]
    NotImplemented(String),
    #[error("{0}")]
    Internal(String),
    /// An `ApiError` fault rule's answer.
    #[error("{message}")]
    Injected {
        status: u16,
        code: u32,
        message: String,
    },
}

impl ApiError {
    /// A 404 for a request path, with the `/v1` prefix removed as Twilio
    /// does (`/v1/Exports/Jobs/JS…` is named `/Exports/Jobs/JS…`); a path
    /// that is nothing more than the prefix is named whole.
    pub fn not_found_path(path: &str) -> ApiError {
        let shown = match path.strip_prefix("/v1") {
            Some(rest) if rest.starts_with('/') && rest.len() > 1 => rest,
            _ => path,
        };
        ApiError::NotFound(shown.to_string())
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        self.status_and_code().0
    }

    fn status_and_code(&self) -> (StatusCode, u32) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, 20001),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, 20003),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, 20403),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, 20404),
            ApiError::TooManyRequests(_) | ApiError::Throttled(_) | ApiError::QuotaExceeded(..) => {
                (StatusCode::TOO_MANY_REQUESTS, 20429)
            }
            ApiError::PageSizeTooLarge(_) => (StatusCode::BAD_REQUEST, 20007),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, 20503),
            ApiError::InsufficientStorage(_) => (StatusCode::INSUFFICIENT_STORAGE, 20500),
            ApiError::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, 20001),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, 20001),
            ApiError::RangeNotSatisfiable(_) => (StatusCode::RANGE_NOT_SATISFIABLE, 20001),
            ApiError::NotImplemented(_) => (StatusCode::NOT_IMPLEMENTED, 20501),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, 20500),
            ApiError::Injected { status, code, .. } => (
                StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                *code,
            ),
        }
    }
}

impl From<exports::Error> for ApiError {
    fn from(e: exports::Error) -> Self {
        match e {
            exports::Error::Invalid(m) => ApiError::BadRequest(m),
            exports::Error::NotFound(path) => ApiError::NotFound(path),
            exports::Error::Forbidden(m) => ApiError::Forbidden(m.to_string()),
            exports::Error::QuotaExceeded(m, wait) => ApiError::QuotaExceeded(m, wait),
            exports::Error::PageSizeTooLarge(m) => ApiError::PageSizeTooLarge(m),
            exports::Error::StorageFull(m) => {
                tracing::error!(error = %m, "out of disk space");
                ApiError::InsufficientStorage(m)
            }
            exports::Error::Unavailable(m) => ApiError::Unavailable(unavailable(&m)),
            exports::Error::Db(e) if e.is_unavailable() => {
                ApiError::Unavailable(unavailable(&e.to_string()))
            }
            other => {
                tracing::error!(error = %crate::telemetry::cause_chain(&other), "internal error");
                ApiError::Internal("Internal server error".into())
            }
        }
    }
}

fn unavailable(cause: &str) -> String {
    tracing::warn!(%cause, "the database is unavailable");
    "The service is temporarily unavailable: its database did not answer in time".into()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let mut body = json!({
            "code": code,
            "message": self.to_string(),
            "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
            "status": status.as_u16(),
        });
        // What an operator needs to find the log lines of a failure.
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            if let Some(id) = crate::telemetry::request_id() {
                body["request_id"] = id.into();
            }
        }
        let mut resp = json_response(status, &body);
        match self {
            ApiError::Unauthorized => {
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"Twilio API\""),
                );
            }
            ApiError::Throttled(secs) | ApiError::QuotaExceeded(_, secs) => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            ApiError::Injected {
                status: 429 | 503, ..
            } => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            ApiError::RangeNotSatisfiable(size) => {
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    resp.headers_mut().insert(header::CONTENT_RANGE, v);
                }
            }
            _ => {}
        }
        resp
    }
}

/// A JSON answer with the content type the official clients expect.
pub fn json_response(status: StatusCode, body: &impl serde::Serialize) -> Response {
    json_response_sized(status, body, 128)
}

/// [`json_response`] written into a buffer of `capacity` bytes to start
/// with: a page of 50 jobs (about 25 KB) would otherwise grow and copy its
/// buffer eight times from serde_json's 128 bytes.
pub fn json_response_sized(
    status: StatusCode,
    body: &impl serde::Serialize,
    capacity: usize,
) -> Response {
    let mut bytes = Vec::with_capacity(capacity);
    if serde_json::to_writer(&mut bytes, body).is_err() {
        bytes = b"{}".to_vec();
    }
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(JSON_UTF8))],
        bytes,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_500_names_its_request_and_other_errors_do_not() {
        let body = |e: ApiError| async move {
            let resp =
                crate::telemetry::serving(crate::telemetry::Serving::new("RQ42".into()), async {
                    e.into_response()
                })
                .await;
            let bytes = axum::body::to_bytes(resp.into_body(), 4096).await.unwrap();
            serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()
        };
        let internal = body(ApiError::Internal("Internal server error".into())).await;
        assert_eq!(internal["request_id"], "RQ42");
        assert_eq!(internal["status"], 500);
        let bad = body(ApiError::BadRequest("no".into())).await;
        assert!(bad.get("request_id").is_none(), "{bad}");
    }
}
