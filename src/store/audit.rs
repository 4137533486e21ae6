//! The audit log: who changed what, when, with the resource before and after (as the API shows
//! it, so write-only secrets are not in it). An entry is written in the transaction of the
//! change it records ([`audited`]): a change is never recorded without happening, nor the reverse.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde_json::Value;

use super::schema::audit_log;
use super::{AnyConnection, StoreError, json_column, write_transaction};

/// One change, as the caller describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The API client that made it (`cli` for commands run on the database).
    pub actor: String,
    /// `trigger.create`, `subscription.update`, `invocation.replay`, ….
    pub action: &'static str,
    pub resource_type: &'static str,
    pub resource_id: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

/// A recorded entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub id: String,
    pub at: NaiveDateTime,
    pub entry: Entry,
}

#[derive(Queryable, Insertable)]
#[diesel(table_name = audit_log)]
struct Row {
    id: String,
    at: NaiveDateTime,
    actor: String,
    action: String,
    resource_type: String,
    resource_id: String,
    before: Option<String>,
    after: Option<String>,
}

/// Runs the change `f` and records the entry it returns, in one transaction.
pub fn audited<T>(
    conn: &mut AnyConnection,
    at: NaiveDateTime,
    f: impl FnOnce(&mut AnyConnection) -> Result<(T, Entry), StoreError>,
) -> Result<T, StoreError> {
    audited_if(conn, at, |conn| f(conn).map(|(out, entry)| (out, Some(entry))))
}

/// [`audited`] for a change that may turn out to change nothing (`None`: no entry).
pub fn audited_if<T>(
    conn: &mut AnyConnection,
    at: NaiveDateTime,
    f: impl FnOnce(&mut AnyConnection) -> Result<(T, Option<Entry>), StoreError>,
) -> Result<T, StoreError> {
    write_transaction(conn, |conn| {
        let (out, entry) = f(conn)?;
        if let Some(entry) = entry {
            record(conn, at, &entry)?;
        }
        Ok(out)
    })
}

/// Records `entry` (in the caller's transaction).
pub fn record(conn: &mut AnyConnection, at: NaiveDateTime, entry: &Entry) -> Result<(), StoreError> {
    let row = Row {
        id: uuid::Uuid::now_v7().to_string(),
        at,
        actor: entry.actor.clone(),
        action: entry.action.to_owned(),
        resource_type: entry.resource_type.to_owned(),
        resource_id: entry.resource_id.clone(),
        before: entry.before.as_ref().map(Value::to_string),
        after: entry.after.as_ref().map(Value::to_string),
    };
    diesel::insert_into(audit_log::table).values(row).execute(conn)?;
    Ok(())
}

/// One condition of an audit list query (all must hold).
#[derive(Debug, Clone)]
pub enum Condition {
    ActorIs(String),
    ActionIs(String),
    ResourceTypeIs(String),
    ResourceIdIs(String),
    AtLeast(NaiveDateTime),
    Before(NaiveDateTime),
}

/// A page of entries, newest first, and how many matched.
pub fn list(
    conn: &mut AnyConnection,
    conditions: &[Condition],
    offset: i64,
    limit: i64,
) -> Result<(Vec<Recorded>, i64), StoreError> {
    let filtered = || {
        let mut q = audit_log::table.into_boxed();
        for c in conditions {
            q = match c {
                Condition::ActorIs(v) => q.filter(audit_log::actor.eq(v.clone())),
                Condition::ActionIs(v) => q.filter(audit_log::action.eq(v.clone())),
                Condition::ResourceTypeIs(v) => q.filter(audit_log::resource_type.eq(v.clone())),
                Condition::ResourceIdIs(v) => q.filter(audit_log::resource_id.eq(v.clone())),
                Condition::AtLeast(t) => q.filter(audit_log::at.ge(*t)),
                Condition::Before(t) => q.filter(audit_log::at.lt(*t)),
            };
        }
        q
    };
    let total: i64 = filtered().count().get_result(conn)?;
    let rows: Vec<Row> = filtered()
        .order((audit_log::at.desc(), audit_log::id.desc()))
        .offset(offset)
        .limit(limit)
        .load(conn)?;
    let entries = rows
        .into_iter()
        .map(|r| {
            let json = |text: Option<String>, column: &str| text.map(|t| json_column(column, &t)).transpose();
            Ok(Recorded {
                id: r.id,
                at: r.at,
                entry: Entry {
                    actor: r.actor,
                    action: known(&r.action, ACTIONS),
                    resource_type: known(&r.resource_type, RESOURCE_TYPES),
                    resource_id: r.resource_id,
                    before: json(r.before, "audit_log.before")?,
                    after: json(r.after, "audit_log.after")?,
                },
            })
        })
        .collect::<Result<_, StoreError>>()?;
    Ok((entries, total))
}

/// Every action an entry records.
pub const ACTIONS: &[&str] = &[
    "trigger.create",
    "trigger.update",
    "trigger.delete",
    "subscription.create",
    "subscription.update",
    "subscription.disable",
    "subscription.delete",
    "subscription.rotate-secret",
    "source.create",
    "source.update",
    "source.delete",
    "client.create",
    "client.revoke",
    "invocation.replay",
    "dead-letters.replay",
    "invocations.erase",
];

pub const RESOURCE_TYPES: &[&str] = &["trigger", "subscription", "source", "client", "invocation"];

fn known(text: &str, names: &'static [&'static str]) -> &'static str {
    names.iter().find(|n| **n == text).copied().unwrap_or("unknown")
}

/// Deletes up to `limit` entries older than `before`; returns how many.
pub(super) fn remove_older(
    conn: &mut AnyConnection,
    before: NaiveDateTime,
    limit: i64,
) -> Result<u64, StoreError> {
    let old: Vec<String> = audit_log::table
        .filter(audit_log::at.lt(before))
        .order(audit_log::at)
        .select(audit_log::id)
        .limit(limit)
        .load(conn)?;
    let removed = diesel::delete(audit_log::table.filter(audit_log::id.eq_any(&old))).execute(conn)?;
    Ok(u64::try_from(removed).unwrap_or(u64::MAX))
}
