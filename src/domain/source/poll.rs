//! `HTTP_POLL` and `MONITOR` sources: a URL read every so often. A poll fires one event per item
//! it has not seen before; a monitor fires once each time a number crosses its thresholds.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::domain::duration::parse_duration;
use crate::domain::filter::Filter;
use crate::domain::subscription::parse_target_url;

/// What a poll or monitor fetches, and how often.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fetch {
    pub url: String,
    /// A short duration, at least `1s`.
    pub every: String,
    /// Headers sent with each request (write-only: they often carry credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, String>>,
}

impl Fetch {
    fn validate(&self, field: &str) -> Result<(), String> {
        parse_target_url(&self.url).map_err(|e| format!("{field}.url: {e}"))?;
        let every = parse_duration(&self.every).map_err(|e| format!("{field}.every: {e}"))?;
        if every < Duration::from_secs(1) {
            return Err(format!("{field}.every: at least 1s"));
        }
        for name in self.headers.iter().flatten().map(|(name, _)| name) {
            if !super::is_header_name(name) {
                return Err(format!("{field}.headers: '{name}' is not a header name"));
            }
        }
        Ok(())
    }

    /// How often to fetch.
    pub fn interval(&self) -> Duration {
        parse_duration(&self.every).unwrap_or(Duration::from_secs(60)).max(Duration::from_secs(1))
    }
}

/// `pollConfig`: fetch `url` every `every`; `itemsPath` selects the items (default: the array
/// fetched, or the document itself), `idPath` each item's id.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PollConfig {
    #[serde(flatten)]
    pub fetch: Fetch,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items_path: Option<String>,
    pub id_path: String,
}

impl PollConfig {
    pub fn validate(&self) -> Result<(), String> {
        self.fetch.validate("pollConfig")?;
        if let Some(path) = &self.items_path {
            Filter::parse(path)
                .map_err(|e| format!("pollConfig.itemsPath: not a JSONPath expression: {e}"))?;
        }
        Filter::parse(&self.id_path)
            .map_err(|e| format!("pollConfig.idPath: not a JSONPath expression: {e}"))?;
        Ok(())
    }

    /// The items of a fetched document, each with its id (`None`: the item has none).
    pub fn items<'a>(&self, document: &'a Value) -> Vec<(Option<String>, &'a Value)> {
        let items: Vec<&Value> = match self.items_path.as_deref().and_then(|p| Filter::parse(p).ok()) {
            Some(path) => path.all(document),
            None => match document {
                Value::Array(list) => list.iter().collect(),
                other => vec![other],
            },
        };
        let id_path = Filter::parse(&self.id_path).ok();
        items
            .into_iter()
            .map(|item| {
                let id = id_path.as_ref().and_then(|p| p.first(item)).and_then(|v| match v {
                    Value::String(s) if !s.is_empty() => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                });
                (id, item)
            })
            .collect()
    }
}

/// `monitorConfig`: fetch `url` every `every`, read the number at `valuePath`, and fire when it
/// goes above `above` or below `below`, and again when it comes back.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MonitorConfig {
    #[serde(flatten)]
    pub fetch: Fetch,
    pub value_path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub above: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub below: Option<f64>,
}

/// Where a monitored value stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Level {
    Ok,
    Alert,
}

/// What a monitor last read, kept between polls and restarts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    pub state: Level,
    pub value: f64,
}

impl MonitorConfig {
    pub fn validate(&self) -> Result<(), String> {
        self.fetch.validate("monitorConfig")?;
        Filter::parse(&self.value_path)
            .map_err(|e| format!("monitorConfig.valuePath: not a JSONPath expression: {e}"))?;
        match (self.above, self.below) {
            (None, None) => Err("monitorConfig: give above, below or both".into()),
            (Some(a), Some(b)) if b > a => Err("monitorConfig: below must not be greater than above".into()),
            (a, b) if a.is_some_and(|v| !v.is_finite()) || b.is_some_and(|v| !v.is_finite()) => {
                Err("monitorConfig: thresholds are finite numbers".into())
            }
            _ => Ok(()),
        }
    }

    /// The number a fetched document holds at `valuePath`.
    pub fn value_of(&self, document: &Value) -> Option<f64> {
        let path = Filter::parse(&self.value_path).ok()?;
        match path.first(document)? {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse().ok().filter(|v: &f64| v.is_finite()),
            _ => None,
        }
    }

    /// The threshold `value` is beyond, if any.
    fn crossed(&self, value: f64) -> Option<f64> {
        match (self.above, self.below) {
            (Some(above), _) if value > above => Some(above),
            (_, Some(below)) if value < below => Some(below),
            _ => None,
        }
    }

    /// The new reading for `value` after `previous`, and the event input when the state changed
    /// (`source` names the source in it). A first reading that is OK fires nothing.
    pub fn read(
        &self,
        previous: Option<Reading>,
        value: f64,
        source: &str,
    ) -> (Reading, Option<Map<String, Value>>) {
        let crossed = self.crossed(value);
        let state = if crossed.is_some() { Level::Alert } else { Level::Ok };
        let reading = Reading { state, value };
        let was = previous.map_or(Level::Ok, |p| p.state);
        if state == was {
            return (reading, None);
        }
        let threshold = crossed.or_else(|| previous.and_then(|p| self.crossed(p.value)));
        let input = json!({
            "state": state,
            "value": value,
            "previous": previous.map(|p| p.value),
            "threshold": threshold,
            "source": source,
        });
        let Value::Object(input) = input else { unreachable!("an object literal") };
        (reading, Some(input))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn monitor(above: Option<f64>, below: Option<f64>) -> MonitorConfig {
        MonitorConfig {
            fetch: Fetch { url: "http://127.0.0.1/m".into(), every: "1s".into(), headers: None },
            value_path: "$.v".into(),
            above,
            below,
        }
    }

    #[test]
    fn a_monitor_fires_once_per_crossing_not_once_per_poll() {
        let m = monitor(Some(10.0), Some(2.0));
        let mut last = None;
        let mut fired = Vec::new();
        for value in [5.0, 15.0, 16.0, 12.0, 8.0, 1.0, 1.5, 4.0] {
            let (reading, event) = m.read(last, value, "cpu");
            if let Some(event) = event {
                fired.push((event["state"].clone(), event["threshold"].clone()));
            }
            last = Some(reading);
        }
        assert_eq!(
            fired,
            vec![
                (json!("ALERT"), json!(10.0)),
                (json!("OK"), json!(10.0)),
                (json!("ALERT"), json!(2.0)),
                (json!("OK"), json!(2.0)),
            ]
        );
    }

    #[test]
    fn poll_items_carry_their_ids() {
        let p = PollConfig {
            fetch: Fetch { url: "http://127.0.0.1/p".into(), every: "5s".into(), headers: None },
            items_path: Some("$.data[*]".into()),
            id_path: "$.id".into(),
        };
        let doc = json!({"data": [{"id": 1}, {"id": "b"}, {"x": 0}]});
        let ids: Vec<Option<String>> = p.items(&doc).into_iter().map(|(id, _)| id).collect();
        assert_eq!(ids, vec![Some("1".into()), Some("b".into()), None]);
        assert!(
            PollConfig { fetch: Fetch { every: "500ms".into(), ..p.fetch.clone() }, ..p.clone() }
                .validate()
                .is_err()
        );
    }
}
