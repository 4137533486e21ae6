//! `/trigger-subscriptions/v1`: SailPoint's subscription API, plus reading one subscription
//! and rotating its signing secret.

mod wire;

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::AppState;
use super::audit::{NOTHING, entry};
use super::auth::Principal;
use super::error::{ApiError, OrNotFound};
use super::list::{ListParams, ListSpec};
use super::patch;
use crate::api::iso;
use crate::domain::filter::Filter;
use crate::domain::ids::{SubscriptionId, TriggerId};
use crate::domain::query::CmpOp;
use crate::domain::scope;
use crate::domain::subscription::Subscription;
use crate::store::audit::audited;
use crate::store::{self, StoreError};
use wire::{SubscriptionIn, SubscriptionOut, invalid, shown_type};

const READ: &[&str] = &[scope::SUBSCRIPTIONS_READ, scope::SUBSCRIPTIONS_MANAGE];
const MANAGE: &[&str] = &[scope::SUBSCRIPTIONS_MANAGE];
const PATCHABLE: &[&str] = &[
    "name",
    "description",
    "enabled",
    "type",
    "filter",
    "responseDeadline",
    "ordering",
    "orderingKey",
    "rateLimit",
    "maxInFlight",
    "httpConfig",
    "triggerConfig",
    "eventBridgeConfig",
    "workflowConfig",
];

fn parse_body(body: Value) -> Result<SubscriptionIn, ApiError> {
    super::parse_body(body)
}

fn parse_id(raw: &str) -> Result<SubscriptionId, ApiError> {
    raw.parse().map_err(|_| ApiError::NotFound(format!("subscription '{raw}' was not found")))
}

fn field(s: &Subscription, name: &str) -> Option<String> {
    match name {
        "id" => Some(s.id.to_string()),
        "triggerId" => Some(s.trigger_id.to_string()),
        "triggerName" => Some(s.trigger_name.clone()),
        "type" => serde_json::to_value(shown_type(s)).ok().and_then(|v| v.as_str().map(str::to_owned)),
        _ => None,
    }
}

const LIST: ListSpec<Subscription> = ListSpec {
    filters: &[("id", &[CmpOp::Eq]), ("triggerId", &[CmpOp::Eq]), ("type", &[CmpOp::Eq, CmpOp::Le])],
    sorters: &["triggerId", "triggerName"],
    field,
};

pub async fn list(
    auth: Principal,
    state: web::Data<AppState>,
    params: web::Query<ListParams>,
) -> Result<HttpResponse, ApiError> {
    auth.require(READ)?;
    let subscriptions = state.store.run(store::subscriptions::list).await?;
    let now = state.clock.now();
    params.respond(subscriptions, &LIST, |s| SubscriptionOut::new(s, None, now))
}

pub async fn get(
    auth: Principal,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    auth.require(READ)?;
    let id = parse_id(&id)?;
    let label = id.to_string();
    let sub = state
        .store
        .run(move |c| store::subscriptions::get(c, &id))
        .await
        .or_not_found(|| format!("subscription '{label}'"))?;
    Ok(HttpResponse::Ok().json(SubscriptionOut::new(sub, None, state.clock.now())))
}

pub async fn create(
    auth: Principal,
    state: web::Data<AppState>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    auth.require(MANAGE)?;
    let input = parse_body(body.into_inner())?;
    let raw_trigger = input.trigger_id.clone().ok_or_else(|| invalid("triggerId", "is required"))?;
    let trigger_id: TriggerId = raw_trigger.parse().map_err(|e| invalid("triggerId", e))?;
    let spec = input.into_spec(None)?;
    let now = state.clock.now();
    let actor = auth.client_id.to_string();
    let (sub, secret) = state
        .store
        .run(move |c| {
            audited(c, now, |c| {
                let (sub, secret) = store::subscriptions::insert(c, &trigger_id, &spec, now)?;
                let after = SubscriptionOut::new(sub.clone(), None, now);
                let entry = entry(
                    &actor,
                    "subscription.create",
                    "subscription",
                    sub.id.to_string(),
                    NOTHING,
                    Some(&after),
                );
                Ok(((sub, secret), entry))
            })
        })
        .await?;
    Ok(HttpResponse::Created().json(SubscriptionOut::new(sub, Some(&secret), now)))
}

