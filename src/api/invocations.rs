//! `/trigger-invocations/v1`: publishing events (`start`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::auth::Principal;
use super::error::ApiError;
use super::{AppState, json_from_bytes, parse_body, read_body};
use crate::domain::ids::TriggerId;
use crate::domain::invocation::{Invocation, InvocationKind, merge_params};
use crate::domain::scope;
use crate::domain::trigger::Trigger;
use crate::store::invocations::{self as store_invocations, NewEvent, Remembered};
use crate::store::{self, StoreError, write_transaction};

const PUBLISH: &[&str] = &[scope::EVENTS_PUBLISH];
/// The most events one request may publish.
const MAX_BATCH: usize = 1000;

/// Compiled input schemas, by trigger id and the trigger's `updated` time.
#[derive(Default)]
pub struct SchemaCache(Mutex<HashMap<(String, NaiveDateTime), Arc<jsonschema::Validator>>>);

impl SchemaCache {
    fn validator(&self, trigger: &Trigger) -> Result<Arc<jsonschema::Validator>, ApiError> {
        let key = (trigger.id.to_string(), trigger.updated);
        let mut cache = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(v) = cache.get(&key) {
            return Ok(v.clone());
        }
        let schema: Value = serde_json::from_str(&trigger.input_schema).map_err(|e| {
            ApiError::Internal(anyhow::anyhow!("trigger {} has an unreadable input schema: {e}", trigger.id))
        })?;
        let validator = Arc::new(jsonschema::validator_for(&schema).map_err(|e| {
            ApiError::Internal(anyhow::anyhow!("trigger {} has an invalid input schema: {e}", trigger.id))
        })?);
        cache.retain(|(id, _), _| id != trigger.id.as_str());
        cache.insert(key, validator.clone());
        Ok(validator)
    }
}

/// SailPoint's `StartInvocationInput`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StartInvocationInput {
    trigger_id: String,
    input: Map<String, Value>,
    #[serde(default)]
    content_json: Option<Map<String, Value>>,
}

/// SailPoint's `Invocation`, plus the subscription it goes to.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvocationOut {
    id: String,
    trigger_id: String,
    subscription_id: String,
    secret: String,
    content_json: Value,
}

impl InvocationOut {
    fn new(i: &Invocation, content_json: &Value) -> Self {
        Self {
            id: i.id.to_string(),
            trigger_id: i.trigger_id.to_string(),
            subscription_id: i.subscription_id.to_string(),
            secret: i.secret.clone(),
            content_json: content_json.clone(),
        }
    }
}

/// An event checked against its trigger, ready to fan out.
struct Checked {
    trigger_id: TriggerId,
    input: String,
    content_json: Value,
    payload: Value,
}

fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(value) = req.headers().get("Idempotency-Key") else { return Ok(None) };
    let key =
        value.to_str().map_err(|_| ApiError::bad_request("Idempotency-Key must be visible ASCII"))?.trim();
    if key.is_empty() || key.len() > 255 {
        return Err(ApiError::bad_request("Idempotency-Key must be 1 to 255 characters"));
    }
    Ok(Some(key.to_owned()))
}

/// Publishes one event (`{triggerId, input, contentJson}`) or a batch (a JSON array of them).
/// The events and one invocation per matching enabled subscription are stored in one
/// transaction; the answer lists the invocations (per event, for a batch).
pub async fn start(
    auth: Principal,
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    auth.require(PUBLISH)?;
    let key = idempotency_key(&req)?;
    let body = read_body(payload, state.settings.max_body_size).await?;
    let json = json_from_bytes(&req, &body)?;
    let batch = json.is_array();
    let items: Vec<StartInvocationInput> = match json {
        Value::Array(list) => {
            if list.is_empty() || list.len() > MAX_BATCH {
                return Err(ApiError::bad_request(format!("a batch holds 1 to {MAX_BATCH} events")));
            }
            list.into_iter().map(parse_body).collect::<Result<_, _>>()?
        }
        other => vec![parse_body(other)?],
    };
    let checked = check_all(&state, items).await?;
    let request_hash =
        crate::domain::secret::hash(&format!("{}\n{}", req.path(), String::from_utf8_lossy(&body)));
    let (now, ttl) = (state.clock.now(), state.settings.idempotency_ttl);
    let answer = state
        .store
        .run(move |c| {
            write_transaction(c, |c| {
                if let Some(key) = &key {
                    match store_invocations::recall_key(c, key, &request_hash, now)? {
                        Remembered::Same(response) => return Ok(Answer::Replayed(response)),
                        Remembered::Different => return Ok(Answer::KeyReused),
                        Remembered::Unknown => {}
                    }
                }
                let events = fan_out(c, &checked)?;
                let created = store_invocations::insert_events(c, &events, now)?;
                let lists: Vec<Vec<InvocationOut>> = created
                    .iter()
                    .zip(&checked)
                    .map(|(list, event)| {
                        list.iter().map(|i| InvocationOut::new(i, &event.content_json)).collect()
                    })
                    .collect();
                let response =
                    if batch { serde_json::to_string(&lists) } else { serde_json::to_string(&lists[0]) }
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                if let Some(key) = &key {
                    store_invocations::remember_key(c, key, &request_hash, &response, now, ttl)?;
                }
                Ok(Answer::Created(response))
            })
        })
        .await?;
    match answer {
        Answer::Created(body) => {
            state.wake_workers.notify_waiters();
            Ok(HttpResponse::Ok().content_type("application/json").body(body))
        }
        Answer::Replayed(body) => Ok(HttpResponse::Ok()
            .content_type("application/json")
            .insert_header(("Idempotent-Replayed", "true"))
            .body(body)),
        Answer::KeyReused => Err(ApiError::Conflict(
            "this Idempotency-Key was already used for a different request; use a new key".into(),
        )),
    }
}

