//! The client commands: the real binary against a spawned server.

use std::process::{Command, Output};

use serde_json::{Value, json};

use crate::helpers::TestApp;
use crate::sink::{Reply, Sink};

/// Runs `hookgate ARGS` against `app` with an all-scopes client, off the test's runtime thread.
async fn hookgate(app: &TestApp, args: &[&str]) -> Output {
    let (id, secret) = app.create_client(&["sp:scopes:all"]);
    run(&app.address, Some((&id, &secret)), args).await
}

async fn run(url: &str, credentials: Option<(&str, &str)>, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hookgate"));
    let dir = tempfile::tempdir().unwrap();
    command.args(args).current_dir(dir.path()).env("HOOKGATE_URL", url).env("HOOKGATE_LOG", "warn");
    command.env_remove("HOOKGATE_CLIENT_ID").env_remove("HOOKGATE_CLIENT_SECRET");
    if let Some((id, secret)) = credentials {
        command.env("HOOKGATE_CLIENT_ID", id).env("HOOKGATE_CLIENT_SECRET", secret);
    }
    let output = actix_web::rt::task::spawn_blocking(move || command.output()).await.unwrap().unwrap();
    drop(dir);
    output
}

fn ok(output: &Output) -> String {
    assert!(output.status.success(), "stderr: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn json_of(output: &Output) -> Value {
    serde_json::from_str(&ok(output)).unwrap()
}

fn failed(output: &Output, code: i32) -> String {
    assert_eq!(output.status.code(), Some(code), "stdout: {}", String::from_utf8_lossy(&output.stdout));
    String::from_utf8(output.stderr.clone()).unwrap()
}

#[actix_web::test]
async fn triggers_are_created_updated_listed_fired_and_deleted() {
    let app = TestApp::spawn().await;
    let created = json_of(
        &hookgate(&app, &["trigger", "create", "orders:created", "--param", "source", "shop", "--json"])
            .await,
    );
    assert_eq!(created["params"], json!({"source": "shop"}));
    let updated = json_of(
        &hookgate(
            &app,
            &[
                "trigger",
                "update",
                "orders:created",
                "--param",
                "page",
                "homepage",
                "--param",
                "n",
                "3",
                "--json",
            ],
        )
        .await,
    );
    assert_eq!(updated["params"], json!({"source": "shop", "page": "homepage", "n": 3}));
    let table = ok(&hookgate(&app, &["trigger", "list"]).await);
    assert!(table.starts_with("ID "), "{table}");
    assert!(
        table.lines().any(|l| l.starts_with("orders:created ") && l.contains("FIRE_AND_FORGET")),
        "{table}"
    );

    let sink = Sink::start();
    app.subscribe_url_to("orders:created", &sink.url("/o")).await;
    let fired = json_of(
        &hookgate(&app, &["trigger", "fire", "orders:created", "--param", "id", "42", "--json"]).await,
    );
    assert_eq!(fired.as_array().unwrap().len(), 1);
    app.drain().await;
    assert_eq!(sink.received()[0].json(), json!({"source": "shop", "page": "homepage", "n": 3, "id": 42}));

    let scheduled = hookgate(
        &app,
        &["trigger", "create", "orders:nightly", "--schedule", "0 0 3 * * *", "--timezone", "Europe/Paris"],
    )
    .await;
    assert!(ok(&scheduled).contains("0 0 3 * * *"));
    let refused = hookgate(&app, &["trigger", "create", "orders:bad", "--schedule", "0 3 * * *"]).await;
    assert!(failed(&refused, 3).contains("a schedule has 6"));

    ok(&hookgate(&app, &["trigger", "delete", "orders:nightly"]).await);
    let gone = hookgate(&app, &["trigger", "get", "orders:nightly"]).await;
    assert!(failed(&gone, 4).contains("was not found"));
}

#[actix_web::test]
async fn subscriptions_are_managed_and_tested_from_the_terminal() {
    let app = TestApp::spawn().await;
    let sink = Sink::start();
    let target = sink.url("/hook");
    let created = json_of(
        &hookgate(
            &app,
            &["subscription", "create", "--trigger", "test:fire-and-forget", "--target", &target, "--json"],
        )
        .await,
    );
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(created["secret"].as_str().unwrap().starts_with("whsec_"));
    let listed = ok(&hookgate(&app, &["subscription", "list", "--trigger", "test:fire-and-forget"]).await);
    assert!(listed.lines().any(|l| l.starts_with(&id) && l.contains(&target)), "{listed}");

    let disabled = json_of(&hookgate(&app, &["subscription", "update", &id, "--disable", "--json"]).await);
    assert_eq!(disabled["enabled"], false);
    let tested = ok(&hookgate(&app, &["subscription", "test", &id]).await);
    assert!(tested.contains("test invocation"), "{tested}");
    app.drain().await;
    assert_eq!(sink.received().len(), 1, "a test reaches a disabled subscription");
    let rotated = json_of(&hookgate(&app, &["subscription", "rotate-secret", &id, "--json"]).await);
    assert!(rotated["secret"].as_str().unwrap().starts_with("whsec_"));
    ok(&hookgate(&app, &["subscription", "delete", &id]).await);
    failed(&hookgate(&app, &["subscription", "get", &id]).await, 4);
}

#[actix_web::test]
async fn chained_subscriptions_are_created_listed_and_updated_from_the_terminal() {
    let app = TestApp::spawn().await;
    let sink = Sink::start();
    let trigger = json!({"id": "test:batch", "name": "batch", "type": "FIRE_AND_FORGET",
        "inputSchema": {"type": "object"}, "exampleInput": {"items": [{"identityId": "a"}]}});
    assert_eq!(app.post("/triggers/v1", &trigger).await.status(), 201);
    let args = ["subscription", "create", "--trigger", "test:batch", "--chain", "test:fire-and-forget"];
    let created =
        json_of(&hookgate(&app, &[&args[..], &["--input-path", "$.items", "--json"]].concat()).await);
    assert_eq!(
        created["triggerConfig"],
        json!({"triggerId": "test:fire-and-forget", "inputPath": "$.items"})
    );
    let id = created["id"].as_str().unwrap().to_owned();
    let listed = ok(&hookgate(&app, &["subscription", "list", "--trigger", "test:batch"]).await);
    assert!(
        listed.lines().any(|l| l.starts_with(&id) && l.contains("trigger test:fire-and-forget")),
        "{listed}"
    );
    let updated =
        json_of(&hookgate(&app, &["subscription", "update", &id, "--input-path", "$.more", "--json"]).await);
    assert_eq!(updated["triggerConfig"]["inputPath"], "$.more");
    failed(&hookgate(&app, &["subscription", "create", "--trigger", "test:batch"]).await, 2);

    app.subscribe_url(&sink.url("/chained")).await;
    app.publish("test:batch", json!({"more": [{"identityId": "b"}, {"identityId": "c"}]})).await;
    app.drain().await;
    assert_eq!(sink.received().len(), 2);
}

#[actix_web::test]
async fn invocations_and_dead_letters_are_listed_and_replayed() {
    let app = TestApp::spawn_with(|s| s.retry_schedule.clear()).await;
    let sink = Sink::start();
    sink.script([Reply::status(500), Reply::status(500)]);
    app.subscribe_url(&sink.url("/h")).await;
    for n in 0..2 {
        app.publish("test:fire-and-forget", json!({"identityId": format!("u{n}")})).await;
    }
    app.drain().await;

    let dead = json_of(&hookgate(&app, &["dead-letter", "list", "--json"]).await);
    assert_eq!(dead.as_array().unwrap().len(), 2);
    let first = dead[0]["id"].as_str().unwrap().to_owned();
    let table = ok(&hookgate(&app, &["invocation", "list", "--state", "dead"]).await);
    assert!(table.contains("subscriber answered HTTP 500"), "{table}");
    let detail = ok(&hookgate(&app, &["invocation", "get", &first]).await);
    assert!(detail.contains("ATTEMPT") && detail.contains("500"), "{detail}");

    ok(&hookgate(&app, &["invocation", "replay", &first]).await);
    let again = hookgate(&app, &["invocation", "replay", &first]).await;
    assert!(failed(&again, 3).contains("already pending or in flight"));
    let bulk = json_of(&hookgate(&app, &["dead-letter", "replay", "--no-wait", "--json"]).await);
    assert_eq!(bulk, json!({"replayed": 1, "skipped": 0}));
    app.drain().await;
    assert_eq!(sink.received().len(), 4, "both dead letters were delivered again");
    let none = json_of(&hookgate(&app, &["dead-letter", "list", "--json"]).await);
    assert_eq!(none, json!([]));
}

#[actix_web::test]
async fn bulk_replay_follows_the_deliveries_until_they_finish() {
    let app = TestApp::spawn_with(|s| {
        s.retry_schedule.clear();
        s.workers = 1;
    })
    .await;
    let sink = Sink::start();
    sink.script([Reply::status(500), Reply::status(500), Reply::status(500)]);
    app.subscribe_url(&sink.url("/h")).await;
    for n in 0..3 {
        app.publish("test:fire-and-forget", json!({"identityId": format!("u{n}")})).await;
    }
    sink.wait_for(3, std::time::Duration::from_secs(10)).await;
    let dead = loop {
        let dead: Value = app.get("/dead-letters/v1").await.json().await.unwrap();
        if dead.as_array().unwrap().len() == 3 {
            break dead;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(dead.as_array().unwrap().len(), 3);
    let out = ok(&hookgate(&app, &["dead-letter", "replay"]).await);
    assert!(out.contains("re-queued 3 dead letter(s)"), "{out}");
    assert_eq!(sink.received().len(), 6, "the command returned once the replays were delivered");
}

#[actix_web::test]
async fn exit_codes_say_what_went_wrong() {
    let app = TestApp::spawn().await;
    let missing = run(&app.address, None, &["trigger", "list"]).await;
    assert!(failed(&missing, 5).contains("hookgate client create"));
    let wrong = run(&app.address, Some(("nobody", "nothing")), &["trigger", "list"]).await;
    assert!(failed(&wrong, 5).contains("refused the credentials"));
    let (id, secret) = app.create_client(&["sp:scopes:all"]);
    let down = run("http://127.0.0.1:1", Some((&id, &secret)), &["trigger", "list"]).await;
    assert!(failed(&down, 6).contains("is `hookgate serve` running"));
    let reader = app.create_client(&["sp:trigger-service-subscriptions:read"]);
    let forbidden = run(&app.address, Some((&reader.0, &reader.1)), &["trigger", "create", "x:y"]).await;
    assert!(failed(&forbidden, 5).contains("hookgate:triggers:manage"));
}

#[actix_web::test]
async fn sources_are_created_listed_updated_inspected_and_deleted() {
    let app = TestApp::spawn().await;
    let created = hookgate(
        &app,
        &[
            "source",
            "create",
            "stripe",
            "--trigger",
            "test:fire-and-forget",
            "--verify",
            "STRIPE",
            "--secret",
            "whsec_cli",
        ],
    )
    .await;
    let printed = ok(&created);
    assert!(
        printed.contains(&format!("give the sender this URL: {}", app.url("/hooks/v1/stripe"))),
        "{printed}"
    );
    let refused =
        app.http.post(app.url("/hooks/v1/stripe")).json(&json!({"identityId": "x"})).send().await.unwrap();
    assert_eq!(refused.status(), 401, "unsigned messages are refused");

    let listed =
        json_of(&hookgate(&app, &["source", "list", "--trigger", "test:fire-and-forget", "--json"]).await);
    assert_eq!(listed[0]["id"], "stripe");
    assert_eq!(listed[0]["webhookConfig"]["verification"], "STRIPE");
    let table = ok(&hookgate(&app, &["source", "list"]).await);
    assert!(table.lines().nth(1).is_some_and(|row| row.starts_with("stripe")), "{table}");
    let updated = json_of(&hookgate(&app, &["source", "update", "stripe", "--disable", "--json"]).await);
    assert_eq!(updated["enabled"], false);
    let rejections = json_of(&hookgate(&app, &["source", "rejections", "stripe", "--json"]).await);
    assert_eq!(rejections[0]["reason"], "BAD_SIGNATURE");
    let bad =
        hookgate(&app, &["source", "create", "--trigger", "test:fire-and-forget", "--verify", "GITHUB"])
            .await;
    assert!(failed(&bad, 3).contains("webhookConfig.secret"), "a 400 exits with 3");
    let args = ["source", "create", "depth", "--type", "MONITOR", "--trigger", "test:fire-and-forget"];
    let monitor =
        [&args[..], &["--fetch", "http://127.0.0.1:9/q", "--every", "15s", "--value-path", "$.depth"]]
            .concat();
    let with_limits = [&monitor[..], &["--above", "1000", "--below", "-5", "--json"]].concat();
    let created = json_of(&hookgate(&app, &with_limits).await);
    assert_eq!(
        created["monitorConfig"],
        json!({"url": "http://127.0.0.1:9/q", "every": "15s", "valuePath": "$.depth", "above": 1000.0, "below": -5.0})
    );
    let poll = [
        "source",
        "create",
        "feed",
        "--type",
        "HTTP_POLL",
        "--trigger",
        "test:fire-and-forget",
        "--fetch",
        "http://127.0.0.1:9/feed",
        "--items-path",
        "$.entries[*]",
        "--json",
    ];
    let created = json_of(&hookgate(&app, &poll).await);
    assert_eq!(created["pollConfig"]["idPath"], "$.id");
    assert_eq!(created["pollConfig"]["every"], "60s");
    let stream = [
        "source",
        "create",
        "orders",
        "--type",
        "REDIS_STREAM",
        "--trigger",
        "test:fire-and-forget",
        "--fetch",
        "redis://:pw@127.0.0.1:6379/",
        "--stream",
        "orders",
        "--json",
    ];
    let created = json_of(&hookgate(&app, &stream).await);
    assert_eq!(
        created["redisStreamConfig"],
        json!({"url": "redis://:****@127.0.0.1:6379/", "stream": "orders", "group": "hookgate"})
    );
    ok(&hookgate(&app, &["source", "delete", "orders"]).await);
    let nats = [
        "source",
        "create",
        "n",
        "--type",
        "NATS",
        "--trigger",
        "test:fire-and-forget",
        "--fetch",
        "nats://127.0.0.1:4222",
        "--stream",
        "ORDERS",
        "--subject",
        "orders.created",
        "--json",
    ];
    let created = json_of(&hookgate(&app, &nats).await);
    assert_eq!(created["natsConfig"]["durable"], "hookgate");
    let amqp = [
        "source",
        "create",
        "a",
        "--type",
        "AMQP",
        "--trigger",
        "test:fire-and-forget",
        "--fetch",
        "amqp://guest:guest@127.0.0.1:5672/%2f",
        "--queue",
        "orders",
        "--json",
    ];
    let created = json_of(&hookgate(&app, &amqp).await);
    assert_eq!(
        created["amqpConfig"],
        json!({"url": "amqp://guest:****@127.0.0.1:5672/%2f", "queue": "orders"})
    );
    ok(&hookgate(&app, &["source", "update", "n", "--disable"]).await);
    ok(&hookgate(&app, &["source", "update", "a", "--disable"]).await);
    let stored = app.store.run_blocking(|c| hookgate::store::sources::get(c, &"a".parse().unwrap())).unwrap();
    assert_eq!(
        stored.spec.amqp.unwrap().url,
        "amqp://guest:guest@127.0.0.1:5672/%2f",
        "a patch keeps the password"
    );
    ok(&hookgate(&app, &["source", "delete", "n"]).await);
    ok(&hookgate(&app, &["source", "delete", "a"]).await);
    ok(&hookgate(&app, &["source", "delete", "depth"]).await);
    ok(&hookgate(&app, &["source", "delete", "feed"]).await);
    ok(&hookgate(&app, &["source", "delete", "stripe"]).await);
    let gone = json_of(&hookgate(&app, &["source", "list", "--json"]).await);
    assert_eq!(gone, json!([]));
}
