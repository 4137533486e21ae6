//! Bounded storage: removing what is past its retention, in small batches, each one short
//! transaction, so publishing and delivery never wait long behind it.
//!
//! A batch removes at most [`BATCH`] of each kind:
//! - delivered invocations completed before the delivered cutoff (read in `completed` order
//!   from `invocations_delivered`) and dead ones created before the dead cutoff (from
//!   `invocations_dead`), with their attempts and replays;
//! - the events they leave unreferenced, and events older than the delivered cutoff that no
//!   invocation ever referenced (a trigger without subscribers): those are found by walking the
//!   events table once in id order (UUID v7, so time order) from a cursor kept in `meta`;
//! - schedule ticks before the delivered cutoff (a tick older than a minute never fires again),
//!   expired idempotency keys and expired tokens;
//! - audit entries older than their own retention.
//!
//! On PostgreSQL a batch first takes a transaction-level advisory lock for its schema, without
//! waiting: while one instance purges, the others skip their turn.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text, Timestamp};
use serde::Serialize;

use super::schema::{
    api_tokens, attempts, audit_log, events, idempotency_keys, invocations, meta, schedule_ticks,
};
use super::{AnyConnection, StoreError, write_transaction};

/// The most rows of each kind one batch removes.
pub const BATCH: i64 = 500;

/// The advisory lock held by the purging instance (PostgreSQL): this key and the hash of the
/// schema, so that deployments in other schemas of the database purge on their own.
const PURGE_LOCK: i32 = 0x6870_7267;

/// The `meta` key of the last event id the orphan walk has passed.
const EVENTS_WALKED: &str = "purge_events_walked";

/// What is kept: delivered invocations completed at or after `delivered`, dead ones created at
/// or after `dead`; keys and tokens until they expire at `now`.
#[derive(Debug, Clone, Copy)]
pub struct Cutoffs {
    pub delivered: NaiveDateTime,
    pub dead: NaiveDateTime,
    /// Audit entries made before it go.
    pub audit: NaiveDateTime,
    pub now: NaiveDateTime,
}

/// What was (or would be) removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Purged {
    pub invocations: u64,
    pub attempts: u64,
    pub events: u64,
    pub schedule_ticks: u64,
    pub idempotency_keys: u64,
    pub tokens: u64,
    pub audit_entries: u64,
}

impl Purged {
    pub fn add(&mut self, other: Self) {
        self.invocations += other.invocations;
        self.attempts += other.attempts;
        self.events += other.events;
        self.schedule_ticks += other.schedule_ticks;
        self.idempotency_keys += other.idempotency_keys;
        self.tokens += other.tokens;
        self.audit_entries += other.audit_entries;
    }

    /// Whether a batch removed as much as a batch may of some kind: there may be more.
    pub fn full(&self) -> bool {
        let most = BATCH.unsigned_abs();
        [
            self.invocations,
            self.events,
            self.schedule_ticks,
            self.idempotency_keys,
            self.tokens,
            self.audit_entries,
        ]
        .into_iter()
        .any(|n| n >= most)
    }
}

#[derive(QueryableByName)]
struct Picked {
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Text)]
    event_id: String,
}

/// The state as a literal, so each query reads its partial index in order.
const DELIVERED_SQLITE: &str = "SELECT id, event_id FROM invocations WHERE state = 'DELIVERED' \
     AND completed < ? ORDER BY completed LIMIT ?";
const DELIVERED_PG: &str = "SELECT id, event_id FROM invocations WHERE state = 'DELIVERED' \
     AND completed < $1 ORDER BY completed LIMIT $2";
const DEAD_SQLITE: &str =
    "SELECT id, event_id FROM invocations WHERE state = 'DEAD' AND created < ? ORDER BY created LIMIT ?";
const DEAD_PG: &str =
    "SELECT id, event_id FROM invocations WHERE state = 'DEAD' AND created < $1 ORDER BY created LIMIT $2";

fn pick(conn: &mut AnyConnection, delivered: bool, before: NaiveDateTime) -> Result<Vec<Picked>, StoreError> {
    macro_rules! run {
        ($conn:expr, $sql:expr) => {
            diesel::sql_query($sql)
                .bind::<Timestamp, _>(before)
                .bind::<BigInt, _>(BATCH)
                .load::<Picked>($conn)?
        };
    }
    Ok(match (conn, delivered) {
        (AnyConnection::Sqlite(c), true) => run!(c, DELIVERED_SQLITE),
        (AnyConnection::Sqlite(c), false) => run!(c, DEAD_SQLITE),
        (AnyConnection::Postgresql(c), true) => run!(c, DELIVERED_PG),
        (AnyConnection::Postgresql(c), false) => run!(c, DEAD_PG),
    })
}

