//! `POST /trigger-invocations/v1/{id}/replay`: a new attempt series for one invocation.

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::AppState;
use super::audit::{NOTHING, entry};
use super::auth::Principal;
use super::error::{ApiError, OrNotFound};
use super::invocations::InvocationStatusOut;
use super::list::parse_flag;
use crate::domain::ids::InvocationId;
use crate::domain::scope;
use crate::store::StoreError;
use crate::store::audit::audited_if;
use crate::store::invocations::{self as store_invocations, Condition};
use crate::store::replays::{self, ReplayRefusal};

#[derive(Deserialize)]
pub(super) struct ForceParam {
    #[serde(default)]
    force: Option<String>,
}

impl ForceParam {
    pub(super) fn forced(&self) -> Result<bool, ApiError> {
        parse_flag("force", self.force.as_deref())
    }
}

/// Re-delivers one invocation (dead, delivered, anything not already under way) as a new
/// attempt series with the same `webhook-id`. A disabled subscription needs `?force=true`.
pub async fn replay(
    auth: Principal,
    state: web::Data<AppState>,
    id: web::Path<String>,
    params: web::Query<ForceParam>,
) -> Result<HttpResponse, ApiError> {
    auth.require(&[scope::DEAD_LETTERS_MANAGE])?;
    let force = params.forced()?;
    let raw = id.into_inner();
    let id: InvocationId =
        raw.parse().map_err(|_| ApiError::NotFound(format!("invocation '{raw}' was not found")))?;
    let (label, by, now) = (id.to_string(), auth.client_id.to_string(), state.clock.now());
    let outcome = state
        .store
        .run(move |c| {
            audited_if(c, now, |c| {
                if let Err(refusal) = replays::replay(c, &id, &by, force, now)? {
                    return Ok((Err(refusal), None));
                }
                let (mut views, _) =
                    store_invocations::list(c, &[Condition::IdIs(id.to_string())], false, 0, 1)?;
                let view = views.pop().ok_or(StoreError::NotFound)?;
                let after = serde_json::json!({"forced": force});
                let entry =
                    entry(&by, "invocation.replay", "invocation", id.to_string(), NOTHING, Some(&after));
                Ok((Ok(view), Some(entry)))
            })
        })
        .await
        .or_not_found(|| format!("invocation '{label}'"))?;
    match outcome {
        Ok(view) => {
            state.intake.wake();
            Ok(HttpResponse::Accepted().json(InvocationStatusOut::new(view, true)))
        }
        Err(ReplayRefusal::InProgress) => {
            Err(ApiError::Conflict(format!("invocation '{label}' is already pending or in flight")))
        }
        Err(ReplayRefusal::SubscriptionDisabled) => Err(ApiError::Conflict(
            "its subscription is disabled: enable the subscription first, or replay with ?force=true".into(),
        )),
        Err(ReplayRefusal::SubscriptionDeleted) => {
            Err(ApiError::Conflict("its subscription was deleted; it cannot be delivered".into()))
        }
    }
}
