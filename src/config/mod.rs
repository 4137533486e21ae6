//! Typed settings: built-in defaults, then an optional `hookgate.toml`, then `HOOKGATE_*`
//! environment variables. Validated once at start; errors name the offending key.
//!
//! | key (file) / env var                       | meaning                                   | default          |
//! |--------------------------------------------|-------------------------------------------|------------------|
//! | `database_url` / `HOOKGATE_DATABASE_URL`   | SQLite path, `sqlite://path` or `postgres://...` (`DATABASE_URL` also read) | `hookgate.db` |
//! | `listen` / `HOOKGATE_LISTEN`               | address the API binds                     | `127.0.0.1:8080` |
//! | `public_url` / `HOOKGATE_PUBLIC_URL`       | base URL subscribers use for callbacks    | `http://` + listen |
//! | `db_pool_size` / `HOOKGATE_DB_POOL_SIZE`   | pooled database connections               | `8`              |
//! | `token_ttl` / `HOOKGATE_TOKEN_TTL`         | lifetime of issued bearer tokens          | `12h`            |
//! | `secret_rotation_overlap` / `HOOKGATE_SECRET_ROTATION_OVERLAP` | how long a rotated-out signing secret still signs | `24h` |
//! | `max_body_size` / `HOOKGATE_MAX_BODY_SIZE` | largest accepted request body, in bytes   | `1048576`        |
//! | `retry_schedule` / `HOOKGATE_RETRY_SCHEDULE` | delays after the first attempt, comma-separated | `5s,5m,30m,2h,5h,10h,10h` |
//! | `retry_after_cap` / `HOOKGATE_RETRY_AFTER_CAP` | longest subscriber `Retry-After` honoured | `1h`            |
//! | `delivery_timeout` / `HOOKGATE_DELIVERY_TIMEOUT` | total time of one delivery attempt    | `15s`            |
//! | `connect_timeout` / `HOOKGATE_CONNECT_TIMEOUT` | time to connect to a subscriber         | `5s`             |
//! | `response_timeout` / `HOOKGATE_RESPONSE_TIMEOUT` | time a `REQUEST_RESPONSE` subscriber has to answer | `10s`   |
//! | `max_wait` / `HOOKGATE_MAX_WAIT`           | longest `start?wait=` a producer may ask  | `30s`            |
//! | `scheduler` / `HOOKGATE_SCHEDULER`         | fire scheduled triggers from this instance | `true`          |
//! | `sources` / `HOOKGATE_SOURCES`             | poll HTTP_POLL/MONITOR sources and consume broker sources from this instance | `true` |
//! | `workers` / `HOOKGATE_WORKERS`             | claim loops of the delivery pipeline (0: this instance delivers nothing) | `1` |
//! | `batch_size` / `HOOKGATE_BATCH_SIZE`       | invocations a claim takes at once         | `64`             |
//! | `max_in_flight` / `HOOKGATE_MAX_IN_FLIGHT` | delivery requests under way at once       | `256`            |
//! | `max_in_flight_per_subscription` / `HOOKGATE_MAX_IN_FLIGHT_PER_SUBSCRIPTION` | of those, to one subscription | `64` |
//! | `poll_interval` / `HOOKGATE_POLL_INTERVAL` | how often idle loops look for due work    | `1s`             |
//! | `allowed_target_networks` / `HOOKGATE_ALLOWED_TARGET_NETWORKS` | CIDRs the SSRF guard lets through | empty |
//! | `proxy` / `HOOKGATE_PROXY`                 | http, https or socks5 proxy every delivery and fetch goes through | none |
//! | `no_proxy` / `HOOKGATE_NO_PROXY`           | hosts, domains and CIDRs reached directly despite the proxy | empty |
//! | `ca_file` / `HOOKGATE_CA_FILE`             | PEM file of extra trusted roots            | none             |
//! | `idempotency_ttl` / `HOOKGATE_IDEMPOTENCY_TTL` | how long an `Idempotency-Key` is remembered | `24h`       |
//! | `url` / `HOOKGATE_URL`                     | where the client commands reach hookgate  | `http://127.0.0.1:8080` |
//! | `client_id`, `client_secret` / `HOOKGATE_CLIENT_ID`, `HOOKGATE_CLIENT_SECRET` | the client commands' credentials | none |
//! | `encryption_key` / `HOOKGATE_ENCRYPTION_KEY` | base64 of 32 random bytes sealing secrets at rest; several (comma-separated): the first seals, all open | SQLite: a key file beside the database |
//! | `encryption_key_file` / `HOOKGATE_ENCRYPTION_KEY_FILE` | a file holding such keys              | none             |
//! | `retention_audit` / `HOOKGATE_RETENTION_AUDIT` | how long an audit entry is kept        | `90d`            |
//! | `disable_after` / `HOOKGATE_DISABLE_AFTER` | switch off a subscription whose deliveries all failed this long (`off`: never) | `5d` |
//! | `metrics_token` / `HOOKGATE_METRICS_TOKEN` | bearer token `GET /metrics` requires       | none (open)      |
//! | `log` / `HOOKGATE_LOG`                     | tracing filter                            | `info`           |
//! | `log_format` / `HOOKGATE_LOG_FORMAT`       | `pretty` or `json`                        | `pretty`         |

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

