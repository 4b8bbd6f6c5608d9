//! Handlers of the nine bulkexports v1 operations, named as the spec names them.

use axum::extract::{OriginalUri, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::error::{json_response, ApiError};
use super::request::{BaseUrl, Caller, Params, PathParams};
use super::wire::{config_wire, export_wire, DayWire, JobWire, ListPage};
use super::AppState;
use crate::domain::ResourceType;
use crate::exports::{ConfigUpdate, DownloadLink, Exports, JobOrigin, JobRequest};

const MAX_DAYS_PAGE: i64 = 400;
const MAX_JOBS_PAGE: i64 = 1000;

fn resource_type(raw: &str, uri: &OriginalUri) -> Result<ResourceType, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::not_found_path(uri.path()))
}

pub async fn fetch_export(
    State(_): State<AppState>,
    _caller: Caller,
    BaseUrl(base): BaseUrl,
    uri: OriginalUri,
    PathParams(rt): PathParams<String>,
) -> Result<Response, ApiError> {
    let rt = resource_type(&rt, &uri)?;
    Ok(json_response(StatusCode::OK, &export_wire(rt, &base)))
}

pub async fn fetch_export_configuration(
    State(state): State<AppState>,
    caller: Caller,
    BaseUrl(base): BaseUrl,
    uri: OriginalUri,
    PathParams(rt): PathParams<String>,
) -> Result<Response, ApiError> {
    let rt = resource_type(&rt, &uri)?;
    let config = state
        .exports
        .fetch_export_config(&caller.account_sid, rt)
        .await?;
    Ok(json_response(StatusCode::OK, &config_wire(&config, &base)))
}

pub async fn update_export_configuration(
    State(state): State<AppState>,
    caller: Caller,
    BaseUrl(base): BaseUrl,
    uri: OriginalUri,
    PathParams(rt): PathParams<String>,
    params: Params,
) -> Result<Response, ApiError> {
    let rt = resource_type(&rt, &uri)?;
    let update = ConfigUpdate {
        enabled: params.owned("Enabled"),
        webhook_url: params.owned("WebhookUrl"),
        webhook_method: params.owned("WebhookMethod"),
        email: params.owned("Email"),
    };
    let config = state
        .exports
        .update_export_config(&caller.account_sid, rt, &update)
        .await?;
    Ok(json_response(StatusCode::OK, &config_wire(&config, &base)))
}

pub async fn create_export_custom_job(
    State(state): State<AppState>,
    caller: Caller,
    BaseUrl(base): BaseUrl,
    uri: OriginalUri,
    PathParams(rt): PathParams<String>,
    params: Params,
) -> Result<Response, ApiError> {
    let rt = resource_type(&rt, &uri)?;
    let req = JobRequest {
        start_day: params.owned("StartDay"),
        end_day: params.owned("EndDay"),
        friendly_name: params.owned("FriendlyName"),
        webhook_url: params.owned("WebhookUrl"),
        webhook_method: params.owned("WebhookMethod"),
        email: params.owned("Email"),
    };
    let initiated_by = if caller.credential_sid.starts_with("SK") {
        format!("API key {}", caller.credential_sid)
    } else {
        format!("Account {}", caller.credential_sid)
    };
    let origin = JobOrigin {
        initiated_by,
        base_url: base.clone(),
    };
    let job = state
        .exports
        .create_job(&caller.account_sid, rt, &req, &origin)
        .await?;
    Ok(json_response(
        StatusCode::CREATED,
        &JobWire::new(job, &base, false),
    ))
}

fn list_page<'a>(
    exports: &'a Exports,
    scope: &'a str,
    params: &Params,
    list_url: String,
    key: &'static str,
    max: i64,
) -> Result<ListPage<'a>, ApiError> {
    let page = exports.page_request(
        scope,
        params.get("PageSize"),
        params.get("Page"),
        params.get("PageToken"),
        max,
    )?;
    Ok(ListPage {
        exports,
        scope,
        list_url,
        key,
        page,
    })
}

pub async fn list_export_custom_job(
    State(state): State<AppState>,
    caller: Caller,
    BaseUrl(base): BaseUrl,
    uri: OriginalUri,
    PathParams(rt): PathParams<String>,
    params: Params,
) -> Result<Response, ApiError> {
    let rt = resource_type(&rt, &uri)?;
    let scope = Exports::list_scope(&caller.account_sid, rt, "jobs");
    let url = format!("{base}/v1/Exports/{rt}/Jobs");
    let list = list_page(&state.exports, &scope, &params, url, "jobs", MAX_JOBS_PAGE)?;
    let jobs = state
        .exports
        .list_jobs(&caller.account_sid, rt, list.page)
        .await?;
    Ok(list.respond(jobs, |j| JobWire::new(j, &base, false)))
}

pub async fn fetch_job(
    State(state): State<AppState>,
    caller: Caller,
    BaseUrl(base): BaseUrl,
    PathParams(sid): PathParams<String>,
) -> Result<Response, ApiError> {
    let job = state.exports.fetch_job(&caller.account_sid, &sid).await?;
    Ok(json_response(
        StatusCode::OK,
        &JobWire::new(job, &base, true),
    ))
}

pub async fn delete_job(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(sid): PathParams<String>,
) -> Result<Response, ApiError> {
    state.exports.delete_job(&caller.account_sid, &sid).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn list_day(
    State(state): State<AppState>,
    caller: Caller,
    BaseUrl(base): BaseUrl,
    uri: OriginalUri,
    PathParams(rt): PathParams<String>,
    params: Params,
) -> Result<Response, ApiError> {
    let rt = resource_type(&rt, &uri)?;
    let scope = Exports::list_scope(&caller.account_sid, rt, "days");
    let url = format!("{base}/v1/Exports/{rt}/Days");
    let list = list_page(&state.exports, &scope, &params, url, "days", MAX_DAYS_PAGE)?;
    let days = state
        .exports
        .list_days(&caller.account_sid, rt, list.page)
        .await?;
    Ok(list.respond(days, DayWire::from))
}

pub async fn fetch_day(
    State(state): State<AppState>,
    caller: Caller,
    BaseUrl(base): BaseUrl,
    uri: OriginalUri,
    via_proxy: Option<axum::Extension<crate::proxy::ViaProxy>>,
    PathParams((rt, day)): PathParams<(String, String)>,
) -> Result<Response, ApiError> {
    let rt = resource_type(&rt, &uri)?;
    // Through the proxy, the link must go through the proxy too: a client
    // that honours the proxy could not reach a pre-signed bucket URL.
    let link = state
        .exports
        .fetch_day(&caller.account_sid, rt, &day, via_proxy.is_none())
        .await?;
    let url = match link {
        DownloadLink::Service(path) => format!("{base}{path}"),
        DownloadLink::Store(url) => url,
    };
    let mut resp = json_response(
        StatusCode::TEMPORARY_REDIRECT,
        &json!({ "redirect_to": url }),
    );
    if let Ok(v) = HeaderValue::from_str(&url) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}
