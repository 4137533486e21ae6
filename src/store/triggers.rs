//! Trigger queries, and the one-time seeding of the default catalog.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::revisions::{self, Cached};
use super::schema::{meta, triggers};
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
        let used = super::subscriptions::count_for_trigger(conn, id)?;
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

/// The marker of the default catalog's seeding, in `meta`.
pub const DEFAULT_CATALOG: &str = "catalog_seeded";
/// The marker of the operational triggers' seeding (added to databases seeded before them).
pub const OPERATIONAL_CATALOG: &str = "operational_catalog_seeded";

/// Inserts a catalog once per database, noting it under `marker`: a trigger an operator
/// deleted stays deleted. Returns how many triggers were inserted.
pub fn seed_catalog(
    conn: &mut AnyConnection,
    marker: &str,
    catalog: &[TriggerSpec],
    now: NaiveDateTime,
) -> Result<usize, StoreError> {
    write_transaction(conn, |conn| {
        let seeded = meta::table.find(marker).count().get_result::<i64>(conn)? > 0;
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
            .values((meta::key.eq(marker), meta::value.eq(now.and_utc().to_rfc3339())))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::catalog::{default_catalog, operational_catalog};
    use crate::store::Store;

    #[test]
    fn a_database_seeded_before_the_operational_triggers_gets_them_once() {
        let store = Store::open(":memory:", 1, std::time::Duration::from_secs(5)).unwrap();
        store.migrate().unwrap();
        let now = chrono::Utc::now().naive_utc();
        let (default, operational) = (default_catalog().unwrap(), operational_catalog().unwrap());
        let seed = |marker: &'static str, catalog: Vec<TriggerSpec>| {
            store.run_blocking(move |c| seed_catalog(c, marker, &catalog, now)).unwrap()
        };
        assert_eq!(seed(DEFAULT_CATALOG, default.clone()), default.len());
        assert_eq!(seed(DEFAULT_CATALOG, default), 0, "seeded once");
        assert_eq!(seed(OPERATIONAL_CATALOG, operational.clone()), 3, "the next start adds them");
        let id: TriggerId = crate::domain::catalog::INVOCATION_DEAD.parse().unwrap();
        store.run_blocking(move |c| delete(c, &id)).unwrap();
        assert_eq!(seed(OPERATIONAL_CATALOG, operational), 0, "one an operator deleted stays deleted");
    }
}
