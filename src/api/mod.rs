//! The HTTP API: one module per resource. Never names diesel.
//!
//! Every SailPoint-style resource is served at its canonical path (`/triggers/v1`) and under
//! SailPoint's older prefixes (`/beta/triggers`, `/v2024/triggers`, `/v2025/triggers`).

mod audit;
mod auth;
mod complete;
mod dead_letters;
mod erasure;
pub mod error;
mod health;
mod hooks;
mod invocations;
mod kept;
mod list;
mod metrics;
mod oauth;
pub(crate) mod patch;
mod publish;
mod replay;
mod sources;
mod subscriptions;
mod telemetry;
mod token_cache;
mod triggers;

pub use telemetry::request_span;

use std::sync::Arc;

use actix_web::http::Method;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::clock::SharedClock;
use crate::config::Settings;
use crate::store::Store;
use error::ApiError;

/// Timestamps as SailPoint writes them: ISO-8601 UTC with milliseconds.
pub use crate::domain::time::iso;
pub use kept::{SourceCache, TriggerCache};
pub use token_cache::TokenCache;

/// Deserialises a JSON body into a wire type; errors name the offending field.
pub fn parse_body<T: serde::de::DeserializeOwned>(body: serde_json::Value) -> Result<T, ApiError> {
    refuse_nul(&body, "")?;
    serde_path_to_error::deserialize(body).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            ApiError::bad_request(format!("the request body is invalid: {inner}"))
        } else {
            ApiError::bad_request(format!("the request body is invalid at '{path}': {inner}"))
        }
    })
}

/// Fields that hold JSON documents, stored as JSON text, where a NUL character is escaped.
const DOCUMENT_FIELDS: &[&str] = &[
    "input",
    "contentJson",
    "inputSchema",
    "outputSchema",
    "exampleInput",
    "exampleOutput",
    "params",
    "output",
];

/// Text that is stored as such (names, descriptions, filters, URLs, error texts) may not hold a
/// NUL character, which PostgreSQL cannot store: a 400 naming the field, on either backend.
fn refuse_nul(value: &serde_json::Value, at: &str) -> Result<(), ApiError> {
    use serde_json::Value;
    match value {
        Value::String(text) if text.contains('\0') => {
            let at = if at.is_empty() { "the request body" } else { at };
            Err(ApiError::bad_request(format!("{at}: text may not contain NUL characters")))
        }
        Value::Object(fields) => {
            fields.iter().filter(|(name, _)| !DOCUMENT_FIELDS.contains(&name.as_str())).try_for_each(
                |(name, v)| refuse_nul(v, &if at.is_empty() { name.clone() } else { format!("{at}.{name}") }),
            )
        }
        Value::Array(items) => {
            items.iter().enumerate().try_for_each(|(i, v)| refuse_nul(v, &format!("{at}[{i}]")))
        }
        _ => Ok(()),
    }
}

