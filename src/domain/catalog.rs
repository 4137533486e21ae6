//! The default trigger catalog seeded into a new database: SailPoint's production triggers
//! and two test triggers (`catalog.json` beside this file), and hookgate's operational
//! triggers, on which it publishes what operators need to know (`operational.json`).

use serde::Deserialize;
use serde_json::{Map, Value};

use super::trigger::{SpecError, TriggerSpec, TriggerType};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Entry {
    id: String,
    name: String,
    #[serde(rename = "type")]
    kind: TriggerType,
    description: String,
    input_schema: Value,
    example_input: Value,
    output_schema: Option<Value>,
    example_output: Option<Value>,
    #[serde(default)]
    params: Map<String, Value>,
}

/// The trigger hookgate publishes on when it switches a subscription off.
pub const SUBSCRIPTION_DISABLED: &str = "hookgate:subscription-disabled";
/// The trigger hookgate publishes on when an invocation becomes a dead letter.
pub const INVOCATION_DEAD: &str = "hookgate:invocation-dead";
/// The trigger hookgate publishes on when a source starts failing.
pub const SOURCE_FAILING: &str = "hookgate:source-failing";

/// Whether hookgate itself publishes on the trigger `id` (its operational triggers).
pub fn is_operational(id: &str) -> bool {
    id.starts_with("hookgate:")
}

/// Parses and checks every catalog entry.
pub fn default_catalog() -> Result<Vec<TriggerSpec>, SpecError> {
    parse(include_str!("catalog.json"))
}

/// Parses and checks the operational triggers.
pub fn operational_catalog() -> Result<Vec<TriggerSpec>, SpecError> {
    parse(include_str!("operational.json"))
}

fn parse(json: &str) -> Result<Vec<TriggerSpec>, SpecError> {
    let entries: Vec<Entry> =
        serde_json::from_str(json).map_err(|e| SpecError::new("catalog", e.to_string()))?;
    entries
        .into_iter()
        .map(|e| {
            let spec = TriggerSpec {
                id: e.id.parse().map_err(|err| SpecError::new("id", format!("{err}")))?,
                name: e.name,
                kind: e.kind,
                description: Some(e.description),
                input_schema: e.input_schema.to_string(),
                example_input: e.example_input,
                output_schema: e.output_schema.map(|s| s.to_string()),
                example_output: e.example_output,
                params: e.params,
                enabled: true,
                schedule: None,
            };
            spec.validate().map_err(|err| SpecError::new("catalog", format!("{}: {err}", spec.id)))?;
            Ok(spec)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_operational_triggers_are_hookgates_own() {
        let ids: Vec<String> = operational_catalog().unwrap().iter().map(|t| t.id.to_string()).collect();
        assert_eq!(ids, [SUBSCRIPTION_DISABLED, INVOCATION_DEAD, SOURCE_FAILING]);
        assert!(ids.iter().all(|id| is_operational(id)));
        assert!(default_catalog().unwrap().iter().all(|t| !is_operational(t.id.as_str())));
    }

    #[test]
    fn every_catalog_entry_is_valid_and_ids_are_unique() {
        let catalog = default_catalog().unwrap();
        let mut ids: Vec<_> = catalog.iter().map(|t| t.id.to_string()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), catalog.len());
        for id in [
            "test:fire-and-forget",
            "test:request-response",
            "idn:identity-attributes-changed",
            "idn:access-request-pre-approval",
        ] {
            assert!(ids.iter().any(|i| i == id), "{id} missing");
        }
    }
}
