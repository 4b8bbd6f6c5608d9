//! Console sessions: one signed cookie (HttpOnly, SameSite=Strict, Secure
//! behind HTTPS) that names who signed in and carries the session's CSRF
//! token; the middleware that reads it, writes it and sets the pages'
//! security headers; and the sign-in and sign-out forms' handlers.

use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, Key, SameSite, SignedCookieJar};
use rand::RngCore;

use super::{sign_in_page, ConsoleError};
use crate::api::request::{client_addr, subjects, throttled, BaseUrl, Params};
use crate::api::throttle::Subject;
use crate::api::AppState;
use crate::clock::Clock;

const COOKIE: &str = "bulkexport_console";
/// How long a session lasts, in seconds of real time (the service clock
/// may be moved by hours in a test; a session should not end with it).
const LIFETIME_SECS: i64 = 12 * 3600;

/// The strict policy of every console answer: its own scripts and styles
/// only, nothing from another origin, no framing, forms posted only here.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Who a session acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    Nobody,
    /// An account, signed in with its token or one of its API keys.
    Account {
        account_sid: String,
        credential_sid: String,
    },
    Admin,
}

/// A session: who, and the token every form of it carries.
#[derive(Debug, Clone)]
pub struct Session {
    pub who: Who,
    pub csrf: String,
    expires: i64,
}

impl Session {
    /// A session of nobody (a page rendered without one).
    pub fn anonymous() -> Session {
        Session::new(Who::Nobody)
    }

    fn new(who: Who) -> Session {
        let mut token = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut token);
        Session {
            who,
            csrf: hex::encode(token),
            expires: Clock::system().now().timestamp() + LIFETIME_SECS,
        }
    }

    /// `kind|account|credential|csrf|expires`: SIDs and hex only.
    fn encode(&self) -> String {
        let (kind, account, credential) = match &self.who {
            Who::Nobody => ("nobody", "", ""),
            Who::Account {
                account_sid,
                credential_sid,
            } => ("account", account_sid.as_str(), credential_sid.as_str()),
            Who::Admin => ("admin", "", ""),
        };
        format!(
            "{kind}|{account}|{credential}|{}|{}",
            self.csrf, self.expires
        )
    }

    fn decode(value: &str) -> Option<Session> {
        let mut it = value.split('|');
        let (kind, account, credential, csrf, expires) =
            (it.next()?, it.next()?, it.next()?, it.next()?, it.next()?);
        let expires: i64 = expires.parse().ok()?;
        if expires <= Clock::system().now().timestamp() || csrf.len() != 32 {
            return None;
        }
        let who = match kind {
            "nobody" => Who::Nobody,
            "admin" => Who::Admin,
            "account" => Who::Account {
                account_sid: account.to_string(),
                credential_sid: credential.to_string(),
            },
            _ => return None,
        };
        Some(Session {
            who,
            csrf: csrf.to_string(),
            expires,
        })
    }
}

/// Put in a response's extensions by a handler that starts a new session.
#[derive(Clone)]
struct NewSession(Session);

/// Reads the session (or starts an anonymous one), serves the request,
/// writes the cookie when the session is new, and adds the headers every
/// console page carries.
pub async fn layer(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let key = Key::from(&state.exports.console_key());
    let jar = SignedCookieJar::from_headers(req.headers(), key.clone());
    let (mut parts, body) = req.into_parts();
    let https = BaseUrl::from_request_parts(&mut parts, &state)
        .await
        .is_ok_and(|b| b.0.starts_with("https://"));
    let read = jar.get(COOKIE).and_then(|c| Session::decode(c.value()));
    let fresh = read.is_none();
    let session = read.unwrap_or_else(|| Session::new(Who::Nobody));
    parts.extensions.insert(session.clone());
    let mut resp = next.run(Request::from_parts(parts, body)).await;
    let write = match resp.extensions_mut().remove::<NewSession>() {
        Some(NewSession(s)) => Some(s),
        None => fresh.then_some(session),
    };
    if let Some(s) = write {
        let mut cookie = Cookie::new(COOKIE, s.encode());
        cookie.set_http_only(true);
        cookie.set_same_site(SameSite::Strict);
        cookie.set_secure(https);
        cookie.set_path("/console");
        let jar = SignedCookieJar::new(key).add(cookie);
        for (name, value) in jar.into_response().headers() {
            resp.headers_mut().append(name, value.clone());
        }
    }
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Pages hold signed download links: never in a Referer, never cached.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

impl FromRequestParts<AppState> for Session {
    type Rejection = ConsoleError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &AppState,
    ) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Session>()
            .cloned()
            .ok_or(ConsoleError::SignIn)
    }
}

