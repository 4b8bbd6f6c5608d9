//! The account's notifications: every webhook and email the service made
//! for it, each attempt, and for a webhook the exact parameters and headers
//! sent and whether its `X-Twilio-Signature` verifies with the account's token.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde_json::Value;

use super::layout::{badge, cell, page, Place};
use super::{ConsoleError, St, Viewer};
use crate::db::DeliveryFilter;
use crate::exports::{signature_verifies, Exports};

/// Notifications a page shows at most (the newest).
const SHOWN: i64 = 100;

pub async fn page_of(exports: &Exports, v: &Viewer) -> Result<Markup, ConsoleError> {
    let filter = DeliveryFilter {
        account_sid: Some(v.account_sid.clone()),
        ..Default::default()
    };
    let notes = exports.journal_deliveries(&filter, SHOWN).await?;
    // Every notification on the page is the account's: its token, read once.
    let token = exports.require_account(&v.account_sid).await?.auth_token;
    let cards: Vec<Markup> = notes
        .iter()
        .map(|n| card(n, signature_verifies(n, &token)))
        .collect();
    Ok(html! {
        @if notes.is_empty() {
            p.empty { "No notifications yet: a job with a Webhook URL or an Email makes them." }
        }
        @for c in cards { (c) }
    })
}

fn card(n: &Value, verified: Option<bool>) -> Markup {
    let status = n["status"].as_str().unwrap_or_default();
    let empty = serde_json::Map::new();
    html! {
        section.card.note data-running[status == "pending"] {
            h3 {
                (badge(status)) " " (n["channel"].as_str().unwrap_or_default()) " · "
                span.mono { (n["event"].as_str().unwrap_or_default()) }
            }
            p {
                (n["method"].as_str().unwrap_or_default()) " " span.mono { (n["target"].as_str().unwrap_or_default()) }
                @if let Some(job) = n["job_sid"].as_str() { " · job " span.mono { (job) } }
                " · " (n["date_created"].as_str().unwrap_or_default())
            }
            @match verified {
                Some(true) => p.ok { "signature valid" },
                Some(false) => p.error { "signature INVALID for the account's current Auth token" },
                None => {},
            }
            h4 { "Attempts" }
            @if n["attempts"].as_array().is_none_or(Vec::is_empty) {
                p.empty { "Not attempted yet." }
            } @else {
                table {
                    thead { tr { th { "#" } th { "At" } th { "Outcome" } th { "Answer code" } th { "Error" } } }
                    tbody {
                        @for a in n["attempts"].as_array().into_iter().flatten() {
                            tr {
                                td { (cell(&a["attempt"])) } td { (cell(&a["at"])) } td { (badge(a["outcome"].as_str().unwrap_or_default())) }
                                td { (cell(&a["status_code"])) } td { (cell(&a["error"])) }
                            }
                        }
                    }
                }
            }
            details {
                summary { "Parameters and headers sent" }
                div.pair {
                    table { caption { "Parameters" } tbody {
                        @for (k, val) in n["params"].as_object().unwrap_or(&empty) { tr { th { (k) } td.mono { (cell(val)) } } }
                    } }
                    table { caption { "Headers" } tbody {
                        @for (k, val) in n["headers"].as_object().unwrap_or(&empty) { tr { th { (k) } td.mono { (cell(val)) } } }
                    } }
                }
            }
        }
    }
}

pub async fn notifications(State(state): St, v: Viewer) -> Result<Response, ConsoleError> {
    let list = page_of(&state.exports, &v).await?;
    let body = html! {
        div data-live={ "/console/accounts/" (v.account_sid) "/notifications/live" } { (list) }
    };
    let place = Place {
        section: "notifications",
        account: Some(&v.account_sid),
    };
    Ok(page("Notifications", &v.session, &place, body).into_response())
}

pub async fn live(State(state): St, v: Viewer) -> Result<Response, ConsoleError> {
    let list = page_of(&state.exports, &v).await?;
    Ok((
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        list.into_string(),
    )
        .into_response())
}
