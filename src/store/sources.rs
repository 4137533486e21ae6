//! Sources: their settings, the counters of what they received, and the messages they refused.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::revisions::{self, Cached};
use super::schema::{source_rejections, sources, triggers};
use super::{AnyConnection, StoreError, json_column, write_transaction};
use super::{crypto, operational};
use crate::domain::catalog;
use crate::domain::filter::Filter;
use crate::domain::ids::{SourceId, TriggerId};
use crate::domain::secret::Secret;
use crate::domain::source::{
    RejectReason, ResponseMode, Routes, Source, SourceSpec, SourceStatus, SourceType,
};
use crate::domain::trigger::TriggerType;

/// How many refused messages are kept per source.
pub const KEPT_REJECTIONS: i64 = 100;

#[derive(Queryable, Insertable)]
#[diesel(table_name = sources)]
pub(super) struct SourceRow {
    id: String,
    name: String,
    kind: String,
    trigger_id: String,
    enabled: bool,
    input_path: Option<String>,
    routes: Option<String>,
    config: String,
    hook_token: Option<String>,
    received: i64,
    fired: i64,
    rejected: i64,
    last_event_at: Option<NaiveDateTime>,
    last_error: Option<String>,
    created: NaiveDateTime,
    updated: NaiveDateTime,
    next_poll_at: Option<NaiveDateTime>,
    state: Option<String>,
    failing_since: Option<NaiveDateTime>,
}

/// The sealed columns ([`crypto`]).
const CONFIG: &str = "sources.config";
const HOOK_TOKEN: &str = "sources.hook_token";

fn corrupt(column: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("sources.{column}: {e}"))
}

impl SourceRow {
    fn new(
        id: &SourceId,
        spec: &SourceSpec,
        token: Option<&Secret>,
        created: NaiveDateTime,
        updated: NaiveDateTime,
    ) -> Result<Self, StoreError> {
        let config = match spec.kind {
            SourceType::HttpPoll => serde_json::to_string(&spec.poll),
            SourceType::Monitor => serde_json::to_string(&spec.monitor),
            SourceType::RedisStream => serde_json::to_string(&spec.redis_stream),
            SourceType::Nats => serde_json::to_string(&spec.nats),
            SourceType::Amqp => serde_json::to_string(&spec.amqp),
            SourceType::Webhook => serde_json::to_string(&spec.webhook),
        }
        .unwrap_or_default();
        Ok(Self {
            id: id.to_string(),
            name: spec.name.clone(),
            kind: spec.kind.as_str().to_owned(),
            trigger_id: spec.trigger_id.to_string(),
            enabled: spec.enabled,
            input_path: spec.input_path.as_ref().map(|f| f.as_str().to_owned()),
            routes: spec.routes.as_ref().map(|r| serde_json::to_string(r.doc()).unwrap_or_default()),
            // The configuration holds the source's secrets (signing secrets, headers, broker
            // passwords): it is sealed whole.
            config: crypto::seal(CONFIG, id.as_str(), &config)?,
            hook_token: token.map(|t| crypto::seal(HOOK_TOKEN, id.as_str(), t.expose())).transpose()?,
            received: 0,
            fired: 0,
            rejected: 0,
            last_event_at: None,
            last_error: None,
            created,
            updated,
            next_poll_at: None,
            state: None,
            failing_since: None,
        })
    }

    pub(super) fn into_domain(self) -> Result<Source, StoreError> {
        let kind = SourceType::parse(&self.kind).ok_or_else(|| corrupt("type", &self.kind))?;
        let opened = crypto::open(CONFIG, &self.id, &self.config)?;
        let config = |of: SourceType| if kind == of { Some(opened.as_str()) } else { None };
        let spec = SourceSpec {
            kind,
            trigger_id: self.trigger_id.parse().map_err(|e| corrupt("trigger_id", e))?,
            enabled: self.enabled,
            input_path: self
                .input_path
                .as_deref()
                .map(Filter::parse)
                .transpose()
                .map_err(|e| corrupt("input_path", e))?,
            routes: self
                .routes
                .as_deref()
                .map(|text| {
                    json_column("sources.routes", text)
                        .and_then(|doc| Routes::parse(doc).map_err(|e| corrupt("routes", e)))
                })
                .transpose()?,
            webhook: config(SourceType::Webhook)
                .map(|c| json_column("sources.config", c))
                .transpose()?
                .flatten(),
            poll: config(SourceType::HttpPoll)
                .map(|c| json_column("sources.config", c))
                .transpose()?
                .flatten(),
            monitor: config(SourceType::Monitor)
                .map(|c| json_column("sources.config", c))
                .transpose()?
                .flatten(),
            redis_stream: config(SourceType::RedisStream)
                .map(|c| json_column("sources.config", c))
                .transpose()?
                .flatten(),
            nats: config(SourceType::Nats).map(|c| json_column("sources.config", c)).transpose()?.flatten(),
            amqp: config(SourceType::Amqp).map(|c| json_column("sources.config", c)).transpose()?.flatten(),
            name: self.name,
        };
        Ok(Source {
            id: self.id.parse().map_err(|e| corrupt("id", e))?,
            spec,
            hook_token: self
                .hook_token
                .as_deref()
                .map(|t| crypto::open(HOOK_TOKEN, &self.id, t).map(Secret::new))
                .transpose()?,
            status: SourceStatus {
                received: self.received,
                fired: self.fired,
                rejected: self.rejected,
                last_event_at: self.last_event_at,
                last_error: self.last_error,
            },
            created: self.created,
            updated: self.updated,
        })
    }
}

