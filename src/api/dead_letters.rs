//! `/dead-letters/v1`: invocations whose attempts ran out, and replaying them in bulk.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::auth::Principal;
use super::error::ApiError;
use super::invocations::{DEAD_LETTER_FILTERS, InvocationStatusOut, conditions};
use super::list::{ListParams, page_response};
use crate::domain::invocation::InvocationState;
use crate::domain::query;
use crate::domain::scope;
use crate::store::invocations::{self as store_invocations, Condition};

const MANAGE: &[&str] = &[scope::DEAD_LETTERS_MANAGE];

/// Parses `filters` (the invocation list's syntax, `state` aside) into store conditions.
fn dead_conditions(filters: Option<&str>) -> Result<Vec<Condition>, ApiError> {
    let mut conds = vec![Condition::StateIn(vec![InvocationState::Dead.as_str().to_owned()])];
    if let Some(text) = filters.filter(|t| !t.trim().is_empty()) {
        let expr = query::parse_filters(text, DEAD_LETTER_FILTERS).map_err(ApiError::bad_request)?;
        conditions(&expr, &mut conds)?;
    }
    Ok(conds)
}

/// Dead letters, newest first, with their last error: filters `triggerId`, `subscriptionId`,
/// `type`, `created` (ge, gt, le, lt), joined by `and`.
pub async fn list(
    auth: Principal,
    state: web::Data<AppState>,
    params: web::Query<ListParams>,
) -> Result<HttpResponse, ApiError> {
    auth.require(MANAGE)?;
    let page = params.page()?;
    let conds = dead_conditions(params.filters())?;
    let (offset, limit) = (i64::from(page.offset), i64::from(page.limit));
    let (views, total) =
        state.store.run(move |c| store_invocations::list(c, &conds, false, offset, limit)).await?;
    let out: Vec<InvocationStatusOut> =
        views.into_iter().map(|v| InvocationStatusOut::new(v, true)).collect();
    Ok(page_response(out, page.count.then_some(usize::try_from(total).unwrap_or(0))))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct BulkReplay {
    /// Which dead letters, in the list's filter syntax; all of them when absent.
    filters: Option<String>,
    #[serde(default)]
    force: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BulkReplayOut {
    replayed: usize,
    skipped: usize,
}

/// Re-queues every dead letter matching `filters`, 100 per second so live traffic keeps
/// flowing. Dead letters of disabled subscriptions are skipped unless `force`.
pub async fn replay(
    auth: Principal,
    state: web::Data<AppState>,
    body: web::Json<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    auth.require(MANAGE)?;
    let request: BulkReplay = super::parse_body(body.into_inner())?;
    let conds = dead_conditions(request.filters.as_deref())?;
    let (by, now, force) = (auth.client_id.to_string(), state.clock.now(), request.force);
    let filters = request.filters.clone().unwrap_or_default();
    let summary = state
        .store
        .run(move |c| {
            crate::store::audit::audited(c, now, |c| {
                let summary = crate::store::replays::replay_dead(c, &conds, &by, force, now)?;
                let after = serde_json::json!({"replayed": summary.replayed, "skipped": summary.skipped, "forced": force});
                let entry = super::audit::entry(&by, "dead-letters.replay", "invocation", filters, super::audit::NOTHING, Some(&after));
                Ok((summary, entry))
            })
        })
        .await?;
    if summary.replayed > 0 {
        state.intake.wake();
    }
    Ok(HttpResponse::Ok().json(BulkReplayOut { replayed: summary.replayed, skipped: summary.skipped }))
}
