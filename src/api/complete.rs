//! `POST /trigger-invocations/v1/{id}/complete`: a `REQUEST_RESPONSE` subscriber's callback.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::Value;

use super::error::ApiError;
use super::{AppState, iso, parse_body};
use crate::domain::ids::InvocationId;
use crate::domain::invocation::CompleteRefusal;
use crate::domain::invocation::InvocationState;
use crate::domain::schema::Side;
use crate::domain::trigger::TriggerType;
use crate::store::invocations as store_invocations;
use crate::store::responses;
use crate::store::{self, StoreError};

/// SailPoint's `CompleteInvocation`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CompleteInvocationIn {
    secret: String,
    #[serde(default)]
    output: Option<Value>,
    #[serde(default)]
    error: Option<String>,
}

/// A `REQUEST_RESPONSE` subscriber's callback: `{secret, output}` completes the invocation, and
/// `{secret, error}` fails it. The invocation's secret is the credential; an `Authorization`
/// header, as SailPoint's SDKs send, is neither needed nor checked.
pub async fn complete(
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let raw = id.into_inner();
    let not_found = || ApiError::NotFound(format!("invocation '{raw}' was not found"));
    let id: InvocationId = raw.parse().map_err(|_| not_found())?;
    let request: CompleteInvocationIn = parse_body(body.into_inner())?;
    let lookup = id.clone();
    let invocation =
        state.store.run(move |c| store_invocations::get(c, &lookup)).await.map_err(|e| match e {
            StoreError::NotFound => not_found(),
            other => other.into(),
        })?;
    if !crate::domain::secret::constant_time_eq(&request.secret, &invocation.secret) {
        return Err(ApiError::Unauthorized(format!(
            "the secret does not match invocation '{id}'; use the secret from its _metadata or start response"
        )));
    }
    let trigger_id = invocation.trigger_id.clone();
    let trigger =
        state.store.run(move |c| store::triggers::get(c, &trigger_id)).await.map_err(|e| match e {
            StoreError::NotFound => ApiError::Conflict(format!(
                "the trigger of invocation '{id}' was deleted; it cannot complete"
            )),
            other => other.into(),
        })?;
    if trigger.kind != TriggerType::RequestResponse {
        return Err(ApiError::bad_request(format!(
            "invocation '{id}' is of FIRE_AND_FORGET trigger '{}'; only REQUEST_RESPONSE invocations complete",
            trigger.id
        )));
    }
    let result = match (request.error.filter(|e| !e.trim().is_empty()), request.output) {
        (Some(error), _) => Err(error),
        (None, Some(output)) => {
            let problems =
                state.schemas.problems(&trigger, Side::Output, &output).map_err(ApiError::internal)?;
            if let Some(first) = problems.first() {
                return Err(ApiError::BadRequest {
                    message: format!(
                        "the output does not match the output schema of '{}': {first}",
                        trigger.id
                    ),
                    causes: problems,
                });
            }
            Ok(output.to_string())
        }
        (None, None) => {
            return Err(ApiError::bad_request("output is required (or error, to fail the invocation)"));
        }
    };
    let (now, label) = (state.clock.now(), id.to_string());
    let outcome = state
        .store
        .run(move |c| responses::complete(c, &id, result.as_deref().map_err(String::as_str), now))
        .await?;
    match outcome {
        Ok(()) => Ok(HttpResponse::NoContent().finish()),
        Err(CompleteRefusal::PastDeadline(deadline)) => Err(ApiError::Gone(format!(
            "invocation '{label}' missed its response deadline at {} and has failed; it can be replayed",
            iso(deadline)
        ))),
        Err(CompleteRefusal::AlreadyCompleted { state: done, at }) => Err(ApiError::Conflict(format!(
            "invocation '{label}' was already completed{} ({})",
            at.map(|t| format!(" at {}", iso(t))).unwrap_or_default(),
            if done == InvocationState::Delivered { "with an output" } else { "as failed" }
        ))),
    }
}
