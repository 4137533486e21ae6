//! `hookgate source …`: sources over the HTTP API.

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

use super::remote::{Remote, cell, print_json, table};
use super::resources::{Toggle, patch, patch_ops, query, report, rows, seg, show};

#[derive(Debug, Args)]
pub struct NewSource {
    /// The source's id, a slug such as `stripe` (generated when absent); it names its URL.
    id: Option<String>,
    /// `WEBHOOK`, `HTTP_POLL`, `MONITOR`, `REDIS_STREAM`, `NATS` or `AMQP`.
    #[arg(long = "type", default_value = "WEBHOOK")]
    kind: String,
    /// `HTTP_POLL`, `MONITOR`: the URL fetched; `REDIS_STREAM`, `NATS`, `AMQP`: the broker's
    /// URL (`--url` names hookgate itself).
    #[arg(long)]
    fetch: Option<String>,
    /// `REDIS_STREAM`, `NATS`: the stream consumed.
    #[arg(long)]
    stream: Option<String>,
    /// `REDIS_STREAM`: the consumer group every instance joins.
    #[arg(long, default_value = "hookgate")]
    group: String,
    /// `NATS`: the subject the stream holds.
    #[arg(long)]
    subject: Option<String>,
    /// `NATS`: the durable consumer every instance shares.
    #[arg(long, default_value = "hookgate")]
    durable: String,
    /// `AMQP`: the durable queue consumed.
    #[arg(long)]
    queue: Option<String>,
    /// `HTTP_POLL`, `MONITOR`: how often, e.g. 30s.
    #[arg(long, default_value = "60s")]
    every: String,
    /// `HTTP_POLL`: a JSONPath selecting the items, e.g. '$.data[*]'.
    #[arg(long)]
    items_path: Option<String>,
    /// `HTTP_POLL`: a JSONPath selecting each item's id.
    #[arg(long, default_value = "$.id")]
    id_path: String,
    /// `MONITOR`: a JSONPath selecting the number watched.
    #[arg(long)]
    value_path: Option<String>,
    /// `MONITOR`: fire when the value goes above this.
    #[arg(long, allow_negative_numbers = true)]
    above: Option<f64>,
    /// `MONITOR`: fire when the value goes below this.
    #[arg(long, allow_negative_numbers = true)]
    below: Option<f64>,
    /// The trigger each message fires.
    #[arg(long)]
    trigger: String,
    #[arg(long)]
    name: Option<String>,
    /// How senders sign: `STANDARD_WEBHOOKS`, `GITHUB`, `STRIPE`, `HMAC_SHA256` or `NONE`.
    #[arg(long, default_value = "STANDARD_WEBHOOKS")]
    verify: String,
    /// The signing secret the sender uses.
    #[arg(long)]
    secret: Option<String>,
    /// The header that carries an `HMAC_SHA256` signature.
    #[arg(long)]
    header: Option<String>,
    /// The HTTP methods it takes, comma-separated (POST, GET).
    #[arg(long, default_value = "POST")]
    methods: String,
    /// `ASYNC` (answer once stored) or `SYNC` (answer with the subscriber's output).
    #[arg(long, default_value = "ASYNC")]
    response: String,
    /// A JSONPath selecting the event input in each message, e.g. '$.data.object'.
    #[arg(long)]
    input_path: Option<String>,
    /// Create it disabled.
    #[arg(long)]
    disabled: bool,
}

#[derive(Debug, Subcommand)]
pub enum SourceCommand {
    /// Create a source; prints the URL to give the sender.
    Create(Box<NewSource>),
    List {
        /// Only the sources of this trigger.
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
        #[arg(long)]
        trigger: Option<String>,
        /// A new signing secret.
        #[arg(long)]
        secret: Option<String>,
        #[arg(long)]
        input_path: Option<String>,
        #[command(flatten)]
        toggle: Toggle,
    },
    Delete {
        id: String,
    },
    /// The latest messages the source refused, with why.
    Rejections {
        id: String,
    },
}

