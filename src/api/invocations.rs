//! `/trigger-invocations/v1`: publishing events (`start`), test invocations, SailPoint's status
//! list, and hookgate's invocation list and detail.

use std::collections::HashMap;
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use chrono::TimeDelta;

use super::auth::Principal;
use super::error::{ApiError, OrNotFound};
use super::list::{ListParams, ListSpec, page_response, parse_flag};
use super::{AppState, iso, json_from_bytes, parse_body, read_body};
use crate::domain::duration::IsoDuration;
use crate::domain::ids::{InvocationId, TriggerId};
use crate::domain::invocation::{Invocation, InvocationKind, InvocationState, merge_params};
use crate::domain::query::{self, CmpOp, FilterFields};
use crate::domain::schema::Side;
use crate::domain::scope;
use crate::domain::trigger::Trigger;
use crate::domain::trigger::TriggerType;
use crate::store::invocations::{
    self as store_invocations, CompleteRefusal, Condition, InvocationView, NewEvent, Remembered,
    ReplayRefusal,
};
use crate::store::{self, StoreError, write_transaction};

fn internal(message: String) -> ApiError {
    ApiError::Internal(anyhow::anyhow!(message))
}

const PUBLISH: &[&str] = &[scope::EVENTS_PUBLISH];
/// Reading invocations and their attempts.
const INSPECT: &[&str] =
    &[scope::INVOCATION_STATUS_READ, scope::INVOCATION_STATUS_MANAGE, scope::DEAD_LETTERS_MANAGE];
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
    id: String,
    trigger_id: String,
    subscription_id: String,
    secret: String,
    content_json: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    state: Option<InvocationState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    output: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    completed: Option<String>,
}

