//! The default trigger catalog seeded into a new database: SailPoint's production triggers
//! and two test triggers (`catalog.json` beside this file).

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

/// Parses and checks every catalog entry.
pub fn default_catalog() -> Result<Vec<TriggerSpec>, SpecError> {
    let entries: Vec<Entry> = serde_json::from_str(include_str!("catalog.json"))
        .map_err(|e| SpecError::new("catalog", e.to_string()))?;
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
