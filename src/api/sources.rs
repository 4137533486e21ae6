//! `/sources/v1`: where events come from besides `start` (a hookgate extension, in SailPoint's
//! style): create, list, read, replace, patch, delete, and the messages a source refused.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::audit::{NOTHING, entry};
use super::auth::Principal;
use super::error::{ApiError, OrNotFound};
use super::list::{ListParams, ListSpec};
use super::{iso, patch};
use crate::domain::filter::Filter;
use crate::domain::ids::{SourceId, TriggerId};
use crate::domain::query::CmpOp;
use crate::domain::scope;
use crate::domain::secret::{self, Secret};
use crate::domain::source::broker::BrokerUrl;
use crate::domain::source::poll::Fetch;
use crate::domain::source::{
    AmqpConfig, MonitorConfig, NatsConfig, PollConfig, RedisStreamConfig, RejectReason, Routes, RoutesDoc,
    Source, SourceSpec, SourceType, Verification, WebhookConfig,
};
use crate::store::audit::audited;
use crate::store::{self, StoreError};

const MANAGE: &[&str] = &[scope::SOURCES_MANAGE];
const PATCHABLE: &[&str] = &[
    "name",
    "type",
    "triggerId",
    "enabled",
    "inputPath",
    "routes",
    "webhookConfig",
    "pollConfig",
    "monitorConfig",
    "redisStreamConfig",
    "natsConfig",
    "amqpConfig",
];

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusOut {
    received: i64,
    fired: i64,
    rejected: i64,
    last_event_at: Option<String>,
    last_error: Option<String>,
}

/// A source's settings as every read shows them (and a PATCH edits them): write-only fields
/// (webhook secrets, fetch headers, broker passwords) left out or masked.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SettingsOut {
    name: String,
    #[serde(rename = "type")]
    kind: SourceType,
    trigger_id: TriggerId,
    enabled: bool,
    input_path: Option<String>,
    routes: Option<RoutesDoc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    webhook_config: Option<WebhookConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    poll_config: Option<PollConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    monitor_config: Option<MonitorConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    redis_stream_config: Option<RedisStreamConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nats_config: Option<NatsConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    amqp_config: Option<AmqpConfig>,
}

/// The per-type config objects, as `SettingsOut` names them.
const CONFIGS: [&str; 6] =
    ["webhookConfig", "pollConfig", "monitorConfig", "redisStreamConfig", "natsConfig", "amqpConfig"];

