//! The control plane for test suites: reset, faults and journals (admin
//! token, Bearer).

use axum::extract::{OriginalUri, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::admin::Admin;
use super::error::{json_response, ApiError};
use super::request::{Params, PathParams};
use super::AppState;
use crate::db::DeliveryFilter;
use crate::domain::{Channel, DeliveryStatus};
use crate::exports::{FaultRequest, RequestFilter};

/// Entries a journal lists at most (`PageSize`, default and maximum).
const JOURNAL_PAGE: i64 = 1000;

/// Refuses parameters a request of the control plane does not know.
fn only(params: &Params, known: &[&str]) -> Result<(), ApiError> {
    if let Some(name) = params.names().find(|n| !known.contains(n)) {
        return Err(ApiError::BadRequest(format!(
            "Unknown parameter {name}; this endpoint takes {}",
            known.join(", ")
        )));
    }
    Ok(())
}

fn page_size(params: &Params) -> Result<i64, ApiError> {
    match params.get("PageSize") {
        None => Ok(JOURNAL_PAGE),
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=JOURNAL_PAGE).contains(n))
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "PageSize {s:?} must be an integer from 1 to {JOURNAL_PAGE}"
                ))
            }),
    }
}

/// Removes everything and applies the fixtures again; 200 when done.
pub async fn reset(State(state): State<AppState>, _: Admin) -> Result<Response, ApiError> {
    state.exports.reset().await?;
    Ok(json_response(StatusCode::OK, &json!({ "reset": true })))
}

const FAULT_PARAMS: &[&str] = &[
    "Kind",
    "AccountSid",
    "ResourceType",
    "Day",
    "JobSid",
    "Operation",
    "Times",
    "Probability",
    "Message",
    "Seconds",
    "Copies",
    "Bytes",
    "Status",
    "Code",
];

pub async fn create_fault(
    State(state): State<AppState>,
    _: Admin,
    params: Params,
) -> Result<Response, ApiError> {
    only(&params, FAULT_PARAMS)?;
    let p = |n: &str| params.owned(n);
    let request = FaultRequest {
        kind: p("Kind"),
        account_sid: p("AccountSid"),
        resource_type: p("ResourceType"),
        day: p("Day"),
        job_sid: p("JobSid"),
        operation: p("Operation"),
        times: p("Times"),
        probability: p("Probability"),
        message: p("Message"),
        seconds: p("Seconds"),
        copies: p("Copies"),
        bytes: p("Bytes"),
        status: p("Status"),
        code: p("Code"),
    };
    let fault = state.exports.create_fault(&request).await?;
    Ok(json_response(StatusCode::CREATED, &fault))
}

pub async fn list_faults(State(state): State<AppState>, _: Admin) -> Result<Response, ApiError> {
    let faults = state.exports.list_faults().await?;
    Ok(json_response(StatusCode::OK, &json!({ "faults": faults })))
}

pub async fn delete_faults(State(state): State<AppState>, _: Admin) -> Result<Response, ApiError> {
    state.exports.delete_faults(None).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn delete_fault(
    State(state): State<AppState>,
    _: Admin,
    uri: OriginalUri,
    PathParams(sid): PathParams<String>,
) -> Result<Response, ApiError> {
    if state.exports.delete_faults(Some(&sid)).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::not_found_path(uri.path()))
    }
}

/// The delivery journal's filters: `AccountSid`, `JobSid`, `Channel`, `Status`.
fn delivery_filter(params: &Params) -> Result<DeliveryFilter, ApiError> {
    let channel = params
        .get("Channel")
        .map(|c| {
            c.parse::<Channel>().map_err(|_| {
                ApiError::BadRequest(format!("Channel {c:?} must be webhook or email"))
            })
        })
        .transpose()?;
    let status = params
        .get("Status")
        .map(|s| {
            s.parse::<DeliveryStatus>().map_err(|_| {
                ApiError::BadRequest(format!("Status {s:?} must be pending, delivered or failed"))
            })
        })
        .transpose()?;
    Ok(DeliveryFilter {
        account_sid: params.owned("AccountSid"),
        job_sid: params.owned("JobSid"),
        channel,
        status,
    })
}

pub async fn list_deliveries(
    State(state): State<AppState>,
    _: Admin,
    params: Params,
) -> Result<Response, ApiError> {
    only(
        &params,
        &["AccountSid", "JobSid", "Channel", "Status", "PageSize"],
    )?;
    let filter = delivery_filter(&params)?;
    let deliveries = state
        .exports
        .journal_deliveries(&filter, page_size(&params)?)
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({ "deliveries": deliveries }),
    ))
}

pub async fn delete_deliveries(
    State(state): State<AppState>,
    _: Admin,
    params: Params,
) -> Result<Response, ApiError> {
    only(&params, &["AccountSid", "JobSid", "Channel", "Status"])?;
    let filter = delivery_filter(&params)?;
    state
        .exports
        .db()
        .delete_deliveries(&filter)
        .await
        .map_err(crate::exports::Error::from)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The email journal's filters: `AccountSid`, `JobSid` (emails only).
fn email_filter(params: &Params) -> DeliveryFilter {
    DeliveryFilter {
        account_sid: params.owned("AccountSid"),
        job_sid: params.owned("JobSid"),
        channel: Some(Channel::Email),
        status: None,
    }
}

pub async fn list_emails(
    State(state): State<AppState>,
    _: Admin,
    params: Params,
) -> Result<Response, ApiError> {
    only(&params, &["AccountSid", "JobSid", "To", "Kind", "PageSize"])?;
    let kind = params.get("Kind");
    if let Some(k) = kind {
        if !["initiation", "completion", "daily"].contains(&k) {
            return Err(ApiError::BadRequest(format!(
                "Kind {k:?} must be initiation, completion or daily"
            )));
        }
    }
    let filter = email_filter(&params);
    let mut emails = state
        .exports
        .journal_emails(&filter, kind, page_size(&params)?)
        .await?;
    if let Some(to) = params.get("To") {
        emails.retain(|e| e["to"] == to);
    }
    Ok(json_response(StatusCode::OK, &json!({ "emails": emails })))
}

pub async fn delete_emails(
    State(state): State<AppState>,
    _: Admin,
    params: Params,
) -> Result<Response, ApiError> {
    only(&params, &["AccountSid", "JobSid"])?;
    let filter = email_filter(&params);
    state
        .exports
        .db()
        .delete_deliveries(&filter)
        .await
        .map_err(crate::exports::Error::from)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn list_requests(
    State(state): State<AppState>,
    _: Admin,
    params: Params,
) -> Result<Response, ApiError> {
    only(&params, &["AccountSid", "Operation", "Status", "PageSize"])?;
    let status = params
        .get("Status")
        .map(|s| {
            s.parse::<u16>().map_err(|_| {
                ApiError::BadRequest(format!("Status {s:?} must be an HTTP status code"))
            })
        })
        .transpose()?;
    let filter = RequestFilter {
        account_sid: params.owned("AccountSid"),
        operation: params.owned("Operation"),
        status,
    };
    let limit = page_size(&params)? as usize;
    let requests = state.exports.journal_requests(&filter, limit);
    Ok(json_response(
        StatusCode::OK,
        &json!({ "requests": requests }),
    ))
}

pub async fn delete_requests(
    State(state): State<AppState>,
    _: Admin,
) -> Result<Response, ApiError> {
    state.exports.clear_request_journal();
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The OpenAPI document of the admin API.
pub async fn admin_openapi(_: Admin) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        include_str!("../../openapi/admin.json"),
    )
        .into_response()
}
