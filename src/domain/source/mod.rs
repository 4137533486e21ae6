//! Sources: where events come from besides `start`. A source turns each message it receives
//! into the input of an event on its trigger (or on the trigger its routes pick).
//! A `WEBHOOK` source is a URL a sender posts to, checked as that sender signs.

pub mod broker;
pub mod poll;
pub mod verify;

use std::collections::BTreeMap;

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::filter::Filter;
use super::ids::{SourceId, TriggerId};
use super::secret::Secret;
pub use broker::{AmqpConfig, NatsConfig, RedisStreamConfig};
pub use poll::{MonitorConfig, PollConfig};
pub use verify::Verification;

/// What kind of source it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SourceType {
    Webhook,
    HttpPoll,
    Monitor,
    Nats,
    Amqp,
    RedisStream,
}

impl SourceType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Webhook => "WEBHOOK",
            Self::HttpPoll => "HTTP_POLL",
            Self::Monitor => "MONITOR",
            Self::Nats => "NATS",
            Self::Amqp => "AMQP",
            Self::RedisStream => "REDIS_STREAM",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(Value::String(s.to_owned())).ok()
    }
}

/// Whether a webhook is answered once its event is stored, or with its subscriber's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ResponseMode {
    #[default]
    Async,
    Sync,
}

/// The HTTP methods a webhook source takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HookMethod {
    #[serde(rename = "POST")]
    Post,
    #[serde(rename = "GET")]
    Get,
}

/// A webhook source's settings, as written in documents (the API's and the database's).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookConfig {
    pub verification: Verification,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    #[serde(default = "default_methods")]
    pub methods: Vec<HookMethod>,
    #[serde(default)]
    pub response: ResponseMode,
}

fn default_methods() -> Vec<HookMethod> {
    vec![HookMethod::Post]
}

/// What happens to a message no route names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Otherwise {
    /// The source's own trigger.
    #[default]
    Default,
    /// Dropped, and counted as a rejection.
    Drop,
}

/// Routes as written: `{"path": "$.type"}` or `{"header": "X-GitHub-Event"}`, a `map` from
/// value to trigger id, and `otherwise`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoutesDoc {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    #[serde(default)]
    pub map: BTreeMap<String, TriggerId>,
    #[serde(default)]
    pub otherwise: Otherwise,
}

/// Where a route reads its value.
#[derive(Debug, Clone)]
enum RouteBy {
    Path(Filter),
    Header(String),
}

/// Checked routes: pick the trigger per message.
#[derive(Debug, Clone)]
pub struct Routes {
    by: RouteBy,
    map: BTreeMap<String, TriggerId>,
    otherwise: Otherwise,
    doc: RoutesDoc,
}

impl Routes {
    pub fn parse(doc: RoutesDoc) -> Result<Self, String> {
        let by = match (&doc.path, &doc.header) {
            (Some(path), None) => RouteBy::Path(
                Filter::parse(path).map_err(|e| format!("routes.path: not a JSONPath expression: {e}"))?,
            ),
            (None, Some(header)) if !header.trim().is_empty() => RouteBy::Header(header.trim().to_owned()),
            _ => return Err("routes: give exactly one of path or header".into()),
        };
        Ok(Self { by, map: doc.map.clone(), otherwise: doc.otherwise, doc })
    }

    pub fn doc(&self) -> &RoutesDoc {
        &self.doc
    }

    pub fn triggers(&self) -> impl Iterator<Item = &TriggerId> {
        self.map.values()
    }

    /// The trigger for a message; `None` when no route names it and it is dropped.
    fn pick<'a>(
        &'a self,
        document: &Value,
        header: impl Fn(&str) -> Option<String>,
        default: &'a TriggerId,
    ) -> Option<&'a TriggerId> {
        let value = match &self.by {
            RouteBy::Path(filter) => filter.first(document).map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            }),
            RouteBy::Header(name) => header(name),
        };
        match value.and_then(|v| self.map.get(&v)) {
            Some(trigger) => Some(trigger),
            None if self.otherwise == Otherwise::Default => Some(default),
            None => None,
        }
    }
}

