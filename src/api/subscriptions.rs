//! `/trigger-subscriptions/v1`: SailPoint's subscription API, plus reading one subscription
//! and rotating its signing secret.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::AppState;
use super::auth::Principal;
use super::error::{ApiError, OrNotFound};
use super::list::{ListParams, ListSpec};
use super::patch;
use crate::api::iso;
use crate::domain::duration::IsoDuration;
use crate::domain::filter::Filter;
use crate::domain::ids::{SubscriptionId, TriggerId};
use crate::domain::query::CmpOp;
use crate::domain::scope;
use crate::domain::secret::Secret;
use crate::domain::subscription::{
    AuthType, DispatchMode, HttpAuth, HttpTarget, Ordering, Subscription, SubscriptionSpec, SubscriptionType,
    parse_target_url,
};
use crate::store::{self, StoreError};

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
    "eventBridgeConfig",
    "workflowConfig",
];

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BasicAuthOut {
    user_name: String,
    /// Write-only: always null on read.
    password: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BearerOut {
    /// Write-only: always null on read.
    bearer_token: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HttpConfigOut {
    url: String,
    http_dispatch_mode: DispatchMode,
    http_authentication_type: AuthType,
    basic_auth_config: Option<BasicAuthOut>,
    bearer_token_auth_config: Option<BearerOut>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SubscriptionOut {
    id: SubscriptionId,
    name: String,
    description: Option<String>,
    trigger_id: TriggerId,
    trigger_name: String,
    #[serde(rename = "type")]
    kind: SubscriptionType,
    response_deadline: String,
    http_config: HttpConfigOut,
    enabled: bool,
    filter: Option<String>,
    created: String,
    updated: String,
    /// Why hookgate switched the subscription off (a subscriber's 410 Gone).
    #[serde(skip_serializing_if = "Option::is_none")]
    disabled_reason: Option<String>,
    /// Ordered delivery (a hookgate extension), shown when not `NONE`.
    #[serde(skip_serializing_if = "Option::is_none")]
    ordering: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ordering_key: Option<String>,
    /// The signing secret: present only in the create response.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

impl SubscriptionOut {
    fn new(s: Subscription, secret: Option<&Secret>) -> Self {
        let target = s.spec.target;
        let http_authentication_type = target.auth.kind();
        let (basic_auth_config, bearer_token_auth_config) = match target.auth {
            HttpAuth::None => (None, None),
            HttpAuth::Basic { user, .. } => (Some(BasicAuthOut { user_name: user, password: None }), None),
            HttpAuth::Bearer { .. } => (None, Some(BearerOut { bearer_token: None })),
        };
        Self {
            id: s.id,
            name: s.spec.name,
            description: s.spec.description,
            trigger_id: s.trigger_id,
            trigger_name: s.trigger_name,
            kind: SubscriptionType::Http,
            response_deadline: s.spec.response_deadline.to_string(),
            http_config: HttpConfigOut {
                url: target.url,
                http_dispatch_mode: target.dispatch_mode,
                http_authentication_type,
                basic_auth_config,
                bearer_token_auth_config,
            },
            enabled: s.spec.enabled,
            filter: s.spec.filter.map(|f| f.as_str().to_owned()),
            created: iso(s.created),
            updated: iso(s.updated),
            disabled_reason: s.disabled_reason,
            ordering: (!matches!(s.spec.ordering, Ordering::None)).then(|| s.spec.ordering.as_str()),
            ordering_key: match &s.spec.ordering {
                Ordering::Key(path) => Some(path.as_str().to_owned()),
                Ordering::None | Ordering::Subscription => None,
            },
            secret: secret.map(|s| s.expose().to_owned()),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BasicAuthIn {
    user_name: Option<String>,
    password: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BearerIn {
    bearer_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HttpConfigIn {
    url: String,
    http_dispatch_mode: DispatchMode,
    http_authentication_type: Option<AuthType>,
    basic_auth_config: Option<BasicAuthIn>,
    bearer_token_auth_config: Option<BearerIn>,
}

/// The fields of a create, replace or patched subscription, as sent.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SubscriptionIn {
    id: Option<String>,
    trigger_id: Option<String>,
    name: Option<String>,
    description: Option<String>,
    #[serde(rename = "type")]
    kind: Option<SubscriptionType>,
    response_deadline: Option<String>,
    http_config: Option<HttpConfigIn>,
    enabled: Option<bool>,
    filter: Option<String>,
    ordering: Option<String>,
    ordering_key: Option<String>,
}

fn invalid(field: &str, message: impl std::fmt::Display) -> ApiError {
    let text = format!("{field}: {message}");
    ApiError::BadRequest { message: text.clone(), causes: vec![text] }
}

/// Keeps a stored write-only secret when the caller sends it back as null (as it reads it).
fn keep_or_require(given: Option<String>, kept: Option<&Secret>, field: &str) -> Result<Secret, ApiError> {
    match (given.filter(|s| !s.is_empty()), kept) {
        (Some(v), _) => Ok(Secret::new(v)),
        (None, Some(k)) => Ok(k.clone()),
        (None, None) => Err(invalid(field, "is required")),
    }
}

fn parse_auth(http: &mut HttpConfigIn, existing: Option<&HttpAuth>) -> Result<HttpAuth, ApiError> {
    match http.http_authentication_type.unwrap_or(AuthType::NoAuth) {
        AuthType::NoAuth => Ok(HttpAuth::None),
        AuthType::BasicAuth => {
            let config = http
                .basic_auth_config
                .take()
                .ok_or_else(|| invalid("httpConfig.basicAuthConfig", "is required for BASIC_AUTH"))?;
            let user = config
                .user_name
                .filter(|u| !u.is_empty())
                .ok_or_else(|| invalid("httpConfig.basicAuthConfig.userName", "is required"))?;
            let kept = match existing {
                Some(HttpAuth::Basic { user: old, password }) if *old == user => Some(password),
                _ => None,
            };
            let password = keep_or_require(config.password, kept, "httpConfig.basicAuthConfig.password")?;
            Ok(HttpAuth::Basic { user, password })
        }
        AuthType::BearerToken => {
            let config = http
                .bearer_token_auth_config
                .take()
                .ok_or_else(|| invalid("httpConfig.bearerTokenAuthConfig", "is required for BEARER_TOKEN"))?;
            let kept = match existing {
                Some(HttpAuth::Bearer { token }) => Some(token),
                _ => None,
            };
            let token =
                keep_or_require(config.bearer_token, kept, "httpConfig.bearerTokenAuthConfig.bearerToken")?;
            Ok(HttpAuth::Bearer { token })
        }
    }
}

impl SubscriptionIn {
    /// Parses the fields into a spec; `existing` supplies write-only secrets sent back as null.
    fn into_spec(self, existing: Option<&Subscription>) -> Result<SubscriptionSpec, ApiError> {
        let name =
            self.name.filter(|n| !n.trim().is_empty()).ok_or_else(|| invalid("name", "is required"))?;
        let kind = self.kind.ok_or_else(|| invalid("type", "is required"))?;
        if kind != SubscriptionType::Http {
            return Err(invalid(
                "type",
                "only HTTP subscriptions are supported; hookgate delivers over HTTP",
            ));
        }
        let mut http =
            self.http_config.ok_or_else(|| invalid("httpConfig", "is required for HTTP subscriptions"))?;
        let url = parse_target_url(&http.url).map_err(|e| invalid("httpConfig.url", e))?;
        let auth = parse_auth(&mut http, existing.map(|s| &s.spec.target.auth))?;
        let response_deadline = match self.response_deadline {
            None => IsoDuration::default(),
            Some(text) => text.parse().map_err(|e| invalid("responseDeadline", e))?,
        };
        let filter = match self.filter.filter(|f| !f.trim().is_empty()) {
            None => None,
            Some(text) => Some(Filter::parse(&text).map_err(|e| invalid("filter", e))?),
        };
        let ordering =
            match (self.ordering.as_deref().map(str::to_ascii_uppercase).as_deref(), self.ordering_key) {
                (None | Some("NONE"), _) => Ordering::None,
                (Some("SUBSCRIPTION"), _) => Ordering::Subscription,
                (Some("KEY"), Some(key)) if !key.trim().is_empty() => {
                    Ordering::Key(Filter::parse(&key).map_err(|e| invalid("orderingKey", e))?)
                }
                (Some("KEY"), _) => return Err(invalid("orderingKey", "is required when ordering is KEY")),
                (Some(other), _) => {
                    return Err(invalid(
                        "ordering",
                        format!("'{other}' is not one of NONE, SUBSCRIPTION, KEY"),
                    ));
                }
            };
        Ok(SubscriptionSpec {
            ordering,
            name,
            description: self.description,
            response_deadline,
            target: HttpTarget { url, dispatch_mode: http.http_dispatch_mode, auth },
            enabled: self.enabled.unwrap_or(true),
            filter,
        })
    }

    /// `id` and `triggerId` are immutable: a body may repeat them, never change them.
    fn check_immutable(&self, current: &Subscription) -> Result<(), ApiError> {
        if self.id.as_deref().is_some_and(|id| !id.eq_ignore_ascii_case(current.id.as_str())) {
            return Err(invalid("id", "is immutable"));
        }
        if self.trigger_id.as_deref().is_some_and(|t| t != current.trigger_id.as_str()) {
            return Err(invalid("triggerId", "is immutable"));
        }
        Ok(())
    }
}

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
        "type" => Some("HTTP".into()),
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
