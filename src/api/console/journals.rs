//! The operator's journals: the API requests served, the emails caught, and
//! the fault rules (list, create, delete) with how often each fired.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;

use super::layout::{badge, cell, csrf, error_box, field, page, Place, TYPES};
use super::operator::Operator;
use super::session::{Form, Session};
use super::{refusal, ConsoleError, St};
use crate::api::AppState;
use crate::db::DeliveryFilter;
use crate::exports::{FaultKind, FaultRequest};

/// Entries a journal page shows at most (the newest).
const SHOWN: usize = 200;

fn place(section: &str) -> Place<'_> {
    Place {
        section,
        account: None,
    }
}

pub async fn requests(State(state): St, Operator(s): Operator) -> Result<Response, ConsoleError> {
    let mut entries = state.exports.journal_requests(&Default::default(), SHOWN);
    entries.reverse();
    let body = html! {
        p.hint { "The API requests this node served, newest first (the last " (SHOWN) " shown)." }
        table {
            thead { tr { th { "At" } th { "Method" } th { "Path" } th { "Operation" } th { "Status" } th { "Account" } th { "ms" } th { "Fault" } th { "Request id" } } }
            tbody {
                @for r in &entries {
                    tr {
                        td.nowrap { (r.at) } td { (r.method) } td.mono { (r.path) } td { (r.operation.unwrap_or_default()) }
                        td { (r.status) } td.mono { (r.account_sid.clone().unwrap_or_default()) }
                        td { (format!("{:.1}", r.duration_ms)) } td { (r.fault.clone().unwrap_or_default()) } td.mono { (r.request_id) }
                    }
                }
            }
        }
    };
    Ok(page("Requests", &s, &place("requests"), body).into_response())
}

pub async fn emails(State(state): St, Operator(s): Operator) -> Result<Response, ConsoleError> {
    let emails = state
        .exports
        .journal_emails(&DeliveryFilter::default(), None, SHOWN as i64)
        .await?;
    let body = html! {
        @if emails.is_empty() { p.empty { "No emails yet: a job with an Email, or a daily export, makes them." } }
        @for e in &emails {
            section.card.note {
                h3 { (badge(e["delivery_status"].as_str().unwrap_or_default())) " " (cell(&e["subject"])) }
                p { "To " span.mono { (cell(&e["to"])) } " from " span.mono { (cell(&e["from"])) } " · " (cell(&e["kind"]))
                    " · " (cell(&e["created_at"])) }
                pre { (cell(&e["text"])) }
            }
        }
    };
    Ok(page("Emails", &s, &place("emails"), body).into_response())
}

pub async fn faults(State(state): St, Operator(s): Operator) -> Result<Response, ConsoleError> {
    faults_page(&state, &s, None, StatusCode::OK).await
}

/// The filters and values a rule may have, as the form names them.
const FIELDS: [(&str, &str, &str); 12] = [
    ("Operation", "operation", "e.g. CreateExportCustomJob"),
    ("Account SID", "account_sid", "any account"),
    ("Day", "day", "any day (YYYY-MM-DD)"),
    ("Job SID", "job_sid", "any job"),
    ("Times", "times", "every time"),
    ("Probability", "probability", "e.g. 0.5"),
    ("Status", "status", "e.g. 503"),
    ("Code", "code", "e.g. 20503"),
    ("Message", "message", "Injected fault"),
    ("Seconds", "seconds", "e.g. 60"),
    ("Copies", "copies", "e.g. 3"),
    ("Bytes", "bytes", "e.g. 1000"),
];

async fn faults_page(
    state: &AppState,
    s: &Session,
    error: Option<&str>,
    status: StatusCode,
) -> Result<Response, ConsoleError> {
    let rules = state.exports.list_faults().await?;
    let body = html! {
        @if rules.is_empty() { p.empty { "No fault rules." } } @else {
            table {
                thead { tr { th { "SID" } th { "Kind" } th { "Matches" } th { "Times" } th { "Fired" } th {} } }
                tbody {
                    @for r in &rules {
                        tr {
                            td.mono { (cell(&r["sid"])) } td { (cell(&r["kind"])) }
                            td { @for k in ["operation", "account_sid", "resource_type", "day", "job_sid"] {
                                @if !r[k].is_null() { div { (k) " = " span.mono { (cell(&r[k])) } } }
                            } }
                            td { (cell(&r["times"])) } td.fired { (cell(&r["fired"])) }
                            td { form method="post" action={ "/console/admin/faults/" (cell(&r["sid"])) "/delete" } {
                                (csrf(s)) button.danger type="submit" { "Delete" }
                            } }
                        }
                    }
                }
            }
        }
        h2 { "Create a fault" }
        form.card.wide method="post" action="/console/admin/faults" {
            (error_box(error))
            (csrf(s))
            div.grid {
                label { span { "Kind" } select name="kind" { @for k in FaultKind::ALL { option value=(k.as_str()) { (k.as_str()) } } } }
                label { span { "Resource type" } select name="resource_type" {
                    option value="" { "any" }
                    @for t in TYPES { option value=(t.as_str()) { (t.as_str()) } }
                } }
                @for (label, name, hint) in FIELDS { (field(label, name, "", hint)) }
            }
            button type="submit" { "Create fault" }
        }
    };
    Ok((status, page("Faults", s, &place("faults"), body)).into_response())
}

pub async fn create_fault(
    State(state): St,
    Operator(s): Operator,
    Form(_, form): Form,
) -> Result<Response, ConsoleError> {
    let p = |n: &str| form.filled(n);
    let request = FaultRequest {
        kind: p("kind"),
        account_sid: p("account_sid"),
        resource_type: p("resource_type"),
        day: p("day"),
        job_sid: p("job_sid"),
        operation: p("operation"),
        times: p("times"),
        probability: p("probability"),
        message: p("message"),
        seconds: p("seconds"),
        copies: p("copies"),
        bytes: p("bytes"),
        status: p("status"),
        code: p("code"),
    };
    match state.exports.create_fault(&request).await {
        Ok(_) => Ok(Redirect::to("/console/admin/faults").into_response()),
        Err(e) => {
            let (status, why) = refusal(e);
            faults_page(&state, &s, Some(&why), status).await
        }
    }
}

pub async fn delete_fault(
    State(state): St,
    Operator(_): Operator,
    Path(sid): Path<String>,
    Form(..): Form,
) -> Result<Response, ConsoleError> {
    state.exports.delete_faults(Some(&sid)).await?;
    Ok(Redirect::to("/console/admin/faults").into_response())
}
