//! The HTTP API: the only module that knows HTTP and axum. Routes, wire
//! shapes and Twilio errors live here; everything else is asked of `exports`.

mod admin;
mod calls;
mod console;
mod control;
mod download;
mod error;
mod health;
mod listener;
mod observe;
mod request;
mod resources;
mod throttle;
mod wire;

use axum::extract::{OriginalUri, State};
use axum::http::{header, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tower_http::cors::{Any, CorsLayer};

use crate::config::{Secret, Settings};
use crate::exports::Exports;
use crate::net::IpRange;
pub use error::ApiError;
pub use listener::{serve, ConnectionLimits};
pub use throttle::AuthThrottle;

/// What every handler can reach.
#[derive(Clone, Debug)]
pub struct AppState {
    pub exports: Exports,
    pub public_url: Option<String>,
    pub admin_token: Option<Secret>,
    pub max_body_bytes: usize,
    pub max_ingest_bytes: u64,
    pub max_line_bytes: usize,
    /// True when started with `--clock`: the admin API may move the clock.
    pub settable_clock: bool,
    pub throttle: std::sync::Arc<AuthThrottle>,
    pub trusted_proxies: std::sync::Arc<Vec<IpRange>>,
    /// Bearer token of `/metrics`; open without one.
    pub metrics_token: Option<Secret>,
    /// Cancelled when the node starts shutting down: `/readyz` answers 503.
    pub draining: tokio_util::sync::CancellationToken,
}

impl AppState {
    pub fn new(exports: Exports, settings: &Settings) -> anyhow::Result<AppState> {
        let trusted_proxies = settings
            .trusted_proxies
            .iter()
            .map(|p| IpRange::parse(p).map_err(|e| anyhow::anyhow!("trusted_proxies: {e}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(AppState {
            exports,
            public_url: settings.public_url.clone(),
            admin_token: settings.admin_token.clone(),
            max_body_bytes: settings.max_body_bytes,
            max_ingest_bytes: settings.max_ingest_bytes,
            max_line_bytes: settings.max_line_bytes,
            settable_clock: false,
            throttle: std::sync::Arc::new(AuthThrottle::new(settings.auth_failures_per_minute)),
            trusted_proxies: std::sync::Arc::new(trusted_proxies),
            metrics_token: settings.metrics_token.clone(),
            draining: Default::default(),
        })
    }

    pub(crate) fn is_trusted_proxy(&self, ip: &std::net::IpAddr) -> bool {
        self.trusted_proxies.iter().any(|r| r.contains(ip))
    }
}

/// The whole API: the public routes (with CORS for browsers) and the admin
/// API (no CORS: a browser page of another origin gets nothing from it).
pub fn router(state: AppState) -> Router {
    let admin = admin_routes().method_not_allowed_fallback(method_not_allowed);
    let console = console::routes(state.clone()).with_state(state.clone());
    public(state.clone())
        .merge(admin.with_state(state.clone()))
        .merge(console)
        .layer(axum::middleware::from_fn_with_state(
            state,
            observe::observe,
        ))
}

/// What the proxy listener serves: the public routes only, never the admin API.
pub fn proxied_router(state: AppState) -> Router {
    public(state.clone()).layer(axum::middleware::from_fn_with_state(
        state,
        observe::observe,
    ))
}

fn public(state: AppState) -> Router {
    public_routes()
        .method_not_allowed_fallback(method_not_allowed)
        .layer(cors())
        .fallback(not_found)
        .with_state(state)
}

fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST, Method::DELETE, Method::OPTIONS])
        .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
        .expose_headers([
            header::ETAG,
            header::CONTENT_RANGE,
            header::CONTENT_LENGTH,
            header::LOCATION,
        ])
}

/// Every public route: its path template and the methods it serves, as
/// `openapi/bulkexport.json` describes them (a test holds the two and the
/// router to each other). The admin API is not public.
pub const PUBLIC_ROUTES: &[(&str, &[&str])] = &[
    ("/livez", &["GET"]),
    ("/healthz", &["GET"]),
    ("/readyz", &["GET"]),
    ("/metrics", &["GET"]),
    ("/v1/Exports/Jobs/{job_sid}", &["GET", "DELETE"]),
    ("/v1/Exports/{resource_type}", &["GET"]),
    (
        "/v1/Exports/{resource_type}/Configuration",
        &["GET", "POST"],
    ),
    ("/v1/Exports/{resource_type}/Days", &["GET"]),
    ("/v1/Exports/{resource_type}/Days/{day}", &["GET"]),
    ("/v1/Exports/{resource_type}/Jobs", &["GET", "POST"]),
    (
        "/v1/Downloads/{account_sid}/{resource_type}/{file}",
        &["GET"],
    ),
    ("/v1/Archives/{date}/Calls/{sid}", &["DELETE"]),
    ("/2010-04-01/Accounts.json", &["GET"]),
    ("/2010-04-01/Accounts/{account_sid}/Calls.json", &["GET"]),
    (
        "/2010-04-01/Accounts/{account_sid}/Calls/{file}",
        &["GET", "DELETE"],
    ),
    ("/unsubscribe", &["GET"]),
];

