use std::collections::BTreeSet;

use serde_json::Value;

use crate::helpers::TestApp;

const METHODS: [&str; 7] = ["get", "put", "post", "delete", "patch", "head", "options"];

fn spec() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml")).unwrap();
    serde_yaml::from_str(&text).unwrap()
}

/// Follows a `#/paths/...` reference.
fn resolve<'a>(spec: &'a Value, item: &'a Value) -> &'a Value {
    match item.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            spec.pointer(reference.trim_start_matches('#')).unwrap_or_else(|| panic!("dangling {reference}"))
        }
        None => item,
    }
}

fn documented() -> BTreeSet<(String, String)> {
    let spec = spec();
    let mut out = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        let item = resolve(&spec, item);
        for method in METHODS {
            if item.get(method).is_some() {
                out.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

fn served() -> BTreeSet<(String, String)> {
    hookgate::api::routes().into_iter().map(|(m, p)| (m.to_owned(), p)).collect()
}

#[test]
fn openapi_documents_exactly_the_routes_the_router_serves() {
    let documented = documented();
    let served = served();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(undocumented.is_empty(), "served but missing from openapi.yaml: {undocumented:?}");
    assert!(unserved.is_empty(), "in openapi.yaml but not served: {unserved:?}");
}

#[test]
fn every_response_reference_in_openapi_resolves() {
    let spec = spec();
    let text = serde_json::to_string(&spec).unwrap();
    for piece in text.split("\"$ref\":\"").skip(1) {
        let reference = piece.split('"').next().unwrap();
        assert!(spec.pointer(reference.trim_start_matches('#')).is_some(), "dangling {reference}");
    }
}

#[actix_web::test]
async fn every_documented_route_reaches_a_handler() {
    let app = TestApp::spawn().await;
    for (method, path) in documented() {
        let path = path.replace("{id}", "00000000-0000-4000-8000-000000000000");
        let request = app.http.request(method.parse().unwrap(), app.url(&path)).bearer_auth(&app.token);
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let body = response.text().await.unwrap();
        assert!(status != 405 && !body.contains("no route serves"), "{method} {path}: {status} {body}");
    }
}