/// The smallest UUID v7 text of an instant: every id made before it sorts below.
fn first_id_at(at: NaiveDateTime) -> String {
    let ms = u64::try_from(at.and_utc().timestamp_millis()).unwrap_or(0);
    format!("{:08x}-{:04x}-0000-0000-000000000000", ms >> 16, ms & 0xffff)
}

#[derive(QueryableByName)]
struct Locked {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    locked: bool,
}

/// Runs one purge batch, or `None` when another instance is purging (PostgreSQL).
pub fn batch(conn: &mut AnyConnection, cutoffs: Cutoffs) -> Result<Option<Purged>, StoreError> {
    write_transaction(conn, |conn| {
        if let AnyConnection::Postgresql(pg) = conn {
            let lock = diesel::sql_query(format!(
                "SELECT pg_try_advisory_xact_lock({PURGE_LOCK}, hashtext(current_schema())) AS locked"
            ))
            .get_result::<Locked>(pg)?;
            if !lock.locked {
                return Ok(None);
            }
        }
        let mut purged = Purged::default();
        let mut picked = pick(conn, true, cutoffs.delivered)?;
        picked.extend(pick(conn, false, cutoffs.dead)?);
        let ids: Vec<&str> = picked.iter().map(|p| p.id.as_str()).collect();
        let mut event_ids: Vec<&str> = picked.iter().map(|p| p.event_id.as_str()).collect();
        event_ids.sort_unstable();
        event_ids.dedup();
        purged.invocations = remove_invocations(conn, &ids, &mut purged.attempts)?;
        purged.events = remove_unreferenced(conn, &event_ids)?;
        purged.events += walk_events(conn, cutoffs.delivered)?;
        purged.schedule_ticks = remove_ticks(conn, cutoffs.delivered)?;
        purged.audit_entries = super::audit::remove_older(conn, cutoffs.audit, BATCH)?;
        let keys: Vec<String> = idempotency_keys::table
            .filter(idempotency_keys::expires_at.le(cutoffs.now))
            .select(idempotency_keys::key)
            .limit(BATCH)
            .load(conn)?;
        let gone = idempotency_keys::table.filter(idempotency_keys::key.eq_any(&keys));
        purged.idempotency_keys = count(diesel::delete(gone).execute(conn)?);
        let tokens: Vec<String> = api_tokens::table
            .filter(api_tokens::expires_at.le(cutoffs.now))
            .select(api_tokens::token_hash)
            .limit(BATCH)
            .load(conn)?;
        purged.tokens = count(
            diesel::delete(api_tokens::table.filter(api_tokens::token_hash.eq_any(&tokens))).execute(conn)?,
        );
        Ok(Some(purged))
    })
}

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// Deletes invocations by id (their attempts and replays go with them); counts both.
fn remove_invocations(
    conn: &mut AnyConnection,
    ids: &[&str],
    attempts_removed: &mut u64,
) -> Result<u64, StoreError> {
    if ids.is_empty() {
        return Ok(0);
    }
    let n: i64 = attempts::table.filter(attempts::invocation_id.eq_any(ids)).count().get_result(conn)?;
    *attempts_removed += n.unsigned_abs();
    Ok(count(diesel::delete(invocations::table.filter(invocations::id.eq_any(ids))).execute(conn)?))
}

/// Deletes those of `event_ids` that no invocation references.
pub(super) fn remove_unreferenced(conn: &mut AnyConnection, event_ids: &[&str]) -> Result<u64, StoreError> {
    if event_ids.is_empty() {
        return Ok(0);
    }
    let referenced = invocations::table.filter(invocations::event_id.eq(events::id)).select(invocations::id);
    Ok(count(
        diesel::delete(
            events::table
                .filter(events::id.eq_any(event_ids))
                .filter(diesel::dsl::not(diesel::dsl::exists(referenced))),
        )
        .execute(conn)?,
    ))
}

