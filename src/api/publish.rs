//! `POST /trigger-invocations/v1/start`: publishing events. One store call stores the events and
//! their invocations; those this instance has room for are created leased to it and handed to
//! its dispatcher in memory, the rest wait in the database for any instance to claim.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::auth::Principal;
use super::error::ApiError;
use super::{AppState, iso, json_from_bytes, parse_body, read_body};
use crate::domain::duration::IsoDuration;
use crate::domain::ids::TriggerId;
use crate::domain::invocation::{Invocation, InvocationState};
use crate::domain::schema::Side;
use crate::domain::scope;
use crate::domain::trigger::Trigger;
use crate::store::events::{Draft, Published};
use crate::store::idempotency::IdempotencyKey;
use crate::store::{self, StoreError};

const PUBLISH: &[&str] = &[scope::EVENTS_PUBLISH];
/// The most events one request may publish.
const MAX_BATCH: usize = 1000;

/// SailPoint's `StartInvocationInput`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StartInvocationInput {
    trigger_id: String,
    input: Map<String, Value>,
    #[serde(default)]
    content_json: Option<Map<String, Value>>,
}

/// SailPoint's `Invocation`, plus the subscription it goes to and, when the producer waited,
/// how the invocation ended.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvocationOut {
    pub(super) id: String,
    trigger_id: String,
    subscription_id: String,
    secret: String,
    content_json: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) state: Option<InvocationState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) output: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    completed: Option<String>,
}

impl InvocationOut {
    pub(super) fn new(i: &Invocation, content_json: &Value) -> Self {
        Self {
            id: i.id.to_string(),
            trigger_id: i.trigger_id.to_string(),
            subscription_id: i.subscription_id.to_string(),
            secret: i.secret.clone(),
            content_json: content_json.clone(),
            state: None,
            output: None,
            error: None,
            completed: None,
        }
    }
}

#[derive(Deserialize)]
pub struct WaitParam {
    #[serde(default)]
    wait: Option<String>,
}

impl WaitParam {
    /// `wait` as an ISO-8601 duration (`PT10S`) or a short one (`10s`), capped at `max`.
    fn duration(&self, max: Duration) -> Result<Option<Duration>, ApiError> {
        let Some(text) = self.wait.as_deref().map(str::trim).filter(|t| !t.is_empty()) else {
            return Ok(None);
        };
        let wait = text
            .parse::<IsoDuration>()
            .map(|d| d.duration())
            .or_else(|_| crate::config::parse_duration(text))
            .map_err(|_| {
                ApiError::bad_request(format!("wait: '{text}' is not a duration such as PT10S or 10s"))
            })?;
        Ok(Some(wait.min(max)))
    }
}

/// Waits up to `wait` for every invocation in `lists` to finish, then fills in how each ended.
pub(super) async fn await_results(
    state: &AppState,
    mut lists: Vec<Vec<InvocationOut>>,
    wait: Duration,
) -> Result<Vec<Vec<InvocationOut>>, ApiError> {
    let until = tokio::time::Instant::now() + wait;
    let ids: Vec<String> = lists.iter().flatten().map(|i| i.id.clone()).collect();
    if ids.is_empty() {
        return Ok(lists);
    }
    let mut pause = Duration::from_millis(10);
    let found = loop {
        let wanted = ids.clone();
        let found = state
            .store
            .run(move |c| {
                let refs: Vec<&str> = wanted.iter().map(String::as_str).collect();
                store::invocations::by_ids(c, &refs)
            })
            .await?;
        let now = tokio::time::Instant::now();
        if found.iter().all(|i| i.state.is_finished()) || now >= until {
            break found;
        }
        tokio::time::sleep(pause.min(until - now)).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    };
    let by_id: HashMap<String, Invocation> = found.into_iter().map(|i| (i.id.to_string(), i)).collect();
    for out in lists.iter_mut().flatten() {
        if let Some(i) = by_id.get(&out.id) {
            out.state = Some(i.state);
            out.output = i.output.as_deref().and_then(|o| serde_json::from_str(o).ok());
            out.error = if i.state == InvocationState::Dead { i.last_error.clone() } else { None };
            out.completed = i.completed.map(iso);
        }
    }
    Ok(lists)
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
    query: web::Query<WaitParam>,
) -> Result<HttpResponse, ApiError> {
    auth.require(PUBLISH)?;
    let wait = query.duration(state.settings.max_wait)?;
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
    let (mut drafts, content) = check_all(&state, items).await?;
    if let Some(trace) = trace_of(&req) {
        for draft in &mut drafts {
            draft.trace = trace;
        }
    }
    let key = key.map(|key| IdempotencyKey {
        key,
        request_hash: crate::domain::secret::hash(&format!(
            "{}\n{}",
            req.path(),
            String::from_utf8_lossy(&body)
        )),
        ttl: state.settings.idempotency_ttl,
    });
    let published = state.publisher.publish(drafts, key, state.clock.now()).await?;
    let (lists, replayed) = match published {
        Published::Created(invocations) => (invocations, false),
        Published::Replayed(invocations, _) => (invocations, true),
        Published::ReplayedBody(body) => return Ok(respond(body, true)),
        Published::KeyReused => {
            return Err(ApiError::Conflict(
                "this Idempotency-Key was already used for a different request; use a new key".into(),
            ));
        }
    };
    let mut lists: Vec<Vec<InvocationOut>> = lists
        .iter()
        .zip(&content)
        .map(|(list, content_json)| list.iter().map(|i| InvocationOut::new(i, content_json)).collect())
        .collect();
    if let Some(wait) = wait {
        lists = await_results(&state, lists, wait).await?;
    }
    let body =
        if batch { serde_json::to_string(&lists) } else { serde_json::to_string(&lists.swap_remove(0)) }
            .map_err(|e| ApiError::Internal(e.into()))?;
    Ok(respond(body, replayed))
}

