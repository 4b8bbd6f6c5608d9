//! The operator's view: queue health and the clock, the accounts (with
//! subaccounts, Editions, users and API keys) and the forms that create
//! accounts and keys.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;

use super::layout::{badge, csrf, error_box, field, page, Place};
use super::session::{Form, Session, Who};
use super::{refusal, ConsoleError, St};
use crate::api::AppState;

/// The signed-in operator, or a redirect to sign in.
pub struct Operator(pub Session);

impl axum::extract::FromRequestParts<AppState> for Operator {
    type Rejection = ConsoleError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let session = Session::from_request_parts(parts, state).await?;
        match session.who {
            Who::Admin => Ok(Operator(session)),
            Who::Nobody => Err(ConsoleError::SignIn),
            Who::Account { .. } => Err(ConsoleError::Status(
                StatusCode::FORBIDDEN,
                "This page is the operator's: sign in with the admin token".into(),
            )),
        }
    }
}

fn place(section: &str) -> Place<'_> {
    Place {
        section,
        account: None,
    }
}

pub async fn overview(State(state): St, Operator(s): Operator) -> Result<Response, ConsoleError> {
    overview_page(&state, &s, None, StatusCode::OK).await
}

async fn overview_page(
    state: &AppState,
    s: &Session,
    clock_error: Option<&str>,
    status: StatusCode,
) -> Result<Response, ConsoleError> {
    let q = state.exports.queue_state().await?;
    let now = state
        .exports
        .clock()
        .now()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let body = html! {
        div.cards {
            section.card {
                h2 { "Queue" }
                table { tbody {
                    @for (status, n) in &q.job_days { tr { th { (badge(status)) } td { (n) } } }
                    tr { th { "Oldest queued day's age" } td { (format!("{:.0} s", q.queue_oldest_age_seconds)) } }
                } }
            }
            section.card {
                h2 { "Clock" }
                p { "The service clock reads " span.mono { (now) } "." }
                @if state.settable_clock {
                    form method="post" action="/console/admin/clock" {
                        (error_box(clock_error))
                        (csrf(s))
                        (field("Advance", "advance", "", "90s, 15m, 36h, 8d"))
                        button type="submit" { "Move clock" }
                    }
                } @else {
                    p.hint { "Started without --clock: the clock follows the system's and cannot be moved." }
                }
            }
            section.card {
                h2 { "Notifications" }
                table { tbody {
                    @for (channel, status, n) in &q.notifications { tr { th { (channel) " " (badge(status)) } td { (n) } } }
                } }
            }
        }
    };
    Ok((status, page("Overview", s, &place("admin"), body)).into_response())
}

pub async fn move_clock(
    State(state): St,
    Operator(s): Operator,
    Form(_, form): Form,
) -> Result<Response, ConsoleError> {
    if !state.settable_clock {
        return Err(ConsoleError::Status(
            StatusCode::NOT_FOUND,
            "The clock can be moved only when the service runs with --clock".into(),
        ));
    }
    let raw = form.get("advance").unwrap_or_default().trim();
    let Some(by) = crate::api::admin::parse_duration(raw) else {
        let why = format!("Advance {raw:?} is not a duration such as 90s, 15m, 36h or 8d");
        return overview_page(&state, &s, Some(&why), StatusCode::BAD_REQUEST).await;
    };
    if let Err(e) = state.exports.move_clock(state.exports.clock().now() + by) {
        return overview_page(&state, &s, Some(&e.to_string()), StatusCode::BAD_REQUEST).await;
    }
    Ok(Redirect::to("/console/admin").into_response())
}

pub async fn accounts(State(state): St, Operator(s): Operator) -> Result<Response, ConsoleError> {
    accounts_page(&state, &s, None, None, StatusCode::OK).await
}

/// What a create form made: a secret shown this once.
struct Made {
    what: &'static str,
    sid: String,
    secret_label: &'static str,
    secret: String,
}