/// A posted form whose `csrf` field is the session's token.
pub struct Form(pub Session, pub Params);

impl FromRequest<AppState> for Form {
    type Rejection = ConsoleError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let session = req
            .extensions()
            .get::<Session>()
            .cloned()
            .ok_or(ConsoleError::SignIn)?;
        let params = Params::from_request(req, state)
            .await
            .map_err(|e| ConsoleError::Status(e.status(), e.to_string()))?;
        let sent = params.get("csrf").unwrap_or_default();
        if !bool::from(subtle::ConstantTimeEq::ct_eq(
            sent.as_bytes(),
            session.csrf.as_bytes(),
        )) {
            return Err(ConsoleError::Status(
                axum::http::StatusCode::FORBIDDEN,
                "This form has expired or did not come from this console: reload the page and try again"
                    .into(),
            ));
        }
        Ok(Form(session, params))
    }
}

/// A response that starts `session` and goes to `to`.
fn start(session: Session, to: &str) -> Response {
    let mut resp = Redirect::to(to).into_response();
    resp.extensions_mut().insert(NewSession(session));
    resp
}

/// The page an account's session opens on.
pub fn home_of(who: &Who) -> String {
    match who {
        Who::Account { account_sid, .. } => format!("/console/accounts/{account_sid}/jobs"),
        Who::Admin => "/console/admin".into(),
        Who::Nobody => "/console".into(),
    }
}

/// A sign-in form shown again with why it failed.
fn refused(session: &Session, form: &str, why: &str) -> Response {
    (
        axum::http::StatusCode::UNAUTHORIZED,
        sign_in_page(session, Some((form, why))),
    )
        .into_response()
}

/// `Sign in`: an Account SID (or API key SID) and its token (or secret).
pub async fn sign_in(
    State(state): State<AppState>,
    addr: ClientAddr,
    Form(session, params): Form,
) -> Response {
    let user = params.get("account_sid").unwrap_or_default().trim();
    let password = params.get("auth_token").unwrap_or_default().trim();
    let mismatch = "The Account SID (or API key SID) and Auth token (or secret) do not match";
    if user.is_empty() || password.is_empty() {
        return refused(&session, "account", mismatch);
    }
    let mut account = None;
    let checked = throttled(&state, &subjects(Subject::account(user), addr.0), async {
        account = state.exports.authenticate(user, password).await?;
        Ok(account.is_some())
    })
    .await;
    if let Err(e) = checked {
        return refused(&session, "account", &e.to_string());
    }
    let Some(account_sid) = account else {
        return refused(&session, "account", mismatch);
    };
    let session = Session::new(Who::Account {
        account_sid,
        credential_sid: user.to_string(),
    });
    let home = home_of(&session.who);
    start(session, &home)
}

/// `Sign in as admin`: the admin token.
pub async fn sign_in_admin(
    State(state): State<AppState>,
    addr: ClientAddr,
    Form(session, params): Form,
) -> Response {
    let Some(expected) = state.admin_token.clone().filter(|t| !t.expose().is_empty()) else {
        return refused(
            &session,
            "admin",
            "This service has no admin token: start it with admin_token set (BULKEXPORT_ADMIN_TOKEN)",
        );
    };
    let given = params.get("admin_token").unwrap_or_default().trim();
    let checked = throttled(&state, &subjects(Subject::AdminToken, addr.0), async {
        Ok(bool::from(subtle::ConstantTimeEq::ct_eq(
            given.as_bytes(),
            expected.expose().as_bytes(),
        )))
    })
    .await;
    match checked {
        Ok(true) => start(Session::new(Who::Admin), "/console/admin"),
        Ok(false) => refused(&session, "admin", "The admin token is not right"),
        Err(e) => refused(&session, "admin", &e.to_string()),
    }
}

pub async fn sign_out(Form(..): Form) -> Response {
    start(Session::new(Who::Nobody), "/console")
}

/// The client's address, for throttling failed sign-ins.
pub struct ClientAddr(Option<std::net::IpAddr>);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(client_addr(parts, state)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_reads_back_and_an_altered_or_expired_one_does_not() {
        let s = Session::new(Who::Account {
            account_sid: "AC1".into(),
            credential_sid: "SK1".into(),
        });
        let back = Session::decode(&s.encode()).unwrap();
        assert_eq!(back.who, s.who);
        assert_eq!(back.csrf, s.csrf);
        let expired = Session {
            expires: 1,
            ..s.clone()
        };
        assert!(Session::decode(&expired.encode()).is_none());
        assert!(Session::decode("root|||x|99999999999").is_none());
    }
}
