//! The voice API's DeleteArchivedCall, and the 2010 API's Call and Account
//! resources.

use axum::extract::{OriginalUri, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::error::{json_response, ApiError};
use super::request::{Caller, Params, PathParams};
use super::AppState;

pub async fn delete_archived_call(
    State(state): State<AppState>,
    caller: Caller,
    PathParams((date, sid)): PathParams<(String, String)>,
) -> Result<Response, ApiError> {
    state
        .exports
        .delete_archived_call(&caller.account_sid, &date, &sid)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The path's account must be the caller's; another account's calls are not found.
fn own(caller: &Caller, account_sid: &str, uri: &OriginalUri) -> Result<(), ApiError> {
    if caller.account_sid == account_sid {
        Ok(())
    } else {
        Err(ApiError::not_found_path(uri.path()))
    }
}

fn call_sid<'a>(file: &'a str, uri: &OriginalUri) -> Result<&'a str, ApiError> {
    file.strip_suffix(".json")
        .ok_or_else(|| ApiError::not_found_path(uri.path()))
}

pub async fn fetch_call(
    State(state): State<AppState>,
    caller: Caller,
    uri: OriginalUri,
    PathParams((account_sid, file)): PathParams<(String, String)>,
) -> Result<Response, ApiError> {
    own(&caller, &account_sid, &uri)?;
    let call = state
        .exports
        .fetch_call(&account_sid, call_sid(&file, &uri)?, uri.path())
        .await?;
    Ok(json_response(StatusCode::OK, &call))
}

pub async fn delete_call(
    State(state): State<AppState>,
    caller: Caller,
    uri: OriginalUri,
    PathParams((account_sid, file)): PathParams<(String, String)>,
) -> Result<Response, ApiError> {
    own(&caller, &account_sid, &uri)?;
    state
        .exports
        .delete_call(&account_sid, call_sid(&file, &uri)?, uri.path())
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The 2010 API's list paging: relative URIs, `start`/`end`, the array named `calls`.
pub async fn list_calls(
    State(state): State<AppState>,
    caller: Caller,
    uri: OriginalUri,
    PathParams(account_sid): PathParams<String>,
    params: Params,
) -> Result<Response, ApiError> {
    own(&caller, &account_sid, &uri)?;
    let page_size = match params.get("PageSize") {
        None => 50,
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "PageSize must be an integer from 1 to 1000, got {s:?}"
                ))
            })
            .and_then(|n| match n {
                1..=1000 => Ok(n),
                _ => Err(ApiError::PageSizeTooLarge(format!(
                    "Page size too large: PageSize must be at most 1000, got {n}"
                ))),
            })?,
    };
    let max_page = crate::exports::MAX_PAGE;
    let page = match params.get("Page") {
        None => 0,
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|n| (0..=max_page).contains(n))
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "Page must be an integer from 0 to {max_page}, got {s:?}"
                ))
            })?,
    };
    let token = params.get("PageToken");
    let found = state
        .exports
        .list_calls(&account_sid, page_size, token)
        .await?;
    let list = format!("/2010-04-01/Accounts/{account_sid}/Calls.json");
    let page_uri = |p: i64, t: Option<&str>| match t {
        Some(t) => format!("{list}?PageSize={page_size}&Page={p}&PageToken={t}"),
        None => format!("{list}?PageSize={page_size}&Page={p}"),
    };
    let count = found.calls.len() as i64;
    let body = json!({
        "calls": found.calls,
        "end": (page * page_size + count - 1).max(0),
        "first_page_uri": page_uri(0, None),
        "next_page_uri": found.next_token.as_deref().map(|t| page_uri(page + 1, Some(t))),
        "page": page,
        "page_size": page_size,
        "previous_page_uri": found.prev_token.as_deref().map(|t| page_uri((page - 1).max(0), Some(t))),
        "start": page * page_size,
        "uri": page_uri(page, token),
    });
    Ok(json_response(StatusCode::OK, &body))
}

/// The 2010 API's Account list: the caller's account and, for a parent, its
/// subaccounts (with their auth tokens, as Twilio shows them to the parent).
pub async fn list_accounts(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> Result<Response, ApiError> {
    let page_size = match params.get("PageSize") {
        None => 50,
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "PageSize must be an integer from 1 to 1000, got {s:?}"
                ))
            })?,
    };
    let page = match params.get("Page") {
        None => 0,
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|n| (0..=100_000).contains(n))
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "Page must be an integer from 0 to 100000, got {s:?}"
                ))
            })?,
    };
    let mut accounts = state
        .exports
        .db()
        .account_family(&caller.account_sid, page * page_size, page_size + 1)
        .await
        .map_err(crate::exports::Error::from)?;
    let more = accounts.len() as i64 > page_size;
    accounts.truncate(page_size as usize);
    let rfc2822 = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .map(|t| t.format("%a, %d %b %Y %H:%M:%S +0000").to_string())
    };
    let list = "/2010-04-01/Accounts.json";
    let page_uri = |p: i64| format!("{list}?PageSize={page_size}&Page={p}");
    let shown: Vec<serde_json::Value> = accounts
        .iter()
        .map(|a| {
            json!({
                "auth_token": a.auth_token, "date_created": rfc2822(a.created_at),
                "date_updated": rfc2822(a.created_at), "friendly_name": a.friendly_name,
                "owner_account_sid": a.parent_sid.as_deref().unwrap_or(&a.sid), "sid": a.sid,
                "status": "active", "subresource_uris": {}, "type": "Full",
                "uri": format!("/2010-04-01/Accounts/{}.json", a.sid),
            })
        })
        .collect();
    let count = shown.len() as i64;
    let body = json!({
        "accounts": shown,
        "end": (page * page_size + count - 1).max(0),
        "first_page_uri": page_uri(0),
        "next_page_uri": more.then(|| page_uri(page + 1)),
        "page": page,
        "page_size": page_size,
        "previous_page_uri": (page > 0).then(|| page_uri(page - 1)),
        "start": page * page_size,
        "uri": page_uri(page),
    });
    Ok(json_response(StatusCode::OK, &body))
}
