//! Chained triggers: a subscription whose delivery publishes events on another trigger, with no
//! HTTP request. The inputs those events get, how deep a chain may go, and the cycle rule.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use super::filter::Filter;
use super::ids::TriggerId;

/// The most chained deliveries that may lead to an event: an event `MAX_DEPTH` links down a
/// chain starts no further one.
pub const MAX_DEPTH: i32 = 8;

/// Why a chained delivery of an event at `depth` published nothing.
pub fn too_deep(depth: i32) -> String {
    format!("the chain is deeper than {MAX_DEPTH} triggers: this event is {depth} links down a chain")
}

/// The inputs of the events a chained delivery publishes: what `input_path` selects in the
/// payload (the whole payload without one). An array, or a path that selects several nodes,
/// gives one event per item. Each input must be a JSON object.
pub fn inputs(payload: &Value, input_path: Option<&Filter>) -> Result<Vec<Map<String, Value>>, String> {
    let selected: Vec<&Value> = match input_path {
        None => vec![payload],
        Some(path) => path.all(payload),
    };
    let items: Vec<&Value> = match selected.as_slice() {
        [] => {
            let path = input_path.map_or("$", Filter::as_str);
            return Err(format!("inputPath '{path}' selects nothing in the payload"));
        }
        [Value::Array(items)] => items.iter().collect(),
        _ => selected,
    };
    items
        .into_iter()
        .enumerate()
        .map(|(at, item)| match item {
            Value::Object(input) => Ok(input.clone()),
            _ => Err(format!("item {at} that inputPath selects is not a JSON object")),
        })
        .collect()
}

/// The triggers, `to` first, through which chaining `from` to `to` would lead back to `from`,
/// given the chains that exist (`(trigger, trigger it publishes on)`); `None` when it closes
/// no cycle.
pub fn cycle(chains: &[(TriggerId, TriggerId)], from: &TriggerId, to: &TriggerId) -> Option<Vec<TriggerId>> {
    let mut next: HashMap<&TriggerId, Vec<&TriggerId>> = HashMap::new();
    for (a, b) in chains {
        next.entry(a).or_default().push(b);
    }
    // Depth-first from `to`, keeping the path walked; reaching `from` closes the cycle.
    let mut seen = HashSet::new();
    let mut path = vec![to];
    let mut pending = vec![next.get(to).map_or(&[][..], Vec::as_slice).iter()];
    if to == from {
        return Some(vec![to.clone()]);
    }
    seen.insert(to);
    while let Some(children) = pending.last_mut() {
        match children.next() {
            Some(&child) if child == from => {
                path.push(child);
                return Some(path.into_iter().cloned().collect());
            }
            Some(&child) if seen.insert(child) => {
                path.push(child);
                pending.push(next.get(child).map_or(&[][..], Vec::as_slice).iter());
            }
            Some(_) => {}
            None => {
                pending.pop();
                path.pop();
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn id(s: &str) -> TriggerId {
        s.parse().unwrap()
    }

    #[test]
    fn a_selected_array_gives_one_input_per_item() {
        let payload = json!({"batch": [{"n": 1}, {"n": 2}], "one": {"n": 3}, "text": "x"});
        let path = |p: &str| Filter::parse(p).unwrap();
        assert_eq!(inputs(&payload, Some(&path("$.batch"))).unwrap().len(), 2);
        assert_eq!(inputs(&payload, Some(&path("$.batch[*]"))).unwrap().len(), 2);
        assert_eq!(inputs(&payload, Some(&path("$.one"))).unwrap()[0]["n"], 3);
        assert_eq!(inputs(&payload, None).unwrap()[0]["text"], "x");
        assert!(inputs(&json!({"batch": []}), Some(&path("$.batch"))).unwrap().is_empty());
        assert!(inputs(&payload, Some(&path("$.text"))).unwrap_err().contains("not a JSON object"));
        assert!(inputs(&payload, Some(&path("$.missing"))).unwrap_err().contains("selects nothing"));
    }

    #[test]
    fn a_chain_back_to_its_start_is_a_cycle() {
        let chains = vec![(id("b"), id("c")), (id("c"), id("d")), (id("x"), id("a"))];
        assert_eq!(cycle(&chains, &id("a"), &id("a")), Some(vec![id("a")]));
        assert_eq!(cycle(&chains, &id("d"), &id("b")), Some(vec![id("b"), id("c"), id("d")]));
        assert_eq!(cycle(&chains, &id("a"), &id("b")), None);
        assert_eq!(cycle(&chains, &id("c"), &id("x")), None);
        let diamond = vec![(id("b"), id("c")), (id("b"), id("d")), (id("c"), id("e")), (id("d"), id("e"))];
        assert_eq!(cycle(&diamond, &id("a"), &id("b")), None);
        assert_eq!(cycle(&diamond, &id("e"), &id("b")).map(|p| p.len()), Some(3));
    }
}
