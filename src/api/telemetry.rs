//! A span per request. It records the method and the path, never the query string: SailPoint's
//! token endpoint accepts `client_secret` there, and secrets never reach the logs. Each request
//! is counted by its route pattern (never its path, which holds ids) and status.

use std::time::Instant;

use actix_web::Error;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;
use tracing::Instrument as _;
use tracing::field::Empty;

use super::AppState;

pub async fn request_span(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let span = tracing::info_span!(
        "request",
        http.method = %req.method(),
        http.path = %req.path(),
        http.status = Empty,
        duration_ms = Empty,
    );
    let started = Instant::now();
    let route = req.match_pattern();
    let metrics = req.app_data::<web::Data<AppState>>().map(|state| state.metrics.clone());
    let result = next.call(req).instrument(span.clone()).await;
    let status = match &result {
        Ok(response) => response.status().as_u16(),
        Err(e) => e.as_response_error().status_code().as_u16(),
    };
    if let Some(metrics) = metrics {
        metrics.served(route.as_deref().unwrap_or("unmatched"), status);
    }
    span.record("http.status", status);
    span.record("duration_ms", started.elapsed().as_secs_f64() * 1000.0);
    span.in_scope(|| tracing::debug!("request served"));
    result
}
