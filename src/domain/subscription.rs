//! Subscriptions: one trigger bound to one target, an HTTP service or another trigger.

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

use super::duration::IsoDuration;
use super::filter::Filter;
use super::flow::{Brake, Limits};
use super::ids::{SubscriptionId, TriggerId};
use super::secret::Secret;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SubscriptionType {
    Http,
    Eventbridge,
    Inline,
    Script,
    Workflow,
    /// A chained trigger (hookgate): delivering publishes on another trigger.
    Trigger,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DispatchMode {
    Sync,
    Async,
    Dynamic,
}

impl DispatchMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sync => "SYNC",
            Self::Async => "ASYNC",
            Self::Dynamic => "DYNAMIC",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "SYNC" => Some(Self::Sync),
            "ASYNC" => Some(Self::Async),
            "DYNAMIC" => Some(Self::Dynamic),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AuthType {
    NoAuth,
    BasicAuth,
    BearerToken,
}

/// How hookgate authenticates to the subscriber.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpAuth {
    None,
    Basic { user: String, password: Secret },
    Bearer { token: Secret },
}

impl HttpAuth {
    pub fn kind(&self) -> AuthType {
        match self {
            Self::None => AuthType::NoAuth,
            Self::Basic { .. } => AuthType::BasicAuth,
            Self::Bearer { .. } => AuthType::BearerToken,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTarget {
    pub url: String,
    pub dispatch_mode: DispatchMode,
    pub auth: HttpAuth,
    /// The certificate presented to the subscriber (mTLS), a hookgate extension.
    pub client_certificate: Option<ClientCertificate>,
}

/// A client certificate (PEM, with its chain) and its private key (PEM, write-only), checked to
/// parse as such.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    pub certificate_pem: String,
    pub private_key_pem: Secret,
}

impl ClientCertificate {
    /// Checks the two PEM texts; a refusal names the field at fault.
    pub fn new(certificate_pem: String, private_key_pem: Secret) -> Result<Self, (&'static str, String)> {
        use rustls_pki_types::pem::PemObject as _;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let certificates: Result<Vec<_>, _> =
            CertificateDer::pem_slice_iter(certificate_pem.as_bytes()).collect();
        match certificates {
            Ok(list) if !list.is_empty() => {}
            Ok(_) => return Err(("certificatePem", "holds no PEM CERTIFICATE block".into())),
            Err(e) => return Err(("certificatePem", format!("is not PEM: {e}"))),
        }
        if let Err(e) = PrivateKeyDer::from_pem_slice(private_key_pem.expose().as_bytes()) {
            return Err(("privateKeyPem", format!("holds no PEM private key: {e}")));
        }
        Ok(Self { certificate_pem, private_key_pem })
    }
}

/// A chained trigger: delivering an invocation publishes events on `trigger_id`, their inputs
/// picked from the payload by `input_path` ([`super::chain::inputs`]).
#[derive(Debug, Clone)]
pub struct ChainTarget {
    pub trigger_id: TriggerId,
    pub input_path: Option<Filter>,
}

/// Where a subscription's invocations go.
#[derive(Debug, Clone)]
pub enum Target {
    /// A signed HTTP request to the subscriber.
    Http(HttpTarget),
    /// Events published on another trigger, in the transaction that records the delivery.
    Trigger(ChainTarget),
}

impl Target {
    pub fn http(&self) -> Option<&HttpTarget> {
        match self {
            Self::Http(http) => Some(http),
            Self::Trigger(_) => None,
        }
    }

    pub fn chain(&self) -> Option<&ChainTarget> {
        match self {
            Self::Http(_) => None,
            Self::Trigger(chain) => Some(chain),
        }
    }
}

/// Whether a subscription's invocations go out in publish order (a hookgate extension).
#[derive(Debug, Clone, Default)]
pub enum Ordering {
    /// Any order, with full concurrency.
    #[default]
    None,
    /// One at a time, in publish order: the next is sent once the previous is delivered or dead.
    Subscription,
    /// In publish order within each value of this JSONPath into the payload.
    Key(Filter),
}

impl Ordering {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::None => "NONE",
            Self::Subscription => "SUBSCRIPTION",
            Self::Key(_) => "KEY",
        }
    }

    /// The stream an event belongs to: `None` when unordered, `""` for the whole subscription,
    /// else the JSON text of the first value the key selects (`null` when it selects none).
    pub fn stream_of(&self, payload: &serde_json::Value) -> Option<String> {
        match self {
            Self::None => None,
            Self::Subscription => Some(String::new()),
            Self::Key(path) => {
                Some(path.first(payload).map_or_else(|| "null".to_owned(), ToString::to_string))
            }
        }
    }
}

/// What a caller supplies to create or replace a subscription, already parsed.
#[derive(Debug, Clone)]
pub struct SubscriptionSpec {
    pub name: String,
    pub description: Option<String>,
    pub response_deadline: IsoDuration,
    pub target: Target,
    pub enabled: bool,
    pub filter: Option<Filter>,
    pub ordering: Ordering,
    /// Flow control (a hookgate extension): `rateLimit` and `maxInFlight`.
    pub limits: Limits,
}

#[derive(Debug, Clone)]
pub struct Subscription {
    pub id: SubscriptionId,
    pub trigger_id: TriggerId,
    pub trigger_name: String,
    pub spec: SubscriptionSpec,
    pub created: NaiveDateTime,
    pub updated: NaiveDateTime,
    /// Why the subscription was switched off by hookgate (a 410 Gone), while it stays off.
    pub disabled_reason: Option<String>,
    /// The brake a subscriber's pushback (429, 503) put on its rate, while it is on or until it
    /// is next put on.
    pub brake: Option<Brake>,
}

/// Checks that `url` is an absolute http(s) URL with a host.
pub fn parse_target_url(url: &str) -> Result<String, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("'{url}' is not an absolute URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("'{url}' must use http or https"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("'{url}' has no host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("credentials belong in basicAuthConfig, not in the URL".into());
    }
    Ok(parsed.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_urls_must_be_absolute_http_without_credentials() {
        assert_eq!(parse_target_url("http://127.0.0.1:9000/hook").unwrap(), "http://127.0.0.1:9000/hook");
        assert!(parse_target_url("/hook").is_err());
        assert!(parse_target_url("ftp://example.com/").is_err());
        assert!(parse_target_url("https://u:p@example.com/").is_err());
    }
}
