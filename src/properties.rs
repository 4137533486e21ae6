//! Property tests of what parses untrusted text: the JSONPath filter parser and evaluator, the
//! SCIM-style list filters, cron schedules, durations, trace context, sealed secrets and JSON
//! Patch. Each holds for any input: no panic, an answer in bounded time, and a round trip where
//! there is one. `PROPTEST_CASES` sets how many inputs each property takes (256 by default).

use proptest::prelude::*;
use serde_json::Value;

use crate::domain::duration::{IsoDuration, parse_duration};
use crate::domain::filter::Filter;
use crate::domain::keyring::{Key, Keyring};
use crate::domain::query::{self, CmpOp, FilterFields};
use crate::domain::schedule::Schedule;
use crate::domain::trace::TraceParent;

/// Any JSON document, a few levels deep.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        "[a-z\\[\\]'\"$@.*?()=<>!&| ]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{1,4}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Text made of a grammar's pieces, so that much of it nearly parses.
fn pieces(words: &'static [&'static str], max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(words), 0..max).prop_map(|w| w.concat())
}

const JSONPATH: &[&str] = &[
    "$", "@", ".", "..", "[", "]", "*", "?", "(", ")", "'", "\"", ",", ":", "-", "==", "!=", "<", "<=", ">",
    ">=", "&&", "||", "!", "a", "b", "name", "0", "1", "-1", "2.5", "true", "null", "length", "=~", "/x/",
    " ",
];

const SCIM: &[&str] = &[
    "triggerId",
    "state",
    "created",
    "name",
    " ",
    "eq",
    "ne",
    "in",
    "co",
    "sw",
    "pr",
    "ge",
    "and",
    "or",
    "not",
    "(",
    ")",
    "\"",
    "x",
    "\"a\"",
    ",",
    "\\",
    "2026-01-01T00:00:00Z",
];

const CRON: &[&str] =
    &["*", "0", "5", "59", "60", "31", "2", "*/5", "1-3", ",", "L", "W", "#", "?", " ", "MON", "JAN"];

/// JSON Patch operations on paths under the patchable fields and elsewhere.
fn patch() -> impl Strategy<Value = Value> {
    let op = prop::sample::select(&["add", "remove", "replace", "move", "copy", "test", "nope"][..]);
    let path = || pieces(&["/a", "/b", "/name", "/x", "/0", "/-", "/~1", "/~0", "~", ""], 4);
    let one = (op, path(), path(), json()).prop_map(
        |(op, path, from, value)| serde_json::json!({"op": op, "path": path, "from": from, "value": value}),
    );
    prop::collection::vec(one, 0..5).prop_map(Value::Array)
}

const FIELDS: FilterFields = &[
    ("triggerId", &[CmpOp::Eq, CmpOp::In, CmpOp::Co]),
    ("state", &[CmpOp::Eq, CmpOp::In]),
    ("created", &[CmpOp::Ge, CmpOp::Lt]),
    ("name", &[CmpOp::Eq, CmpOp::Sw, CmpOp::Pr]),
];

proptest! {
    #[test]
    fn a_jsonpath_filter_parses_or_is_refused_and_evaluates_on_any_document(
        text in prop_oneof![pieces(JSONPATH, 24), any::<String>()],
        doc in json(),
    ) {
        if let Ok(filter) = Filter::parse(&text) {
            let _ = filter.matches(&doc);
            let _ = filter.all(&doc);
            prop_assert_eq!(Filter::parse(filter.as_str()).is_ok(), true);
        }
        let _ = Filter::validate(&text, &doc);
    }

    #[test]
    fn list_filters_parse_or_are_refused(text in prop_oneof![pieces(SCIM, 16), any::<String>()]) {
        let _ = query::parse_filters(&text, FIELDS);
        let _ = query::parse_sorters(&text, &["name", "created"]);
    }

    #[test]
    fn a_schedule_parses_or_is_refused_and_finds_its_ticks(text in pieces(CRON, 14), at in 0i64..4_102_444_800) {
        if let Ok(schedule) = Schedule::parse(&text, Some("Europe/Paris")) {
            let at = chrono::DateTime::from_timestamp(at, 0).unwrap_or_default().naive_utc();
            let _ = schedule.latest_tick(at);
            let _ = schedule.next_tick(at);
        }
    }

    #[test]
    fn short_durations_round_trip(n in 0u64..1_000_000, unit in prop::sample::select(&["ms", "s", "m", "h", "d"][..])) {
        let parsed = parse_duration(&format!("{n}{unit}")).unwrap();
        let expected = match unit {
            "ms" => std::time::Duration::from_millis(n),
            "s" => std::time::Duration::from_secs(n),
            "m" => std::time::Duration::from_secs(n * 60),
            "h" => std::time::Duration::from_secs(n * 3600),
            _ => std::time::Duration::from_secs(n * 86400),
        };
        prop_assert_eq!(parsed, expected);
    }

    #[test]
    fn iso_durations_round_trip_and_any_text_parses_or_is_refused(
        d in 0u64..400, h in 0u64..24, m in 0u64..60, s in 0u64..60, text in any::<String>(),
    ) {
        let written = format!("P{d}DT{h}H{m}M{s}S");
        let parsed: IsoDuration = written.parse().unwrap();
        prop_assert_eq!(parsed.duration().as_secs(), ((d * 24 + h) * 60 + m) * 60 + s);
        prop_assert_eq!(parsed.to_string().parse::<IsoDuration>().unwrap(), parsed);
        let _ = text.parse::<IsoDuration>();
        let _ = parse_duration(&text);
    }

    #[test]
    fn trace_context_round_trips_and_any_header_parses_or_is_refused(
        trace in "[0-9a-f]{32}", span in "[0-9a-f]{16}", flags in "[0-9a-f]{2}", text in any::<String>(),
    ) {
        let header = format!("00-{trace}-{span}-{flags}");
        let zero = trace.bytes().all(|b| b == b'0') || span.bytes().all(|b| b == b'0');
        match TraceParent::parse(&header) {
            Some(parsed) => prop_assert_eq!(parsed.to_string(), header),
            None => prop_assert!(zero),
        }
        let _ = TraceParent::parse(&text);
    }

    #[test]
    fn sealed_secrets_open_to_what_was_sealed(plain in any::<String>(), context in "[a-z._:0-9-]{1,40}", junk in any::<String>()) {
        let ring = Keyring::new(Key::generate().0, []);
        let sealed = ring.seal(&context, &plain);
        prop_assert_eq!(ring.open(&context, &sealed).unwrap(), plain);
        prop_assert!(ring.open(&context, &junk).is_err() || Keyring::is_sealed(&junk));
    }

    #[test]
    fn a_json_patch_applies_or_is_refused_on_any_document(doc in json(), ops in patch(), junk in json()) {
        let _ = crate::api::patch::apply(doc.clone(), ops, &["a", "b", "name"]);
        let _ = crate::api::patch::apply(doc, junk, &["a", "b", "name"]);
    }
}