/// Walks the next events older than `before` from the kept cursor, deleting those no
/// invocation references; the rest go once their invocations are purged.
fn walk_events(conn: &mut AnyConnection, before: NaiveDateTime) -> Result<u64, StoreError> {
    let walked: Option<String> =
        meta::table.find(EVENTS_WALKED).select(meta::value).first(conn).optional()?;
    let after = walked.clone().unwrap_or_default();
    let next: Vec<String> = events::table
        .filter(events::id.gt(&after))
        .filter(events::id.lt(first_id_at(before)))
        .order(events::id)
        .select(events::id)
        .limit(BATCH)
        .load(conn)?;
    let Some(last) = next.last() else { return Ok(0) };
    let ids: Vec<&str> = next.iter().map(String::as_str).collect();
    let removed = remove_unreferenced(conn, &ids)?;
    if walked.is_some() {
        diesel::update(meta::table.find(EVENTS_WALKED)).set(meta::value.eq(last)).execute(conn)?;
    } else {
        diesel::insert_into(meta::table)
            .values((meta::key.eq(EVENTS_WALKED), meta::value.eq(last)))
            .execute(conn)?;
    }
    Ok(removed)
}

/// Deletes schedule ticks before `before`: the oldest batch of them, and any others at the
/// same instant as its last one, in one statement.
fn remove_ticks(conn: &mut AnyConnection, before: NaiveDateTime) -> Result<u64, StoreError> {
    let oldest: Vec<NaiveDateTime> = schedule_ticks::table
        .filter(schedule_ticks::tick.lt(before))
        .order(schedule_ticks::tick)
        .select(schedule_ticks::tick)
        .limit(BATCH)
        .load(conn)?;
    let Some(&last) = oldest.last() else { return Ok(0) };
    let gone =
        schedule_ticks::table.filter(schedule_ticks::tick.le(last)).filter(schedule_ticks::tick.lt(before));
    Ok(count(diesel::delete(gone).execute(conn)?))
}

/// What a purge at `cutoffs` would remove, counted without removing anything.
pub fn preview(conn: &mut AnyConnection, cutoffs: Cutoffs) -> Result<Purged, StoreError> {
    let purgeable = invocations::state
        .eq("DELIVERED")
        .and(invocations::completed.lt(cutoffs.delivered))
        .or(invocations::state.eq("DEAD").and(invocations::created.lt(cutoffs.dead)));
    let n = |v: i64| v.unsigned_abs();
    let invocations_n: i64 = invocations::table.filter(purgeable).count().get_result(conn)?;
    let purged_ids = invocations::table.filter(purgeable).select(invocations::id);
    let attempts_n: i64 =
        attempts::table.filter(attempts::invocation_id.eq_any(purged_ids)).count().get_result(conn)?;
    // Events that no invocation would reference any more: every invocation of theirs goes.
    let kept = invocations::table
        .filter(invocations::event_id.eq(events::id))
        .filter(diesel::dsl::not(purgeable))
        .select(invocations::id);
    let referenced_by_purged =
        invocations::table.filter(invocations::event_id.eq(events::id)).select(invocations::id);
    let events_n: i64 = events::table
        .filter(diesel::dsl::not(diesel::dsl::exists(kept)))
        .filter(events::created.lt(cutoffs.delivered).or(diesel::dsl::exists(referenced_by_purged)))
        .count()
        .get_result(conn)?;
    let ticks: i64 =
        schedule_ticks::table.filter(schedule_ticks::tick.lt(cutoffs.delivered)).count().get_result(conn)?;
    let keys: i64 = idempotency_keys::table
        .filter(idempotency_keys::expires_at.le(cutoffs.now))
        .count()
        .get_result(conn)?;
    let tokens: i64 =
        api_tokens::table.filter(api_tokens::expires_at.le(cutoffs.now)).count().get_result(conn)?;
    let audit_entries: i64 =
        audit_log::table.filter(audit_log::at.lt(cutoffs.audit)).count().get_result(conn)?;
    Ok(Purged {
        invocations: n(invocations_n),
        attempts: n(attempts_n),
        events: n(events_n),
        schedule_ticks: n(ticks),
        idempotency_keys: n(keys),
        tokens: n(tokens),
        audit_entries: n(audit_entries),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_id_of_an_instant_sorts_after_every_older_uuid_v7() {
        let at = chrono::DateTime::from_timestamp_millis(1_790_000_000_000).unwrap().naive_utc();
        let bound = first_id_at(at);
        let before =
            uuid::Uuid::new_v7(uuid::Timestamp::from_unix(uuid::NoContext, 1_789_999_999, 999_000_000));
        let after = uuid::Uuid::new_v7(uuid::Timestamp::from_unix(uuid::NoContext, 1_790_000_000, 0));
        assert!(before.to_string() < bound, "{before} < {bound}");
        assert!(after.to_string() > bound, "{after} > {bound}");
    }
}
