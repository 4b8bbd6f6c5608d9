//! What handlers take from a request: the authenticated account (with
//! failed attempts throttled), the client's address, the form and query
//! parameters, path parameters, and the base URL for absolute links. Every
//! rejection is a Twilio error body.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use base64::Engine;

use super::error::ApiError;
use super::observe::RequestContext;
use super::throttle::Subject;
use super::AppState;

/// The address of the client: the peer, or, when the peer is one of
/// `trusted_proxies`, the last address of `X-Forwarded-For` that is not one.
pub fn client_addr(parts: &Parts, state: &AppState) -> Option<IpAddr> {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())?;
    if !state.is_trusted_proxy(&peer) {
        return Some(peer);
    }
    let forwarded = parts
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse::<IpAddr>().ok())
        .collect::<Vec<_>>();
    Some(
        forwarded
            .into_iter()
            .rev()
            .find(|a| !state.is_trusted_proxy(a))
            .unwrap_or(peer),
    )
}

/// True when the request came from a trusted proxy, whose `X-Forwarded-*`
/// headers are then believed.
fn from_trusted_proxy(parts: &Parts, state: &AppState) -> bool {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .is_some_and(|c| state.is_trusted_proxy(&c.0.ip()))
}

/// What failed attempts of this request count against.
pub(super) fn subjects(first: Subject, addr: Option<IpAddr>) -> Vec<Subject> {
    let mut subjects = vec![first];
    subjects.extend(addr.map(Subject::Address));
    subjects
}

/// Runs `attempt` unless the subjects are throttled; counts a failure when
/// it answers `false`.
pub async fn throttled<F>(
    state: &AppState,
    subjects: &[Subject],
    attempt: F,
) -> Result<bool, ApiError>
where
    F: std::future::Future<Output = Result<bool, ApiError>>,
{
    let now = state.exports.clock().now_ms();
    state
        .throttle
        .check(subjects, now)
        .map_err(ApiError::Throttled)?;
    let ok = attempt.await?;
    if !ok {
        state.exports.metrics().auth_failure();
        state
            .throttle
            .fail(subjects, state.exports.clock().now_ms());
    }
    Ok(ok)
}

/// The answer of an `ApiError` fault rule that matches this request and
/// fires, instead of serving it.
async fn injected_error(state: &AppState, context: &RequestContext) -> Result<(), ApiError> {
    let fired = state
        .exports
        .fire(crate::exports::FaultKind::ApiError, context.fault_target())
        .await?;
    match fired {
        None => Ok(()),
        Some(f) => Err(ApiError::Injected {
            status: f
                .number("status")
                .and_then(|s| u16::try_from(s).ok())
                .unwrap_or(500),
            code: f
                .number("code")
                .and_then(|c| u32::try_from(c).ok())
                .unwrap_or(20500),
            message: f.text("message").unwrap_or("Injected fault").to_string(),
        }),
    }
}

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
        let subjects = subjects(Subject::account(&user), client_addr(parts, state));
        let mut account = None;
        throttled(state, &subjects, async {
            account = state.exports.authenticate(&user, &password).await?;
            Ok(account.is_some())
        })
        .await?;
        match account {
            Some(account_sid) => {
                if let Some(context) = parts.extensions.get::<std::sync::Arc<RequestContext>>() {
                    context.set_account(&account_sid);
                    injected_error(state, context).await?;
                }
                Ok(Caller {
                    account_sid,
                    credential_sid: user,
                })
            }
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
/// read whatever the content type says, and an empty body is fine. Names and
/// values must be UTF-8 once decoded: nothing is replaced silently.
#[derive(Debug, Clone, Default)]
pub struct Params(HashMap<String, String>);

impl Params {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub fn owned(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }

    /// The value trimmed, or None when absent or blank (a form's empty field).
    pub fn filled(&self, name: &str) -> Option<String> {
        self.get(name)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

impl FromRequest<AppState> for Params {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let mut map = HashMap::new();
        if let Some(q) = req.uri().query() {
            map.extend(form_pairs(q.as_bytes(), "query string")?);
        }
        let limit = state.max_body_bytes;
        let body = axum::body::to_bytes(req.into_body(), limit)
            .await
            .map_err(|_| ApiError::TooLarge(limit as u64))?;
        map.extend(form_pairs(&body, "form body")?);
        Ok(Params(map))
    }
}

/// Decodes `application/x-www-form-urlencoded` pairs strictly: a name or
/// value that is not UTF-8 once decoded is refused.
pub(crate) fn form_pairs(bytes: &[u8], what: &str) -> Result<Vec<(String, String)>, ApiError> {
    let decode = |raw: &[u8]| -> Result<String, ApiError> {
        let plus: Vec<u8> = raw
            .iter()
            .map(|&b| if b == b'+' { b' ' } else { b })
            .collect();
        let bytes: Vec<u8> = percent_encoding::percent_decode(&plus).collect();
        String::from_utf8(bytes).map_err(|_| {
            ApiError::BadRequest(format!(
                "The {what} holds a parameter that is not valid UTF-8"
            ))
        })
    };
    bytes
        .split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let mut it = pair.splitn(2, |&b| b == b'=');
            let name = decode(it.next().unwrap_or_default())?;
            let value = decode(it.next().unwrap_or_default())?;
            Ok((name, value))
        })
        .collect()
}