/// A source as configured.
#[derive(Debug, Clone)]
pub struct SourceSpec {
    pub name: String,
    pub kind: SourceType,
    pub trigger_id: TriggerId,
    pub enabled: bool,
    /// The part of each message that becomes the event input; the whole message when absent.
    pub input_path: Option<Filter>,
    pub routes: Option<Routes>,
    pub webhook: Option<WebhookConfig>,
    pub poll: Option<PollConfig>,
    pub monitor: Option<MonitorConfig>,
    pub redis_stream: Option<RedisStreamConfig>,
    pub nats: Option<NatsConfig>,
    pub amqp: Option<AmqpConfig>,
}

impl SourceSpec {
    /// Checks what the type needs; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.trim().is_empty() || self.name.len() > 255 {
            return Err("name: give 1 to 255 characters".into());
        }
        let given = [
            (SourceType::Webhook, self.webhook.is_some(), "webhookConfig"),
            (SourceType::HttpPoll, self.poll.is_some(), "pollConfig"),
            (SourceType::Monitor, self.monitor.is_some(), "monitorConfig"),
            (SourceType::RedisStream, self.redis_stream.is_some(), "redisStreamConfig"),
            (SourceType::Nats, self.nats.is_some(), "natsConfig"),
            (SourceType::Amqp, self.amqp.is_some(), "amqpConfig"),
        ];
        for (kind, present, field) in given {
            if present && kind != self.kind {
                return Err(format!("{field}: only for a {} source", kind.as_str()));
            }
        }
        match (&self.routes, self.kind) {
            (Some(_), SourceType::HttpPoll | SourceType::Monitor) => {
                return Err("routes: not for HTTP_POLL or MONITOR sources".into());
            }
            (Some(routes), kind) if kind != SourceType::Webhook && routes.doc.header.is_some() => {
                return Err("routes.header: only WEBHOOK messages have headers; route by path".into());
            }
            _ => {}
        }
        match self.kind {
            SourceType::Webhook => {}
            SourceType::HttpPoll => {
                let poll = self.poll.as_ref().ok_or("pollConfig: required for an HTTP_POLL source")?;
                return poll.validate();
            }
            SourceType::Monitor => {
                let monitor = self.monitor.as_ref().ok_or("monitorConfig: required for a MONITOR source")?;
                return monitor.validate();
            }
            SourceType::RedisStream => {
                let stream = self
                    .redis_stream
                    .as_ref()
                    .ok_or("redisStreamConfig: required for a REDIS_STREAM source")?;
                return stream.validate();
            }
            SourceType::Nats => {
                let nats = self.nats.as_ref().ok_or("natsConfig: required for a NATS source")?;
                return nats.validate();
            }
            SourceType::Amqp => {
                let amqp = self.amqp.as_ref().ok_or("amqpConfig: required for an AMQP source")?;
                return amqp.validate();
            }
        }
        let Some(hook) = &self.webhook else {
            return Err("webhookConfig: required for a WEBHOOK source".into());
        };
        let secret = hook.secret.as_deref().filter(|s| !s.is_empty());
        match (hook.verification, secret) {
            (Verification::None, Some(_)) => {
                return Err("webhookConfig.secret: not used with verification NONE".into());
            }
            (Verification::None, None) => {}
            (_, None) => return Err("webhookConfig.secret: required for this verification".into()),
            (Verification::StandardWebhooks, Some(s))
                if super::secret::standard_webhooks_key(s).is_none() =>
            {
                return Err("webhookConfig.secret: a Standard Webhooks secret is whsec_ and base64".into());
            }
            (_, Some(s)) if s.len() > 1024 => {
                return Err("webhookConfig.secret: at most 1024 characters".into());
            }
            _ => {}
        }
        match (hook.verification, hook.header.as_deref()) {
            (Verification::HmacSha256, None) => {
                return Err(
                    "webhookConfig.header: required for HMAC_SHA256 (the header that carries the signature)"
                        .into(),
                );
            }
            (Verification::HmacSha256, Some(h)) if !is_header_name(h) => {
                return Err(format!("webhookConfig.header: '{h}' is not a header name"));
            }
            (_, Some(_)) if hook.verification != Verification::HmacSha256 => {
                return Err("webhookConfig.header: only used with HMAC_SHA256".into());
            }
            _ => {}
        }
        if hook.methods.is_empty() {
            return Err("webhookConfig.methods: give POST, GET or both".into());
        }
        Ok(())
    }

    /// Every trigger this source may fire.
    pub fn triggers(&self) -> Vec<&TriggerId> {
        let mut all = vec![&self.trigger_id];
        if let Some(routes) = &self.routes {
            all.extend(routes.triggers());
        }
        all
    }

    /// The settings of what a poll or monitor fetches.
    pub fn fetch(&self) -> Option<&poll::Fetch> {
        self.poll.as_ref().map(|p| &p.fetch).or(self.monitor.as_ref().map(|m| &m.fetch))
    }

    /// The event a message makes: its trigger and input, or why it makes none.
    pub fn event_of(
        &self,
        document: &Value,
        header: impl Fn(&str) -> Option<String>,
    ) -> Result<(TriggerId, Map<String, Value>), Rejection> {
        let trigger = match &self.routes {
            None => &self.trigger_id,
            Some(routes) => routes.pick(document, header, &self.trigger_id).ok_or_else(|| {
                Rejection::new(RejectReason::UnknownRoute, "no route names this message's value")
            })?,
        };
        let selected = match &self.input_path {
            None => Some(document),
            Some(path) => path.first(document),
        };
        match selected {
            Some(Value::Object(input)) => Ok((trigger.clone(), input.clone())),
            Some(_) => Err(Rejection::new(RejectReason::NotAnObject, "the input is not a JSON object")),
            None => {
                Err(Rejection::new(RejectReason::NotAnObject, "inputPath selects nothing in this message"))
            }
        }
    }
}