/// Every admin route and its methods, as `openapi/admin.json` describes them
/// (a test holds the two and the router to each other).
pub const ADMIN_ROUTES: &[(&str, &[&str])] = &[
    ("/admin/v1/Accounts", &["POST"]),
    ("/admin/v1/Accounts/{account_sid}/Keys", &["POST"]),
    (
        "/admin/v1/Accounts/{account_sid}/Records/{resource_type}",
        &["POST"],
    ),
    ("/admin/v1/Queue/Drain", &["POST"]),
    ("/admin/v1/Clock", &["GET", "POST"]),
    ("/admin/v1/Reset", &["POST"]),
    ("/admin/v1/Faults", &["GET", "POST", "DELETE"]),
    ("/admin/v1/Faults/{sid}", &["DELETE"]),
    ("/admin/v1/Deliveries", &["GET", "DELETE"]),
    ("/admin/v1/Emails", &["GET", "DELETE"]),
    ("/admin/v1/Requests", &["GET", "DELETE"]),
    ("/admin/v1/openapi.json", &["GET"]),
];

fn public_routes() -> Router<AppState> {
    Router::new()
        .route("/livez", get(health::livez))
        .route("/healthz", get(health::livez))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route(
            "/v1/Exports/Jobs/{job_sid}",
            get(resources::fetch_job).delete(resources::delete_job),
        )
        .route("/v1/Exports/{resource_type}", get(resources::fetch_export))
        .route(
            "/v1/Exports/{resource_type}/Configuration",
            get(resources::fetch_export_configuration).post(resources::update_export_configuration),
        )
        .route("/v1/Exports/{resource_type}/Days", get(resources::list_day))
        .route(
            "/v1/Exports/{resource_type}/Days/{day}",
            get(resources::fetch_day),
        )
        .route(
            "/v1/Exports/{resource_type}/Jobs",
            get(resources::list_export_custom_job).post(resources::create_export_custom_job),
        )
        .route(
            "/v1/Downloads/{account_sid}/{resource_type}/{file}",
            get(download::download_day),
        )
        .route(
            "/v1/Archives/{date}/Calls/{sid}",
            axum::routing::delete(calls::delete_archived_call),
        )
        .route("/2010-04-01/Accounts.json", get(calls::list_accounts))
        .route(
            "/2010-04-01/Accounts/{account_sid}/Calls.json",
            get(calls::list_calls),
        )
        .route(
            "/2010-04-01/Accounts/{account_sid}/Calls/{file}",
            get(calls::fetch_call).delete(calls::delete_call),
        )
        .route("/unsubscribe", get(unsubscribe))
}

fn admin_routes() -> Router<AppState> {
    Router::new()
        .route("/admin/v1/Accounts", post(admin::create_account))
        .route(
            "/admin/v1/Accounts/{account_sid}/Keys",
            post(admin::create_key),
        )
        .route(
            "/admin/v1/Accounts/{account_sid}/Records/{resource_type}",
            post(admin::ingest_records),
        )
        .route("/admin/v1/Queue/Drain", post(admin::drain_queue))
        .route("/admin/v1/Reset", post(control::reset))
        .route(
            "/admin/v1/Faults",
            get(control::list_faults)
                .post(control::create_fault)
                .delete(control::delete_faults),
        )
        .route(
            "/admin/v1/Faults/{sid}",
            axum::routing::delete(control::delete_fault),
        )
        .route(
            "/admin/v1/Deliveries",
            get(control::list_deliveries).delete(control::delete_deliveries),
        )
        .route(
            "/admin/v1/Emails",
            get(control::list_emails).delete(control::delete_emails),
        )
        .route(
            "/admin/v1/Requests",
            get(control::list_requests).delete(control::delete_requests),
        )
        .route("/admin/v1/openapi.json", get(control::admin_openapi))
        .route(
            "/admin/v1/Clock",
            post(admin::set_clock).get(admin::fetch_clock),
        )
}

/// The link in job-initiation emails: no login, signed for one user and one purpose.
async fn unsubscribe(
    State(state): State<AppState>,
    params: request::Params,
) -> Result<Response, ApiError> {
    let (Some(account), Some(email), Some(signature)) = (
        params.get("AccountSid"),
        params.get("Email"),
        params.get("Signature"),
    ) else {
        return Err(ApiError::BadRequest(
            "The unsubscribe link needs AccountSid, Email and Signature".into(),
        ));
    };
    state.exports.unsubscribe(account, email, signature).await?;
    let page = format!(
        "<!doctype html><meta charset=utf-8><title>Unsubscribed</title>\
         <p>{} will no longer receive job-initiation emails for account {}.</p>",
        html_escape(email),
        html_escape(account)
    );
    Ok(([(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response())
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

async fn not_found(uri: OriginalUri) -> Response {
    ApiError::not_found_path(uri.path()).into_response()
}

async fn method_not_allowed(method: Method, uri: OriginalUri) -> Response {
    ApiError::MethodNotAllowed(format!("Method {method} is not allowed on {}", uri.path()))
        .into_response()
}
