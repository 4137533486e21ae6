//! `/triggers/v1`: SailPoint's list, plus administration (create, read, replace, patch, delete).

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::AppState;
use super::audit::{NOTHING, entry};
use super::auth::Principal;
use super::error::{ApiError, OrNotFound};
use super::list::{ListParams, ListSpec};
use super::{iso, patch};
use crate::domain::ids::TriggerId;
use crate::domain::query::CmpOp;
use crate::domain::schedule::Schedule;
use crate::domain::scope;
use crate::domain::trigger::{Trigger, TriggerSpec, TriggerType};
use crate::store;
use crate::store::audit::audited;

const READ: &[&str] = &[scope::SUBSCRIPTIONS_READ, scope::SUBSCRIPTIONS_MANAGE, scope::TRIGGERS_MANAGE];
const MANAGE: &[&str] = &[scope::TRIGGERS_MANAGE];
const PATCHABLE: &[&str] = &[
    "name",
    "type",
    "description",
    "inputSchema",
    "exampleInput",
    "outputSchema",
    "exampleOutput",
    "params",
    "enabled",
    "schedule",
    "timezone",
];

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TriggerOut {
    id: TriggerId,
    name: String,
    #[serde(rename = "type")]
    kind: TriggerType,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    input_schema: String,
    example_input: Value,
    output_schema: Option<String>,
    example_output: Option<Value>,
    params: Map<String, Value>,
    enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    schedule: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timezone: Option<String>,
    created: String,
    updated: String,
}

impl From<Trigger> for TriggerOut {
    fn from(t: Trigger) -> Self {
        Self {
            id: t.id,
            name: t.name,
            kind: t.kind,
            description: t.description,
            input_schema: t.input_schema,
            example_input: t.example_input,
            output_schema: t.output_schema,
            example_output: t.example_output,
            params: t.params,
            enabled: t.enabled,
            schedule: t.schedule.as_ref().map(|s| s.expression().to_owned()),
            timezone: t.schedule.as_ref().and_then(|s| s.timezone().map(str::to_owned)),
            created: iso(t.created),
            updated: iso(t.updated),
        }
    }
}

/// A JSON Schema given either as SailPoint's string or as an object.
#[derive(Deserialize)]
#[serde(untagged)]
enum SchemaIn {
    Text(String),
    Document(Map<String, Value>),
}

