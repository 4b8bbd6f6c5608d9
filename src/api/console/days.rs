//! The account's Days (with the signed download link and a preview of the
//! first records) and its export configuration per resource type.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;

use super::jobs::TypeQuery;
use super::layout::{cell, csrf, error_box, field, human_bytes, page, type_tabs, Place, TYPES};
use super::session::Form;
use super::{chosen_type, refusal, ConsoleError, St, Viewer};
use crate::api::request::Params;
use crate::domain::ResourceType;
use crate::exports::{ConfigUpdate, DownloadLink, Exports};

/// Records a preview shows.
const PREVIEW_RECORDS: usize = 50;
/// Days a page lists at most (ListDay's largest page).
const DAYS_SHOWN: &str = "400";

pub async fn list(
    State(state): St,
    v: Viewer,
    Query(q): Query<TypeQuery>,
) -> Result<Response, ConsoleError> {
    let rt = chosen_type(q.rt.as_deref())?;
    let scope = Exports::list_scope(&v.account_sid, rt, "days");
    let request = state
        .exports
        .page_request(&scope, Some(DAYS_SHOWN), None, None, 400)?;
    let days = state
        .exports
        .list_days(&v.account_sid, rt, request)
        .await?
        .items;
    let base = format!("/console/accounts/{}/days", v.account_sid);
    let body = html! {
        (type_tabs(&base, rt))
        @if days.is_empty() {
            p.empty { "No " (rt.as_str()) " days are published. A job's days appear here once exported, for seven days." }
        } @else {
            table.days {
                thead { tr { th { "Day" } th { "Size" } th { "Records" } th { "Created" } th { "Job" } th {} th {} } }
                tbody {
                    @for d in &days {
                        tr {
                            td.mono { (d.day) }
                            td { (human_bytes(d.size)) }
                            td { (d.records) }
                            td { (d.create_date) }
                            td { (d.friendly_name) }
                            td { a href={ (base) "/" (rt.as_str()) "/" (d.day) "/download" } { "Download" } }
                            td { a href={ (base) "/" (rt.as_str()) "/" (d.day) } { "Preview" } }
                        }
                    }
                }
            }
        }
    };
    let place = Place {
        section: "days",
        account: Some(&v.account_sid),
    };
    Ok(page(&format!("Days · {rt}"), &v.session, &place, body).into_response())
}

fn day_type(raw: &str) -> Result<ResourceType, ConsoleError> {
    raw.parse()
        .map_err(|_| ConsoleError::Status(StatusCode::NOT_FOUND, "There is no such page".into()))
}

/// The first records of a day, as a table whose columns are the records' fields.
pub async fn preview(
    State(state): St,
    v: Viewer,
    Path((_, rt, day)): Path<(String, String, String)>,
) -> Result<Response, ConsoleError> {
    let rt = day_type(&rt)?;
    let p = state
        .exports
        .preview_day(&v.account_sid, rt, &day, PREVIEW_RECORDS)
        .await?;
    let base = format!("/console/accounts/{}/days", v.account_sid);
    let body = html! {
        p {
            a href={ (base) "?type=" (rt.as_str()) } { "← Days" } " · "
            (p.records) " records in the day; the first " (p.rows.len()) " below · "
            a href={ (base) "/" (rt.as_str()) "/" (day) "/download" } { "Download" }
        }
        @if p.rows.is_empty() {
            p.empty { "This day has no records." }
        } @else {
            div.scroll {
                table.preview {
                    thead { tr { th { "#" } @for c in &p.columns { th { (c) } } } }
                    tbody {
                        @for (i, r) in p.rows.iter().enumerate() {
                            tr { td { (i + 1) } @for c in &p.columns { td { (r.get(c).map(cell).unwrap_or_default()) } } }
                        }
                    }
                }
            }
        }
    };
    let place = Place {
        section: "days",
        account: Some(&v.account_sid),
    };
    Ok(page(&format!("{rt} · {day}"), &v.session, &place, body).into_response())
}

/// A fresh signed link to the day file.
pub async fn download(
    State(state): St,
    v: Viewer,
    Path((_, rt, day)): Path<(String, String, String)>,
) -> Result<Response, ConsoleError> {
    let rt = day_type(&rt)?;
    let link = state
        .exports
        .fetch_day(&v.account_sid, rt, &day, true)
        .await?;
    let to = match link {
        DownloadLink::Service(path) => path,
        DownloadLink::Store(url) => url,
    };
    Ok(Redirect::to(&to).into_response())
}

pub async fn configuration(State(state): St, v: Viewer) -> Result<Response, ConsoleError> {
    render_configuration(&state.exports, &v, None, StatusCode::OK).await
}

pub async fn update_configuration(
    State(state): St,
    v: Viewer,
    Path((_, rt)): Path<(String, String)>,
    Form(_, form): Form,
) -> Result<Response, ConsoleError> {
    let rt = day_type(&rt)?;
    let update = ConfigUpdate {
        enabled: Some(
            if form.get("enabled").is_some() {
                "true"
            } else {
                "false"
            }
            .into(),
        ),
        webhook_url: form.owned("webhook_url").map(|s| s.trim().to_string()),
        webhook_method: form.owned("webhook_method"),
        email: form.owned("email").map(|s| s.trim().to_string()),
    };
    match state
        .exports
        .update_export_config(&v.account_sid, rt, &update)
        .await
    {
        Ok(_) => Ok(Redirect::to(&format!(
            "/console/accounts/{}/configuration",
            v.account_sid
        ))
        .into_response()),
        Err(e) => {
            let (status, why) = refusal(e);
            render_configuration(&state.exports, &v, Some((rt, why, form)), status).await
        }
    }
}

async fn render_configuration(
    exports: &Exports,
    v: &Viewer,
    failed: Option<(ResourceType, String, Params)>,
    status: StatusCode,
) -> Result<Response, ConsoleError> {
    let mut forms = Vec::new();
    for rt in TYPES {
        let c = exports.fetch_export_config(&v.account_sid, rt).await?;
        let (error, sent) = match &failed {
            Some((t, m, f)) if *t == rt => (Some(m.as_str()), Some(f)),
            _ => (None, None),
        };
        let value = |name: &str, stored: Option<&String>| match sent {
            Some(f) => f.get(name).unwrap_or_default().to_string(),
            None => stored.cloned().unwrap_or_default(),
        };
        let enabled = sent.map_or(c.enabled, |f| f.get("enabled").is_some());
        let method = value("webhook_method", c.webhook_method.as_ref());
        forms.push(html! {
            form.card method="post" action={ "/console/accounts/" (v.account_sid) "/configuration/" (rt.as_str()) } {
                h2 { (rt.as_str()) }
                (error_box(error))
                (csrf(&v.session))
                label.check { input type="checkbox" name="enabled" value="true" checked[enabled]; span { "Enabled" } }
                (field("Webhook URL", "webhook_url", &value("webhook_url", c.webhook_url.as_ref()), "https://example.com/hook"))
                label { span { "Webhook method" }
                    select name="webhook_method" {
                        @for m in ["POST", "GET"] { option value=(m) selected[m == method] { (m) } }
                    }
                }
                (field("Email", "email", &value("email", c.email.as_ref()), "you@example.com"))
                button type="submit" { "Save" }
            }
        });
    }
    let body = html! {
        p.hint { "A daily export runs after each UTC midnight for every enabled resource type (Editions accounts only)." }
        div.cards { @for f in forms { (f) } }
    };
    let place = Place {
        section: "configuration",
        account: Some(&v.account_sid),
    };
    Ok((status, page("Configuration", &v.session, &place, body)).into_response())
}
