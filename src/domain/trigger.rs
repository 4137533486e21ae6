//! Triggers: named event kinds with an input schema, example payloads and default params.

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ids::TriggerId;
use super::schedule::Schedule;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TriggerType {
    FireAndForget,
    RequestResponse,
}

impl TriggerType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FireAndForget => "FIRE_AND_FORGET",
            Self::RequestResponse => "REQUEST_RESPONSE",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "FIRE_AND_FORGET" => Some(Self::FireAndForget),
            "REQUEST_RESPONSE" => Some(Self::RequestResponse),
            _ => None,
        }
    }

    /// SailPoint's limit: 50 subscriptions per fire-and-forget trigger, one per request/response.
    pub fn max_subscriptions(self) -> usize {
        match self {
            Self::FireAndForget => 50,
            Self::RequestResponse => 1,
        }
    }
}

/// A trigger as stored. Schemas are JSON Schema documents kept as the text SailPoint returns.
#[derive(Debug, Clone, PartialEq)]
pub struct Trigger {
    pub id: TriggerId,
    pub name: String,
    pub kind: TriggerType,
    pub description: Option<String>,
    pub input_schema: String,
    pub example_input: Value,
    pub output_schema: Option<String>,
    pub example_output: Option<Value>,
    pub params: serde_json::Map<String, Value>,
    pub enabled: bool,
    /// Fires the trigger on its own at each tick.
    pub schedule: Option<Schedule>,
    pub created: NaiveDateTime,
    pub updated: NaiveDateTime,
}

/// What a caller supplies to create or replace a trigger, already checked.
#[derive(Debug, Clone, PartialEq)]
pub struct TriggerSpec {
    pub id: TriggerId,
    pub name: String,
    pub kind: TriggerType,
    pub description: Option<String>,
    pub input_schema: String,
    pub example_input: Value,
    pub output_schema: Option<String>,
    pub example_output: Option<Value>,
    pub params: serde_json::Map<String, Value>,
    pub enabled: bool,
    pub schedule: Option<Schedule>,
}

/// A field-level problem with a trigger definition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SpecError {
    pub field: &'static str,
    pub message: String,
}

impl SpecError {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self { field, message: message.into() }
    }
}

/// The input of a scheduled firing: the tick's time.
pub fn scheduled_input(tick: NaiveDateTime) -> serde_json::Map<String, Value> {
    let mut input = serde_json::Map::new();
    input.insert(
        "tick".into(),
        Value::String(tick.and_utc().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
    );
    input
}

/// Compiles `schema` (JSON text) as a JSON Schema and checks `example` against it.
pub fn check_schema(
    field: &'static str,
    schema: &str,
    example_field: &'static str,
    example: Option<&Value>,
) -> Result<(), SpecError> {
    let doc: Value =
        serde_json::from_str(schema).map_err(|e| SpecError::new(field, format!("is not JSON: {e}")))?;
    if !doc.is_object() && !doc.is_boolean() {
        return Err(SpecError::new(field, "must be a JSON Schema object"));
    }
    let validator = jsonschema::validator_for(&doc)
        .map_err(|e| SpecError::new(field, format!("is not a valid JSON Schema: {e}")))?;
    if let Some(example) = example
        && let Some(err) = validator.iter_errors(example).next()
    {
        return Err(SpecError::new(
            example_field,
            format!("does not match the schema at '{}': {err}", err.instance_path),
        ));
    }
    Ok(())
}

impl TriggerSpec {
    /// Checks what serde cannot: schemas compile, examples conform, request/response shape.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.name.trim().is_empty() {
            return Err(SpecError::new("name", "must not be empty"));
        }
        check_schema("inputSchema", &self.input_schema, "exampleInput", Some(&self.example_input))?;
        match (&self.output_schema, self.kind) {
            (Some(schema), TriggerType::RequestResponse) => {
                check_schema("outputSchema", schema, "exampleOutput", self.example_output.as_ref())?;
            }
            (Some(_), TriggerType::FireAndForget) => {
                return Err(SpecError::new("outputSchema", "is only allowed on REQUEST_RESPONSE triggers"));
            }
            (None, _) => {}
        }
        if self.example_output.as_ref().is_some_and(|v| !v.is_object()) {
            return Err(SpecError::new("exampleOutput", "must be a JSON object"));
        }
        if self.kind == TriggerType::FireAndForget && self.example_output.is_some() {
            return Err(SpecError::new("exampleOutput", "is only allowed on REQUEST_RESPONSE triggers"));
        }
        if self.schedule.is_some() {
            let tick = scheduled_input(chrono::DateTime::UNIX_EPOCH.naive_utc());
            check_schema("inputSchema", &self.input_schema, "schedule", Some(&Value::Object(tick))).map_err(
                |e| {
                    SpecError::new(
                        "schedule",
                        format!(
                            "the input schema must accept a tick's input {{\"tick\": \"<time>\"}}: {}",
                            e.message
                        ),
                    )
                },
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec() -> TriggerSpec {
        TriggerSpec {
            id: "test:x".parse().unwrap(),
            name: "X".into(),
            kind: TriggerType::FireAndForget,
            description: None,
            input_schema: r#"{"type":"object","required":["a"],"properties":{"a":{"type":"string"}}}"#.into(),
            example_input: json!({"a": "b"}),
            output_schema: None,
            example_output: None,
            params: serde_json::Map::new(),
            enabled: true,
            schedule: None,
        }
    }

    #[test]
    fn a_conforming_trigger_is_valid() {
        assert_eq!(spec().validate(), Ok(()));
    }

    #[test]
    fn an_invalid_schema_is_refused() {
        let mut s = spec();
        s.input_schema = r#"{"type": 12}"#.into();
        assert_eq!(s.validate().unwrap_err().field, "inputSchema");
    }

    #[test]
    fn an_example_that_breaks_the_schema_is_refused_with_its_path() {
        let mut s = spec();
        s.example_input = json!({"a": 3});
        let err = s.validate().unwrap_err();
        assert_eq!(err.field, "exampleInput");
        assert!(err.message.contains("/a"), "{err}");
    }

    #[test]
    fn an_example_output_is_an_object() {
        let mut s = spec();
        s.kind = TriggerType::RequestResponse;
        s.example_output = Some(json!([null, null]));
        assert_eq!(s.validate().unwrap_err().field, "exampleOutput");
        s.example_output = Some(json!({"approved": true}));
        assert_eq!(s.validate(), Ok(()));
    }

    #[test]
    fn fire_and_forget_triggers_have_no_output_schema() {
        let mut s = spec();
        s.output_schema = Some("{}".into());
        assert_eq!(s.validate().unwrap_err().field, "outputSchema");
    }
}