pub fn list(conn: &mut AnyConnection) -> Result<Vec<Source>, StoreError> {
    sources::table
        .order(sources::id)
        .load::<SourceRow>(conn)?
        .into_iter()
        .map(SourceRow::into_domain)
        .collect()
}

pub fn get(conn: &mut AnyConnection, id: &SourceId) -> Result<Source, StoreError> {
    sources::table.find(id.as_str()).first::<SourceRow>(conn)?.into_domain()
}

/// Every trigger the source may fire must exist; one that answers its sender with a
/// subscriber's output (`SYNC`) fires only request/response triggers.
fn check_triggers(conn: &mut AnyConnection, spec: &SourceSpec) -> Result<(), StoreError> {
    let sync = spec.webhook.as_ref().is_some_and(|h| h.response == ResponseMode::Sync);
    for id in spec.triggers() {
        let kind: Option<String> =
            triggers::table.find(id.as_str()).select(triggers::kind).first(conn).optional()?;
        match kind {
            None => return Err(StoreError::Invalid(format!("triggerId '{id}' does not name a trigger"))),
            Some(kind) if sync && kind != TriggerType::RequestResponse.as_str() => {
                return Err(StoreError::Invalid(format!(
                    "webhookConfig.response: SYNC answers with a subscriber's output, so it needs a \
                     REQUEST_RESPONSE trigger; '{id}' is {kind}"
                )));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Stores a new source; `token` is the one its URL carries when it has no signature to check.
pub fn insert(
    conn: &mut AnyConnection,
    id: &SourceId,
    spec: &SourceSpec,
    token: Option<&Secret>,
    now: NaiveDateTime,
) -> Result<Source, StoreError> {
    write_transaction(conn, |conn| {
        check_triggers(conn, spec)?;
        let row = SourceRow::new(id, spec, token, now, now)?;
        diesel::insert_into(sources::table).values(&row).execute(conn)?;
        revisions::changed(conn, Cached::Sources)?;
        row.into_domain()
    })
}

/// Replaces the settings with what `change` makes of the current source, keeping its counters;
/// `change` also says which URL token it has from now on.
pub fn update(
    conn: &mut AnyConnection,
    id: &SourceId,
    now: NaiveDateTime,
    change: impl FnOnce(&Source) -> Result<(SourceSpec, Option<Secret>), StoreError>,
) -> Result<Source, StoreError> {
    write_transaction(conn, |conn| {
        if let AnyConnection::Postgresql(pg) = conn {
            sources::table
                .find(id.as_str())
                .select(sources::id)
                .for_update()
                .first::<String>(pg)
                .optional()?;
        }
        let current = get(conn, id)?;
        let (spec, token) = change(&current)?;
        check_triggers(conn, &spec)?;
        let row = SourceRow::new(id, &spec, token.as_ref(), current.created, now)?;
        diesel::update(sources::table.find(id.as_str()))
            .set((
                sources::name.eq(&row.name),
                sources::kind.eq(&row.kind),
                sources::trigger_id.eq(&row.trigger_id),
                sources::enabled.eq(row.enabled),
                sources::input_path.eq(&row.input_path),
                sources::routes.eq(&row.routes),
                sources::config.eq(&row.config),
                sources::hook_token.eq(&row.hook_token),
                sources::updated.eq(now),
                // A changed source is fetched again at once.
                sources::next_poll_at.eq(None::<NaiveDateTime>),
            ))
            .execute(conn)?;
        revisions::changed(conn, Cached::Sources)?;
        get(conn, id)
    })
}

/// Notes that a source works again, or that it fails since `now` (publishing that it does, if
/// it did not already).
fn record_working(
    conn: &mut AnyConnection,
    id: &SourceId,
    working: bool,
    error: Option<&str>,
    now: NaiveDateTime,
) -> Result<(), StoreError> {
    let source = sources::table.find(id.as_str());
    if working {
        diesel::update(source.filter(sources::failing_since.is_not_null()))
            .set(sources::failing_since.eq(None::<NaiveDateTime>))
            .execute(conn)?;
        return Ok(());
    }
    let started = diesel::update(source.filter(sources::failing_since.is_null()))
        .set(sources::failing_since.eq(now))
        .execute(conn)?;
    if started == 0 {
        return Ok(());
    }
    let (name, kind, trigger): (String, String, String) =
        source.select((sources::name, sources::kind, sources::trigger_id)).first(conn)?;
    let input = operational::object([
        ("sourceId", id.to_string().into()),
        ("sourceName", name.into()),
        ("sourceType", kind.into()),
        ("triggerId", trigger.into()),
        ("error", error.unwrap_or("unknown").into()),
        ("failingSince", operational::time(now)),
    ]);
    operational::publish(conn, catalog::SOURCE_FAILING, input, None, now)?;
    Ok(())
}

pub fn delete(conn: &mut AnyConnection, id: &SourceId) -> Result<(), StoreError> {
    write_transaction(conn, |conn| {
        diesel::delete(source_rejections::table.filter(source_rejections::source_id.eq(id.as_str())))
            .execute(conn)?;
        if diesel::delete(sources::table.find(id.as_str())).execute(conn)? == 0 {
            return Err(StoreError::NotFound);
        }
        revisions::changed(conn, Cached::Sources)
    })
}

/// How many sources fire `trigger`.
pub fn count_for_trigger(conn: &mut AnyConnection, trigger: &TriggerId) -> Result<i64, StoreError> {
    Ok(sources::table.filter(sources::trigger_id.eq(trigger.as_str())).count().get_result(conn)?)
}

/// What one source did since its counters were last written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Activity {
    pub received: i64,
    pub fired: i64,
    pub rejected: i64,
    pub last_event_at: Option<NaiveDateTime>,
    pub last_error: Option<String>,
    /// The latest refused messages, oldest first.
    pub rejections: Vec<Refused>,
    /// Whether it worked (`true`) or failed (`false`) last; `None`: neither happened.
    pub working: Option<bool>,
}

/// A refused message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub at: NaiveDateTime,
    pub reason: RejectReason,
    pub message: String,
    /// The start of the message, as text.
    pub excerpt: String,
}

/// Adds what sources did to their counters and keeps their latest refused messages, in one
/// transaction; a source that starts failing at `now` is published on `hookgate:source-failing`
/// (once, until it works again). A source deleted meanwhile is skipped.
pub fn record_activity(
    conn: &mut AnyConnection,
    activity: &[(SourceId, Activity)],
    now: NaiveDateTime,
) -> Result<(), StoreError> {
    write_transaction(conn, |conn| {
        for (id, a) in activity {
            if let Some(working) = a.working {
                record_working(conn, id, working, a.last_error.as_deref(), now)?;
            }
            let updated = diesel::update(sources::table.find(id.as_str()))
                .set((
                    sources::received.eq(sources::received + a.received),
                    sources::fired.eq(sources::fired + a.fired),
                    sources::rejected.eq(sources::rejected + a.rejected),
                ))
                .execute(conn)?;
            if updated == 0 {
                continue;
            }
            if let Some(at) = a.last_event_at {
                diesel::update(sources::table.find(id.as_str()))
                    .filter(sources::last_event_at.is_null().or(sources::last_event_at.lt(at)))
                    .set(sources::last_event_at.eq(at))
                    .execute(conn)?;
            }
            if let Some(error) = &a.last_error {
                diesel::update(sources::table.find(id.as_str()))
                    .set(sources::last_error.eq(error))
                    .execute(conn)?;
            }
            if a.rejections.is_empty() {
                continue;
            }
            // Ids sort as the messages came: the batch's time, then its place in the batch.
            let batch = uuid::Uuid::now_v7();
            for (place, r) in a.rejections.iter().enumerate() {
                diesel::insert_into(source_rejections::table)
                    .values((
                        source_rejections::id.eq(format!("{batch}-{place:04}")),
                        source_rejections::source_id.eq(id.as_str()),
                        source_rejections::at.eq(r.at),
                        source_rejections::reason.eq(r.reason.as_str()),
                        source_rejections::message.eq(&r.message),
                        source_rejections::excerpt.eq(&r.excerpt),
                    ))
                    .execute(conn)?;
            }
            let keep: Vec<String> = source_rejections::table
                .filter(source_rejections::source_id.eq(id.as_str()))
                .order((source_rejections::at.desc(), source_rejections::id.desc()))
                .limit(KEPT_REJECTIONS)
                .select(source_rejections::id)
                .load(conn)?;
            diesel::delete(
                source_rejections::table
                    .filter(source_rejections::source_id.eq(id.as_str()))
                    .filter(source_rejections::id.ne_all(keep)),
            )
            .execute(conn)?;
        }
        Ok(())
    })
}

/// The latest refused messages of a source, newest first.
pub fn rejections(conn: &mut AnyConnection, id: &SourceId, limit: i64) -> Result<Vec<Refused>, StoreError> {
    let rows: Vec<(NaiveDateTime, String, String, String)> = source_rejections::table
        .filter(source_rejections::source_id.eq(id.as_str()))
        .order((source_rejections::at.desc(), source_rejections::id.desc()))
        .limit(limit)
        .select((
            source_rejections::at,
            source_rejections::reason,
            source_rejections::message,
            source_rejections::excerpt,
        ))
        .load(conn)?;
    rows.into_iter()
        .map(|(at, reason, message, excerpt)| {
            let reason = RejectReason::parse(&reason)
                .ok_or_else(|| StoreError::Corrupt(format!("source_rejections.reason: '{reason}'")))?;
            Ok(Refused { at, reason, message, excerpt })
        })
        .collect()
}
