//! The control plane for test suites: reset, faults and journals (admin
//! token, Bearer).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use super::admin::Admin;
use super::error::{json_response, ApiError};
use super::AppState;

/// Removes everything and applies the fixtures again; 200 when done.
pub async fn reset(State(state): State<AppState>, _: Admin) -> Result<Response, ApiError> {
    state.exports.reset().await?;
    Ok(json_response(StatusCode::OK, &json!({ "reset": true })))
}
