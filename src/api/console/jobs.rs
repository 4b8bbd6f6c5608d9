//! The account's jobs, per resource type: the table (refreshed by itself
//! while days are under way), the quota of today, the create form with the
//! service's validation errors in place, and the Delete button.

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{badge, csrf, error_box, field, page, type_tabs, Place, TYPES};
use super::session::{Form, Session, Who};
use super::{chosen_type, refusal, ConsoleError, St, Viewer};
use crate::api::request::{BaseUrl, Params};
use crate::domain::ResourceType;
use crate::exports::{Exports, JobOrigin, JobRequest, JobView};

/// Jobs a page shows at most (the newest).
const JOBS_SHOWN: &str = "100";

#[derive(Deserialize)]
pub struct TypeQuery {
    #[serde(rename = "type")]
    pub rt: Option<String>,
}

pub async fn list(
    State(state): St,
    v: Viewer,
    Query(q): Query<TypeQuery>,
) -> Result<Response, ConsoleError> {
    let rt = chosen_type(q.rt.as_deref())?;
    render(
        &state.exports,
        &v,
        rt,
        &Params::default(),
        None,
        StatusCode::OK,
    )
    .await
}

/// The table alone: what the page's script fetches to refresh it.
pub async fn live(
    State(state): St,
    v: Viewer,
    Query(q): Query<TypeQuery>,
) -> Result<Response, ConsoleError> {
    let rt = chosen_type(q.rt.as_deref())?;
    let table = table(&state.exports, &v, rt).await?;
    Ok((
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        table.into_string(),
    )
        .into_response())
}

pub async fn create(
    State(state): St,
    v: Viewer,
    BaseUrl(base): BaseUrl,
    Form(_, form): Form,
) -> Result<Response, ConsoleError> {
    let rt: ResourceType = match form.get("resource_type").unwrap_or("Messages").parse() {
        Ok(rt) => rt,
        Err(_) => ResourceType::Messages,
    };
    let text = |name: &str| form.filled(name);
    let req = JobRequest {
        start_day: text("start_day"),
        end_day: text("end_day"),
        friendly_name: text("friendly_name"),
        webhook_url: text("webhook_url"),
        webhook_method: text("webhook_method").filter(|_| text("webhook_url").is_some()),
        email: text("email"),
    };
    let initiated_by = match &v.session.who {
        Who::Account { credential_sid, .. } if credential_sid.starts_with("SK") => {
            format!("API key {credential_sid} (console)")
        }
        Who::Admin => "Operator (console)".to_string(),
        _ => format!("Account {} (console)", v.account_sid),
    };
    let origin = JobOrigin {
        initiated_by,
        base_url: base,
    };
    match state
        .exports
        .create_job(&v.account_sid, rt, &req, &origin)
        .await
    {
        Ok(_) => Ok(Redirect::to(&format!(
            "/console/accounts/{}/jobs?type={rt}",
            v.account_sid
        ))
        .into_response()),
        Err(e) => {
            let (status, why) = refusal(e);
            render(&state.exports, &v, rt, &form, Some(&why), status).await
        }
    }
}

pub async fn delete(
    State(state): St,
    v: Viewer,
    Path((_, job_sid)): Path<(String, String)>,
    Form(_, form): Form,
) -> Result<Response, ConsoleError> {
    state.exports.delete_job(&v.account_sid, &job_sid).await?;
    let rt = chosen_type(form.get("type"))?;
    Ok(Redirect::to(&format!(
        "/console/accounts/{}/jobs?type={rt}",
        v.account_sid
    ))
    .into_response())
}

