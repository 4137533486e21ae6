//! `DELETE /trigger-invocations/v1?filters=…`: erasure on request. Removes the invocations the
//! filter matches (the list's grammar) with their events, attempts and replays, batch by batch.

use actix_web::{HttpResponse, web};

use super::AppState;
use super::auth::Principal;
use super::error::ApiError;
use super::invocations::{LIST_FILTERS, conditions};
use crate::domain::query;
use crate::domain::scope;
use crate::store::erasure::{self, Erased};

const MANAGE: &[&str] = &[scope::DEAD_LETTERS_MANAGE];

#[derive(Debug, serde::Deserialize)]
pub struct ErasureParams {
    filters: Option<String>,
}

pub async fn erase(
    auth: Principal,
    state: web::Data<AppState>,
    params: web::Query<ErasureParams>,
) -> Result<HttpResponse, ApiError> {
    auth.require(MANAGE)?;
    let Some(text) = params.filters.as_deref().filter(|t| !t.trim().is_empty()) else {
        return Err(ApiError::bad_request(
            "erasure needs filters naming what to erase, such as triggerId eq \"idn:access-request\"",
        ));
    };
    let mut conds = Vec::new();
    conditions(&query::parse_filters(text, LIST_FILTERS).map_err(ApiError::bad_request)?, &mut conds)?;
    let conds = std::sync::Arc::new(conds);
    let mut total = Erased::default();
    loop {
        let batch = conds.clone();
        let Some(erased) = state.store.write(move |c| erasure::erase_batch(c, &batch)).await? else { break };
        total.invocations += erased.invocations;
        total.attempts += erased.attempts;
        total.events += erased.events;
        if erased.invocations == 0 {
            break;
        }
    }
    let left = conds.clone();
    total.left = state.store.run(move |c| erasure::count_matching(c, &left)).await?;
    let (filters, now) = (text.to_owned(), state.clock.now());
    let record = super::audit::entry(
        &auth.client_id.to_string(),
        "invocations.erase",
        "invocation",
        filters,
        super::audit::NOTHING,
        Some(&total),
    );
    state.store.write(move |c| crate::store::audit::record(c, now, &record)).await?;
    tracing::info!(
        invocations = total.invocations,
        events = total.events,
        attempts = total.attempts,
        left = total.left,
        "erased on request"
    );
    Ok(HttpResponse::Ok().json(total))
}