const ENV_KEYS: &[&str] = &[
    "database_url",
    "listen",
    "public_url",
    "db_pool_size",
    "token_ttl",
    "secret_rotation_overlap",
    "max_body_size",
    "retry_schedule",
    "retry_after_cap",
    "delivery_timeout",
    "connect_timeout",
    "response_timeout",
    "max_wait",
    "scheduler",
    "sources",
    "workers",
    "batch_size",
    "max_in_flight",
    "max_in_flight_per_subscription",
    "poll_interval",
    "allowed_target_networks",
    "proxy",
    "no_proxy",
    "ca_file",
    "idempotency_ttl",
    "retention_delivered",
    "retention_dead",
    "retention_audit",
    "disable_after",
    "purge",
    "metrics_token",
    "encryption_key",
    "encryption_key_file",
    "log",
    "log_format",
    "url",
    "client_id",
    "client_secret",
];

/// Settings as written, before validation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    database_url: String,
    listen: String,
    public_url: Option<String>,
    db_pool_size: u32,
    token_ttl: String,
    secret_rotation_overlap: String,
    max_body_size: usize,
    retry_schedule: String,
    retry_after_cap: String,
    delivery_timeout: String,
    connect_timeout: String,
    response_timeout: String,
    max_wait: String,
    scheduler: bool,
    sources: bool,
    workers: u32,
    batch_size: u32,
    max_in_flight: usize,
    max_in_flight_per_subscription: usize,
    poll_interval: String,
    allowed_target_networks: String,
    proxy: Option<String>,
    no_proxy: String,
    ca_file: Option<String>,
    idempotency_ttl: String,
    retention_delivered: String,
    retention_dead: String,
    retention_audit: String,
    disable_after: String,
    purge: bool,
    metrics_token: Option<String>,
    encryption_key: Option<String>,
    encryption_key_file: Option<String>,
    log: String,
    log_format: String,
    url: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

impl Default for RawSettings {
    fn default() -> Self {
        Self {
            database_url: "hookgate.db".into(),
            listen: "127.0.0.1:8080".into(),
            public_url: None,
            db_pool_size: 8,
            token_ttl: "12h".into(),
            secret_rotation_overlap: "24h".into(),
            max_body_size: 1024 * 1024,
            retry_schedule: "5s,5m,30m,2h,5h,10h,10h".into(),
            retry_after_cap: "1h".into(),
            delivery_timeout: "15s".into(),
            connect_timeout: "5s".into(),
            response_timeout: "10s".into(),
            max_wait: "30s".into(),
            scheduler: true,
            sources: true,
            workers: 1,
            batch_size: 64,
            max_in_flight: 256,
            max_in_flight_per_subscription: 64,
            poll_interval: "1s".into(),
            allowed_target_networks: String::new(),
            proxy: None,
            no_proxy: String::new(),
            ca_file: None,
            idempotency_ttl: "24h".into(),
            retention_delivered: "7d".into(),
            retention_dead: "30d".into(),
            retention_audit: "90d".into(),
            disable_after: "5d".into(),
            purge: true,
            metrics_token: None,
            encryption_key: None,
            encryption_key_file: None,
            log: "info".into(),
            log_format: "pretty".into(),
            url: None,
            client_id: None,
            client_secret: None,
        }
    }
}

/// Where the encryption keys come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// The keys themselves (`HOOKGATE_ENCRYPTION_KEY`).
    Keys(crate::domain::secret::Secret),
    /// A file holding them (`HOOKGATE_ENCRYPTION_KEY_FILE`).
    File(PathBuf),
    /// Neither: a SQLite database keeps a generated key file beside it; PostgreSQL refuses.
    Default,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Validated settings. Tests build them with [`Settings::for_tests`] and change fields directly.
