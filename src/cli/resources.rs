//! The client commands that speak hookgate's HTTP API: triggers, subscriptions, invocations and
//! dead letters, as tables for people or JSON (`--json`) for scripts.

#![expect(clippy::doc_markdown, reason = "these doc comments are --help text, read in a terminal")]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::{ArgAction, Args, Subcommand};
use reqwest::Method;
use serde_json::{Map, Value, json};

use super::remote::{Exit, Remote, cell, fail, print_json, table};

/// `--param KEY VALUE`, repeatable. A value that parses as JSON (`3`, `true`, `{"a":1}`) is
/// taken as such; anything else is a string.
#[derive(Debug, Clone, Args)]
pub struct Params {
    /// A parameter (repeatable): --param page homepage
    #[arg(long = "param", num_args = 2, value_names = ["KEY", "VALUE"], action = ArgAction::Append)]
    param: Vec<String>,
}

impl Params {
    fn pairs(&self) -> Vec<(String, Value)> {
        self.param
            .chunks(2)
            .map(|kv| {
                let value = serde_json::from_str(&kv[1]).unwrap_or_else(|_| Value::String(kv[1].clone()));
                (kv[0].clone(), value)
            })
            .collect()
    }

    fn map(&self) -> Map<String, Value> {
        self.pairs().into_iter().collect()
    }
}

#[derive(Debug, Clone, Copy, Args)]
pub struct Toggle {
    /// Enable it.
    #[arg(long, conflicts_with = "disable")]
    enable: bool,
    /// Disable it.
    #[arg(long)]
    disable: bool,
}

impl Toggle {
    fn value(self) -> Option<bool> {
        if self.enable {
            Some(true)
        } else if self.disable {
            Some(false)
        } else {
            None
        }
    }
}

#[derive(Debug, Args)]
pub struct NewTrigger {
    name: String,
    /// FIRE_AND_FORGET or REQUEST_RESPONSE.
    #[arg(long = "type", default_value = "FIRE_AND_FORGET")]
    kind: String,
    /// Display name (default: NAME).
    #[arg(long)]
    title: Option<String>,
    #[arg(long)]
    description: Option<String>,
    /// A JSON Schema file for the input (default: any object).
    #[arg(long)]
    input_schema: Option<PathBuf>,
    /// A JSON Schema file for the output (REQUEST_RESPONSE).
    #[arg(long)]
    output_schema: Option<PathBuf>,
    /// Fire on a 6-field cron schedule, seconds first: '0 0 * * * *' is every hour.
    #[arg(long)]
    schedule: Option<String>,
    /// IANA time zone for the schedule (default UTC).
    #[arg(long)]
    timezone: Option<String>,
    #[command(flatten)]
    params: Params,
}

