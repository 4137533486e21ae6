//! Bearer-token authentication and scope checks.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};

use super::AppState;
use super::error::ApiError;
use crate::domain::ids::ClientId;
use crate::domain::scope::Scopes;
use crate::store::clients::Bearer;

/// The API client a request's bearer token belongs to.
#[derive(Debug, Clone)]
pub struct Principal {
    pub client_id: ClientId,
    pub scopes: Scopes,
}

impl Principal {
    /// Passes when the token carries at least one of `any_of`.
    pub fn require(&self, any_of: &[&str]) -> Result<(), ApiError> {
        if any_of.iter().any(|s| self.scopes.allows(s)) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "The server understood the request but refuses to authorize it: the token needs the scope {}",
                any_of.join(" or ")
            )))
        }
    }
}

/// The token of an `Authorization: Bearer ...` header, if there is one.
pub fn bearer_token(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned()).filter(|t| !t.is_empty())
}

impl FromRequest for Principal {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = bearer_token(req);
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let state =
                state.ok_or_else(|| ApiError::Internal(anyhow::anyhow!("application state is missing")))?;
            let token = token.ok_or_else(|| {
                ApiError::Unauthorized(
                    "missing bearer token: send Authorization: Bearer <access_token> from POST /oauth/token"
                        .into(),
                )
            })?;
            let now = state.clock.now();
            let found = state.tokens.authenticate(&state.store, &token, now).await?;
            let Bearer { client_id, scopes, .. } = found.ok_or_else(|| {
                ApiError::Unauthorized(
                    "JWT validation failed: the token is invalid, expired or revoked".into(),
                )
            })?;
            Ok(Self { client_id, scopes })
        })
    }
}
