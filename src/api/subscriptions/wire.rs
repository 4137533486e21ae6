//! The wire form of a subscription: what reads show and what create, replace and patch take.
//!
//! A chained subscription is created with `"type": "TRIGGER"` and a `triggerConfig`. Reads show it
//! as SailPoint's `WORKFLOW` type (a subscription that starts another flow), with `triggerConfig`
//! and no `httpConfig`: SailPoint's SDKs refuse a `type` outside their enum, so a list holding a
//! `TRIGGER` would fail to parse in them. `WORKFLOW` with a `triggerConfig` is taken as `TRIGGER`.

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

use super::super::error::ApiError;
use crate::api::iso;
use crate::domain::duration::IsoDuration;
use crate::domain::filter::Filter;
use crate::domain::flow::{self, Limits};
use crate::domain::ids::{SubscriptionId, TriggerId};
use crate::domain::secret::Secret;
use crate::domain::subscription::{
    AuthType, ChainTarget, ClientCertificate, DispatchMode, HttpAuth, HttpTarget, Ordering, Subscription,
    SubscriptionSpec, SubscriptionType, Target, parse_target_url,
};

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
struct ClientCertificateOut {
    certificate_pem: String,
    /// Write-only: always null on read.
    private_key_pem: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HttpConfigOut {
    url: String,
    http_dispatch_mode: DispatchMode,
    http_authentication_type: AuthType,
    basic_auth_config: Option<BasicAuthOut>,
    bearer_token_auth_config: Option<BearerOut>,
    /// The client certificate presented to the subscriber (mTLS), a hookgate extension.
    #[serde(skip_serializing_if = "Option::is_none")]
    client_certificate: Option<ClientCertificateOut>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct SubscriptionOut {
    id: SubscriptionId,
    name: String,
    description: Option<String>,
    trigger_id: TriggerId,
    trigger_name: String,
    #[serde(rename = "type")]
    kind: SubscriptionType,
    response_deadline: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    http_config: Option<HttpConfigOut>,
    /// For a chained subscription (a hookgate extension): the trigger it publishes on.
    #[serde(skip_serializing_if = "Option::is_none")]
    trigger_config: Option<TriggerConfigOut>,
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
    /// Flow control (hookgate extensions), shown when set: request starts per second and
    /// requests under way at once, across every instance.
    #[serde(skip_serializing_if = "Option::is_none")]
    rate_limit: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_in_flight: Option<u32>,
    /// The rate it is sent at now: its `rateLimit`, or less while a subscriber's 429 or 503
    /// slows it; absent when unlimited.
    #[serde(skip_serializing_if = "Option::is_none")]
    current_rate: Option<f64>,
    /// The signing secret: present only in the create response.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

impl HttpConfigOut {
    fn new(target: HttpTarget) -> Self {
        let http_authentication_type = target.auth.kind();
        let (basic_auth_config, bearer_token_auth_config) = match target.auth {
            HttpAuth::None => (None, None),
            HttpAuth::Basic { user, .. } => (Some(BasicAuthOut { user_name: user, password: None }), None),
            HttpAuth::Bearer { .. } => (None, Some(BearerOut { bearer_token: None })),
        };
        let client_certificate = target
            .client_certificate
            .map(|c| ClientCertificateOut { certificate_pem: c.certificate_pem, private_key_pem: None });
        Self {
            url: target.url,
            http_dispatch_mode: target.dispatch_mode,
            http_authentication_type,
            basic_auth_config,
            bearer_token_auth_config,
            client_certificate,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TriggerConfigOut {
    trigger_id: TriggerId,
    input_path: Option<String>,
}

/// The `type` a subscription reads as.
pub(super) fn shown_type(s: &Subscription) -> SubscriptionType {
    match s.spec.target {
        Target::Http(_) => SubscriptionType::Http,
        Target::Trigger(_) => SubscriptionType::Workflow,
    }
}

impl SubscriptionOut {
    pub(super) fn new(s: Subscription, secret: Option<&Secret>, now: NaiveDateTime) -> Self {
        let kind = shown_type(&s);
        let current_rate =
            flow::current_rate(s.spec.limits, s.brake, now).map(|r| (r * 100.0).round() / 100.0);
        let (http_config, trigger_config) = match s.spec.target {
            Target::Http(http) => (Some(HttpConfigOut::new(http)), None),
            Target::Trigger(chain) => (
                None,
                Some(TriggerConfigOut {
                    trigger_id: chain.trigger_id,
                    input_path: chain.input_path.map(|p| p.as_str().to_owned()),
                }),
            ),
        };
        Self {
            id: s.id,
            name: s.spec.name,
            description: s.spec.description,
            trigger_id: s.trigger_id,
            trigger_name: s.trigger_name,
            kind,
            response_deadline: s.spec.response_deadline.to_string(),
            http_config,
            trigger_config,
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
            rate_limit: s.spec.limits.rate,
            max_in_flight: s.spec.limits.max_in_flight,
            current_rate,
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
struct ClientCertificateIn {
    certificate_pem: Option<String>,
    private_key_pem: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HttpConfigIn {
    url: String,
    http_dispatch_mode: DispatchMode,
    http_authentication_type: Option<AuthType>,
    basic_auth_config: Option<BasicAuthIn>,
    bearer_token_auth_config: Option<BearerIn>,
    client_certificate: Option<ClientCertificateIn>,
}

/// The fields of a create, replace or patched subscription, as sent.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct SubscriptionIn {
    id: Option<String>,
    pub(super) trigger_id: Option<String>,
    name: Option<String>,
    description: Option<String>,
    #[serde(rename = "type")]
    kind: Option<SubscriptionType>,
    response_deadline: Option<String>,
    http_config: Option<HttpConfigIn>,
    trigger_config: Option<TriggerConfigIn>,
    enabled: Option<bool>,
    filter: Option<String>,
    ordering: Option<String>,
    ordering_key: Option<String>,
    rate_limit: Option<f64>,
    max_in_flight: Option<u32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TriggerConfigIn {
    trigger_id: Option<String>,
    input_path: Option<String>,
}

pub(super) fn invalid(field: &str, message: impl std::fmt::Display) -> ApiError {
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

/// The client certificate sent, its key kept from `existing` when the certificate is the same
/// and the key was sent back as null.
fn parse_client_certificate(
    given: Option<ClientCertificateIn>,
    existing: Option<&ClientCertificate>,
) -> Result<Option<ClientCertificate>, ApiError> {
    let Some(given) = given else { return Ok(None) };
    let field = "httpConfig.clientCertificate";
    let certificate = given
        .certificate_pem
        .filter(|c| !c.trim().is_empty())
        .ok_or_else(|| invalid(&format!("{field}.certificatePem"), "is required"))?;
    let kept = existing.filter(|e| e.certificate_pem == certificate).map(|e| &e.private_key_pem);
    let key = keep_or_require(given.private_key_pem, kept, "httpConfig.clientCertificate.privateKeyPem")?;
    ClientCertificate::new(certificate, key).map(Some).map_err(|(f, e)| invalid(&format!("{field}.{f}"), e))
}

impl TriggerConfigIn {
    fn into_target(self) -> Result<ChainTarget, ApiError> {
        let raw = self.trigger_id.ok_or_else(|| invalid("triggerConfig.triggerId", "is required"))?;
        let trigger_id = raw.parse().map_err(|e| invalid("triggerConfig.triggerId", e))?;
        let input_path = match self.input_path.filter(|p| !p.trim().is_empty()) {
            None => None,
            Some(text) => Some(Filter::parse(&text).map_err(|e| invalid("triggerConfig.inputPath", e))?),
        };
        Ok(ChainTarget { trigger_id, input_path })
    }
}

impl SubscriptionIn {
    /// Parses the fields into a spec; `existing` supplies write-only secrets sent back as null.
    pub(super) fn into_spec(self, existing: Option<&Subscription>) -> Result<SubscriptionSpec, ApiError> {
        let name =
            self.name.filter(|n| !n.trim().is_empty()).ok_or_else(|| invalid("name", "is required"))?;
        let kind = self.kind.ok_or_else(|| invalid("type", "is required"))?;
        let target = match (kind, self.http_config, self.trigger_config) {
            (SubscriptionType::Http, Some(mut http), None) => {
                let url = parse_target_url(&http.url).map_err(|e| invalid("httpConfig.url", e))?;
                let existing = existing.and_then(|s| s.spec.target.http());
                let auth = parse_auth(&mut http, existing.map(|h| &h.auth))?;
                let client_certificate = parse_client_certificate(
                    http.client_certificate.take(),
                    existing.and_then(|h| h.client_certificate.as_ref()),
                )?;
                Target::Http(HttpTarget {
                    url,
                    dispatch_mode: http.http_dispatch_mode,
                    auth,
                    client_certificate,
                })
            }
            (SubscriptionType::Http, None, _) => {
                return Err(invalid("httpConfig", "is required for HTTP subscriptions"));
            }
            (SubscriptionType::Http, Some(_), Some(_)) => {
                return Err(invalid(
                    "triggerConfig",
                    "is for TRIGGER subscriptions; HTTP ones take httpConfig",
                ));
            }
            (SubscriptionType::Trigger | SubscriptionType::Workflow, None, Some(config)) => {
                Target::Trigger(config.into_target()?)
            }
            (SubscriptionType::Trigger | SubscriptionType::Workflow, Some(_), _) => {
                return Err(invalid(
                    "httpConfig",
                    "a TRIGGER subscription publishes on a trigger and sends no HTTP",
                ));
            }
            (SubscriptionType::Trigger | SubscriptionType::Workflow, None, None) => {
                return Err(invalid(
                    "triggerConfig",
                    "is required: hookgate runs TRIGGER (and WORKFLOW) subscriptions as chained triggers",
                ));
            }
            (SubscriptionType::Eventbridge | SubscriptionType::Inline | SubscriptionType::Script, _, _) => {
                return Err(invalid(
                    "type",
                    "only HTTP and TRIGGER (chained trigger) subscriptions are supported",
                ));
            }
        };
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
        let limits = Limits::new(self.rate_limit, self.max_in_flight).map_err(|(f, e)| invalid(f, e))?;
        Ok(SubscriptionSpec {
            ordering,
            limits,
            name,
            description: self.description,
            response_deadline,
            target,
            enabled: self.enabled.unwrap_or(true),
            filter,
        })
    }

    /// `id` and `triggerId` are immutable: a body may repeat them, never change them.
    pub(super) fn check_immutable(&self, current: &Subscription) -> Result<(), ApiError> {
        if self.id.as_deref().is_some_and(|id| !id.eq_ignore_ascii_case(current.id.as_str())) {
            return Err(invalid("id", "is immutable"));
        }
        if self.trigger_id.as_deref().is_some_and(|t| t != current.trigger_id.as_str()) {
            return Err(invalid("triggerId", "is immutable"));
        }
        Ok(())
    }
}
