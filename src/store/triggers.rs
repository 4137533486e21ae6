//! Trigger queries, and the one-time seeding of the default catalog.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::revisions::{self, Cached};
use super::schema::{meta, subscriptions, triggers};
use super::{AnyConnection, StoreError, json_column, write_transaction};
use crate::domain::ids::TriggerId;
use crate::domain::schedule::Schedule;
use crate::domain::trigger::{Trigger, TriggerSpec, TriggerType};

#[derive(Queryable, Insertable, AsChangeset)]
#[diesel(table_name = triggers)]
struct TriggerRow {
    id: String,
    name: String,
    kind: String,
    description: Option<String>,
    input_schema: String,
    example_input: String,
    output_schema: Option<String>,
    example_output: Option<String>,
    params: String,
    enabled: bool,
    created: NaiveDateTime,
    updated: NaiveDateTime,
    schedule: Option<String>,
    timezone: Option<String>,
}

impl TriggerRow {
    fn new(spec: &TriggerSpec, created: NaiveDateTime, updated: NaiveDateTime) -> Self {
        Self {
            id: spec.id.to_string(),
            name: spec.name.clone(),
            kind: spec.kind.as_str().to_owned(),
            description: spec.description.clone(),
            input_schema: spec.input_schema.clone(),
            example_input: spec.example_input.to_string(),
            output_schema: spec.output_schema.clone(),
            example_output: spec.example_output.as_ref().map(ToString::to_string),
            params: serde_json::Value::Object(spec.params.clone()).to_string(),
            enabled: spec.enabled,
            created,
            updated,
            schedule: spec.schedule.as_ref().map(|s| s.expression().to_owned()),
            timezone: spec.schedule.as_ref().and_then(|s| s.timezone().map(str::to_owned)),
        }
    }

    fn into_domain(self) -> Result<Trigger, StoreError> {
        Ok(Trigger {
            id: self.id.parse().map_err(|e| StoreError::Corrupt(format!("triggers.id: {e}")))?,
            kind: TriggerType::parse(&self.kind)
                .ok_or_else(|| StoreError::Corrupt(format!("triggers.type: '{}'", self.kind)))?,
            example_input: json_column("triggers.example_input", &self.example_input)?,
            example_output: self
                .example_output
                .as_deref()
                .map(|t| json_column("triggers.example_output", t))
                .transpose()?,
            params: json_column("triggers.params", &self.params)?,
            schedule: self
                .schedule
                .as_deref()
                .map(|e| Schedule::parse(e, self.timezone.as_deref()))
                .transpose()
                .map_err(|e| StoreError::Corrupt(format!("triggers.schedule: {e}")))?,
            name: self.name,
            description: self.description,
            input_schema: self.input_schema,
            output_schema: self.output_schema,
            enabled: self.enabled,
            created: self.created,
            updated: self.updated,
        })
    }
}

pub fn list(conn: &mut AnyConnection) -> Result<Vec<Trigger>, StoreError> {
    triggers::table
        .order(triggers::id)
        .load::<TriggerRow>(conn)?
        .into_iter()
        .map(TriggerRow::into_domain)
        .collect()
}

pub fn get(conn: &mut AnyConnection, id: &TriggerId) -> Result<Trigger, StoreError> {
    triggers::table.find(id.as_str()).first::<TriggerRow>(conn)?.into_domain()
}

pub fn insert(
    conn: &mut AnyConnection,
    spec: &TriggerSpec,
    now: NaiveDateTime,
) -> Result<Trigger, StoreError> {
    write_transaction(conn, |conn| {
        let row = TriggerRow::new(spec, now, now);
        diesel::insert_into(triggers::table).values(&row).execute(conn)?;
        revisions::changed(conn, Cached::Triggers)?;
        row.into_domain()
    })
}

/// Replaces every field but the id and creation time with what `change` makes of the current
/// trigger, in one transaction.
pub fn update(
    conn: &mut AnyConnection,
    id: &TriggerId,
    now: NaiveDateTime,
    change: impl FnOnce(&Trigger) -> Result<TriggerSpec, StoreError>,
) -> Result<Trigger, StoreError> {
    write_transaction(conn, |conn| {
        if let AnyConnection::Postgresql(pg) = conn {
            // Concurrent updates queue here instead of overwriting each other.
            triggers::table
                .find(id.as_str())
                .select(triggers::id)
                .for_update()
                .first::<String>(pg)
                .optional()?;
        }
        let current = get(conn, id)?;
        let spec = change(&current)?;
        let row = TriggerRow::new(&spec, current.created, now);
        diesel::update(triggers::table.find(id.as_str())).set(&row).execute(conn)?;
        revisions::changed(conn, Cached::Triggers)?;
        row.into_domain()
    })
}

/// Deletes a trigger that no subscription uses.
pub fn delete(conn: &mut AnyConnection, id: &TriggerId) -> Result<(), StoreError> {
    write_transaction(conn, |conn| {
        get(conn, id)?;
        let used: i64 = subscriptions::table
            .filter(subscriptions::trigger_id.eq(id.as_str()))
            .count()
            .get_result(conn)?;
        if used > 0 {
            return Err(StoreError::InUse(format!(
                "trigger '{id}' has {used} subscription(s); delete them first"
            )));
        }
        let chained = super::chains::count_targeting(conn, id)?;
        if chained > 0 {
            return Err(StoreError::InUse(format!(
                "trigger '{id}' is published on by {chained} chained subscription(s); delete them first"
            )));
        }
        let fed = super::sources::count_for_trigger(conn, id)?;
        if fed > 0 {
            return Err(StoreError::InUse(format!("trigger '{id}' has {fed} source(s); delete them first")));
        }
        diesel::delete(triggers::table.find(id.as_str())).execute(conn)?;
        revisions::changed(conn, Cached::Triggers)
    })
}

const CATALOG_SEEDED: &str = "catalog_seeded";

/// Inserts the default catalog once per database: a trigger an operator deleted stays deleted.
/// Returns how many triggers were inserted.
pub fn seed_catalog(
    conn: &mut AnyConnection,
    catalog: &[TriggerSpec],
    now: NaiveDateTime,
) -> Result<usize, StoreError> {
    write_transaction(conn, |conn| {
        let seeded = meta::table.find(CATALOG_SEEDED).count().get_result::<i64>(conn)? > 0;
        if seeded {
            return Ok(0);
        }
        let mut inserted = 0;
        for spec in catalog {
            let exists = triggers::table.find(spec.id.as_str()).count().get_result::<i64>(conn)? > 0;
            if !exists {
                diesel::insert_into(triggers::table).values(TriggerRow::new(spec, now, now)).execute(conn)?;
                inserted += 1;
            }
        }
        diesel::insert_into(meta::table)
            .values((meta::key.eq(CATALOG_SEEDED), meta::value.eq(now.and_utc().to_rfc3339())))
            .execute(conn)?;
        Ok(inserted)
    })
}

/// Enabled triggers that carry a schedule.
pub fn scheduled(conn: &mut AnyConnection) -> Result<Vec<Trigger>, StoreError> {
    triggers::table
        .filter(triggers::schedule.is_not_null())
        .filter(triggers::enabled.eq(true))
        .order(triggers::id)
        .load::<TriggerRow>(conn)?
        .into_iter()
        .map(TriggerRow::into_domain)
        .collect()
}
