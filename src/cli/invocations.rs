//! `hookgate invocation …` and `hookgate dead-letter …`: invocations and dead letters over the
//! HTTP API, and following a bulk replay.

#![expect(clippy::doc_markdown, reason = "these doc comments are --help text, read in a terminal")]

use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

use super::remote::{Remote, cell, print_json, table};
use super::resources::{query, report, rows, seg, show};

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
