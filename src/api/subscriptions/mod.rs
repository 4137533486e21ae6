//! `/trigger-subscriptions/v1`: SailPoint's subscription API, plus reading one subscription
//! and rotating its signing secret.

mod wire;

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::AppState;
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
    params.respond(subscriptions, &LIST, |s| SubscriptionOut::new(s, None))
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
    Ok(HttpResponse::Ok().json(SubscriptionOut::new(sub, None)))
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
    let (sub, secret) =
        state.store.run(move |c| store::subscriptions::insert(c, &trigger_id, &spec, now)).await?;
    Ok(HttpResponse::Created().json(SubscriptionOut::new(sub, Some(&secret))))
}

/// Replaces the subscription with what `body` (a full representation) says.
async fn update_with(
    state: &AppState,
    id: SubscriptionId,
    body: impl FnOnce(&Subscription) -> Result<Value, ApiError> + Send + 'static,
) -> Result<HttpResponse, ApiError> {
    let now = state.clock.now();
    let label = id.to_string();
    let result = state
        .store
        .run(move |c| {
            store::subscriptions::update(c, &id, now, |current| {
                let parsed = body(current).and_then(parse_body).and_then(|input| {
                    input.check_immutable(current)?;
                    input.into_spec(Some(current))
                });
                parsed.map_err(|e| StoreError::Invalid(e.to_string()))
            })
        })
        .await;
    let sub = result.or_not_found(|| format!("subscription '{label}'"))?;
    Ok(HttpResponse::Ok().json(SubscriptionOut::new(sub, None)))
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
    update_with(&state, id, move |_| Ok(body)).await
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
    update_with(&state, id, move |current| {
        let doc = serde_json::to_value(SubscriptionOut::new(current.clone(), None))
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
    state
        .store
        .run(move |c| store::subscriptions::delete(c, &id))
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
    let secret = state
        .store
        .run(move |c| store::subscriptions::rotate_secret(c, &id, now, overlap))
        .await
        .or_not_found(|| format!("subscription '{label}'"))?;
    Ok(HttpResponse::Ok().json(RotatedSecret {
        secret: secret.expose().to_owned(),
        previous_secrets_expire_at: iso(now + overlap),
    }))
}
