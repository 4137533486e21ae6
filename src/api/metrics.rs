//! `GET /metrics`: the instance's metrics in Prometheus' text format. Open unless
//! `HOOKGATE_METRICS_TOKEN` is set; then the scraper sends it as a bearer token.

use actix_web::http::header::AUTHORIZATION;
use actix_web::{HttpRequest, HttpResponse, web};

use super::AppState;
use super::error::ApiError;
use crate::domain::secret::constant_time_eq;

pub async fn scrape(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if let Some(expected) = &state.settings.metrics_token {
        let given = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        if !given.is_some_and(|given| constant_time_eq(given, expected.expose())) {
            return Err(ApiError::Unauthorized("the metrics token is missing or wrong".into()));
        }
    }
    let text = state.metrics.render(&state.store, state.clock.now()).await.map_err(ApiError::Unavailable)?;
    Ok(HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(text))
}