/// An HTTP header name (RFC 9110 token characters).
pub(crate) fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// How a source has been doing, kept in the database and shown on every read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceStatus {
    pub received: i64,
    pub fired: i64,
    pub rejected: i64,
    pub last_event_at: Option<NaiveDateTime>,
    pub last_error: Option<String>,
}

/// A stored source.
#[derive(Debug, Clone)]
pub struct Source {
    pub id: SourceId,
    pub spec: SourceSpec,
    /// For verification `NONE`: the token its URL carries.
    pub hook_token: Option<Secret>,
    pub status: SourceStatus,
    pub created: NaiveDateTime,
    pub updated: NaiveDateTime,
}

/// Why a message became no event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RejectReason {
    /// A missing, malformed or wrong signature, or an expired signed timestamp.
    BadSignature,
    /// The body is not JSON (or not sent as JSON).
    NotJson,
    /// The selected input is not a JSON object, or inputPath selects nothing.
    NotAnObject,
    /// The input does not match the trigger's input schema.
    InputSchema,
    /// No route names the message, and `otherwise` is `DROP`.
    UnknownRoute,
    /// The source or its trigger is disabled.
    Disabled,
}

impl RejectReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadSignature => "BAD_SIGNATURE",
            Self::NotJson => "NOT_JSON",
            Self::NotAnObject => "NOT_AN_OBJECT",
            Self::InputSchema => "INPUT_SCHEMA",
            Self::UnknownRoute => "UNKNOWN_ROUTE",
            Self::Disabled => "DISABLED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(Value::String(s.to_owned())).ok()
    }
}

/// Why `input` does not fit `trigger`'s input schema, as a rejection (`None`: it fits); `Err` when
/// the schema itself cannot be used.
pub fn schema_rejection(
    schemas: &super::schema::Schemas,
    trigger: &super::trigger::Trigger,
    input: &Value,
) -> Result<Option<Rejection>, String> {
    let problems = schemas.problems(trigger, super::schema::Side::Input, input)?;
    Ok((!problems.is_empty()).then(|| {
        let message =
            format!("the input does not match the input schema of '{}': {}", trigger.id, problems.join("; "));
        Rejection::new(RejectReason::InputSchema, message)
    }))
}

/// A message a source refused, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub reason: RejectReason,
    pub message: String,
}

impl Rejection {
    pub fn new(reason: RejectReason, message: impl Into<String>) -> Self {
        Self { reason, message: message.into() }
    }
}