/// Replaces the subscription with what `body` (a full representation) says.
async fn update_with(
    state: &AppState,
    auth: &Principal,
    id: SubscriptionId,
    body: impl FnOnce(&Subscription) -> Result<Value, ApiError> + Send + 'static,
) -> Result<HttpResponse, ApiError> {
    let now = state.clock.now();
    let label = id.to_string();
    let actor = auth.client_id.to_string();
    let result = state
        .store
        .run(move |c| {
            audited(c, now, |c| {
                let mut before = None;
                let sub = store::subscriptions::update(c, &id, now, |current| {
                    before = Some(SubscriptionOut::new(current.clone(), None, now));
                    let parsed = body(current).and_then(parse_body).and_then(|input| {
                        input.check_immutable(current)?;
                        input.into_spec(Some(current))
                    });
                    parsed.map_err(|e| StoreError::Invalid(e.to_string()))
                })?;
                let after = SubscriptionOut::new(sub.clone(), None, now);
                let entry = entry(
                    &actor,
                    "subscription.update",
                    "subscription",
                    id.to_string(),
                    before.as_ref(),
                    Some(&after),
                );
                Ok((sub, entry))
            })
        })
        .await;
    let sub = result.or_not_found(|| format!("subscription '{label}'"))?;
    Ok(HttpResponse::Ok().json(SubscriptionOut::new(sub, None, now)))
}

pub async fn replace(
    auth: Principal,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    auth.require(MANAGE)?;
    let id = parse_id(&id)?;
    let body = body.into_inner();
    update_with(&state, &auth, id, move |_| Ok(body)).await
}

pub async fn patch(
    auth: Principal,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    auth.require(MANAGE)?;
    let id = parse_id(&id)?;
    let ops = body.into_inner();
    let now = state.clock.now();
    update_with(&state, &auth, id, move |current| {
        let doc = serde_json::to_value(SubscriptionOut::new(current.clone(), None, now))
            .map_err(|e| ApiError::Internal(e.into()))?;
        patch::apply(doc, ops, PATCHABLE)
    })
    .await
}

pub async fn delete(
    auth: Principal,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    auth.require(MANAGE)?;
    let id = parse_id(&id)?;
    let label = id.to_string();
    let (actor, now) = (auth.client_id.to_string(), state.clock.now());
    state
        .store
        .run(move |c| {
            audited(c, now, |c| {
                let before = SubscriptionOut::new(store::subscriptions::get(c, &id)?, None, now);
                store::subscriptions::delete(c, &id)?;
                let entry = entry(
                    &actor,
                    "subscription.delete",
                    "subscription",
                    id.to_string(),
                    Some(&before),
                    NOTHING,
                );
                Ok(((), entry))
            })
        })
        .await
        .or_not_found(|| format!("subscription '{label}'"))?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
struct ValidateFilterIn {
    input: Map<String, Value>,
    filter: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ValidateFilterOut {
    is_valid: bool,
    #[serde(rename = "isValidJSONPath")]
    is_valid_json_path: bool,
    is_path_exist: bool,
}

pub async fn validate_filter(auth: Principal, body: web::Json<Value>) -> Result<HttpResponse, ApiError> {
    auth.require(MANAGE)?;
    let input: ValidateFilterIn = super::parse_body(body.into_inner())?;
    let v = Filter::validate(&input.filter, &Value::Object(input.input));
    Ok(HttpResponse::Ok().json(ValidateFilterOut {
        is_valid: v.valid,
        is_valid_json_path: v.valid_json_path,
        is_path_exist: v.path_exists,
    }))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RotatedSecret {
    secret: String,
    previous_secrets_expire_at: String,
}

pub async fn rotate_secret(
    auth: Principal,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    auth.require(MANAGE)?;
    let id = parse_id(&id)?;
    let label = id.to_string();
    let now = state.clock.now();
    let overlap = chrono::TimeDelta::from_std(state.settings.secret_rotation_overlap)
        .unwrap_or(chrono::TimeDelta::hours(24));
    let actor = auth.client_id.to_string();
    let expire = iso(now + overlap);
    let secret = state
        .store
        .run(move |c| {
            audited(c, now, |c| {
                let secret = store::subscriptions::rotate_secret(c, &id, now, overlap)?;
                let after = serde_json::json!({"previousSecretsExpireAt": expire});
                let entry = entry(
                    &actor,
                    "subscription.rotate-secret",
                    "subscription",
                    id.to_string(),
                    NOTHING,
                    Some(&after),
                );
                Ok((secret, entry))
            })
        })
        .await
        .or_not_found(|| format!("subscription '{label}'"))?;
    Ok(HttpResponse::Ok().json(RotatedSecret {
        secret: secret.expose().to_owned(),
        previous_secrets_expire_at: iso(now + overlap),
    }))
}