fn respond(body: String, replayed: bool) -> HttpResponse {
    let mut response = HttpResponse::Ok();
    response.content_type("application/json");
    if replayed {
        response.insert_header(("Idempotent-Replayed", "true"));
    }
    response.body(body)
}

/// The trigger `raw` names, if it exists, is enabled and is not one hookgate publishes on.
pub(super) async fn live_trigger(state: &AppState, raw: &str) -> Result<Arc<Trigger>, ApiError> {
    let unknown = || ApiError::bad_request(format!("triggerId '{raw}' does not name a trigger"));
    let id: TriggerId = raw.parse().map_err(|_| unknown())?;
    let trigger = state.triggers.get(&state.store, &id).await.map_err(|e| match e {
        StoreError::NotFound => unknown(),
        other => other.into(),
    })?;
    if crate::domain::catalog::is_operational(trigger.id.as_str()) {
        return Err(ApiError::bad_request(format!(
            "trigger '{}' is one of hookgate's operational triggers: only hookgate publishes on it",
            trigger.id
        )));
    }
    if !trigger.enabled {
        return Err(ApiError::Conflict(format!(
            "trigger '{}' is disabled; enable it to publish",
            trigger.id
        )));
    }
    Ok(trigger)
}

/// Checks `input` against the trigger's input schema (422 naming the path; `at` says which
/// event of a batch) and makes the draft to publish.
pub(super) fn draft_of(
    state: &AppState,
    trigger: &Trigger,
    input: Map<String, Value>,
    content_json: &Value,
    at: &str,
) -> Result<Draft, ApiError> {
    let input = Value::Object(input);
    let problems = state.schemas.problems(trigger, Side::Input, &input).map_err(ApiError::internal)?;
    if let Some(first) = problems.first() {
        return Err(ApiError::Unprocessable {
            message: format!("{at}the input does not match the input schema of '{}': {first}", trigger.id),
            causes: problems,
        });
    }
    let Value::Object(input) = &input else { unreachable!("input is an object") };
    Ok(Draft::new(trigger, input, content_json))
}

/// The producer's W3C `traceparent`, when it sent a valid one: its events join that trace.
fn trace_of(req: &HttpRequest) -> Option<crate::domain::trace::TraceParent> {
    let header = req.headers().get("traceparent")?.to_str().ok()?;
    crate::domain::trace::TraceParent::parse(header)
}

/// Checks every event against its trigger: known, enabled, input valid for its schema.
/// Returns the drafts, and each event's `contentJson` as the answer shows it.
async fn check_all(
    state: &AppState,
    items: Vec<StartInvocationInput>,
) -> Result<(Vec<Draft>, Vec<Value>), ApiError> {
    let mut ids: Vec<String> = items.iter().map(|i| i.trigger_id.clone()).collect();
    ids.sort();
    ids.dedup();
    let mut triggers: HashMap<String, Arc<Trigger>> = HashMap::new();
    for raw in ids {
        let trigger = live_trigger(state, &raw).await?;
        triggers.insert(raw, trigger);
    }
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            let at = if index > 0 { format!("event {index}: ") } else { String::new() };
            let content = Value::Object(item.content_json.unwrap_or_default());
            let draft = draft_of(state, &triggers[&item.trigger_id], item.input, &content, &at)?;
            Ok((draft, content))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(|checked| checked.into_iter().unzip())
}
