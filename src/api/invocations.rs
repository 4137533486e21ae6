//! `/trigger-invocations/v1`: test invocations, SailPoint's status list, and hookgate's
//! invocation list and detail.

use actix_web::{HttpResponse, web};
use chrono::TimeDelta;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::auth::Principal;
use super::error::{ApiError, OrNotFound};
use super::list::{ListParams, ListSpec, page_response};
use super::publish::InvocationOut;
use super::{AppState, iso, parse_body};
use crate::domain::event::NewEvent;
use crate::domain::ids::{InvocationId, TriggerId};
use crate::domain::invocation::{InvocationKind, InvocationState, merge_params};
use crate::domain::query::{self, CmpOp, FilterFields};
use crate::domain::schema::Side;
use crate::domain::scope;
use crate::store::invocations::{self as store_invocations, Condition, InvocationView};
use crate::store::{self, StoreError};

/// Reading invocations and their attempts.
const INSPECT: &[&str] =
    &[scope::INVOCATION_STATUS_READ, scope::INVOCATION_STATUS_MANAGE, scope::DEAD_LETTERS_MANAGE];

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
    let problems = state
        .schemas
        .problems(&trigger, Side::Input, &Value::Object(input.clone()))
        .map_err(ApiError::internal)?;
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
    let event = NewEvent::new(
        InvocationKind::Test,
        &trigger.id,
        Value::Object(input).to_string(),
        content_json.to_string(),
        &payload,
        &subs,
    );
    let now = state.clock.now();
    let created = state.store.run(move |c| store::events::insert_test_event(c, &event, now)).await?;
    state.intake.wake();
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

/// Turns a filter of `and`-ed comparisons into store conditions.
pub(super) fn conditions(expr: &query::Expr, out: &mut Vec<Condition>) -> Result<(), ApiError> {
    super::list::all_of(expr, "invocation", out, &|field, op, values| {
        let first = values.first().cloned().unwrap_or_default();
        let upper = |v: &String| v.to_ascii_uppercase();
        Ok(match (field, op) {
            ("triggerId", _) => Condition::TriggerIs(first),
            ("subscriptionId", _) => Condition::SubscriptionIs(first.to_ascii_lowercase()),
            ("state", _) => Condition::StateIn(values.iter().map(upper).collect()),
            ("type", _) => Condition::KindIs(upper(&first)),
            ("created", op) => match super::list::time_bound(op, &first)? {
                super::list::TimeBound::AtLeast(at) => Condition::CreatedAtLeast(at),
                super::list::TimeBound::Before(at) => Condition::CreatedBefore(at),
            },
            (other, _) => {
                return Err(ApiError::bad_request(format!("filtering on '{other}' is not supported")));
            }
        })
    })
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
            let replays = store::replays::replays_of(c, &id)?;
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
