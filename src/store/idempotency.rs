//! Publish requests already answered, by `Idempotency-Key`: what each answered is kept as the
//! invocation ids it created, so a repeat is answered from the same rows.

use std::collections::HashMap;
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
    /// The events' ids (absent from keys remembered before they were kept).
    #[serde(default)]
    pub event_ids: Vec<String>,
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

/// What each of `keys` is known for, in order, with one read per 500 keys.
pub(super) fn recall_all(
    conn: &mut AnyConnection,
    keys: &[&IdempotencyKey],
    now: NaiveDateTime,
) -> Result<Vec<Recalled>, StoreError> {
    let mut found: HashMap<String, (String, String)> = HashMap::new();
    for chunk in keys.chunks(500) {
        let names: Vec<&str> = chunk.iter().map(|k| k.key.as_str()).collect();
        let rows: Vec<(String, String, String)> = idempotency_keys::table
            .filter(idempotency_keys::key.eq_any(names))
            .filter(idempotency_keys::expires_at.gt(now))
            .select((idempotency_keys::key, idempotency_keys::request_hash, idempotency_keys::response))
            .load(conn)?;
        found.extend(rows.into_iter().map(|(key, hash, response)| (key, (hash, response))));
    }
    Ok(keys
        .iter()
        .map(|key| match found.get(&key.key) {
            Some((hash, _)) if *hash != key.request_hash => Recalled::Different,
            Some((_, response)) => match serde_json::from_str::<Answered>(response) {
                Ok(answered) => Recalled::Same(answered),
                Err(_) => Recalled::SameBody(response.clone()),
            },
            None => Recalled::Unknown,
        })
        .collect())
}

/// Remembers what keyed requests created (replacing expired entries), with one delete and one
/// insert per 500 keys.
pub(super) fn remember_all(
    conn: &mut AnyConnection,
    answered: &[(&IdempotencyKey, Answered)],
    now: NaiveDateTime,
) -> Result<(), StoreError> {
    for chunk in answered.chunks(500) {
        let names: Vec<&str> = chunk.iter().map(|(k, _)| k.key.as_str()).collect();
        // Only expired entries: one that another transaction committed since the recall stays,
        // and the insert below then fails on it instead of answering its key a second time.
        diesel::delete(
            idempotency_keys::table
                .filter(idempotency_keys::key.eq_any(names))
                .filter(idempotency_keys::expires_at.le(now)),
        )
        .execute(conn)?;
        let mut rows = Vec::with_capacity(chunk.len());
        for (key, answer) in chunk {
            let response = serde_json::to_string(answer).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let ttl = TimeDelta::from_std(key.ttl).unwrap_or(TimeDelta::days(1));
            rows.push((
                idempotency_keys::key.eq(key.key.as_str()),
                idempotency_keys::request_hash.eq(key.request_hash.as_str()),
                idempotency_keys::response.eq(response),
                idempotency_keys::created.eq(now),
                idempotency_keys::expires_at.eq(now + ttl),
            ));
        }
        match conn {
            AnyConnection::Postgresql(pg) => {
                diesel::insert_into(idempotency_keys::table).values(rows).execute(pg)?
            }
            AnyConnection::Sqlite(sqlite) => {
                diesel::insert_into(idempotency_keys::table).values(rows).execute(sqlite)?
            }
        };
    }
    Ok(())
}