#[derive(Debug, Args)]
pub struct NewSubscription {
    #[arg(long)]
    trigger: String,
    /// The subscriber's URL, which receives the POSTs.
    #[arg(long)]
    target: String,
    #[arg(long)]
    name: Option<String>,
    /// SYNC, ASYNC or DYNAMIC.
    #[arg(long, default_value = "SYNC")]
    mode: String,
    /// A JSONPath filter, e.g. '$[?($.identityId == "x")]'.
    #[arg(long)]
    filter: Option<String>,
    /// Response deadline for ASYNC/DYNAMIC, ISO-8601 (default PT1H).
    #[arg(long)]
    deadline: Option<String>,
    /// Basic auth to the subscriber, USER:PASSWORD.
    #[arg(long, conflicts_with = "bearer")]
    basic: Option<String>,
    /// Bearer token sent to the subscriber.
    #[arg(long)]
    bearer: Option<String>,
    /// Create it disabled.
    #[arg(long)]
    disabled: bool,
    /// Deliver in publish order: SUBSCRIPTION, or KEY with --ordering-key.
    #[arg(long)]
    ordering: Option<String>,
    /// With --ordering KEY: the JSONPath into the payload that names each ordered stream.
    #[arg(long)]
    ordering_key: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum TriggerCommand {
    /// Create a trigger (its id is NAME).
    Create(NewTrigger),
    /// Change a trigger: --param KEY VALUE sets a default parameter.
    Update {
        name: String,
        #[arg(long)]
        title: Option<String>,
        #[arg(long)]
        description: Option<String>,
        #[arg(long)]
        schedule: Option<String>,
        #[arg(long)]
        timezone: Option<String>,
        #[command(flatten)]
        toggle: Toggle,
        #[command(flatten)]
        params: Params,
    },
    Delete {
        name: String,
    },
    Get {
        name: String,
    },
    List,
    /// Publish an event: the input file's object, with --param values set on it.
    Fire {
        name: String,
        /// A JSON file holding the input object.
        #[arg(long)]
        input: Option<PathBuf>,
        /// Wait this long for the deliveries (and a REQUEST_RESPONSE output), e.g. 10s.
        #[arg(long)]
        wait: Option<String>,
        #[command(flatten)]
        params: Params,
    },
}

#[derive(Debug, Subcommand)]
pub enum SubscriptionCommand {
    /// Subscribe a URL to a trigger; the signing secret is shown once.
    Create(NewSubscription),
    List {
        /// Only this trigger's subscriptions.
        #[arg(long)]
        trigger: Option<String>,
    },
    Get {
        id: String,
    },
    Update {
        id: String,
        #[arg(long)]
        name: Option<String>,
        /// A new subscriber URL.
        #[arg(long)]
        target: Option<String>,
        #[arg(long)]
        mode: Option<String>,
        #[arg(long)]
        filter: Option<String>,
        #[arg(long)]
        deadline: Option<String>,
        #[command(flatten)]
        toggle: Toggle,
    },
    Delete {
        id: String,
    },
    /// Issue a new signing secret (the old one keeps signing for the overlap).
    RotateSecret {
        id: String,
    },
    /// Send the trigger's example input (or --input FILE) to this subscription.
    Test {
        id: String,
        #[arg(long)]
        input: Option<PathBuf>,
    },
}

/// Filters shared by the invocation and dead-letter lists.
#[derive(Debug, Clone, Args)]
pub struct Selection {
    #[arg(long)]
    trigger: Option<String>,
    #[arg(long)]
    subscription: Option<String>,
    /// Created at or after this time (RFC 3339, e.g. 2026-11-22T00:00:00Z).
    #[arg(long)]
    since: Option<String>,
    /// Created before this time.
    #[arg(long)]
    until: Option<String>,
}

impl Selection {
    fn filters(&self, extra: Option<String>) -> Option<String> {
        let quote = |v: &str| format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""));
        let mut parts = Vec::new();
        if let Some(t) = &self.trigger {
            parts.push(format!("triggerId eq {}", quote(t)));
        }
        if let Some(s) = &self.subscription {
            parts.push(format!("subscriptionId eq {}", quote(s)));
        }
        if let Some(t) = &self.since {
            parts.push(format!("created ge {}", quote(t)));
        }
        if let Some(t) = &self.until {
            parts.push(format!("created lt {}", quote(t)));
        }
        parts.extend(extra);
        (!parts.is_empty()).then(|| parts.join(" and "))
    }
}