impl InvocationOut {
    fn new(i: &Invocation, content_json: &Value) -> Self {
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

/// Finished: delivered (with its output, for `REQUEST_RESPONSE`) or dead.
fn finished(state: InvocationState) -> bool {
    matches!(state, InvocationState::Delivered | InvocationState::Dead)
}

/// Waits up to `wait` for every invocation in `lists` to finish, then fills in how each ended.
async fn await_results(
    state: &AppState,
    mut lists: Vec<Vec<InvocationOut>>,
    wait: Duration,
) -> Result<Vec<Vec<InvocationOut>>, ApiError> {
    let until = tokio::time::Instant::now() + wait;
    let ids: Vec<String> = lists.iter().flatten().map(|i| i.id.clone()).collect();
    let mut pause = Duration::from_millis(10);
    let found = loop {
        let wanted = ids.clone();
        let found = state
            .store
            .run(move |c| {
                let refs: Vec<&str> = wanted.iter().map(String::as_str).collect();
                store_invocations::by_ids(c, &refs)
            })
            .await?;
        let now = tokio::time::Instant::now();
        if found.iter().all(|i| finished(i.state)) || now >= until {
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
    let (body, replayed) = match answer {
        Answer::Created(body) => {
            state.wake_workers.notify_waiters();
            (body, false)
        }
        Answer::Replayed(body) => (body, true),
        Answer::KeyReused => {
            return Err(ApiError::Conflict(
                "this Idempotency-Key was already used for a different request; use a new key".into(),
            ));
        }
    };
    let body = match wait {
        None => body,
        Some(wait) => {
            let lists: Vec<Vec<InvocationOut>> = if batch {
                serde_json::from_str(&body)
            } else {
                serde_json::from_str(&body).map(|one| vec![one])
            }
            .map_err(|e| ApiError::Internal(e.into()))?;
            let mut lists = await_results(&state, lists, wait).await?;
            if batch { serde_json::to_string(&lists) } else { serde_json::to_string(&lists.remove(0)) }
                .map_err(|e| ApiError::Internal(e.into()))?
        }
    };
    let mut response = HttpResponse::Ok();
    response.content_type("application/json");
    if replayed {
        response.insert_header(("Idempotent-Replayed", "true"));
    }
    Ok(response.body(body))
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
            let problems = state.schemas.problems(trigger, Side::Input, &input).map_err(internal)?;
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

/// Picks, inside the transaction, the enabled subscriptions whose filter matches each event, and
/// those switched off by a 410 (they keep the event as a dead letter to replay later).
fn fan_out(conn: &mut store::AnyConnection, checked: &[Checked]) -> Result<Vec<NewEvent>, StoreError> {
    let mut subscribers = HashMap::new();
    let mut events = Vec::with_capacity(checked.len());
    for event in checked {
        if !subscribers.contains_key(event.trigger_id.as_str()) {
            let subs = store::subscriptions::all_for_trigger(conn, &event.trigger_id)?;
            subscribers.insert(event.trigger_id.to_string(), subs);
        }
        events.push(NewEvent::real_time(
            &event.trigger_id,
            event.input.clone(),
            event.content_json.to_string(),
            &event.payload,
            &subscribers[event.trigger_id.as_str()],
        ));
    }
    Ok(events)
}

/// SailPoint's `TestInvocation`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TestInvocationIn {
    trigger_id: String,
    input: Option<Map<String, Value>>,
    content_json: Map<String, Value>,
    subscription_ids: Option<Vec<String>>,
}

/// Sends a test event (the given input, or the trigger's example) to every subscription of the
/// trigger, or to `subscriptionIds`, disabled ones included; filters still apply. 204 when
/// nothing subscribes.
pub async fn test(
    auth: Principal,
    state: web::Data<AppState>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    auth.require(&[scope::INVOCATION_STATUS_MANAGE])?;
    let request: TestInvocationIn = parse_body(body.into_inner())?;
    let raw = request.trigger_id.clone();
    let id: TriggerId = raw
        .parse()
        .map_err(|_| ApiError::bad_request(format!("triggerId '{raw}' does not name a trigger")))?;
    let trigger = state.store.run(move |c| store::triggers::get(c, &id)).await.map_err(|e| match e {
        StoreError::NotFound => ApiError::bad_request(format!("triggerId '{raw}' does not name a trigger")),
        other => other.into(),
    })?;
    let input = match request.input {
        Some(input) => input,
        None => match &trigger.example_input {
            Value::Object(example) => example.clone(),
            _ => Map::new(),
        },
    };
    let problems =
        state.schemas.problems(&trigger, Side::Input, &Value::Object(input.clone())).map_err(internal)?;
    if let Some(first) = problems.first() {
        return Err(ApiError::BadRequest {
            message: format!("the input does not match the input schema of '{}': {first}", trigger.id),
            causes: problems,
        });
    }
    let payload = Value::Object(merge_params(&trigger.params, &input));
    let content_json = Value::Object(request.content_json);
    let trigger_id = trigger.id.clone();
    let mut subs = state.store.run(move |c| store::subscriptions::all_for_trigger(c, &trigger_id)).await?;
    if let Some(wanted) = &request.subscription_ids {
        if let Some(stranger) =
            wanted.iter().find(|w| !subs.iter().any(|s| s.id.as_str().eq_ignore_ascii_case(w)))
        {
            return Err(ApiError::bad_request(format!(
                "subscription '{stranger}' does not subscribe to '{}'",
                trigger.id
            )));
        }
        subs.retain(|s| wanted.iter().any(|w| s.id.as_str().eq_ignore_ascii_case(w)));
    }
    if subs.is_empty() {
        return Ok(HttpResponse::NoContent().finish());
    }
    let event = NewEvent {
        trigger_id: trigger.id.clone(),
        kind: InvocationKind::Test,
        input: Value::Object(input).to_string(),
        content_json: content_json.to_string(),
        subscriptions: subs
            .iter()
            .filter(|s| s.spec.filter.as_ref().is_none_or(|f| f.matches(&payload)))
            .map(|s| s.id.clone())
            .collect(),
        payload: payload.to_string(),
        held: Vec::new(),
    };
    let now = state.clock.now();
    let created = state.store.run(move |c| store_invocations::insert_test_event(c, &event, now)).await?;
    state.wake_workers.notify_waiters();
    let out: Vec<InvocationOut> = created.iter().map(|i| InvocationOut::new(i, &content_json)).collect();
    Ok(HttpResponse::Ok().json(out))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StartInvocationInputOut {
    trigger_id: String,
    input: Value,
    content_json: Value,
}

#[derive(Serialize)]
struct LocalizedMessage {
    locale: &'static str,
    message: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CompleteInvocationInputOut {
    localized_error: Option<LocalizedMessage>,
    output: Option<Value>,
}

/// SailPoint's `InvocationStatus`, plus delivery state for the hookgate list and get endpoints.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct InvocationStatusOut {
    id: String,
    trigger_id: String,
    subscription_id: String,
    subscription_name: String,
    #[serde(rename = "type")]
    kind: InvocationKind,
    created: String,
    completed: Option<String>,
    start_invocation_input: StartInvocationInputOut,
    complete_invocation_input: CompleteInvocationInputOut,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<InvocationState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    attempts: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_attempt_at: Option<String>,
    /// An awaiting invocation's response deadline.
    #[serde(skip_serializing_if = "Option::is_none")]
    respond_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    attempt_log: Option<Vec<AttemptOut>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    replays: Option<Vec<ReplayOut>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReplayOut {
    by: String,
    at: String,
    forced: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AttemptOut {
    attempt: i32,
    started: String,
    duration_ms: i32,
    status: Option<i32>,
    response: Option<String>,
    error: Option<String>,
}

impl InvocationStatusOut {
    pub(super) fn new(view: InvocationView, detailed: bool) -> Self {
        let i = view.invocation;
        let failed = i.state == InvocationState::Dead;
        Self {
            id: i.id.to_string(),
            trigger_id: i.trigger_id.to_string(),
            subscription_id: i.subscription_id.to_string(),
            subscription_name: view.subscription_name.unwrap_or_default(),
            kind: i.kind,
            created: iso(i.created),
            completed: i.completed.map(iso),
            start_invocation_input: StartInvocationInputOut {
                trigger_id: i.trigger_id.to_string(),
                input: serde_json::from_str(&view.input).unwrap_or(Value::Null),
                content_json: serde_json::from_str(&view.content_json).unwrap_or(Value::Null),
            },
            complete_invocation_input: CompleteInvocationInputOut {
                localized_error: failed.then(|| LocalizedMessage {
                    locale: "en-US",
                    message: i.last_error.clone().unwrap_or_else(|| "delivery failed".into()),
                }),
                output: i.output.as_deref().and_then(|o| serde_json::from_str(o).ok()),
            },
            state: detailed.then_some(i.state),
            attempts: detailed.then_some(i.attempts),
            next_attempt_at: (detailed && i.state == InvocationState::Pending)
                .then(|| iso(i.next_attempt_at)),
            respond_by: (detailed && i.state == InvocationState::Awaiting).then(|| iso(i.next_attempt_at)),
            last_error: if detailed { i.last_error } else { None },
            attempt_log: None,
            replays: None,
        }
    }
}

fn status_field(v: &InvocationStatusOut, name: &str) -> Option<String> {
    match name {
        "triggerId" => Some(v.trigger_id.clone()),
        "subscriptionId" => Some(v.subscription_id.clone()),
        "subscriptionName" => Some(v.subscription_name.clone()),
        "created" => Some(v.created.clone()),
        "completed" => v.completed.clone(),
        _ => None,
    }
}

const STATUS_LIST: ListSpec<InvocationStatusOut> = ListSpec {
    filters: &[("triggerId", &[CmpOp::Eq]), ("subscriptionId", &[CmpOp::Eq])],
    sorters: &["triggerId", "subscriptionName", "created", "completed"],
    field: status_field,
};

/// The most statuses SailPoint's endpoint returns.
const STATUS_CAP: i64 = 2000;

/// SailPoint's latest invocation statuses: delivered ones for 24 h, failed ones for 48 h, at
/// most 2000, newest first.
pub async fn status(
    auth: Principal,
    state: web::Data<AppState>,
    params: web::Query<ListParams>,
) -> Result<HttpResponse, ApiError> {
    auth.require(&[scope::INVOCATION_STATUS_READ, scope::INVOCATION_STATUS_MANAGE])?;
    let now = state.clock.now();
    let since = now - TimeDelta::hours(48);
    let (views, _) = state
        .store
        .run(move |c| store_invocations::list(c, &[Condition::CreatedAtLeast(since)], false, 0, STATUS_CAP))
        .await?;
    let day_ago = now - TimeDelta::hours(24);
    let statuses: Vec<InvocationStatusOut> = views
        .into_iter()
        .filter(|v| {
            !(v.invocation.state == InvocationState::Delivered
                && v.invocation.completed.is_some_and(|c| c < day_ago))
        })
        .map(|v| InvocationStatusOut::new(v, false))
        .collect();
    params.respond(statuses, &STATUS_LIST, |s| s)
}

pub(super) const LIST_FILTERS: FilterFields = &[
    ("triggerId", &[CmpOp::Eq]),
    ("subscriptionId", &[CmpOp::Eq]),
    ("state", &[CmpOp::Eq, CmpOp::In]),
    ("type", &[CmpOp::Eq]),
    ("created", &[CmpOp::Ge, CmpOp::Gt, CmpOp::Le, CmpOp::Lt]),
];

/// The list's filters but `state` (dead letters are all DEAD).
pub(super) const DEAD_LETTER_FILTERS: FilterFields =
    &[LIST_FILTERS[0], LIST_FILTERS[1], LIST_FILTERS[3], LIST_FILTERS[4]];

fn timestamp(value: &str) -> Result<NaiveDateTime, ApiError> {
    chrono::DateTime::parse_from_rfc3339(value).map(|t| t.naive_utc()).map_err(|_| {
        ApiError::bad_request(format!("'{value}' is not an ISO-8601 time such as 2026-01-01T00:00:00Z"))
    })
}

/// Turns a filter of `and`-ed comparisons into store conditions.
pub(super) fn conditions(expr: &query::Expr, out: &mut Vec<Condition>) -> Result<(), ApiError> {
    match expr {
        query::Expr::And(a, b) => {
            conditions(a, out)?;
            conditions(b, out)
        }
        query::Expr::Or(..) | query::Expr::Not(_) => {
            Err(ApiError::bad_request("invocation filters combine comparisons with 'and' only"))
        }
        query::Expr::Cmp { field, op, values } => {
            let first = values.first().cloned().unwrap_or_default();
            let upper = |v: &String| v.to_ascii_uppercase();
            out.push(match (field.as_str(), op) {
                ("triggerId", _) => Condition::TriggerIs(first),
                ("subscriptionId", _) => Condition::SubscriptionIs(first.to_ascii_lowercase()),
                ("state", _) => Condition::StateIn(values.iter().map(upper).collect()),
                ("type", _) => Condition::KindIs(upper(&first)),
                ("created", CmpOp::Ge) => Condition::CreatedAtLeast(timestamp(&first)?),
                ("created", CmpOp::Gt) => {
                    Condition::CreatedAtLeast(timestamp(&first)? + TimeDelta::microseconds(1))
                }
                ("created", CmpOp::Lt) => Condition::CreatedBefore(timestamp(&first)?),
                ("created", _) => Condition::CreatedBefore(timestamp(&first)? + TimeDelta::microseconds(1)),
                (other, _) => {
                    return Err(ApiError::bad_request(format!("filtering on '{other}' is not supported")));
                }
            });
            Ok(())
        }
    }
}

/// Every invocation, any state, newest first: filters `triggerId`, `subscriptionId`, `state`
/// (eq, in), `type`, `created` (ge, gt, le, lt) joined by `and`; sorters `created` or `-created`.
pub async fn list(
    auth: Principal,
    state: web::Data<AppState>,
    params: web::Query<ListParams>,
) -> Result<HttpResponse, ApiError> {
    auth.require(INSPECT)?;
    let page = params.page()?;
    let mut conds = Vec::new();
    if let Some(text) = params.filters() {
        conditions(&query::parse_filters(text, LIST_FILTERS).map_err(ApiError::bad_request)?, &mut conds)?;
    }
    let oldest_first = match params.sorters().map(str::trim).filter(|s| !s.is_empty()) {
        None | Some("-created") => false,
        Some("created") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "sorting on '{other}' is not supported; use created or -created"
            )));
        }
    };
    let (offset, limit) = (i64::from(page.offset), i64::from(page.limit));
    let (views, total) =
        state.store.run(move |c| store_invocations::list(c, &conds, oldest_first, offset, limit)).await?;
    let out: Vec<InvocationStatusOut> =
        views.into_iter().map(|v| InvocationStatusOut::new(v, true)).collect();
    Ok(page_response(out, page.count.then_some(usize::try_from(total).unwrap_or(0))))
}

/// One invocation with every attempt made for it.
pub async fn get(
    auth: Principal,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    auth.require(INSPECT)?;
    let raw = id.into_inner();
    let id: InvocationId =
        raw.parse().map_err(|_| ApiError::NotFound(format!("invocation '{raw}' was not found")))?;
    let label = id.to_string();
    let found = state
        .store
        .run(move |c| {
            let (mut views, _) = store_invocations::list(c, &[Condition::IdIs(id.to_string())], false, 0, 1)?;
            let attempts = store_invocations::attempts_of(c, &id)?;
            let replays = store_invocations::replays_of(c, &id)?;
            Ok((views.pop(), attempts, replays))
        })
        .await
        .or_not_found(|| format!("invocation '{label}'"))?;
    let (Some(view), attempts, replays) = found else {
        return Err(ApiError::NotFound(format!("invocation '{label}' was not found")));
    };
    let mut out = InvocationStatusOut::new(view, true);
    out.attempt_log = Some(
        attempts
            .into_iter()
            .map(|a| AttemptOut {
                attempt: a.attempt,
                started: iso(a.started),
                duration_ms: a.duration_ms,
                status: a.status,
                response: a.response,
                error: a.error,
            })
            .collect(),
    );
    out.replays =
        Some(replays.into_iter().map(|(by, at, forced)| ReplayOut { by, at: iso(at), forced }).collect());
    Ok(HttpResponse::Ok().json(out))
}

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
            if let Err(refusal) = store_invocations::replay(c, &id, &by, force, now)? {
                return Ok(Err(refusal));
            }
            let (mut views, _) = store_invocations::list(c, &[Condition::IdIs(id.to_string())], false, 0, 1)?;
            views.pop().map(Ok).ok_or(StoreError::NotFound)
        })
        .await
        .or_not_found(|| format!("invocation '{label}'"))?;
    match outcome {
        Ok(view) => {
            state.wake_workers.notify_waiters();
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
            let problems = state.schemas.problems(&trigger, Side::Output, &output).map_err(internal)?;
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
        .run(move |c| store_invocations::complete(c, &id, result.as_deref().map_err(String::as_str), now))
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