/// Path parameters, with axum's rejections (a segment that is not UTF-8,
/// say) answered as the Twilio 404 of a path that names nothing.
#[derive(Debug)]
pub struct PathParams<T>(pub T);

impl<T> FromRequestParts<AppState> for PathParams<T>
where
    T: serde::de::DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(t)) => Ok(PathParams(t)),
            Err(_) => Err(ApiError::not_found_path(parts.uri.path())),
        }
    }
}

/// A host name, IPv4 address or bracketed IPv6 address, with an optional
/// port: what may stand in a `Host` or `X-Forwarded-Host` header.
fn is_host(h: &str) -> bool {
    let (host, port) = match h.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') || host.ends_with(']') => (host, Some(port)),
        _ => (h, None),
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.parse::<u16>().is_ok());
    let host_ok = match host.strip_prefix('[').and_then(|v| v.strip_suffix(']')) {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => {
            !host.is_empty()
                && host.len() <= 253
                && host.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                })
        }
    };
    port_ok && host_ok
}

/// The base of absolute URLs: the configured public URL, or the request's
/// Host (validated), or, behind a trusted proxy, its `X-Forwarded-Proto` and
/// `X-Forwarded-Host`.
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
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|h| h.to_str().ok())
                .and_then(|h| h.split(',').next())
                .map(str::trim)
        };
        let trusted = from_trusted_proxy(parts, state);
        let forwarded_host = header("x-forwarded-host").filter(|_| trusted);
        let host = forwarded_host
            .or_else(|| header(header::HOST.as_str()))
            .or_else(|| parts.uri.authority().map(|a| a.as_str()))
            .unwrap_or("localhost");
        if !is_host(host) {
            return Err(ApiError::BadRequest(
                "The Host header is not a valid host name".into(),
            ));
        }
        let scheme = match header("x-forwarded-proto").filter(|_| trusted) {
            Some("https") => "https",
            _ => "http",
        };
        Ok(BaseUrl(format!("{scheme}://{host}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_headers() {
        for ok in [
            "localhost",
            "127.0.0.1:8080",
            "[::1]:80",
            "exports.example.com",
            "a_b.local",
        ] {
            assert!(is_host(ok), "{ok}");
        }
        for bad in [
            "",
            "a\"b<c",
            "evil.example/x",
            "a b",
            "host:99999",
            "::1",
            "x:",
        ] {
            assert!(!is_host(bad), "{bad}");
        }
    }

    #[test]
    fn form_values_must_be_utf8() {
        assert_eq!(
            form_pairs(b"A=1&B=x+y%21&C", "t").unwrap(),
            vec![
                ("A".into(), "1".into()),
                ("B".into(), "x y!".into()),
                ("C".into(), String::new())
            ]
        );
        assert!(form_pairs(b"FriendlyName=%FF", "t").is_err());
    }
}
