//! Liveness and readiness probes (no token needed).

use actix_web::{HttpResponse, web};

use super::AppState;
use super::error::ApiError;

pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// Ready when the database answers.
pub async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.store.ping().await.map_err(ApiError::Unavailable)?;
    Ok(HttpResponse::Ok()
        .json(serde_json::json!({ "status": "ok", "database": state.store.backend().name() })))
}
