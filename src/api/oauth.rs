//! `POST /oauth/token`: the client-credentials grant, as SailPoint serves it. Parameters may
//! come form-urlencoded, multipart, in the query string, or (client id and secret) as HTTP Basic.

use std::collections::HashMap;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine as _;
use serde::Serialize;

use super::AppState;
use crate::domain::scope::Scopes;
use crate::store::clients;

#[derive(Serialize)]
struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
    scope: String,
}

/// An OAuth 2 error (RFC 6749 §5.2).
fn oauth_error(status: actix_web::http::StatusCode, error: &str, description: &str) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({ "error": error, "error_description": description }))
}

fn bad_request(error: &str, description: &str) -> HttpResponse {
    oauth_error(actix_web::http::StatusCode::BAD_REQUEST, error, description)
}

/// The fields of a `multipart/form-data` body (text parts only).
fn multipart_fields(content_type: &str, body: &[u8]) -> Option<HashMap<String, String>> {
    let boundary =
        content_type.split(';').find_map(|p| p.trim().strip_prefix("boundary="))?.trim_matches('"');
    let body = std::str::from_utf8(body).ok()?;
    let delimiter = format!("--{boundary}");
    let mut fields = HashMap::new();
    for part in body.split(delimiter.as_str()).skip(1) {
        if part.starts_with("--") {
            break;
        }
        let (head, value) = part.split_once("\r\n\r\n")?;
        let name = head
            .split(';')
            .find_map(|p| p.trim().strip_prefix("name="))?
            .split("\r\n")
            .next()?
            .trim_matches('"');
        fields.insert(name.to_owned(), value.strip_suffix("\r\n").unwrap_or(value).to_owned());
    }
    Some(fields)
}

fn basic_credentials(req: &HttpRequest) -> Option<(String, String)> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let (id, secret) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

pub async fn token(req: HttpRequest, body: web::Bytes, state: web::Data<AppState>) -> HttpResponse {
    let mut params: HashMap<String, String> =
        serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
    let content_type =
        req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let media_type = content_type.to_ascii_lowercase();
    if !body.is_empty() {
        let from_body = if media_type.starts_with("application/x-www-form-urlencoded") {
            serde_urlencoded::from_bytes::<HashMap<String, String>>(&body).ok()
        } else if media_type.starts_with("multipart/form-data") {
            multipart_fields(&content_type, &body)
        } else {
            return bad_request(
                "invalid_request",
                "send the parameters form-urlencoded, as multipart/form-data, or in the query string",
            );
        };
        match from_body {
            Some(fields) => params.extend(fields),
            None => return bad_request("invalid_request", "the request body could not be parsed"),
        }
    }
    if let Some((id, secret)) = basic_credentials(&req) {
        params.entry("client_id".into()).or_insert(id);
        params.entry("client_secret".into()).or_insert(secret);
    }
    match params.get("grant_type").map(String::as_str) {
        Some("client_credentials") => {}
        Some(other) => {
            return bad_request(
                "unsupported_grant_type",
                &format!("grant_type '{other}' is not supported; use client_credentials"),
            );
        }
        None => return bad_request("invalid_request", "grant_type is required (client_credentials)"),
    }
    let (Some(client_id), Some(client_secret)) = (params.remove("client_id"), params.remove("client_secret"))
    else {
        return bad_request("invalid_request", "client_id and client_secret are required");
    };
    let requested = match Scopes::parse(params.get("scope").map_or("", String::as_str)) {
        Ok(s) => s,
        Err(e) => return bad_request("invalid_scope", &e),
    };
    let now = state.clock.now();
    let ttl = state.settings.token_ttl;
    let expires_at = now + chrono::TimeDelta::from_std(ttl).unwrap_or(chrono::TimeDelta::hours(12));
    let result = state
        .store
        .run(move |conn| {
            let Some(client) = clients::verify_credentials(conn, &client_id, &client_secret)? else {
                return Ok(Err(None));
            };
            let scopes = match client.scopes.narrow(&requested) {
                Ok(s) => s,
                Err(e) => return Ok(Err(Some(e))),
            };
            let token = clients::issue_token(conn, &client.id, &scopes, now, expires_at)?;
            Ok(Ok((token, scopes)))
        })
        .await;
    match result {
        Ok(Ok((token, scopes))) => {
            HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "no-store")).json(TokenResponse {
                access_token: token.expose().to_owned(),
                token_type: "bearer",
                expires_in: ttl.as_secs(),
                scope: scopes.to_string(),
            })
        }
        Ok(Err(None)) => oauth_error(
            actix_web::http::StatusCode::UNAUTHORIZED,
            "invalid_client",
            "unknown client, wrong secret, or revoked client",
        ),
        Ok(Err(Some(e))) => bad_request("invalid_scope", &e),
        Err(e) => actix_web::ResponseError::error_response(&super::error::ApiError::from(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_bodies_yield_their_text_fields() {
        let body = "--XyZ\r\nContent-Disposition: form-data; name=\"grant_type\"\r\n\r\nclient_credentials\r\n\
                    --XyZ\r\nContent-Disposition: form-data; name=\"client_id\"\r\n\r\nabc\r\n--XyZ--\r\n";
        let fields = multipart_fields("multipart/form-data; boundary=XyZ", body.as_bytes()).unwrap();
        assert_eq!(fields["grant_type"], "client_credentials");
        assert_eq!(fields["client_id"], "abc");
    }
}