impl SettingsOut {
    fn of(spec: &SourceSpec) -> Self {
        let unheaded = |fetch: &Fetch| Fetch { headers: None, ..fetch.clone() };
        Self {
            name: spec.name.clone(),
            kind: spec.kind,
            trigger_id: spec.trigger_id.clone(),
            enabled: spec.enabled,
            input_path: spec.input_path.as_ref().map(|f| f.as_str().to_owned()),
            routes: spec.routes.as_ref().map(|r| r.doc().clone()),
            webhook_config: spec.webhook.as_ref().map(|h| WebhookConfig { secret: None, ..h.clone() }),
            poll_config: spec.poll.as_ref().map(|p| PollConfig { fetch: unheaded(&p.fetch), ..p.clone() }),
            monitor_config: spec
                .monitor
                .as_ref()
                .map(|m| MonitorConfig { fetch: unheaded(&m.fetch), ..m.clone() }),
            redis_stream_config: spec.redis_stream.as_ref().map(RedisStreamConfig::shown),
            nats_config: spec.nats.as_ref().map(NatsConfig::shown),
            amqp_config: spec.amqp.as_ref().map(AmqpConfig::shown),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SourceOut {
    id: SourceId,
    #[serde(flatten)]
    settings: SettingsOut,
    /// Where a sender posts (WEBHOOK).
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    status: StatusOut,
    created: String,
    updated: String,
}

impl SourceOut {
    fn new(state: &AppState, s: &Source) -> Self {
        let status = state.tally.status_of(&s.id, &s.status);
        let url = (s.spec.kind == SourceType::Webhook).then(|| match &s.hook_token {
            Some(token) => format!("{}/hooks/v1/{}/{}", state.public_base, s.id, token.expose()),
            None => format!("{}/hooks/v1/{}", state.public_base, s.id),
        });
        Self {
            id: s.id.clone(),
            settings: SettingsOut::of(&s.spec),
            url,
            status: StatusOut {
                received: status.received,
                fired: status.fired,
                rejected: status.rejected,
                last_event_at: status.last_event_at.map(iso),
                last_error: status.last_error,
            },
            created: iso(s.created),
            updated: iso(s.updated),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SourceIn {
    id: Option<String>,
    name: String,
    #[serde(rename = "type")]
    kind: SourceType,
    trigger_id: TriggerId,
    enabled: Option<bool>,
    input_path: Option<String>,
    routes: Option<RoutesDoc>,
    webhook_config: Option<WebhookConfig>,
    poll_config: Option<PollConfig>,
    monitor_config: Option<MonitorConfig>,
    redis_stream_config: Option<RedisStreamConfig>,
    nats_config: Option<NatsConfig>,
    amqp_config: Option<AmqpConfig>,
}

fn invalid(message: String) -> ApiError {
    ApiError::BadRequest { causes: vec![message.clone()], message }
}

impl SourceIn {
    /// The checked settings; `current` is the stored source on an update, whose write-only
    /// secret is kept when the body leaves it out.
    fn into_spec(self, current: Option<&Source>) -> Result<SourceSpec, ApiError> {
        let input_path = self
            .input_path
            .filter(|p| !p.trim().is_empty())
            .map(|p| {
                Filter::parse(&p).map_err(|e| invalid(format!("inputPath: not a JSONPath expression: {e}")))
            })
            .transpose()?;
        let routes = self.routes.map(Routes::parse).transpose().map_err(invalid)?;
        let mut webhook = self.webhook_config;
        if let (Some(hook), Some(kept)) = (&mut webhook, current.and_then(|c| c.spec.webhook.as_ref()))
            && hook.secret.is_none()
            && hook.verification == kept.verification
        {
            hook.secret.clone_from(&kept.secret);
        }
        // Fetch headers are write-only too: left out, the stored ones are kept.
        let kept_headers = current.and_then(|c| c.spec.fetch()).and_then(|f| f.headers.clone());
        let mut poll = self.poll_config;
        if let Some(p) = poll.as_mut().filter(|p| p.fetch.headers.is_none()) {
            p.fetch.headers.clone_from(&kept_headers);
        }
        let mut monitor = self.monitor_config;
        if let Some(m) = monitor.as_mut().filter(|m| m.fetch.headers.is_none()) {
            m.fetch.headers.clone_from(&kept_headers);
        }
        let spec = current.map(|c| &c.spec);
        let redis_stream =
            with_stored_password(self.redis_stream_config, spec.and_then(|s| s.redis_stream.as_ref()));
        let nats = with_stored_password(self.nats_config, spec.and_then(|s| s.nats.as_ref()));
        let amqp = with_stored_password(self.amqp_config, spec.and_then(|s| s.amqp.as_ref()));
        let spec = SourceSpec {
            name: self.name,
            kind: self.kind,
            trigger_id: self.trigger_id,
            enabled: self.enabled.unwrap_or(true),
            input_path,
            routes,
            webhook,
            poll,
            monitor,
            redis_stream,
            nats,
            amqp,
        };
        spec.validate().map_err(invalid)?;
        Ok(spec)
    }
}

/// `given` broker settings, with the stored password where they show it masked.
fn with_stored_password<T: BrokerUrl>(given: Option<T>, stored: Option<&T>) -> Option<T> {
    given.map(|mut given| {
        if let Some(stored) = stored {
            given.keep_password(stored);
        }
        given
    })
}

/// The URL token a source without signatures needs: kept, made, or none.
fn token_for(spec: &SourceSpec, current: Option<&Secret>) -> Option<Secret> {
    let unsigned = spec.webhook.as_ref().is_some_and(|h| h.verification == Verification::None);
    unsigned.then(|| current.cloned().unwrap_or_else(|| secret::new_token("hk_")))
}

fn field(s: &Source, name: &str) -> Option<String> {
    match name {
        "id" => Some(s.id.to_string()),
        "type" => Some(s.spec.kind.as_str().to_owned()),
        "triggerId" => Some(s.spec.trigger_id.to_string()),
        "name" => Some(s.spec.name.clone()),
        _ => None,
    }
}

const LIST: ListSpec<Source> = ListSpec {
    filters: &[
        ("id", &[CmpOp::Eq, CmpOp::In]),
        ("type", &[CmpOp::Eq, CmpOp::In]),
        ("triggerId", &[CmpOp::Eq, CmpOp::In]),
    ],
    sorters: &["id", "name"],
    field,
};

fn parse_id(raw: &str) -> Result<SourceId, ApiError> {
    raw.parse().map_err(|_| ApiError::NotFound(format!("source '{raw}' was not found")))
}

fn parse_body(body: serde_json::Value) -> Result<SourceIn, ApiError> {
    super::parse_body(body)
}

fn store_error(e: StoreError, label: &str) -> ApiError {
    match e {
        StoreError::Conflict(_) => ApiError::Conflict(format!("source '{label}' already exists")),
        StoreError::Invalid(message) => invalid(message),
        other => other.into(),
    }
}

pub async fn list(
    auth: Principal,
    state: web::Data<AppState>,
    params: web::Query<ListParams>,
) -> Result<HttpResponse, ApiError> {
    auth.require(MANAGE)?;
    let sources = state.store.run(store::sources::list).await?;
    let state = state.clone();
    params.respond(sources, &LIST, move |s| SourceOut::new(&state, &s))
}

pub async fn get(
    auth: Principal,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    auth.require(MANAGE)?;
    let id = parse_id(&id)?;
    let label = id.to_string();
    let source = state.store.run(move |c| store::sources::get(c, &id)).await;
    let source = source.or_not_found(|| format!("source '{label}'"))?;
    Ok(HttpResponse::Ok().json(SourceOut::new(&state, &source)))
}

pub async fn create(
    auth: Principal,
    state: web::Data<AppState>,
    body: web::Json<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    auth.require(MANAGE)?;
    let input = parse_body(body.into_inner())?;
    let id = match input.id.as_deref() {
        None => SourceId::generate(),
        Some(raw) => raw.parse().map_err(|e: crate::domain::ids::InvalidId| {
            invalid(format!("id: {e}: use 1-64 lowercase letters, digits, '-' and '_'"))
        })?,
    };
    let spec = input.into_spec(None)?;
    let token = token_for(&spec, None);
    let now = state.clock.now();
    let label = id.to_string();
    let actor = auth.client_id.to_string();
    let created = state
        .store
        .run(move |c| {
            audited(c, now, |c| {
                let source = store::sources::insert(c, &id, &spec, token.as_ref(), now)?;
                let after = SettingsOut::of(&source.spec);
                Ok((source, entry(&actor, "source.create", "source", id.to_string(), NOTHING, Some(&after))))
            })
        })
        .await;
    let source = created.map_err(|e| store_error(e, &label))?;
    Ok(HttpResponse::Created().json(SourceOut::new(&state, &source)))
}

/// Replaces the source with what `body` (a full representation) says, in one transaction.
async fn update_with(
    state: &AppState,
    auth: &Principal,
    id: SourceId,
    body: impl FnOnce(&Source) -> Result<serde_json::Value, ApiError> + Send + 'static,
) -> Result<HttpResponse, ApiError> {
    let now = state.clock.now();
    let label = id.to_string();
    let path_id = id.clone();
    let actor = auth.client_id.to_string();
    let updated = state
        .store
        .run(move |c| {
            audited(c, now, |c| {
                let mut before = None;
                let source = store::sources::update(c, &id, now, |current| {
                    before = Some(SettingsOut::of(&current.spec));
                    let input = body(current).and_then(parse_body);
                    let spec = input.and_then(|input| {
                        if input.id.as_deref().is_some_and(|body_id| body_id != path_id.as_str()) {
                            return Err(invalid(
                                "id is immutable: the body's id differs from the path's".into(),
                            ));
                        }
                        input.into_spec(Some(current))
                    });
                    let spec = spec.map_err(|e| StoreError::Invalid(e.to_string()))?;
                    let token = token_for(&spec, current.hook_token.as_ref());
                    Ok((spec, token))
                })?;
                let after = SettingsOut::of(&source.spec);
                Ok((
                    source,
                    entry(&actor, "source.update", "source", id.to_string(), before.as_ref(), Some(&after)),
                ))
            })
        })
        .await;
    let source = match updated {
        Err(StoreError::NotFound) => {
            return Err(ApiError::NotFound(format!("source '{label}' was not found")));
        }
        other => other.map_err(|e| store_error(e, &label))?,
    };
    Ok(HttpResponse::Ok().json(SourceOut::new(state, &source)))
}

pub async fn replace(
    auth: Principal,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Json<serde_json::Value>,
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
    body: web::Json<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    auth.require(MANAGE)?;
    let id = parse_id(&id)?;
    let ops = body.into_inner();
    update_with(&state, &auth, id, move |current| {
        let mut doc =
            serde_json::to_value(SettingsOut::of(&current.spec)).map_err(|e| ApiError::Internal(e.into()))?;
        if let serde_json::Value::Object(fields) = &mut doc {
            // Every config is there, null when unused, so a patch may replace any of them.
            for name in CONFIGS {
                fields.entry(name).or_insert(serde_json::Value::Null);
            }
        }
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
                let before = SettingsOut::of(&store::sources::get(c, &id)?.spec);
                store::sources::delete(c, &id)?;
                Ok(((), entry(&actor, "source.delete", "source", id.to_string(), Some(&before), NOTHING)))
            })
        })
        .await;
    deleted.or_not_found(|| format!("source '{label}'"))?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RejectionOut {
    at: String,
    reason: RejectReason,
    message: String,
    excerpt: String,
}

#[derive(Deserialize)]
pub struct RejectionsParams {
    limit: Option<String>,
}

/// The latest messages the source refused, newest first (at most 100 are kept).
pub async fn rejections(
    auth: Principal,
    state: web::Data<AppState>,
    id: web::Path<String>,
    params: web::Query<RejectionsParams>,
) -> Result<HttpResponse, ApiError> {
    auth.require(MANAGE)?;
    let max = store::sources::KEPT_REJECTIONS;
    let limit = match params.limit.as_deref() {
        None => max,
        Some(text) => text.parse::<i64>().ok().filter(|n| (0..=max).contains(n)).ok_or_else(|| {
            ApiError::bad_request(format!("limit must be a whole number from 0 to {max}, not '{text}'"))
        })?,
    };
    let id = parse_id(&id)?;
    let label = id.to_string();
    let wanted = id.clone();
    let found = state
        .store
        .run(move |c| {
            store::sources::get(c, &wanted)?;
            store::sources::rejections(c, &wanted, limit)
        })
        .await;
    let stored = found.or_not_found(|| format!("source '{label}'"))?;
    let mut all = state.tally.unwritten_rejections(&id);
    all.extend(stored);
    all.truncate(usize::try_from(limit).unwrap_or(0));
    let out: Vec<RejectionOut> = all
        .into_iter()
        .map(|r| RejectionOut { at: iso(r.at), reason: r.reason, message: r.message, excerpt: r.excerpt })
        .collect();
    Ok(HttpResponse::Ok().json(out))
}
