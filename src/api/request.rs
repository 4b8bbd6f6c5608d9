//! What handlers take from a request: the authenticated account, the form
//! and query parameters, and the base URL for absolute links.

use std::collections::HashMap;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use base64::Engine;

use super::error::ApiError;
use super::AppState;

/// The account a request acts as, from HTTP Basic credentials.
#[derive(Debug, Clone)]
pub struct Caller {
    pub account_sid: String,
    /// The SID the credential named: the account, its parent's token holder, or an API key.
    pub credential_sid: String,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let (user, password) = basic_credentials(&parts.headers).ok_or(ApiError::Unauthorized)?;
        match state.exports.authenticate(&user, &password).await? {
            Some(account_sid) => Ok(Caller {
                account_sid,
                credential_sid: user,
            }),
            None => Err(ApiError::Unauthorized),
        }
    }
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// Query and form-body parameters together (the body wins). Form bodies are
/// read whatever the content type says, and an empty body is fine.
#[derive(Debug, Clone, Default)]
pub struct Params(HashMap<String, String>);

impl Params {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub fn owned(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }
}

impl FromRequest<AppState> for Params {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let mut map = HashMap::new();
        if let Some(q) = req.uri().query() {
            let pairs: Vec<(String, String)> = serde_urlencoded::from_str(q)
                .map_err(|e| ApiError::BadRequest(format!("Malformed query string: {e}")))?;
            map.extend(pairs);
        }
        let limit = state.max_body_bytes;
        let body = axum::body::to_bytes(req.into_body(), limit)
            .await
            .map_err(|_| ApiError::TooLarge(limit as u64))?;
        if !body.is_empty() {
            let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&body)
                .map_err(|e| ApiError::BadRequest(format!("Malformed form body: {e}")))?;
            map.extend(pairs);
        }
        Ok(Params(map))
    }
}

/// The base of absolute URLs: the configured public URL, or the request's Host.
#[derive(Debug, Clone)]
pub struct BaseUrl(pub String);

impl FromRequestParts<AppState> for BaseUrl {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if parts.extensions.get::<crate::proxy::ViaProxy>().is_some() {
            return Ok(BaseUrl(crate::proxy::CANONICAL_BASE.to_string()));
        }
        if let Some(url) = &state.public_url {
            return Ok(BaseUrl(url.trim_end_matches('/').to_string()));
        }
        let host = parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| parts.uri.authority().map(|a| a.as_str()))
            .unwrap_or("localhost");
        Ok(BaseUrl(format!("http://{host}")))
    }
}