impl SchemaIn {
    fn into_text(self) -> String {
        match self {
            Self::Text(t) => t,
            Self::Document(d) => Value::Object(d).to_string(),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TriggerIn {
    id: Option<String>,
    name: String,
    #[serde(rename = "type")]
    kind: TriggerType,
    description: Option<String>,
    input_schema: SchemaIn,
    example_input: Map<String, Value>,
    output_schema: Option<SchemaIn>,
    example_output: Option<Value>,
    params: Option<Map<String, Value>>,
    enabled: Option<bool>,
    schedule: Option<String>,
    timezone: Option<String>,
}

impl TriggerIn {
    /// Builds the spec for `id`; a body id, when present, must agree.
    fn into_spec(self, id: TriggerId) -> Result<TriggerSpec, ApiError> {
        if let Some(body_id) = &self.id
            && body_id != id.as_str()
        {
            return Err(ApiError::bad_request("id is immutable: the body's id differs from the path's"));
        }
        let schedule = match (self.schedule.as_deref(), self.timezone.as_deref()) {
            (None, None) => None,
            (None, Some(_)) => return Err(ApiError::bad_request("timezone: needs a schedule")),
            (Some(expression), timezone) => Some(
                Schedule::parse(expression, timezone)
                    .map_err(|m| ApiError::bad_request(format!("schedule: {m}")))?,
            ),
        };
        let spec = TriggerSpec {
            id,
            name: self.name,
            kind: self.kind,
            description: self.description,
            input_schema: self.input_schema.into_text(),
            example_input: Value::Object(self.example_input),
            output_schema: self.output_schema.map(SchemaIn::into_text),
            example_output: self.example_output.filter(|v| !v.is_null()),
            params: self.params.unwrap_or_default(),
            enabled: self.enabled.unwrap_or(true),
            schedule,
        };
        spec.validate()
            .map_err(|e| ApiError::BadRequest { message: e.to_string(), causes: vec![e.to_string()] })?;
        Ok(spec)
    }
}

fn field(t: &Trigger, name: &str) -> Option<String> {
    match name {
        "id" => Some(t.id.to_string()),
        "name" => Some(t.name.clone()),
        _ => None,
    }
}

const LIST: ListSpec<Trigger> =
    ListSpec { filters: &[("id", &[CmpOp::Eq, CmpOp::Ge, CmpOp::Le])], sorters: &["id", "name"], field };

fn parse_id(raw: &str) -> Result<TriggerId, ApiError> {
    raw.parse().map_err(|_| ApiError::NotFound(format!("trigger '{raw}' was not found")))
}

fn parse_body(body: Value) -> Result<TriggerIn, ApiError> {
    super::parse_body(body)
}

pub async fn list(
    auth: Principal,
    state: web::Data<AppState>,
    params: web::Query<ListParams>,
) -> Result<HttpResponse, ApiError> {
    auth.require(READ)?;
    let triggers = state.store.run(store::triggers::list).await?;
    params.respond(triggers, &LIST, TriggerOut::from)
}

pub async fn get(
    auth: Principal,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    auth.require(READ)?;
    let id = parse_id(&id)?;
    let label = id.to_string();
    let trigger = state.store.run(move |c| store::triggers::get(c, &id)).await;
    let trigger = trigger.or_not_found(|| format!("trigger '{label}'"))?;
    Ok(HttpResponse::Ok().json(TriggerOut::from(trigger)))
}

pub async fn create(
    auth: Principal,
    state: web::Data<AppState>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    auth.require(MANAGE)?;
    let input = parse_body(body.into_inner())?;
    let raw_id = input.id.clone().ok_or_else(|| ApiError::bad_request("id is required"))?;
    let id: TriggerId = raw_id.parse().map_err(|e: crate::domain::ids::InvalidId| {
        ApiError::bad_request(format!("{e}: use 1-128 letters, digits and ':._-'"))
    })?;
    let spec = input.into_spec(id)?;
    let now = state.clock.now();
    let label = spec.id.to_string();
    let actor = auth.client_id.to_string();
    let created = state
        .store
        .run(move |c| {
            audited(c, now, |c| {
                let trigger = store::triggers::insert(c, &spec, now)?;
                let after = TriggerOut::from(trigger.clone());
                let entry =
                    entry(&actor, "trigger.create", "trigger", trigger.id.to_string(), NOTHING, Some(&after));
                Ok((trigger, entry))
            })
        })
        .await;
    let trigger = created.map_err(|e| match e {
        store::StoreError::Conflict(_) => ApiError::Conflict(format!("trigger '{label}' already exists")),
        other => other.into(),
    })?;
    Ok(HttpResponse::Created().json(TriggerOut::from(trigger)))
}

/// Replaces the trigger with what `body` (a full representation) says, in one transaction.
async fn update_with(
    state: &AppState,
    auth: &Principal,
    id: TriggerId,
    body: impl FnOnce(&Trigger) -> Result<Value, ApiError> + Send + 'static,
) -> Result<HttpResponse, ApiError> {
    let now = state.clock.now();
    let label = id.to_string();
    let path_id = id.clone();
    let actor = auth.client_id.to_string();
    let trigger = state
        .store
        .run(move |c| {
            audited(c, now, |c| {
                let mut before = None;
                let trigger = store::triggers::update(c, &id, now, |current| {
                    before = Some(TriggerOut::from(current.clone()));
                    body(current)
                        .and_then(parse_body)
                        .and_then(|input| input.into_spec(path_id))
                        .map_err(|e| store::StoreError::Invalid(e.to_string()))
                })?;
                let after = TriggerOut::from(trigger.clone());
                let entry = entry(
                    &actor,
                    "trigger.update",
                    "trigger",
                    trigger.id.to_string(),
                    before.as_ref(),
                    Some(&after),
                );
                Ok((trigger, entry))
            })
        })
        .await;
    let trigger = trigger.or_not_found(|| format!("trigger '{label}'"))?;
    Ok(HttpResponse::Ok().json(TriggerOut::from(trigger)))
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
    update_with(&state, &auth, id, move |current| {
        let doc = serde_json::to_value(TriggerOut::from(current.clone()))
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
    let deleted = state
        .store
        .run(move |c| {
            audited(c, now, |c| {
                let before = TriggerOut::from(store::triggers::get(c, &id)?);
                store::triggers::delete(c, &id)?;
                Ok(((), entry(&actor, "trigger.delete", "trigger", id.to_string(), Some(&before), NOTHING)))
            })
        })
        .await;
    deleted.or_not_found(|| format!("trigger '{label}'"))?;
    Ok(HttpResponse::NoContent().finish())
}
