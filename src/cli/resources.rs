//! The client commands that speak hookgate's HTTP API, as tables for people or JSON (`--json`)
//! for scripts: the trigger commands, and what every resource's commands share.

#![expect(clippy::doc_markdown, reason = "these doc comments are --help text, read in a terminal")]

use std::path::{Path, PathBuf};

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
    pub(super) fn value(self) -> Option<bool> {
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

pub(super) fn read_json(path: &Path) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| fail(Exit::Failure, format!("cannot read {}: {e}", path.display())))?;
    serde_json::from_str(&text)
        .map_err(|e| fail(Exit::Failure, format!("{} is not JSON: {e}", path.display())))
}

/// Percent-encodes one path segment.
pub(super) fn seg(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b':' => {
                char::from(b).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

pub(super) fn query(pairs: &[(&str, String)]) -> String {
    serde_urlencoded::to_string(pairs).unwrap_or_default()
}

/// Prints one object as FIELD/VALUE rows, or as JSON.
pub(super) fn show(v: &Value, json_out: bool) -> anyhow::Result<()> {
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

pub(super) fn rows(list: &Value, columns: &[&dyn Fn(&Value) -> String]) -> Vec<Vec<String>> {
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

/// Prints `value` as JSON, or `message` for people.
pub(super) fn report(json_out: bool, value: &Value, message: &str) -> anyhow::Result<()> {
    if json_out {
        print_json(value)?;
    } else {
        println!("{message}");
    }
    Ok(())
}

/// JSON Patch operations `op` for the fields given a value.
pub(super) fn patch_ops<const N: usize>(op: &str, fields: [(&str, Option<Value>); N]) -> Vec<Value> {
    fields
        .into_iter()
        .filter_map(|(path, value)| value.map(|value| json!({"op": op, "path": path, "value": value})))
        .collect()
}

/// Sends JSON Patch `ops` to `path` and shows the result; no ops is a local error naming `hint`.
pub(super) async fn patch(
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
