//! `/hooks/v1/{id}` (and `/hooks/v1/{id}/{token}` for a source without signatures): where
//! senders deliver to a WEBHOOK source. No bearer token: the sender's signature, checked as
//! that sender signs, is what lets a message in. A message the source refuses is answered with
//! SailPoint's error body, stores nothing, and is kept among the source's rejections.

use std::collections::BTreeMap;
use std::sync::Arc;

use actix_web::http::Method;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::error::ApiError;
use super::publish::{InvocationOut, await_results, draft_of, live_trigger};
use super::{AppState, read_body};
use crate::domain::ids::SourceId;
use crate::domain::invocation::{Invocation, InvocationState};
use crate::domain::secret::constant_time_eq;
use crate::domain::source::verify::{self, Headers};
use crate::domain::source::{
    HookMethod, RejectReason, Rejection, ResponseMode, Source, SourceType, Verification, WebhookConfig,
};
use crate::store::StoreError;
use crate::store::events::Published;
use crate::store::idempotency::IdempotencyKey;

/// The sender's own id of a delivery, which a redelivery repeats; a sender without one may send
/// an `Idempotency-Key`.
fn delivery_id(verification: Verification, headers: &Headers<'_>, document: &Value) -> Option<String> {
    let id = match verification {
        Verification::StandardWebhooks => headers.get("webhook-id").map(str::to_owned),
        Verification::Github => headers.get("X-GitHub-Delivery").map(str::to_owned),
        Verification::Stripe => document.get("id").and_then(Value::as_str).map(str::to_owned),
        Verification::HmacSha256 | Verification::None => headers.get("Idempotency-Key").map(str::to_owned),
    };
    id.filter(|id| !id.is_empty() && id.len() <= 200)
}

/// The source a path names, if it takes messages there.
async fn source_at(state: &AppState, req: &HttpRequest) -> Result<Arc<Source>, ApiError> {
    let raw = req.match_info().get("id").unwrap_or_default();
    let not_found = || ApiError::NotFound(format!("no source '{raw}' takes messages at this URL"));
    let id: SourceId = raw.parse().map_err(|_| not_found())?;
    let source = match state.sources.get(&state.store, &id).await {
        Err(StoreError::NotFound) => return Err(not_found()),
        other => other?,
    };
    let Some(hook) = source.spec.webhook.as_ref().filter(|_| source.spec.kind == SourceType::Webhook) else {
        return Err(not_found());
    };
    let token = req.match_info().get("token");
    let matches = match (hook.verification, token, &source.hook_token) {
        (Verification::None, Some(given), Some(expected)) => constant_time_eq(given, expected.expose()),
        (Verification::None, _, _) | (_, Some(_), _) => false,
        (_, None, _) => true,
    };
    if matches { Ok(source) } else { Err(not_found()) }
}

/// A message that passed its source's checks.
struct Message<'a> {
    source: &'a Source,
    headers: Headers<'a>,
    document: Value,
    body: &'a [u8],
    now: chrono::NaiveDateTime,
}

/// Takes a message for a WEBHOOK source and fires its event.
pub async fn receive(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let source = source_at(&state, &req).await?;
    let hook = source
        .spec
        .webhook
        .as_ref()
        .ok_or_else(|| ApiError::internal("a webhook source without its settings".into()))?;
    let method = if req.method() == Method::GET { HookMethod::Get } else { HookMethod::Post };
    if !hook.methods.contains(&method) {
        let allow: Vec<&str> =
            hook.methods.iter().map(|m| if *m == HookMethod::Get { "GET" } else { "POST" }).collect();
        return Err(ApiError::MethodNotAllowed {
            message: format!("source '{}' takes {}", source.id, allow.join(", ")),
            allow: allow.join(", "),
        });
    }
    let body = read_body(payload, state.settings.max_body_size).await?;
    let now = state.clock.now();
    state.tally.received(&source.id);
    let refuse = |reason: RejectReason, error: ApiError| {
        state.tally.rejected(&source.id, now, &Rejection::new(reason, error.to_string()), &body);
        Err(error)
    };
    if !source.spec.enabled {
        return refuse(
            RejectReason::Disabled,
            ApiError::Conflict(format!("source '{}' is disabled", source.id)),
        );
    }
    let headers =
        Headers(req.headers().iter().filter_map(|(n, v)| Some((n.as_str(), v.to_str().ok()?))).collect());
    let secret = hook.secret.as_deref().unwrap_or_default();
    let signed_at = now.and_utc().timestamp();
    if let Err(refusal) =
        verify::verify(hook.verification, secret, hook.header.as_deref(), &headers, &body, signed_at)
    {
        return refuse(
            RejectReason::BadSignature,
            ApiError::Unauthorized(format!("the signature was not accepted: {refusal}")),
        );
    }
    let document = match method {
        HookMethod::Get => {
            let pairs: BTreeMap<String, String> = serde_urlencoded::from_str(req.query_string())
                .map_err(|e| ApiError::bad_request(format!("the query string could not be read: {e}")))?;
            Value::Object(pairs.into_iter().map(|(k, v)| (k, Value::String(v))).collect())
        }
        HookMethod::Post => match super::json_from_bytes(&req, &body) {
            Ok(document) => document,
            Err(error) => return refuse(RejectReason::NotJson, error),
        },
    };
    fire(&state, Message { source: &source, headers, document, body: &body, now }, hook).await
}