#[derive(Debug, Subcommand)]
pub enum InvocationCommand {
    List {
        #[command(flatten)]
        selection: Selection,
        /// PENDING, IN_FLIGHT, AWAITING, DELIVERED or DEAD.
        #[arg(long)]
        state: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// One invocation with every attempt.
    Get { id: String },
    /// Deliver it again (same webhook-id); --force for a disabled subscription.
    Replay {
        id: String,
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum DeadLetterCommand {
    List {
        #[command(flatten)]
        selection: Selection,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Re-queue every matching dead letter, then follow the deliveries with a progress bar.
    Replay {
        #[command(flatten)]
        selection: Selection,
        /// Include disabled subscriptions.
        #[arg(long)]
        force: bool,
        /// Return once re-queued, without following the deliveries.
        #[arg(long)]
        no_wait: bool,
    },
}

fn read_json(path: &Path) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| fail(Exit::Failure, format!("cannot read {}: {e}", path.display())))?;
    serde_json::from_str(&text)
        .map_err(|e| fail(Exit::Failure, format!("{} is not JSON: {e}", path.display())))
}

/// Percent-encodes one path segment.
fn seg(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b':' => {
                char::from(b).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn query(pairs: &[(&str, String)]) -> String {
    serde_urlencoded::to_string(pairs).unwrap_or_default()
}

/// Prints one object as FIELD/VALUE rows, or as JSON.
fn show(v: &Value, json_out: bool) -> anyhow::Result<()> {
    if json_out {
        return Ok(print_json(v)?);
    }
    let rows: Vec<Vec<String>> = v
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| {
                    let mut text = cell(v);
                    if text.chars().count() > 100 {
                        text = text.chars().take(97).collect::<String>() + "...";
                    }
                    vec![k.clone(), text]
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(table(&["FIELD", "VALUE"], &rows)?)
}

fn rows(list: &Value, columns: &[&dyn Fn(&Value) -> String]) -> Vec<Vec<String>> {
    list.as_array()
        .map(|items| items.iter().map(|item| columns.iter().map(|c| c(item)).collect()).collect())
        .unwrap_or_default()
}

pub async fn trigger(remote: &Remote, command: TriggerCommand, json_out: bool) -> anyhow::Result<()> {
    match command {
        TriggerCommand::Create(new) => create_trigger(remote, json_out, new).await,
        TriggerCommand::Update { name, title, description, schedule, timezone, toggle, params } => {
            let mut ops = patch_ops(
                "add",
                [
                    ("/name", title.map(Value::String)),
                    ("/description", description.map(Value::String)),
                    ("/schedule", schedule.map(Value::String)),
                    ("/timezone", timezone.map(Value::String)),
                    ("/enabled", toggle.value().map(Value::Bool)),
                ],
            );
            for (key, value) in params.pairs() {
                let pointer = key.replace('~', "~0").replace('/', "~1");
                ops.push(json!({"op": "add", "path": format!("/params/{pointer}"), "value": value}));
            }
            let hint = "pass --param KEY VALUE, --title, --schedule, --enable ...";
            patch(remote, &format!("/triggers/v1/{}", seg(&name)), ops, hint, json_out).await
        }
        TriggerCommand::Delete { name } => {
            remote.call(Method::DELETE, &format!("/triggers/v1/{}", seg(&name)), None).await?;
            report(json_out, &json!({"deleted": name}), &format!("trigger {name} deleted"))
        }
        TriggerCommand::Get { name } => {
            show(&remote.call(Method::GET, &format!("/triggers/v1/{}", seg(&name)), None).await?, json_out)
        }
        TriggerCommand::List => {
            let list = remote.call(Method::GET, "/triggers/v1?limit=250&sorters=id", None).await?;
            if json_out {
                return Ok(print_json(&list)?);
            }
            Ok(table(
                &["ID", "TYPE", "ENABLED", "SCHEDULE", "NAME"],
                &rows(
                    &list,
                    &[
                        &|t| cell(&t["id"]),
                        &|t| cell(&t["type"]),
                        &|t| cell(&t["enabled"]),
                        &|t| cell(&t["schedule"]),
                        &|t| cell(&t["name"]),
                    ],
                ),
            )?)
        }
        TriggerCommand::Fire { name, input, wait, params } => {
            fire(remote, json_out, name, input, wait, params).await
        }
    }
}

pub async fn subscription(
    remote: &Remote,
    command: SubscriptionCommand,
    json_out: bool,
) -> anyhow::Result<()> {
    match command {
        SubscriptionCommand::Create(new) => create_subscription(remote, json_out, new).await,
        SubscriptionCommand::List { trigger } => {
            let mut pairs = vec![("limit", "250".to_owned())];
            if let Some(t) = trigger {
                pairs.push(("filters", format!("triggerId eq \"{t}\"")));
            }
            let list = remote
                .call(Method::GET, &format!("/trigger-subscriptions/v1?{}", query(&pairs)), None)
                .await?;
            if json_out {
                return Ok(print_json(&list)?);
            }
            Ok(table(
                &["ID", "TRIGGER", "ENABLED", "MODE", "URL", "NAME"],
                &rows(
                    &list,
                    &[
                        &|s| cell(&s["id"]),
                        &|s| cell(&s["triggerId"]),
                        &|s| cell(&s["enabled"]),
                        &|s| cell(&s["httpConfig"]["httpDispatchMode"]),
                        &|s| cell(&s["httpConfig"]["url"]),
                        &|s| cell(&s["name"]),
                    ],
                ),
            )?)
        }
        SubscriptionCommand::Get { id } => show(
            &remote.call(Method::GET, &format!("/trigger-subscriptions/v1/{}", seg(&id)), None).await?,
            json_out,
        ),
        SubscriptionCommand::Update { id, name, target, mode, filter, deadline, toggle } => {
            let ops = patch_ops(
                "replace",
                [
                    ("/name", name.map(Value::String)),
                    ("/httpConfig/url", target.map(Value::String)),
                    ("/httpConfig/httpDispatchMode", mode.map(|m| Value::String(m.to_ascii_uppercase()))),
                    ("/filter", filter.map(Value::String)),
                    ("/responseDeadline", deadline.map(Value::String)),
                    ("/enabled", toggle.value().map(Value::Bool)),
                ],
            );
            let hint = "pass --target, --name, --mode, --filter, --deadline, --enable or --disable";
            patch(remote, &format!("/trigger-subscriptions/v1/{}", seg(&id)), ops, hint, json_out).await
        }
        SubscriptionCommand::Delete { id } => {
            remote.call(Method::DELETE, &format!("/trigger-subscriptions/v1/{}", seg(&id)), None).await?;
            report(json_out, &json!({"deleted": id}), &format!("subscription {id} deleted"))
        }
        SubscriptionCommand::RotateSecret { id } => {
            let path = format!("/trigger-subscriptions/v1/{}/rotate-secret", seg(&id));
            show(&remote.call(Method::POST, &path, Some(&json!({}))).await?, json_out)
        }
        SubscriptionCommand::Test { id, input } => test_subscription(remote, json_out, id, input).await,
    }
}

fn invocation_rows(list: &Value) -> Vec<Vec<String>> {
    rows(
        list,
        &[
            &|i| cell(&i["id"]),
            &|i| cell(&i["triggerId"]),
            &|i| cell(&i["state"]),
            &|i| cell(&i["attempts"]),
            &|i| cell(&i["created"]),
            &|i| cell(&i["lastError"]),
        ],
    )
}

const INVOCATION_COLUMNS: &[&str] = &["ID", "TRIGGER", "STATE", "ATTEMPTS", "CREATED", "LAST ERROR"];

pub async fn invocation(remote: &Remote, command: InvocationCommand, json_out: bool) -> anyhow::Result<()> {
    match command {
        InvocationCommand::List { selection, state, limit } => {
            let state = state.map(|s| format!("state eq \"{}\"", s.to_ascii_uppercase()));
            let mut pairs = vec![("limit", limit.to_string())];
            pairs.extend(selection.filters(state).map(|f| ("filters", f)));
            let list =
                remote.call(Method::GET, &format!("/trigger-invocations/v1?{}", query(&pairs)), None).await?;
            if json_out {
                Ok(print_json(&list)?)
            } else {
                Ok(table(INVOCATION_COLUMNS, &invocation_rows(&list))?)
            }
        }
        InvocationCommand::Get { id } => {
            let got =
                remote.call(Method::GET, &format!("/trigger-invocations/v1/{}", seg(&id)), None).await?;
            if json_out {
                return Ok(print_json(&got)?);
            }
            let mut summary = got.clone();
            if let Some(o) = summary.as_object_mut() {
                o.remove("attemptLog");
            }
            show(&summary, false)?;
            println!();
            Ok(table(
                &["ATTEMPT", "STARTED", "MS", "STATUS", "ERROR"],
                &rows(
                    &got["attemptLog"],
                    &[
                        &|a| cell(&a["attempt"]),
                        &|a| cell(&a["started"]),
                        &|a| cell(&a["durationMs"]),
                        &|a| cell(&a["status"]),
                        &|a| cell(&a["error"]),
                    ],
                ),
            )?)
        }
        InvocationCommand::Replay { id, force } => {
            let mut path = format!("/trigger-invocations/v1/{}/replay", seg(&id));
            if force {
                path.push_str("?force=true");
            }
            let replayed = remote.call(Method::POST, &path, Some(&json!({}))).await?;
            report(json_out, &replayed, &format!("invocation {id} re-queued"))
        }
    }
}

pub async fn dead_letter(remote: &Remote, command: DeadLetterCommand, json_out: bool) -> anyhow::Result<()> {
    match command {
        DeadLetterCommand::List { selection, limit } => {
            let mut pairs = vec![("limit", limit.to_string()), ("count", "true".into())];
            pairs.extend(selection.filters(None).map(|f| ("filters", f)));
            let (list, total) = remote
                .call_with(Method::GET, &format!("/dead-letters/v1?{}", query(&pairs)), None, "")
                .await?;
            if json_out {
                return Ok(print_json(&list)?);
            }
            table(INVOCATION_COLUMNS, &invocation_rows(&list))?;
            let shown = list.as_array().map_or(0, Vec::len);
            if let Some(total) = total.filter(|t| *t > shown as u64) {
                println!("({shown} of {total}; raise --limit to see more)");
            }
            Ok(())
        }
        DeadLetterCommand::Replay { selection, force, no_wait } => {
            let mut body = json!({"force": force});
            if let Some(filters) = selection.filters(None) {
                body["filters"] = json!(filters);
            }
            let summary = remote.call(Method::POST, "/dead-letters/v1/replay", Some(&body)).await?;
            let replayed = summary["replayed"].as_u64().unwrap_or(0);
            if json_out {
                print_json(&summary)?;
            } else {
                println!("re-queued {replayed} dead letter(s); skipped {}", cell(&summary["skipped"]));
            }
            if no_wait || replayed == 0 {
                return Ok(());
            }
            follow(remote, &selection, replayed, json_out).await
        }
    }
}

/// Shows re-queued dead letters being delivered until none is pending, or progress stalls for a
/// minute (the rest are waiting for retries).
async fn follow(remote: &Remote, selection: &Selection, replayed: u64, json_out: bool) -> anyhow::Result<()> {
    let bar = if json_out { indicatif::ProgressBar::hidden() } else { indicatif::ProgressBar::new(replayed) };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} delivered or dead again ({elapsed})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let pending = selection.filters(Some("state in (\"PENDING\",\"IN_FLIGHT\")".into()));
    let mut pairs = vec![("limit", "1".to_owned()), ("count", "true".into())];
    pairs.extend(pending.map(|f| ("filters", f)));
    let path = format!("/trigger-invocations/v1?{}", query(&pairs));
    let (mut last, mut since) = (u64::MAX, Instant::now());
    loop {
        let (_, total) = remote.call_with(Method::GET, &path, None, "").await?;
        let left = total.unwrap_or(0).min(replayed);
        bar.set_position(replayed - left);
        if left == 0 {
            bar.finish();
            return Ok(());
        }
        if left != last {
            (last, since) = (left, Instant::now());
        } else if since.elapsed() > Duration::from_secs(60) {
            bar.abandon();
            eprintln!(
                "{left} still pending (waiting for retries); follow with `hookgate invocation list --state PENDING`"
            );
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn create_trigger(remote: &Remote, json_out: bool, new: NewTrigger) -> anyhow::Result<()> {
    let NewTrigger {
        name,
        kind,
        title,
        description,
        input_schema,
        output_schema,
        schedule,
        timezone,
        params,
    } = new;
    let mut body = json!({
        "id": name,
        "name": title.unwrap_or_else(|| name.clone()),
        "type": kind.to_ascii_uppercase(),
        "inputSchema": input_schema.as_deref().map(read_json).transpose()?.unwrap_or(json!({"type": "object"})),
        "exampleInput": {},
        "params": params.map(),
    });
    for (key, value) in [
        ("description", description.map(Value::String)),
        ("outputSchema", output_schema.as_deref().map(read_json).transpose()?),
        ("schedule", schedule.map(Value::String)),
        ("timezone", timezone.map(Value::String)),
    ] {
        if let Some(value) = value {
            body[key] = value;
        }
    }
    let created = remote.call(Method::POST, "/triggers/v1", Some(&body)).await?;
    show(&created, json_out)
}

async fn fire(
    remote: &Remote,
    json_out: bool,
    name: String,
    input: Option<PathBuf>,
    wait: Option<String>,
    params: Params,
) -> anyhow::Result<()> {
    let mut object = match input.as_deref().map(read_json).transpose()? {
        None => Map::new(),
        Some(Value::Object(o)) => o,
        Some(_) => return Err(fail(Exit::Failure, "--input must hold a JSON object")),
    };
    object.extend(params.pairs());
    let body = json!({"triggerId": name, "input": object, "contentJson": {}});
    let path = match wait {
        Some(w) => format!("/trigger-invocations/v1/start?{}", query(&[("wait", w)])),
        None => "/trigger-invocations/v1/start".into(),
    };
    let created = remote.call(Method::POST, &path, Some(&body)).await?;
    if json_out {
        return Ok(print_json(&created)?);
    }
    if created.as_array().is_some_and(Vec::is_empty) {
        println!("published; no subscription matched");
        return Ok(());
    }
    Ok(table(
        &["INVOCATION", "SUBSCRIPTION", "STATE", "OUTPUT"],
        &rows(
            &created,
            &[
                &|i| cell(&i["id"]),
                &|i| cell(&i["subscriptionId"]),
                &|i| {
                    if i["state"].is_null() { "PENDING".into() } else { cell(&i["state"]) }
                },
                &|i| if i["error"].is_string() { cell(&i["error"]) } else { cell(&i["output"]) },
            ],
        ),
    )?)
}

async fn create_subscription(remote: &Remote, json_out: bool, new: NewSubscription) -> anyhow::Result<()> {
    let NewSubscription {
        trigger,
        target,
        name,
        mode,
        filter,
        deadline,
        basic,
        bearer,
        disabled,
        ordering,
        ordering_key,
    } = new;
    let mut http = json!({"url": target, "httpDispatchMode": mode.to_ascii_uppercase()});
    if let Some(basic) = basic {
        let (user, password) =
            basic.split_once(':').ok_or_else(|| fail(Exit::Failure, "--basic takes USER:PASSWORD"))?;
        http["httpAuthenticationType"] = json!("BASIC_AUTH");
        http["basicAuthConfig"] = json!({"userName": user, "password": password});
    } else if let Some(token) = bearer {
        http["httpAuthenticationType"] = json!("BEARER_TOKEN");
        http["bearerTokenAuthConfig"] = json!({"bearerToken": token});
    }
    let mut body = json!({
        "name": name.unwrap_or_else(|| format!("{trigger} subscription")),
        "triggerId": trigger, "type": "HTTP", "httpConfig": http, "enabled": !disabled,
    });
    if let Some(filter) = filter {
        body["filter"] = json!(filter);
    }
    if let Some(deadline) = deadline {
        body["responseDeadline"] = json!(deadline);
    }
    if let Some(ordering) = ordering {
        body["ordering"] = json!(ordering.to_ascii_uppercase());
    }
    if let Some(key) = ordering_key {
        body["orderingKey"] = json!(key);
    }
    let created = remote.call(Method::POST, "/trigger-subscriptions/v1", Some(&body)).await?;
    show(&created, json_out)?;
    if !json_out {
        println!("The signing secret is shown only now; store it safely.");
    }
    Ok(())
}

async fn test_subscription(
    remote: &Remote,
    json_out: bool,
    id: String,
    input: Option<PathBuf>,
) -> anyhow::Result<()> {
    let sub = remote.call(Method::GET, &format!("/trigger-subscriptions/v1/{}", seg(&id)), None).await?;
    let mut body = json!({"triggerId": sub["triggerId"], "subscriptionIds": [id], "contentJson": {}});
    if let Some(path) = input {
        body["input"] = read_json(&path)?;
    }
    let sent = remote.call(Method::POST, "/trigger-invocations/v1/test", Some(&body)).await?;
    if json_out {
        return Ok(print_json(&if sent.is_null() { json!([]) } else { sent })?);
    }
    match sent.as_array().and_then(|a| a.first()) {
        Some(first) => {
            println!("test invocation {} queued for subscription {id}", cell(&first["id"]));
        }
        None => println!("nothing sent: the subscription's filter does not match the test input"),
    }
    Ok(())
}

/// Prints `value` as JSON, or `message` for people.
fn report(json_out: bool, value: &Value, message: &str) -> anyhow::Result<()> {
    if json_out {
        print_json(value)?;
    } else {
        println!("{message}");
    }
    Ok(())
}

/// JSON Patch operations `op` for the fields given a value.
fn patch_ops<const N: usize>(op: &str, fields: [(&str, Option<Value>); N]) -> Vec<Value> {
    fields
        .into_iter()
        .filter_map(|(path, value)| value.map(|value| json!({"op": op, "path": path, "value": value})))
        .collect()
}

/// Sends JSON Patch `ops` to `path` and shows the result; no ops is a local error naming `hint`.
async fn patch(
    remote: &Remote,
    path: &str,
    ops: Vec<Value>,
    hint: &str,
    json_out: bool,
) -> anyhow::Result<()> {
    if ops.is_empty() {
        return Err(fail(Exit::Failure, format!("nothing to change: {hint}")));
    }
    let body = Value::Array(ops);
    let (updated, _) =
        remote.call_with(Method::PATCH, path, Some(&body), "application/json-patch+json").await?;
    show(&updated, json_out)
}
