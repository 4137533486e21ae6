use serde_json::{Value, json};

use crate::helpers::{TestApp, error_text};

fn ids(body: &Value) -> Vec<String> {
    body.as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap().to_owned()).collect()
}

fn new_trigger(id: &str) -> Value {
    json!({
        "id": id, "name": "Order Shipped", "type": "FIRE_AND_FORGET", "description": "An order left the warehouse.",
        "inputSchema": {"type": "object", "required": ["orderId"], "properties": {"orderId": {"type": "string"}}},
        "exampleInput": {"orderId": "o-1"},
        "params": {"source": "warehouse"}
    })
}

#[actix_web::test]
async fn the_catalog_is_seeded_with_sailpoint_and_test_triggers() {
    let app = TestApp::spawn().await;
    let response = app.get("/triggers/v1").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let ids = ids(&body);
    assert_eq!(ids.len(), 29);
    for id in [
        "hookgate:subscription-disabled",
        "hookgate:invocation-dead",
        "hookgate:source-failing",
        "idn:access-request-pre-approval",
        "idn:identity-attributes-changed",
        "test:fire-and-forget",
        "test:request-response",
    ] {
        assert!(ids.contains(&id.to_owned()), "{id}");
    }
    let pre = body.as_array().unwrap().iter().find(|t| t["id"] == "idn:access-request-pre-approval").unwrap();
    assert_eq!(pre["type"], "REQUEST_RESPONSE");
    assert_eq!(pre["name"], "Access Request Submitted");
    let schema: Value = serde_json::from_str(pre["inputSchema"].as_str().unwrap()).unwrap();
    assert!(schema["required"].as_array().unwrap().contains(&json!("accessRequestId")));
    assert!(pre["outputSchema"].is_string());
    assert!(pre["exampleOutput"]["approved"].is_boolean());
    let ff = body.as_array().unwrap().iter().find(|t| t["id"] == "idn:identity-created").unwrap();
    assert!(ff["outputSchema"].is_null() && ff["exampleOutput"].is_null());
}

#[actix_web::test]
async fn listing_triggers_pages_counts_filters_and_sorts() {
    let app = TestApp::spawn().await;
    let response = app.get("/triggers/v1?limit=5&offset=2&count=true").await;
    assert_eq!(response.headers()["x-total-count"], "29");
    let page: Value = response.json().await.unwrap();
    let all: Value = app.get("/triggers/v1").await.json().await.unwrap();
    assert_eq!(ids(&page), ids(&all)[2..7].to_vec());
    assert!(app.get("/triggers/v1").await.headers().get("x-total-count").is_none());

    let one: Value =
        app.get("/triggers/v1?filters=id%20eq%20%22idn%3Aidentity-created%22").await.json().await.unwrap();
    assert_eq!(ids(&one), vec!["idn:identity-created"]);
    let range: Value = app
        .get("/triggers/v1?filters=id%20ge%20%22idn%3Asource%22%20and%20id%20le%20%22idn%3Asource-z%22")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        ids(&range),
        vec![
            "idn:source-account-created",
            "idn:source-account-deleted",
            "idn:source-account-updated",
            "idn:source-created",
            "idn:source-deleted",
            "idn:source-updated"
        ]
    );

    let by_name: Value = app.get("/triggers/v1?sorters=-name&limit=2").await.json().await.unwrap();
    assert_eq!(by_name[0]["name"], "VA Cluster Status Change");
    assert_eq!(by_name[1]["name"], "Test Request Response");
}

#[actix_web::test]
async fn bad_collection_parameters_are_refused_with_400() {
    let app = TestApp::spawn().await;
    for (query, needle) in [
        ("limit=251", "limit"),
        ("limit=-1", "limit"),
        ("offset=x", "offset"),
        ("offset=2147483648", "offset"),
        ("count=yes", "count"),
        ("filters=name%20eq%20%22x%22", "'name'"),
        ("filters=id%20co%20%22x%22", "'co'"),
        ("filters=id%20eq", "value"),
        ("sorters=created", "'created'"),
    ] {
        let text = error_text(app.get(&format!("/triggers/v1?{query}")).await, 400).await;
        assert!(text.contains(needle), "{query}: {text}");
    }
}