/// What every handler can reach.
pub struct AppState {
    pub store: Store,
    pub clock: SharedClock,
    pub settings: Arc<Settings>,
    /// Hands published invocations to this instance's dispatcher, and wakes its claim loop.
    pub intake: crate::delivery::Intake,
    /// Commits publishes, several at once under load, and hands what they create to the intake.
    pub publisher: Arc<crate::delivery::Publisher>,
    /// Triggers as publishing reads them.
    pub triggers: kept::TriggerCache,
    /// Sources as their inbound route reads them.
    pub sources: kept::SourceCache,
    /// What each source received, fired and refused, until it is written.
    pub tally: Arc<crate::sources::Tally>,
    /// The base of the URLs this instance is reached at (`public_url`, else its own address).
    pub public_base: String,
    /// Bearer tokens found valid, trusted until a client is revoked anywhere.
    pub tokens: token_cache::TokenCache,
    /// Compiled trigger schemas, by trigger id and version.
    pub schemas: crate::domain::schema::Schemas,
    /// What this instance counts, served at `/metrics`.
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// Reads a request body of at most `limit` bytes.
pub async fn read_body(mut payload: web::Payload, limit: usize) -> Result<web::Bytes, ApiError> {
    use futures_util::StreamExt as _;
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::bad_request(format!("the request body could not be read: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge(format!(
                "the request body exceeds the limit of {limit} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// `application/json` and every `+json` type (`application/json-patch+json`).
fn is_json(mime: &mime::Mime) -> bool {
    mime.subtype() == mime::JSON || mime.suffix() == Some(mime::JSON)
}

/// Parses a JSON request body read as bytes, with the same errors as the JSON extractor.
pub fn json_from_bytes(req: &HttpRequest, bytes: &[u8]) -> Result<serde_json::Value, ApiError> {
    let content_type = req.headers().get(actix_web::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let is_json = content_type.and_then(|t| t.parse::<mime::Mime>().ok()).is_some_and(|m| is_json(&m));
    if !is_json {
        return Err(ApiError::UnsupportedMediaType(
            "the request body must be JSON: send Content-Type: application/json".into(),
        ));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))
}

/// `None` is the canonical per-resource layout (`/triggers/v1`); the rest are version prefixes.
const PREFIXES: [Option<&str>; 4] = [None, Some("beta"), Some("v2024"), Some("v2025")];

fn versioned_path(prefix: Option<&str>, resource: &str, rest: &str) -> String {
    match prefix {
        None => format!("/{resource}/v1{rest}"),
        Some(p) => format!("/{p}/{resource}{rest}"),
    }
}

/// Declares the routes once: `configure` mounts them and `routes` lists them for the OpenAPI check.
macro_rules! routes {
    (
        root { $( $rpath:literal => { $( $rm:ident => $rh:path ),* $(,)? } )* }
        versioned { $( ($res:literal, $rest:literal) => { $( $m:ident => $h:path ),* $(,)? } )* }
    ) => {
        /// Every route as `(METHOD, path)`, in actix path syntax.
        pub fn routes() -> Vec<(&'static str, String)> {
            let mut out = vec![$( $( (stringify!($rm), $rpath.to_owned()), )* )*];
            for prefix in PREFIXES {
                $( $( out.push((stringify!($m), versioned_path(prefix, $res, $rest))); )* )*
            }
            out
        }

        pub fn configure(cfg: &mut web::ServiceConfig) {
            $(
                cfg.service(
                    web::resource($rpath)
                        $( .route(web::method(Method::$rm).to($rh)) )*
                        .default_service(web::to(wrong_method)),
                );
            )*
            for prefix in PREFIXES {
                $(
                    cfg.service(
                        web::resource(versioned_path(prefix, $res, $rest))
                            $( .route(web::method(Method::$m).to($h)) )*
                            .default_service(web::to(wrong_method)),
                    );
                )*
            }
        }
    };
}

routes! {
    root {
        "/oauth/token" => { POST => oauth::token }
        "/health/live" => { GET => health::live }
        "/health/ready" => { GET => health::ready }
        "/metrics" => { GET => metrics::scrape }
        "/hooks/v1/{id}" => { POST => hooks::receive, GET => hooks::receive }
        "/hooks/v1/{id}/{token}" => { POST => hooks::receive, GET => hooks::receive }
    }
    versioned {
        ("triggers", "") => { GET => triggers::list, POST => triggers::create }
        ("triggers", "/{id}") => {
            GET => triggers::get, PUT => triggers::replace, PATCH => triggers::patch, DELETE => triggers::delete
        }
        ("trigger-subscriptions", "") => { GET => subscriptions::list, POST => subscriptions::create }
        ("trigger-subscriptions", "/validate-filter") => { POST => subscriptions::validate_filter }
        ("trigger-subscriptions", "/{id}") => {
            GET => subscriptions::get, PUT => subscriptions::replace, PATCH => subscriptions::patch,
            DELETE => subscriptions::delete
        }
        ("trigger-subscriptions", "/{id}/rotate-secret") => { POST => subscriptions::rotate_secret }
        ("trigger-invocations", "/start") => { POST => publish::start }
        ("trigger-invocations", "/test") => { POST => invocations::test }
        ("trigger-invocations", "/status") => { GET => invocations::status }
        ("trigger-invocations", "") => { GET => invocations::list, DELETE => erasure::erase }
        ("trigger-invocations", "/{id}") => { GET => invocations::get }
        ("trigger-invocations", "/{id}/replay") => { POST => replay::replay }
        ("trigger-invocations", "/{id}/complete") => { POST => complete::complete }
        ("dead-letters", "") => { GET => dead_letters::list }
        ("dead-letters", "/replay") => { POST => dead_letters::replay }
        ("sources", "") => { GET => sources::list, POST => sources::create }
        ("sources", "/{id}") => {
            GET => sources::get, PUT => sources::replace, PATCH => sources::patch, DELETE => sources::delete
        }
        ("sources", "/{id}/rejections") => { GET => sources::rejections }
        ("audit", "") => { GET => audit::list }
    }
}

/// A known path with a method it does not serve: 405 with `Allow`. `validate-filter` only takes
/// POST; the methods a subscription id takes read it as an id, which does not exist (as SailPoint
/// answers).
async fn wrong_method(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let reads_as_id = matches!(*req.method(), Method::GET | Method::PUT | Method::PATCH | Method::DELETE);
    if reads_as_id && req.path().ends_with("/validate-filter") {
        return Err(ApiError::NotFound("subscription 'validate-filter' was not found".into()));
    }
    let pattern = req.match_pattern().unwrap_or_default();
    let allow: Vec<&str> =
        routes().into_iter().filter(|(_, path)| *path == pattern).map(|(m, _)| m).collect();
    Err(ApiError::MethodNotAllowed {
        message: format!("{} is not supported on {}; use {}", req.method(), req.path(), allow.join(", ")),
        allow: allow.join(", "),
    })
}

/// Any path no route serves.
pub async fn no_route(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!("no route serves {} {}", req.method(), req.path())))
}

/// Extractor settings: body limits and errors in the API's envelope.
pub fn extractor_config(cfg: &mut web::ServiceConfig, max_body_size: usize) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(max_body_size)
            .content_type(|mime| is_json(&mime))
            .content_type_required(true)
            .error_handler(error::json_error),
    )
    .app_data(web::PayloadConfig::new(max_body_size))
    .app_data(web::QueryConfig::default().error_handler(error::query_error))
    .app_data(web::PathConfig::default().error_handler(error::path_error));
}