/// Publishes the event a checked message makes, and answers its sender.
async fn fire(
    state: &AppState,
    message: Message<'_>,
    hook: &WebhookConfig,
) -> Result<HttpResponse, ApiError> {
    let Message { source, headers, document, body, now } = message;
    let refuse = |reason: RejectReason, error: ApiError| {
        state.tally.rejected(&source.id, now, &Rejection::new(reason, error.to_string()), body);
        Err(error)
    };
    let header = |name: &str| headers.get(name).map(str::to_owned);
    let (trigger_id, input) = match source.spec.event_of(&document, header) {
        Ok(event) => event,
        Err(r) if r.reason == RejectReason::UnknownRoute => {
            state.tally.rejected(&source.id, now, &r, body);
            return Ok(HttpResponse::Accepted().json(json!({"eventId": null, "invocations": 0})));
        }
        Err(r) => return refuse(r.reason, ApiError::bad_request(r.message)),
    };
    let trigger = match live_trigger(state, trigger_id.as_str()).await {
        Ok(trigger) => trigger,
        Err(error @ ApiError::Conflict(_)) => return refuse(RejectReason::Disabled, error),
        Err(error) => return Err(error),
    };
    let mut draft = match draft_of(state, &trigger, input, &json!({}), "") {
        Ok(draft) => draft,
        Err(error @ ApiError::Unprocessable { .. }) => return refuse(RejectReason::InputSchema, error),
        Err(error) => return Err(error),
    };
    let key = delivery_id(hook.verification, &headers, &document).map(|delivery| IdempotencyKey {
        request_hash: crate::domain::secret::hash(&format!("{}\n{delivery}", source.id)),
        key: format!("source:{}:{delivery}", source.id),
        ttl: state.settings.idempotency_ttl,
    });
    if let Some(trace) = headers.get("traceparent").and_then(crate::domain::trace::TraceParent::parse) {
        draft.trace = trace;
    }
    let event_id = draft.event_id.clone();
    let published = state.publisher.publish(vec![draft], key, now).await?;
    let (mut lists, event_id, replayed) = match published {
        Published::Created(lists) => {
            state.tally.fired(&source.id, now);
            (lists, Some(event_id), false)
        }
        Published::Replayed(lists, ids) => {
            let id = ids.into_iter().next().or_else(|| lists.first()?.first().map(|i| i.event_id.clone()));
            (lists, id, true)
        }
        Published::ReplayedBody(_) | Published::KeyReused => (Vec::new(), None, true),
    };
    let invocations = lists.pop().unwrap_or_default();
    if replayed {
        let answer = json!({"eventId": event_id, "invocations": invocations.len()});
        return Ok(HttpResponse::Ok().insert_header(("Idempotent-Replayed", "true")).json(answer));
    }
    if hook.response == ResponseMode::Async {
        return Ok(
            HttpResponse::Accepted().json(json!({"eventId": event_id, "invocations": invocations.len()}))
        );
    }
    answer_sync(state, &invocations, event_id).await
}

/// A SYNC source answers with its subscriber's output, or 504 with the state it reached.
async fn answer_sync(
    state: &AppState,
    invocations: &[Invocation],
    event_id: Option<String>,
) -> Result<HttpResponse, ApiError> {
    let outs = vec![invocations.iter().map(|i| InvocationOut::new(i, &json!({}))).collect::<Vec<_>>()];
    let waited = await_results(state, outs, state.settings.max_wait).await?;
    match waited.into_iter().flatten().next() {
        Some(out) if out.state == Some(InvocationState::Delivered) => {
            Ok(HttpResponse::Ok().json(out.output.unwrap_or(Value::Null)))
        }
        other => Ok(HttpResponse::GatewayTimeout().json(json!({
            "eventId": event_id,
            "invocationId": other.as_ref().map(|o| o.id.clone()),
            "state": other.as_ref().and_then(|o| o.state),
            "error": other.and_then(|o| o.error).or_else(|| Some("no subscriber answered within the response timeout".into())),
        }))),
    }
}