pub async fn source(remote: &Remote, command: SourceCommand, json_out: bool) -> anyhow::Result<()> {
    match command {
        SourceCommand::Create(new) => create(remote, json_out, *new).await,
        SourceCommand::List { trigger } => {
            let mut pairs = vec![("limit", "250".to_owned())];
            if let Some(t) = trigger {
                pairs.push(("filters", format!("triggerId eq \"{t}\"")));
            }
            let path = format!("/sources/v1?{}", query(&pairs));
            let list = remote.call(Method::GET, &path, None).await?;
            if json_out {
                return Ok(print_json(&list)?);
            }
            Ok(table(
                &["ID", "TYPE", "TRIGGER", "ENABLED", "RECEIVED", "FIRED", "REJECTED", "URL"],
                &rows(
                    &list,
                    &[
                        &|s| cell(&s["id"]),
                        &|s| cell(&s["type"]),
                        &|s| cell(&s["triggerId"]),
                        &|s| cell(&s["enabled"]),
                        &|s| cell(&s["status"]["received"]),
                        &|s| cell(&s["status"]["fired"]),
                        &|s| cell(&s["status"]["rejected"]),
                        &|s| cell(&s["url"]),
                    ],
                ),
            )?)
        }
        SourceCommand::Get { id } => {
            show(&remote.call(Method::GET, &format!("/sources/v1/{}", seg(&id)), None).await?, json_out)
        }
        SourceCommand::Update { id, name, trigger, secret, input_path, toggle } => {
            let ops = patch_ops(
                "replace",
                [
                    ("/name", name.map(Value::String)),
                    ("/triggerId", trigger.map(Value::String)),
                    ("/webhookConfig/secret", secret.map(Value::String)),
                    ("/inputPath", input_path.map(Value::String)),
                    ("/enabled", toggle.value().map(Value::Bool)),
                ],
            );
            let hint = "pass --name, --trigger, --secret, --input-path, --enable or --disable";
            patch(remote, &format!("/sources/v1/{}", seg(&id)), ops, hint, json_out).await
        }
        SourceCommand::Delete { id } => {
            remote.call(Method::DELETE, &format!("/sources/v1/{}", seg(&id)), None).await?;
            report(json_out, &json!({"deleted": id}), &format!("source {id} deleted"))
        }
        SourceCommand::Rejections { id } => {
            let list =
                remote.call(Method::GET, &format!("/sources/v1/{}/rejections", seg(&id)), None).await?;
            if json_out {
                return Ok(print_json(&list)?);
            }
            Ok(table(
                &["AT", "REASON", "MESSAGE"],
                &rows(&list, &[&|r| cell(&r["at"]), &|r| cell(&r["reason"]), &|r| cell(&r["message"])]),
            )?)
        }
    }
}

async fn create(remote: &Remote, json_out: bool, new: NewSource) -> anyhow::Result<()> {
    let methods: Vec<String> =
        new.methods.split(',').map(|m| m.trim().to_ascii_uppercase()).filter(|m| !m.is_empty()).collect();
    let mut hook = json!({
        "verification": new.verify.to_ascii_uppercase(),
        "methods": methods,
        "response": new.response.to_ascii_uppercase(),
    });
    if let Some(secret) = new.secret {
        hook["secret"] = json!(secret);
    }
    if let Some(header) = new.header {
        hook["header"] = json!(header);
    }
    let kind = new.kind.to_ascii_uppercase();
    let mut body = json!({
        "name": new.name.unwrap_or_else(|| format!("{} source", new.trigger)),
        "type": kind,
        "triggerId": new.trigger,
        "enabled": !new.disabled,
    });
    match kind.as_str() {
        "HTTP_POLL" => {
            let mut poll = json!({"url": new.fetch, "every": new.every, "idPath": new.id_path});
            if let Some(path) = new.items_path {
                poll["itemsPath"] = json!(path);
            }
            body["pollConfig"] = poll;
        }
        "AMQP" => body["amqpConfig"] = json!({"url": new.fetch, "queue": new.queue}),
        "NATS" => {
            body["natsConfig"] = json!({"url": new.fetch, "stream": new.stream, "subject": new.subject, "durable": new.durable});
        }
        "REDIS_STREAM" => {
            body["redisStreamConfig"] = json!({"url": new.fetch, "stream": new.stream, "group": new.group});
        }
        "MONITOR" => {
            body["monitorConfig"] = json!({"url": new.fetch, "every": new.every, "valuePath": new.value_path,
                "above": new.above, "below": new.below});
        }
        _ => body["webhookConfig"] = hook,
    }
    if let Some(id) = new.id {
        body["id"] = json!(id);
    }
    if let Some(path) = new.input_path {
        body["inputPath"] = json!(path);
    }
    let created = remote.call(Method::POST, "/sources/v1", Some(&body)).await?;
    if json_out {
        return Ok(print_json(&created)?);
    }
    println!("source {} created", cell(&created["id"]));
    if let Some(url) = created["url"].as_str() {
        println!("give the sender this URL: {url}");
    }
    Ok(())
}
