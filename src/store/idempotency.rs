//! Publish requests already answered, by `Idempotency-Key`: what each answered is kept as the
//! invocation ids it created, so a repeat is answered from the same rows.

use std::time::Duration;

use chrono::{NaiveDateTime, TimeDelta};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use super::schema::idempotency_keys;
use super::{AnyConnection, StoreError};

/// A publish request's `Idempotency-Key`, with a hash of the request it came with.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    pub key: String,
    pub request_hash: String,
    /// How long a repeat is recognised.
    pub ttl: Duration,
}

/// What a key answered the first time: per event, the ids of its invocations.
#[derive(Serialize, Deserialize)]
pub(super) struct Answered {
    pub events: Vec<Vec<String>>,
}

/// What a key is already known for.
pub(super) enum Recalled {
    /// The same request: these invocations.
    Same(Answered),
    /// The same request, answered before hookgate kept ids: this response body.
    SameBody(String),
    /// The key was used for a different request.
    Different,
    Unknown,
}

pub(super) fn recall(
    conn: &mut AnyConnection,
    key: &IdempotencyKey,
    now: NaiveDateTime,
) -> Result<Recalled, StoreError> {
    let found: Option<(String, String)> = idempotency_keys::table
        .find(&key.key)
        .filter(idempotency_keys::expires_at.gt(now))
        .select((idempotency_keys::request_hash, idempotency_keys::response))
        .first(conn)
        .optional()?;
    Ok(match found {
        Some((hash, _)) if hash != key.request_hash => Recalled::Different,
        Some((_, response)) => match serde_json::from_str::<Answered>(&response) {
            Ok(answered) => Recalled::Same(answered),
            Err(_) => Recalled::SameBody(response),
        },
        None => Recalled::Unknown,
    })
}

/// Remembers what a keyed request created (replacing an expired entry).
pub(super) fn remember(
    conn: &mut AnyConnection,
    key: &IdempotencyKey,
    answered: &Answered,
    now: NaiveDateTime,
) -> Result<(), StoreError> {
    let response = serde_json::to_string(answered).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    diesel::delete(idempotency_keys::table.find(&key.key)).execute(conn)?;
    diesel::insert_into(idempotency_keys::table)
        .values((
            idempotency_keys::key.eq(&key.key),
            idempotency_keys::request_hash.eq(&key.request_hash),
            idempotency_keys::response.eq(response),
            idempotency_keys::created.eq(now),
            idempotency_keys::expires_at.eq(now + TimeDelta::from_std(key.ttl).unwrap_or(TimeDelta::days(1))),
        ))
        .execute(conn)?;
    Ok(())
}