async fn render(
    exports: &Exports,
    v: &Viewer,
    rt: ResourceType,
    form: &Params,
    error: Option<&str>,
    status: StatusCode,
) -> Result<Response, ConsoleError> {
    let quota = exports.quota_status(&v.account_sid).await?;
    let table = table(exports, v, rt).await?;
    let base = format!("/console/accounts/{}/jobs", v.account_sid);
    let body = html! {
        (type_tabs(&base, rt))
        p.quota {
            @if quota.limit == 0 {
                "Days requested today: " (quota.used) " (no daily limit)"
            } @else {
                "Days requested today: " (quota.used) " of " (quota.limit)
                " · " (quota.limit.saturating_sub(quota.used).max(0)) " left · resets " (quota.resets_at)
            }
        }
        div data-live={ (base) "/live?type=" (rt.as_str()) } { (table) }
        h2 { "Create a job" }
        (create_form(&v.session, &base, rt, form, error))
    };
    let place = Place {
        section: "jobs",
        account: Some(&v.account_sid),
    };
    Ok((
        status,
        page(&format!("Jobs · {rt}"), &v.session, &place, body),
    )
        .into_response())
}

async fn table(exports: &Exports, v: &Viewer, rt: ResourceType) -> Result<Markup, ConsoleError> {
    let scope = Exports::list_scope(&v.account_sid, rt, "jobs");
    let request = exports.page_request(&scope, Some(JOBS_SHOWN), None, None, 1000)?;
    let jobs = exports.list_jobs(&v.account_sid, rt, request).await?.items;
    Ok(html! {
        @if jobs.is_empty() {
            p.empty { "No " (rt.as_str()) " jobs yet. Create one below." }
        } @else {
            table.jobs {
                thead { tr { th { "Friendly name" } th { "Job SID" } th { "Range" } th { "Days by status" }
                             th { "Queue position" } th { "Estimated completion" } th {} } }
                tbody { @for job in &jobs { (row(&v.session, &v.account_sid, rt, job)) } }
            }
        }
    })
}

fn row(session: &Session, account_sid: &str, rt: ResourceType, job: &JobView) -> Markup {
    let under_way = job.details.iter().any(|g| !g.status.is_final());
    html! {
        tr data-running[under_way] {
            td { (job.friendly_name) }
            td.mono { (job.sid) }
            td.nowrap { (job.start_day) " → " (job.end_day) }
            td {
                @for g in &job.details {
                    div.group { (badge(g.status.as_str())) " " span.days { (g.days_text()) } }
                }
            }
            td { (job.queue_position.map(|p| p.to_string()).unwrap_or_default()) }
            td { (job.estimated_completion.map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string()).unwrap_or_default()) }
            td {
                form method="post" action={ "/console/accounts/" (account_sid) "/jobs/" (job.sid) "/delete" } {
                    (csrf(session))
                    input type="hidden" name="type" value=(rt.as_str());
                    button.danger type="submit" { "Delete" }
                }
            }
        }
    }
}

fn create_form(
    session: &Session,
    action: &str,
    rt: ResourceType,
    form: &Params,
    error: Option<&str>,
) -> Markup {
    let value = |name: &str| form.get(name).unwrap_or_default().to_string();
    let chosen = form
        .get("resource_type")
        .and_then(|s| s.parse::<ResourceType>().ok())
        .unwrap_or(rt);
    let method = form.get("webhook_method").unwrap_or("POST");
    html! {
        form.card.wide method="post" action=(action) {
            (error_box(error))
            (csrf(session))
            div.grid {
                label { span { "Resource type" }
                    select name="resource_type" {
                        @for t in TYPES { option value=(t.as_str()) selected[t == chosen] { (t.as_str()) } }
                    }
                }
                (field("Start day", "start_day", &value("start_day"), "YYYY-MM-DD"))
                (field("End day", "end_day", &value("end_day"), "YYYY-MM-DD"))
                (field("Friendly name", "friendly_name", &value("friendly_name"), "nightly backfill"))
                (field("Webhook URL", "webhook_url", &value("webhook_url"), "https://example.com/hook"))
                label { span { "Webhook method" }
                    select name="webhook_method" {
                        @for m in ["POST", "GET"] { option value=(m) selected[m == method] { (m) } }
                    }
                }
                (field("Email", "email", &value("email"), "you@example.com"))
            }
            button type="submit" { "Create job" }
        }
    }
}