#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: String,
    pub listen: SocketAddr,
    pub public_url: Option<String>,
    pub db_pool_size: u32,
    pub token_ttl: Duration,
    pub secret_rotation_overlap: Duration,
    pub max_body_size: usize,
    pub retry_schedule: Vec<Duration>,
    pub retry_after_cap: Duration,
    pub delivery_timeout: Duration,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    pub max_wait: Duration,
    pub scheduler: bool,
    /// Poll `HTTP_POLL` and `MONITOR` sources and consume broker sources from this instance.
    pub sources: bool,
    pub workers: u32,
    pub batch_size: u32,
    pub max_in_flight: usize,
    pub max_in_flight_per_subscription: usize,
    pub poll_interval: Duration,
    pub allowed_target_networks: Vec<ipnet::IpNet>,
    /// The proxy deliveries and fetches go through (`http`, `https`, `socks5` or `socks5h`).
    pub proxy: Option<reqwest::Url>,
    /// What is reached directly despite the proxy, as `HOOKGATE_NO_PROXY` lists it.
    pub no_proxy: String,
    /// Extra trusted roots (PEM) for subscribers with a private CA.
    pub ca_file: Option<PathBuf>,
    pub idempotency_ttl: Duration,
    /// How long delivered invocations (and events, ticks) are kept after they finish.
    pub retention_delivered: Duration,
    /// How long dead invocations are kept after they were created.
    pub retention_dead: Duration,
    /// How long audit entries are kept.
    pub retention_audit: Duration,
    /// Switch off a subscription whose deliveries have all failed for this long; `None`: never.
    pub disable_after: Option<Duration>,
    /// Run the background purge on this instance.
    pub purge: bool,
    /// The bearer token `GET /metrics` requires; `None`: it is open.
    pub metrics_token: Option<crate::domain::secret::Secret>,
    /// Where the keys sealing secrets at rest come from ([`crate::keys`]).
    pub encryption: KeySource,
    pub log: String,
    pub log_format: LogFormat,
    /// Where the client commands reach hookgate, and with which credentials.
    pub url: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration key '{key}': {message}")]
    Invalid { key: &'static str, message: String },
    #[error("configuration: {0}")]
    Load(#[from] Box<figment::Error>),
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key, message: message.into() }
}

