//! Broker sources: messages consumed from the broker a company already runs. Each message body
//! (JSON) becomes one event. `REDIS_STREAM` consumes a Redis stream through a consumer group,
//! `NATS` a JetStream stream through a durable pull consumer, `AMQP` a durable RabbitMQ queue.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What a password in a broker URL is shown as.
pub const MASKED: &str = "****";

/// `redisStreamConfig`: the server, the stream and the consumer group every instance shares.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RedisStreamConfig {
    /// `redis://[:password@]host[:port][/db]` (or `rediss://`); the password is write-only.
    pub url: String,
    pub stream: String,
    pub group: String,
}

impl RedisStreamConfig {
    pub fn validate(&self) -> Result<(), String> {
        let url = reqwest::Url::parse(&self.url)
            .map_err(|e| format!("redisStreamConfig.url: '{}' is not a URL: {e}", masked(&self.url)))?;
        if !matches!(url.scheme(), "redis" | "rediss") || url.host_str().is_none_or(str::is_empty) {
            return Err("redisStreamConfig.url: use redis://host:port or rediss://host:port".into());
        }
        for (field, value) in [("stream", &self.stream), ("group", &self.group)] {
            if value.is_empty() || value.len() > 255 {
                return Err(format!("redisStreamConfig.{field}: give 1 to 255 characters"));
            }
        }
        Ok(())
    }
}

/// `natsConfig`: the server, the JetStream stream (and the subject it holds), and the durable
/// pull consumer every instance shares.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NatsConfig {
    /// `nats://[user:password@]host[:port]`; the password is write-only.
    pub url: String,
    pub stream: String,
    pub subject: String,
    pub durable: String,
}

impl NatsConfig {
    pub fn validate(&self) -> Result<(), String> {
        let url = reqwest::Url::parse(&self.url)
            .map_err(|e| format!("natsConfig.url: '{}' is not a URL: {e}", masked(&self.url)))?;
        if !matches!(url.scheme(), "nats" | "tls") || url.host_str().is_none_or(str::is_empty) {
            return Err("natsConfig.url: use nats://host:port".into());
        }
        let name_ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 255
                && !s.chars().any(|c| c.is_whitespace() || matches!(c, '.' | '*' | '>'))
        };
        if !name_ok(&self.stream) {
            return Err("natsConfig.stream: 1 to 255 characters, without spaces, '.', '*' or '>'".into());
        }
        if !name_ok(&self.durable) {
            return Err("natsConfig.durable: 1 to 255 characters, without spaces, '.', '*' or '>'".into());
        }
        if self.subject.is_empty() || self.subject.len() > 255 || self.subject.contains(char::is_whitespace) {
            return Err("natsConfig.subject: a subject such as orders.created or orders.>".into());
        }
        Ok(())
    }
}

/// `amqpConfig`: the RabbitMQ server (AMQP 0-9-1) and the durable queue every instance consumes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AmqpConfig {
    /// `amqp://user:password@host[:port]/vhost`; the password is write-only.
    pub url: String,
    pub queue: String,
}

impl AmqpConfig {
    pub fn validate(&self) -> Result<(), String> {
        let url = reqwest::Url::parse(&self.url)
            .map_err(|e| format!("amqpConfig.url: '{}' is not a URL: {e}", masked(&self.url)))?;
        if url.scheme() != "amqp" || url.host_str().is_none_or(str::is_empty) {
            return Err(
                "amqpConfig.url: use amqp://user:password@host:5672/vhost (amqps is not supported)".into()
            );
        }
        if self.queue.is_empty() || self.queue.len() > 255 {
            return Err("amqpConfig.queue: give 1 to 255 characters".into());
        }
        Ok(())
    }
}

/// A broker's settings, whose URL may hold a password that is write-only.
pub trait BrokerUrl: Clone {
    fn url_mut(&mut self) -> &mut String;

    /// The settings as shown: the URL's password masked.
    #[must_use]
    fn shown(&self) -> Self {
        let mut shown = self.clone();
        let url = shown.url_mut();
        *url = masked(url);
        shown
    }

    /// Keeps `stored`'s password where this one shows it masked (a client sending back a read).
    fn keep_password(&mut self, stored: &Self) {
        let stored = stored.clone().url_mut().clone();
        let url = self.url_mut();
        *url = with_password_of(url, &stored);
    }
}

macro_rules! broker_url {
    ($($t:ty),*) => {$(
        impl BrokerUrl for $t {
            fn url_mut(&mut self) -> &mut String {
                &mut self.url
            }
        }
    )*};
}
broker_url!(RedisStreamConfig, NatsConfig, AmqpConfig);

/// `url`, with `stored`'s password where `url` shows it masked.
fn with_password_of(url: &str, stored: &str) -> String {
    let (Ok(mut new), Ok(old)) = (reqwest::Url::parse(url), reqwest::Url::parse(stored)) else {
        return url.to_owned();
    };
    if new.password() == Some(MASKED) && new.set_password(old.password()).is_ok() {
        return new.to_string();
    }
    url.to_owned()
}

/// `url` with its password, if any, masked.
pub fn masked(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some(MASKED));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

/// The document a stream entry carries: its `body` field parsed as JSON, or, for an entry
/// without one, its fields as an object of strings.
pub fn entry_document(fields: &[(String, String)]) -> Result<Value, String> {
    if let Some((_, body)) = fields.iter().find(|(name, _)| name == "body") {
        return serde_json::from_str(body).map_err(|e| format!("the entry's body is not JSON: {e}"));
    }
    let object: Map<String, Value> =
        fields.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
    Ok(Value::Object(object))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked_and_kept_through_a_read_back() {
        let stored = RedisStreamConfig {
            url: "redis://:s3cret@127.0.0.1:6379/0".into(),
            stream: "s".into(),
            group: "g".into(),
        };
        let shown = stored.shown();
        assert_eq!(shown.url, "redis://:****@127.0.0.1:6379/0");
        let mut back = shown.clone();
        back.keep_password(&stored);
        assert_eq!(back.url, stored.url);
        assert_eq!(masked("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }

    #[test]
    fn an_entry_is_its_body_or_its_fields() {
        let body = [("body".to_owned(), r#"{"a": 1}"#.to_owned())];
        assert_eq!(entry_document(&body).unwrap(), serde_json::json!({"a": 1}));
        let fields = [("a".to_owned(), "1".to_owned()), ("b".to_owned(), "x".to_owned())];
        assert_eq!(entry_document(&fields).unwrap(), serde_json::json!({"a": "1", "b": "x"}));
        assert!(entry_document(&[("body".to_owned(), "nope".to_owned())]).is_err());
    }
}