#[actix_web::test]
async fn triggers_can_be_created_read_replaced_patched_and_deleted() {
    let app = TestApp::spawn().await;
    let created = app.post("/triggers/v1", &new_trigger("shop:order-shipped")).await;
    assert_eq!(created.status(), 201);
    let body: Value = created.json().await.unwrap();
    assert_eq!(body["params"], json!({"source": "warehouse"}));
    assert!(body["inputSchema"].is_string(), "stored as SailPoint's string form");

    let got: Value = app.get("/triggers/v1/shop:order-shipped").await.json().await.unwrap();
    assert_eq!(got["name"], "Order Shipped");
    assert_eq!(got["enabled"], true);

    let mut replacement = new_trigger("shop:order-shipped");
    replacement["name"] = json!("Order Dispatched");
    replacement["inputSchema"] = json!(r#"{"type":"object"}"#);
    let replaced: Value =
        app.put("/triggers/v1/shop:order-shipped", &replacement).await.json().await.unwrap();
    assert_eq!(replaced["name"], "Order Dispatched");
    assert_eq!(replaced["inputSchema"], r#"{"type":"object"}"#);
    assert_eq!(replaced["created"], got["created"]);

    let patched = app
        .patch(
            "/triggers/v1/shop:order-shipped",
            &json!([
                {"op": "replace", "path": "/enabled", "value": false},
                {"op": "add", "path": "/params/region", "value": "eu"}
            ]),
        )
        .await;
    assert_eq!(patched.status(), 200);
    let patched: Value = patched.json().await.unwrap();
    assert_eq!(patched["enabled"], false);
    assert_eq!(patched["params"], json!({"source": "warehouse", "region": "eu"}));

    assert_eq!(app.delete("/triggers/v1/shop:order-shipped").await.status(), 204);
    error_text(app.get("/triggers/v1/shop:order-shipped").await, 404).await;
    error_text(app.delete("/triggers/v1/shop:order-shipped").await, 404).await;
}

#[actix_web::test]
async fn invalid_trigger_definitions_are_refused_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    let cases = [
        ("inputSchema", json!({"type": 12}), "inputSchema"),
        ("inputSchema", json!("not json"), "inputSchema"),
        ("exampleInput", json!({"orderId": 5}), "exampleInput"),
        ("exampleInput", json!([1]), "exampleInput"),
        ("type", json!("SOMETIMES"), "unknown variant"),
        ("outputSchema", json!({"type": "object"}), "outputSchema"),
        ("id", json!("has space"), "not a valid trigger id"),
        ("name", json!(""), "name"),
    ];
    for (field, value, needle) in cases {
        let mut body = new_trigger("shop:bad");
        body[field] = value;
        let text = error_text(app.post("/triggers/v1", &body).await, 400).await;
        assert!(text.contains(needle), "{field}: {text}");
    }
    let mut missing = new_trigger("shop:bad");
    missing.as_object_mut().unwrap().remove("exampleInput");
    assert!(error_text(app.post("/triggers/v1", &missing).await, 400).await.contains("exampleInput"));
    error_text(app.get("/triggers/v1/shop:bad").await, 404).await;
}

#[actix_web::test]
async fn trigger_ids_are_unique_and_immutable() {
    let app = TestApp::spawn().await;
    assert_eq!(app.post("/triggers/v1", &new_trigger("shop:a")).await.status(), 201);
    assert!(
        error_text(app.post("/triggers/v1", &new_trigger("shop:a")).await, 409)
            .await
            .contains("already exists")
    );
    let text = error_text(app.put("/triggers/v1/shop:a", &new_trigger("shop:b")).await, 400).await;
    assert!(text.contains("immutable"), "{text}");
    let text = error_text(
        app.patch("/triggers/v1/shop:a", &json!([{"op": "replace", "path": "/id", "value": "x"}])).await,
        400,
    )
    .await;
    assert!(text.contains("cannot be patched"), "{text}");
    error_text(app.put("/triggers/v1/shop:missing", &new_trigger("shop:missing")).await, 404).await;
}

#[actix_web::test]
async fn a_trigger_with_subscriptions_cannot_be_deleted() {
    let app = TestApp::spawn().await;
    let sub = app.subscribe("test:fire-and-forget", json!({})).await;
    let text = error_text(app.delete("/triggers/v1/test:fire-and-forget").await, 409).await;
    assert!(text.contains("subscription"), "{text}");
    let id = sub["id"].as_str().unwrap();
    assert_eq!(app.delete(&format!("/trigger-subscriptions/v1/{id}")).await.status(), 204);
    assert_eq!(app.delete("/triggers/v1/test:fire-and-forget").await.status(), 204);
}

#[actix_web::test]
async fn a_deleted_catalog_trigger_stays_deleted_after_a_restart() {
    let app = TestApp::spawn().await;
    assert_eq!(app.delete("/triggers/v1/idn:source-created").await.status(), 204);
    let db = app.stop().await;
    let again = TestApp::spawn_on(db, |_| {}).await;
    error_text(again.get("/triggers/v1/idn:source-created").await, 404).await;
    let all: Value = again.get("/triggers/v1").await.json().await.unwrap();
    assert_eq!(all.as_array().unwrap().len(), 28);
}