impl Settings {
    /// Loads settings. `file` is a TOML file that must exist; without it `hookgate.toml` in the
    /// working directory is read when present.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(RawSettings::default()));
        match file {
            Some(path) if !path.exists() => {
                return Err(invalid("config", format!("file {} does not exist", path.display())));
            }
            Some(path) => figment = figment.merge(Toml::file(path)),
            None => figment = figment.merge(Toml::file(PathBuf::from("hookgate.toml"))),
        }
        if std::env::var_os("HOOKGATE_DATABASE_URL").is_none()
            && let Ok(url) = std::env::var("DATABASE_URL")
        {
            figment = figment.merge(Serialized::default("database_url", url));
        }
        figment = figment.merge(Env::prefixed("HOOKGATE_").only(ENV_KEYS));
        let raw: RawSettings = figment.extract().map_err(Box::new)?;
        Self::validate(raw)
    }

    fn validate(raw: RawSettings) -> Result<Self, ConfigError> {
        if raw.database_url.trim().is_empty() {
            return Err(invalid("database_url", "must not be empty"));
        }
        let listen = raw.listen.parse().map_err(|_| {
            invalid("listen", format!("'{}' is not an address such as 127.0.0.1:8080", raw.listen))
        })?;
        if let Some(url) = &raw.public_url {
            parse::check_public_url(url)?;
        }
        if !(1..=256).contains(&raw.db_pool_size) {
            return Err(invalid("db_pool_size", "must be between 1 and 256"));
        }
        if raw.max_body_size < 1024 {
            return Err(invalid("max_body_size", "must be at least 1024 bytes"));
        }
        let log_format = match raw.log_format.as_str() {
            "pretty" => LogFormat::Pretty,
            "json" => LogFormat::Json,
            other => return Err(invalid("log_format", format!("'{other}' is not 'pretty' or 'json'"))),
        };
        tracing_subscriber::EnvFilter::try_new(&raw.log).map_err(|e| invalid("log", e.to_string()))?;
        let retry_schedule = raw
            .retry_schedule
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(parse_duration)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|m| invalid("retry_schedule", m))?;
        let allowed_target_networks = parse_networks(&raw.allowed_target_networks)?;
        if !(1..=1000).contains(&raw.batch_size) {
            return Err(invalid("batch_size", "must be between 1 and 1000"));
        }
        if raw.workers > 256 {
            return Err(invalid("workers", "must be at most 256"));
        }
        if !(1..=10_000).contains(&raw.max_in_flight) {
            return Err(invalid("max_in_flight", "must be between 1 and 10000"));
        }
        if raw.max_in_flight_per_subscription == 0 {
            return Err(invalid("max_in_flight_per_subscription", "must be at least 1"));
        }
        let delivery_timeout =
            parse_duration(&raw.delivery_timeout).map_err(|m| invalid("delivery_timeout", m))?;
        if delivery_timeout.is_zero() {
            return Err(invalid("delivery_timeout", "must be more than 0"));
        }
        let response_timeout =
            parse_duration(&raw.response_timeout).map_err(|m| invalid("response_timeout", m))?;
        if response_timeout.is_zero() {
            return Err(invalid("response_timeout", "must be more than 0"));
        }
        Ok(Self {
            database_url: raw.database_url,
            listen,
            public_url: raw.public_url.map(|u| u.trim_end_matches('/').to_owned()),
            db_pool_size: raw.db_pool_size,
            token_ttl: parse_duration(&raw.token_ttl).map_err(|m| invalid("token_ttl", m))?,
            secret_rotation_overlap: parse_duration(&raw.secret_rotation_overlap)
                .map_err(|m| invalid("secret_rotation_overlap", m))?,
            max_body_size: raw.max_body_size,
            retry_schedule,
            retry_after_cap: parse_duration(&raw.retry_after_cap)
                .map_err(|m| invalid("retry_after_cap", m))?,
            delivery_timeout,
            connect_timeout: parse_duration(&raw.connect_timeout)
                .map_err(|m| invalid("connect_timeout", m))?,
            response_timeout,
            max_wait: parse_duration(&raw.max_wait).map_err(|m| invalid("max_wait", m))?,
            scheduler: raw.scheduler,
            sources: raw.sources,
            workers: raw.workers,
            batch_size: raw.batch_size,
            max_in_flight: raw.max_in_flight,
            max_in_flight_per_subscription: raw.max_in_flight_per_subscription,
            poll_interval: parse_duration(&raw.poll_interval).map_err(|m| invalid("poll_interval", m))?,
            allowed_target_networks,
            proxy: raw.proxy.filter(|p| !p.trim().is_empty()).map(|p| parse_proxy(&p)).transpose()?,
            no_proxy: raw.no_proxy,
            ca_file: raw.ca_file.filter(|p| !p.trim().is_empty()).map(PathBuf::from),
            idempotency_ttl: parse_duration(&raw.idempotency_ttl)
                .map_err(|m| invalid("idempotency_ttl", m))?,
            retention_delivered: parse_retention(&raw.retention_delivered, "retention_delivered")?,
            retention_dead: parse_retention(&raw.retention_dead, "retention_dead")?,
            retention_audit: parse_retention(&raw.retention_audit, "retention_audit")?,
            disable_after: match raw.disable_after.trim() {
                "off" => None,
                text => Some(parse_retention(text, "disable_after")?),
            },
            purge: raw.purge,
            metrics_token: metrics_token(raw.metrics_token)?,
            encryption: key_source(raw.encryption_key, raw.encryption_key_file)?,
            log: raw.log,
            log_format,
            url: raw.url,
            client_id: raw.client_id,
            client_secret: raw.client_secret,
        })
    }

    /// The base of the callback URLs subscribers are sent: `public_url`, else this instance's
    /// own address (loopback when it listens on every interface).
    pub fn callback_base(&self, port: u16) -> String {
        if let Some(url) = &self.public_url {
            return url.clone();
        }
        let ip = match self.listen.ip() {
            ip if ip.is_unspecified() => std::net::IpAddr::from([127, 0, 0, 1]),
            ip => ip,
        };
        format!("http://{}", SocketAddr::new(ip, port))
    }

    /// Defaults with a given database, an OS-chosen port, no background delivery loops (tests
    /// drive delivery themselves) and 127.0.0.1 allowed as a delivery target.
    pub fn for_tests(database_url: &str) -> Self {
        let mut settings =
            Self::validate(RawSettings::default()).unwrap_or_else(|e| panic!("defaults are valid: {e}"));
        database_url.clone_into(&mut settings.database_url);
        settings.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        settings.workers = 0;
        settings.scheduler = false;
        settings.sources = false;
        settings.purge = false;
        settings.disable_after = None;
        settings.delivery_timeout = Duration::from_secs(2);
        settings.allowed_target_networks = vec![ipnet::IpNet::from(std::net::IpAddr::from([127, 0, 0, 1]))];
        settings.encryption = KeySource::Keys(crate::domain::secret::Secret::new(TEST_KEY));
        settings
    }
}

pub use crate::domain::duration::parse_duration;

/// The encryption key of [`Settings::for_tests`]: every application in a test process seals with
/// it, and commands the tests run are given it too.
pub const TEST_KEY: &str = "dGVzdC1rZXktMDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY=";

mod parse;
#[cfg(test)]
mod tests;

use parse::{key_source, metrics_token, parse_networks, parse_proxy, parse_retention};
