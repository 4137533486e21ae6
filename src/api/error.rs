//! The one error type of the API, rendered as SailPoint's `ErrorResponseDto`
//! (401 uses SailPoint's `{"error": ...}` shape). 500s say nothing of internals to the client.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::store::StoreError;

#[derive(thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest { message: String, causes: Vec<String> },
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{message}")]
    MethodNotAllowed { message: String, allow: String },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Gone(String),
    #[error("{message}")]
    Unprocessable { message: String, causes: Vec<String> },
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("the service is temporarily unavailable; retry shortly")]
    Unavailable(#[source] StoreError),
    #[error("An internal fault occurred.")]
    Internal(#[source] anyhow::Error),
}

impl std::fmt::Debug for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")?;
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

impl ApiError {
    /// A failure that is hookgate's, not the client's: logged in full, answered as a 500.
    pub fn internal(message: String) -> Self {
        Self::Internal(anyhow::anyhow!(message))
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest { message: message.into(), causes: Vec::new() }
    }

    fn detail_code(&self) -> &'static str {
        match self {
            Self::BadRequest { .. } => "400.1 Bad Request Content",
            Self::Unauthorized(_) => "401 Unauthorized",
            Self::Forbidden(_) => "403 Forbidden",
            Self::NotFound(_) => "404 Not found",
            Self::MethodNotAllowed { .. } => "405 Method Not Allowed",
            Self::Conflict(_) => "409 Conflict",
            Self::Gone(_) => "410 Gone",
            Self::Unprocessable { .. } => "422 Unprocessable Entity",
            Self::PayloadTooLarge(_) => "413 Payload Too Large",
            Self::UnsupportedMediaType(_) => "415 Unsupported Media Type",
            Self::Unavailable(_) => "503 Service Unavailable",
            Self::Internal(_) => "500.0 Internal Fault",
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorMessage {
    locale: &'static str,
    locale_origin: &'static str,
    text: String,
}

impl ErrorMessage {
    fn new(text: String) -> Self {
        Self { locale: "en-US", locale_origin: "DEFAULT", text }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorResponseDto {
    detail_code: &'static str,
    tracking_id: String,
    messages: Vec<ErrorMessage>,
    causes: Vec<ErrorMessage>,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Gone(_) => StatusCode::GONE,
            Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let tracking_id = uuid::Uuid::new_v4().simple().to_string();
        let status = self.status_code();
        if status.is_server_error() {
            tracing::error!(tracking_id = %tracking_id, error = ?self, "request failed");
        } else {
            tracing::debug!(tracking_id = %tracking_id, error = %self, status = status.as_u16(), "request refused");
        }
        let mut response = HttpResponse::build(status);
        if let Self::Unauthorized(message) = self {
            response.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
            return response.json(serde_json::json!({ "error": message }));
        }
        if let Self::MethodNotAllowed { allow, .. } = self
            && let Ok(value) = HeaderValue::from_str(allow)
        {
            response.insert_header((header::ALLOW, value));
        }
        if matches!(self, Self::Unavailable(_)) {
            response.insert_header((header::RETRY_AFTER, HeaderValue::from_static("1")));
        }
        let causes = match self {
            Self::BadRequest { causes, .. } | Self::Unprocessable { causes, .. } => {
                causes.iter().cloned().map(ErrorMessage::new).collect()
            }
            _ => Vec::new(),
        };
        response.json(ErrorResponseDto {
            detail_code: self.detail_code(),
            tracking_id,
            messages: vec![ErrorMessage::new(self.to_string())],
            causes,
        })
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::NotFound(
                "The server did not find a current representation for the target resource.".into(),
            ),
            StoreError::Conflict(_) => Self::Conflict("a record with the same id already exists".into()),
            StoreError::Invalid(message) => Self::bad_request(message),
            StoreError::InUse(message) => Self::Conflict(message),
            StoreError::PoolTimeout(_)
            | StoreError::Connect(_)
            | StoreError::Open(_)
            | StoreError::WriterGone => Self::Unavailable(e),
            // The database went away under the request (a restart): nothing was committed.
            other if other.is_disconnect() => Self::Unavailable(other),
            other => Self::Internal(other.into()),
        }
    }
}

/// Turns a store `NotFound` into a 404 that names what was missing.
pub trait OrNotFound<T> {
    fn or_not_found(self, what: impl FnOnce() -> String) -> Result<T, ApiError>;
}

impl<T> OrNotFound<T> for Result<T, StoreError> {
    fn or_not_found(self, what: impl FnOnce() -> String) -> Result<T, ApiError> {
        self.map_err(|e| match e {
            StoreError::NotFound => ApiError::NotFound(format!("{} was not found", what())),
            other => other.into(),
        })
    }
}

/// Extractor failures answer in the same envelope as everything else.
pub fn json_error(
    err: actix_web::error::JsonPayloadError,
    _req: &actix_web::HttpRequest,
) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as E;
    match err {
        E::OverflowKnownLength { length, limit } => {
            ApiError::PayloadTooLarge(format!("the request body is {length} bytes; the limit is {limit}"))
        }
        E::Overflow { limit } => {
            ApiError::PayloadTooLarge(format!("the request body exceeds the limit of {limit} bytes"))
        }
        E::ContentType => ApiError::UnsupportedMediaType(
            "the request body must be JSON: send Content-Type: application/json".into(),
        ),
        E::Deserialize(e) if e.is_data() => {
            ApiError::bad_request(format!("the request body is invalid: {e}"))
        }
        E::Deserialize(e) => ApiError::bad_request(format!("the request body is not valid JSON: {e}")),
        other => ApiError::bad_request(format!("the request body could not be read: {other}")),
    }
    .into()
}

#[expect(clippy::needless_pass_by_value, reason = "actix fixes the error-handler signature")]
pub fn query_error(
    err: actix_web::error::QueryPayloadError,
    _req: &actix_web::HttpRequest,
) -> actix_web::Error {
    ApiError::bad_request(format!("the query string is invalid: {err}")).into()
}

#[expect(clippy::needless_pass_by_value, reason = "actix fixes the error-handler signature")]
pub fn path_error(err: actix_web::error::PathError, _req: &actix_web::HttpRequest) -> actix_web::Error {
    ApiError::NotFound(format!("the path is invalid: {err}")).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_say_nothing_of_their_cause_to_the_client() {
        let error =
            ApiError::Internal(anyhow::anyhow!("connection to 10.0.0.7 refused: password for user x"));
        let response = error.error_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = actix_web::body::to_bytes(response.into_body());
        let body = futures_util::FutureExt::now_or_never(body).unwrap().unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(
            text.contains("500.0 Internal Fault") && text.contains("An internal fault occurred."),
            "{text}"
        );
        assert!(!text.contains("10.0.0.7") && !text.contains("password"), "{text}");
    }
}