async fn accounts_page(
    state: &AppState,
    s: &Session,
    made: Option<Made>,
    error: Option<(&str, String)>,
    status: StatusCode,
) -> Result<Response, ConsoleError> {
    let all = state.exports.account_summaries().await?;
    let error_of = |form: &str| {
        error
            .as_ref()
            .filter(|(f, _)| *f == form)
            .map(|(_, m)| m.as_str())
    };
    let body = html! {
        @if let Some(m) = &made {
            div.created role="status" {
                p { "Created " (m.what) " " span.mono { (m.sid) } "." }
                p { (m.secret_label) ": " span.mono { (m.secret) } " (shown this once)" }
            }
        }
        table.accounts {
            thead { tr { th { "Account SID" } th { "Friendly name" } th { "Parent" } th { "Editions" } th { "Users" } th { "API keys" } th {} } }
            tbody {
                @for a in &all {
                    tr {
                        td.mono { (a.sid) }
                        td { (a.friendly_name) }
                        td.mono { (a.parent_sid.clone().unwrap_or_default()) }
                        td { (if a.editions { "yes" } else { "no" }) }
                        td { @for (email, role) in &a.users { div { (email) " (" (role) ")" } } }
                        td { @for (sid, name) in &a.keys { div { span.mono { (sid) } " " (name) } } }
                        td { a href={ "/console/accounts/" (a.sid) "/jobs" } { "Open" } }
                    }
                }
            }
        }
        div.cards {
            form.card method="post" action="/console/admin/accounts" {
                h2 { "Create an account" }
                (error_box(error_of("account")))
                (csrf(s))
                (field("Friendly name", "friendly_name", "", "customer 42"))
                (field("Parent SID", "parent_sid", "", "AC… (for a subaccount)"))
                label.check { input type="checkbox" name="editions" value="true"; span { "Editions" } }
                button type="submit" { "Create account" }
            }
            form.card method="post" action="/console/admin/keys" {
                h2 { "Create an API key" }
                (error_box(error_of("key")))
                (csrf(s))
                (field("Account SID", "account_sid", "", "AC…"))
                (field("Friendly name", "friendly_name", "", "ci"))
                button type="submit" { "Create API key" }
            }
        }
    };
    Ok((status, page("Accounts", s, &place("accounts"), body)).into_response())
}

pub async fn create_account(
    State(state): St,
    Operator(s): Operator,
    Form(_, form): Form,
) -> Result<Response, ConsoleError> {
    let name = form
        .filled("friendly_name")
        .unwrap_or_else(|| "account".into());
    let parent = form.filled("parent_sid");
    let made = match state.exports.create_account(&name, parent.as_deref()).await {
        Ok(a) => a,
        Err(e) => return failed(&state, &s, "account", e).await,
    };
    if form.get("editions").is_some() {
        state.exports.set_editions(&made.sid, true).await?;
    }
    let made = Made {
        what: "account",
        sid: made.sid,
        secret_label: "Auth token",
        secret: made.auth_token,
    };
    accounts_page(&state, &s, Some(made), None, StatusCode::CREATED).await
}

pub async fn create_key(
    State(state): St,
    Operator(s): Operator,
    Form(_, form): Form,
) -> Result<Response, ConsoleError> {
    let account = form.filled("account_sid").unwrap_or_default();
    let name = form.filled("friendly_name").unwrap_or_else(|| "key".into());
    match state.exports.create_api_key(&account, &name).await {
        Ok(k) => {
            let made = Made {
                what: "API key",
                sid: k.sid,
                secret_label: "Secret",
                secret: k.secret,
            };
            accounts_page(&state, &s, Some(made), None, StatusCode::CREATED).await
        }
        Err(e) => failed(&state, &s, "key", e).await,
    }
}

async fn failed(
    state: &AppState,
    s: &Session,
    form: &str,
    e: crate::exports::Error,
) -> Result<Response, ConsoleError> {
    let (status, why) = refusal(e);
    accounts_page(state, s, None, Some((form, why)), status).await
}