enum Answer {
    Created(String),
    Replayed(String),
    KeyReused,
}

/// Checks every event against its trigger: known, enabled, input valid for its schema.
async fn check_all(state: &AppState, items: Vec<StartInvocationInput>) -> Result<Vec<Checked>, ApiError> {
    let mut ids: Vec<String> = items.iter().map(|i| i.trigger_id.clone()).collect();
    ids.sort();
    ids.dedup();
    let mut triggers: HashMap<String, Trigger> = HashMap::new();
    for raw in ids {
        let id: TriggerId = raw
            .parse()
            .map_err(|_| ApiError::bad_request(format!("triggerId '{raw}' does not name a trigger")))?;
        let trigger = state.store.run(move |c| store::triggers::get(c, &id)).await.map_err(|e| match e {
            StoreError::NotFound => {
                ApiError::bad_request(format!("triggerId '{raw}' does not name a trigger"))
            }
            other => other.into(),
        })?;
        if !trigger.enabled {
            return Err(ApiError::Conflict(format!(
                "trigger '{}' is disabled; enable it to publish",
                trigger.id
            )));
        }
        triggers.insert(trigger.id.to_string(), trigger);
    }
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            let trigger = &triggers[&item.trigger_id];
            let input = Value::Object(item.input);
            let validator = state.schemas.validator(trigger)?;
            let problems: Vec<String> = validator
                .iter_errors(&input)
                .take(10)
                .map(|e| {
                    format!(
                        "input{}: {e}",
                        if e.instance_path.as_str().is_empty() {
                            String::new()
                        } else {
                            e.instance_path.to_string()
                        }
                    )
                })
                .collect();
            if let Some(first) = problems.first() {
                let at = if index > 0 { format!("event {index}: ") } else { String::new() };
                return Err(ApiError::Unprocessable {
                    message: format!(
                        "{at}the input does not match the input schema of '{}': {first}",
                        trigger.id
                    ),
                    causes: problems,
                });
            }
            let Value::Object(input_map) = &input else { unreachable!("input is an object") };
            let payload = Value::Object(merge_params(&trigger.params, input_map));
            Ok(Checked {
                trigger_id: trigger.id.clone(),
                input: input.to_string(),
                content_json: Value::Object(item.content_json.unwrap_or_default()),
                payload,
            })
        })
        .collect()
}

/// Picks, inside the transaction, the enabled subscriptions whose filter matches each event.
fn fan_out(conn: &mut store::AnyConnection, checked: &[Checked]) -> Result<Vec<NewEvent>, StoreError> {
    let mut subscribers = HashMap::new();
    let mut events = Vec::with_capacity(checked.len());
    for event in checked {
        if !subscribers.contains_key(event.trigger_id.as_str()) {
            let subs = store::subscriptions::enabled_for_trigger(conn, &event.trigger_id)?;
            subscribers.insert(event.trigger_id.to_string(), subs);
        }
        let matching = subscribers[event.trigger_id.as_str()]
            .iter()
            .filter(|s| s.spec.filter.as_ref().is_none_or(|f| f.matches(&event.payload)))
            .map(|s| s.id.clone())
            .collect();
        events.push(NewEvent {
            trigger_id: event.trigger_id.clone(),
            kind: InvocationKind::RealTime,
            input: event.input.clone(),
            content_json: event.content_json.to_string(),
            payload: event.payload.to_string(),
            subscriptions: matching,
        });
    }
    Ok(events)
}
