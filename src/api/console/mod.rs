//! The web console under `/console`: server-rendered pages (maud) over the
//! same use cases as the API, signed-cookie sessions with CSRF tokens, a
//! strict Content-Security-Policy, and one small script of its own that
//! refreshes the tables of work under way. Nothing is fetched from another
//! origin: the stylesheet and the script are in the binary.

mod days;
mod jobs;
mod journals;
mod layout;
mod notes;
mod operator;
mod session;

use axum::extract::{FromRequestParts, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::html;

use super::error::ApiError;
use super::AppState;
use crate::domain::ResourceType;
use layout::{csrf, error_box, page, Place};
pub use session::{Session, Who};

/// Every console route. Sessions and security headers wrap them all.
pub fn routes(state: AppState) -> Router<AppState> {
    let a = "/console/accounts/{account_sid}";
    Router::new()
        .route("/console", get(index))
        .route("/console/", get(index))
        .route("/console/assets/console.css", get(stylesheet))
        .route("/console/assets/console.js", get(script))
        .route("/console/assets/favicon.svg", get(favicon))
        .route("/console/sign-in", post(session::sign_in))
        .route("/console/sign-in-admin", post(session::sign_in_admin))
        .route("/console/sign-out", post(session::sign_out))
        .route(&format!("{a}/jobs"), get(jobs::list).post(jobs::create))
        .route(&format!("{a}/jobs/live"), get(jobs::live))
        .route(&format!("{a}/jobs/{{job_sid}}/delete"), post(jobs::delete))
        .route(&format!("{a}/days"), get(days::list))
        .route(
            &format!("{a}/days/{{resource_type}}/{{day}}"),
            get(days::preview),
        )
        .route(
            &format!("{a}/days/{{resource_type}}/{{day}}/download"),
            get(days::download),
        )
        .route(&format!("{a}/configuration"), get(days::configuration))
        .route(
            &format!("{a}/configuration/{{resource_type}}"),
            post(days::update_configuration),
        )
        .route(&format!("{a}/notifications"), get(notes::notifications))
        .route(&format!("{a}/notifications/live"), get(notes::live))
        .route("/console/admin", get(operator::overview))
        .route("/console/admin/clock", post(operator::move_clock))
        .route(
            "/console/admin/accounts",
            get(operator::accounts).post(operator::create_account),
        )
        .route("/console/admin/keys", post(operator::create_key))
        .route("/console/admin/requests", get(journals::requests))
        .route("/console/admin/emails", get(journals::emails))
        .route(
            "/console/admin/faults",
            get(journals::faults).post(journals::create_fault),
        )
        .route(
            "/console/admin/faults/{sid}/delete",
            post(journals::delete_fault),
        )
        .layer(axum::middleware::from_fn_with_state(state, session::layer))
}

/// Why a console request was not served.
#[derive(Debug)]
pub enum ConsoleError {
    /// Not signed in (or not as someone who may see this): to the sign-in page.
    SignIn,
    /// A page saying what went wrong, with this status.
    Status(StatusCode, String),
}

impl From<crate::exports::Error> for ConsoleError {
    fn from(e: crate::exports::Error) -> Self {
        ApiError::from(e).into()
    }
}

/// What a form refused by the service shows in place: the status and
/// message the API would have answered.
pub fn refusal(e: crate::exports::Error) -> (StatusCode, String) {
    let e = ApiError::from(e);
    (e.status(), e.to_string())
}

impl From<ApiError> for ConsoleError {
    fn from(e: ApiError) -> Self {
        ConsoleError::Status(e.status(), e.to_string())
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        match self {
            ConsoleError::SignIn => Redirect::to("/console").into_response(),
            ConsoleError::Status(status, message) => {
                let body = html! {
                    p.error role="alert" { (message) }
                    p { a href="/console" { "Back to the console" } }
                };
                let place = Place {
                    section: "",
                    account: None,
                };
                let nobody = Session::anonymous();
                (
                    status,
                    page(
                        status.canonical_reason().unwrap_or("Error"),
                        &nobody,
                        &place,
                        body,
                    ),
                )
                    .into_response()
            }
        }
    }
}

/// The account a page under `/console/accounts/{AccountSid}/` shows, and the
/// session allowed to see it: that account's own, or the operator's.
pub struct Viewer {
    pub session: Session,
    pub account_sid: String,
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = ConsoleError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let session = Session::from_request_parts(parts, state).await?;
        let sid = parts
            .uri
            .path()
            .strip_prefix("/console/accounts/")
            .and_then(|rest| rest.split('/').next())
            .unwrap_or_default()
            .to_string();
        let allowed = match &session.who {
            Who::Nobody => return Err(ConsoleError::SignIn),
            Who::Admin => true,
            Who::Account { account_sid, .. } => *account_sid == sid,
        };
        // Another account's pages are answered as pages that do not exist.
        let missing =
            || ConsoleError::Status(StatusCode::NOT_FOUND, "There is no such page".into());
        if !allowed {
            return Err(missing());
        }
        state
            .exports
            .require_account(&sid)
            .await
            .map_err(|_| missing())?;
        Ok(Viewer {
            session,
            account_sid: sid,
        })
    }
}

/// The resource type a page's `type` query names (Messages when none).
pub fn chosen_type(query: Option<&str>) -> Result<ResourceType, ConsoleError> {
    match query {
        None | Some("") => Ok(ResourceType::Messages),
        Some(raw) => raw.parse().map_err(|_| {
            ConsoleError::Status(
                StatusCode::NOT_FOUND,
                format!(
                    "{raw:?} is not a resource type: Messages, Calls, Conferences or Participants"
                ),
            )
        }),
    }
}

/// The sign-in page, or the signed-in session's home.
async fn index(session: Session) -> Response {
    if session.who != Who::Nobody {
        return Redirect::to(&session::home_of(&session.who)).into_response();
    }
    sign_in_page(&session, None).into_response()
}

/// The two sign-in forms; `failed` names the one that failed, and why.
pub fn sign_in_page(session: &Session, failed: Option<(&str, &str)>) -> maud::Markup {
    let error_of = |form: &str| failed.filter(|(f, _)| *f == form).map(|(_, m)| m);
    let place = Place {
        section: "",
        account: None,
    };
    page(
        "Sign in",
        session,
        &place,
        html! {
            div.cards {
                form.card method="post" action="/console/sign-in" {
                    h2 { "Your account" }
                    p.hint { "An Account SID and its Auth token, or an API key SID and its secret." }
                    (error_box(error_of("account")))
                    (csrf(session))
                    label { span { "Account SID" } input type="text" name="account_sid" autocomplete="username"; }
                    label { span { "Auth token" } input type="password" name="auth_token" autocomplete="current-password"; }
                    button type="submit" { "Sign in" }
                }
                form.card method="post" action="/console/sign-in-admin" {
                    h2 { "Operator" }
                    p.hint { "The service's admin token: every account, the journals, faults and the clock." }
                    (error_box(error_of("admin")))
                    (csrf(session))
                    label { span { "Admin token" } input type="password" name="admin_token"; }
                    button type="submit" { "Sign in as admin" }
                }
            }
        },
    )
}

async fn stylesheet() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("assets/console.css"),
    )
}

async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("assets/console.js"),
    )
}

async fn favicon() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "image/svg+xml")],
        include_str!("assets/favicon.svg"),
    )
}

/// State, for handlers that need only it.
pub type St = State<AppState>;
