//! Compiled trigger schemas, cached by trigger id and version, and the problems a value has
//! against them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::NaiveDateTime;
use serde_json::Value;

use super::trigger::Trigger;

/// Which of a trigger's schemas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    Input,
    Output,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Self::Input => "input",
            Self::Output => "output",
        }
    }
}

type Key = (String, NaiveDateTime, Side);

/// Compiled schemas, by trigger id, the trigger's `updated` time and side.
#[derive(Default)]
pub struct Schemas(Mutex<HashMap<Key, Arc<jsonschema::Validator>>>);

impl Schemas {
    /// The compiled schema for one side of a trigger; `None` when the trigger has no output
    /// schema. An error means the stored schema is unusable.
    pub fn validator(
        &self,
        trigger: &Trigger,
        side: Side,
    ) -> Result<Option<Arc<jsonschema::Validator>>, String> {
        let text = match side {
            Side::Input => trigger.input_schema.as_str(),
            Side::Output => match &trigger.output_schema {
                Some(text) => text.as_str(),
                None => return Ok(None),
            },
        };
        let key = (trigger.id.to_string(), trigger.updated, side);
        let mut cache = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(v) = cache.get(&key) {
            return Ok(Some(v.clone()));
        }
        let what = side.name();
        let schema: Value = serde_json::from_str(text)
            .map_err(|e| format!("trigger {} has an unreadable {what} schema: {e}", trigger.id))?;
        let validator = Arc::new(
            jsonschema::validator_for(&schema)
                .map_err(|e| format!("trigger {} has an invalid {what} schema: {e}", trigger.id))?,
        );
        cache.retain(|(id, updated, s), _| {
            id != trigger.id.as_str() || (*updated == trigger.updated && *s != side)
        });
        cache.insert(key, validator.clone());
        Ok(Some(validator))
    }

    /// Up to ten problems `value` has against one side's schema, each naming its path
    /// (`input/identityId: 7 is not of type "string"`); empty when it conforms or there is no
    /// schema.
    pub fn problems(&self, trigger: &Trigger, side: Side, value: &Value) -> Result<Vec<String>, String> {
        let Some(validator) = self.validator(trigger, side)? else { return Ok(Vec::new()) };
        Ok(validator
            .iter_errors(value)
            .take(10)
            .map(|e| format!("{}{}: {e}", side.name(), e.instance_path))
            .collect())
    }
}
