//! Typed ids. Each parses from text, so a malformed id never reaches a query.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A subscription id: a UUID, as SailPoint issues them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SubscriptionId(String);

impl SubscriptionId {
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for SubscriptionId {
    type Err = InvalidId;
    fn from_str(s: &str) -> Result<Self, InvalidId> {
        uuid::Uuid::parse_str(s)
            .map(|u| Self(u.hyphenated().to_string()))
            .map_err(|_| InvalidId::new("subscription", s))
    }
}

/// An invocation id: a UUID (v7, so ids sort by creation), stable across retries; it is the
/// `webhook-id` subscribers dedupe on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct InvocationId(String);

impl InvocationId {
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for InvocationId {
    type Err = InvalidId;
    fn from_str(s: &str) -> Result<Self, InvalidId> {
        uuid::Uuid::parse_str(s)
            .map(|u| Self(u.hyphenated().to_string()))
            .map_err(|_| InvalidId::new("invocation", s))
    }
}

/// A trigger id such as `idn:identity-created`: 1-128 characters of letters, digits and `:._-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TriggerId(String);

impl TriggerId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for TriggerId {
    type Err = InvalidId;
    fn from_str(s: &str) -> Result<Self, InvalidId> {
        let ok = (1..=128).contains(&s.len())
            && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '.' | '_' | '-'));
        if ok { Ok(Self(s.to_owned())) } else { Err(InvalidId::new("trigger", s)) }
    }
}

/// A source id: a slug of 1-64 lowercase letters, digits, `-` and `_`, starting with a letter or
/// digit. It names the source's inbound URL, so it is chosen to be readable (`stripe-payments`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SourceId(String);

impl SourceId {
    pub fn generate() -> Self {
        Self(format!("src-{}", uuid::Uuid::new_v4().simple()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for SourceId {
    type Err = InvalidId;
    fn from_str(s: &str) -> Result<Self, InvalidId> {
        let ok = (1..=64).contains(&s.len())
            && s.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_'));
        if ok { Ok(Self(s.to_owned())) } else { Err(InvalidId::new("source", s)) }
    }
}

/// An API client id: 32 lowercase hex characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ClientId(String);

impl ClientId {
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().simple().to_string())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ClientId {
    type Err = InvalidId;
    fn from_str(s: &str) -> Result<Self, InvalidId> {
        if s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(Self(s.to_ascii_lowercase()))
        } else {
            Err(InvalidId::new("client", s))
        }
    }
}

macro_rules! id_conversions {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl TryFrom<String> for $t {
            type Error = InvalidId;
            fn try_from(s: String) -> Result<Self, InvalidId> {
                s.parse()
            }
        }
        impl From<$t> for String {
            fn from(id: $t) -> String {
                id.0
            }
        }
    )*};
}
id_conversions!(SubscriptionId, InvocationId, TriggerId, ClientId, SourceId);

#[derive(Debug, Clone, thiserror::Error)]
#[error("'{value}' is not a valid {kind} id")]
pub struct InvalidId {
    pub kind: &'static str,
    pub value: String,
}

impl InvalidId {
    fn new(kind: &'static str, value: &str) -> Self {
        let value: String = value.chars().take(80).collect();
        Self { kind, value }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trigger_ids_accept_sailpoint_names_and_refuse_spaces() {
        assert!("idn:access-request-post-approval".parse::<TriggerId>().is_ok());
        assert!("test:fire-and-forget".parse::<TriggerId>().is_ok());
        assert!("has space".parse::<TriggerId>().is_err());
        assert!("".parse::<TriggerId>().is_err());
    }

    #[test]
    fn source_ids_are_lowercase_slugs() {
        assert!("stripe-payments".parse::<SourceId>().is_ok());
        assert!("gh_1".parse::<SourceId>().is_ok());
        assert!("Stripe".parse::<SourceId>().is_err());
        assert!("-lead".parse::<SourceId>().is_err());
        assert!("a/b".parse::<SourceId>().is_err());
        assert!(SourceId::generate().as_str().parse::<SourceId>().is_ok());
    }

    #[test]
    fn subscription_ids_are_uuids_in_canonical_form() {
        let id: SubscriptionId = "0F11F2A4-7C94-4BF3-A2BD-742580FE3BDE".parse().unwrap();
        assert_eq!(id.as_str(), "0f11f2a4-7c94-4bf3-a2bd-742580fe3bde");
        assert!("validate-filter".parse::<SubscriptionId>().is_err());
    }
}
