//! `hookgate subscription …`: subscriptions over the HTTP API.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

use super::remote::{Exit, Remote, cell, fail, print_json, table};
use super::resources::{Toggle, patch, patch_ops, query, read_json, report, rows, seg, show};

#[derive(Debug, Args)]
pub struct NewSubscription {
    #[arg(long)]
    trigger: String,
    /// The subscriber's URL, which receives the POSTs.
    #[arg(long, required_unless_present = "chain")]
    target: Option<String>,
    /// Chain instead: delivering publishes on this trigger, with no HTTP request.
    #[arg(long, conflicts_with_all = ["target", "basic", "bearer"])]
    chain: Option<String>,
    /// With --chain: the JSONPath into the payload that becomes the new events' input (an
    /// array gives one event per item); the whole payload by default.
    #[arg(long, requires = "chain")]
    input_path: Option<String>,
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
        /// A chained subscription's new target trigger.
        #[arg(long)]
        chain: Option<String>,
        /// A chained subscription's new inputPath.
        #[arg(long)]
        input_path: Option<String>,
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
                &["ID", "TRIGGER", "ENABLED", "MODE", "TARGET", "NAME"],
                &rows(
                    &list,
                    &[
                        &|s| cell(&s["id"]),
                        &|s| cell(&s["triggerId"]),
                        &|s| cell(&s["enabled"]),
                        &|s| match s.get("triggerConfig") {
                            Some(_) => "CHAINED".to_owned(),
                            None => cell(&s["httpConfig"]["httpDispatchMode"]),
                        },
                        &|s| match s.get("triggerConfig") {
                            Some(chain) => format!("trigger {}", cell(&chain["triggerId"])),
                            None => cell(&s["httpConfig"]["url"]),
                        },
                        &|s| cell(&s["name"]),
                    ],
                ),
            )?)
        }
        SubscriptionCommand::Get { id } => show(
            &remote.call(Method::GET, &format!("/trigger-subscriptions/v1/{}", seg(&id)), None).await?,
            json_out,
        ),
        SubscriptionCommand::Update {
            id,
            name,
            target,
            mode,
            filter,
            deadline,
            chain,
            input_path,
            toggle,
        } => {
            let ops = patch_ops(
                "replace",
                [
                    ("/name", name.map(Value::String)),
                    ("/httpConfig/url", target.map(Value::String)),
                    ("/httpConfig/httpDispatchMode", mode.map(|m| Value::String(m.to_ascii_uppercase()))),
                    ("/filter", filter.map(Value::String)),
                    ("/responseDeadline", deadline.map(Value::String)),
                    ("/triggerConfig/triggerId", chain.map(Value::String)),
                    ("/triggerConfig/inputPath", input_path.map(Value::String)),
                    ("/enabled", toggle.value().map(Value::Bool)),
                ],
            );
            let hint = "pass --target, --name, --mode, --filter, --deadline, --chain, --input-path, --enable or --disable";
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

async fn create_subscription(remote: &Remote, json_out: bool, new: NewSubscription) -> anyhow::Result<()> {
    let NewSubscription {
        trigger,
        target,
        chain,
        input_path,
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
    let name = name.unwrap_or_else(|| format!("{trigger} subscription"));
    let mut body = json!({"name": name, "triggerId": trigger, "enabled": !disabled});
    if let Some(chain) = chain {
        body["type"] = json!("TRIGGER");
        body["triggerConfig"] = json!({"triggerId": chain, "inputPath": input_path});
    } else {
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
        body["type"] = json!("HTTP");
        body["httpConfig"] = http;
    }
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
    if !json_out && created.get("httpConfig").is_some() {
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
