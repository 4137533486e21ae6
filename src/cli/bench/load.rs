//! The load generator: publishes the benchmark's events through the HTTP API, closed loop (each
//! connection as soon as the last answer came), open loop at a rate, or in batches.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use super::BenchArgs;
use super::sink::micros_now;

/// Publishes `args.events` events one per request over `args.concurrency` connections, each as
/// soon as the last answered or, with `--rate`, at its due time; returns how many were accepted.
pub(super) async fn publish(
    args: &BenchArgs,
    http: &reqwest::Client,
    base: &str,
    token: &str,
) -> anyhow::Result<usize> {
    let next = Arc::new(AtomicUsize::new(0));
    let accepted = Arc::new(AtomicUsize::new(0));
    let origin = micros_now();
    let interval_us = args.rate.map(|r| 1_000_000.0 / r);
    let publishers: Vec<_> = (0..args.concurrency)
        .map(|_| {
            let (http, next, accepted, token) =
                (http.clone(), next.clone(), accepted.clone(), token.to_owned());
            let (url, events) = (format!("{base}/trigger-invocations/v1/start"), args.events);
            actix_web::rt::spawn(async move {
                loop {
                    let seq = next.fetch_add(1, Ordering::Relaxed);
                    if seq >= events {
                        return;
                    }
                    let t0 = match interval_us {
                        None => micros_now(),
                        Some(step) => {
                            #[expect(
                                clippy::cast_possible_truncation,
                                clippy::cast_sign_loss,
                                clippy::cast_precision_loss,
                                reason = "microsecond offsets of a bounded run"
                            )]
                            let due = origin + (seq as f64 * step) as u64;
                            let now = micros_now();
                            if due > now {
                                tokio::time::sleep(Duration::from_micros(due - now)).await;
                            }
                            due
                        }
                    };
                    let body = json!({"triggerId": "bench:event", "input": {"seq": seq, "t0": t0}});
                    let sent = http.post(&url).bearer_auth(&token).json(&body).send().await;
                    if sent.is_ok_and(|r| r.status().is_success()) {
                        accepted.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for p in publishers {
        p.await?;
    }
    Ok(accepted.load(Ordering::Relaxed))
}

/// Publishes `events` events in batches of 1,000 per request; returns how many were accepted.
pub(super) async fn publish_batches(
    events: usize,
    concurrency: usize,
    http: &reqwest::Client,
    base: &str,
    token: &str,
) -> anyhow::Result<usize> {
    const BATCH: usize = 1000;
    let next = Arc::new(AtomicUsize::new(0));
    let accepted = Arc::new(AtomicUsize::new(0));
    let publishers: Vec<_> = (0..concurrency.min(4))
        .map(|_| {
            let (http, next, accepted, token) =
                (http.clone(), next.clone(), accepted.clone(), token.to_owned());
            let url = format!("{base}/trigger-invocations/v1/start");
            actix_web::rt::spawn(async move {
                loop {
                    let first = next.fetch_add(BATCH, Ordering::Relaxed);
                    if first >= events {
                        return;
                    }
                    let t0 = micros_now();
                    let batch: Vec<Value> = (first..(first + BATCH).min(events))
                        .map(|seq| json!({"triggerId": "bench:event", "input": {"seq": seq, "t0": t0}}))
                        .collect();
                    let n = batch.len();
                    let sent = http.post(&url).bearer_auth(&token).json(&batch).send().await;
                    if sent.is_ok_and(|r| r.status().is_success()) {
                        accepted.fetch_add(n, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for p in publishers {
        p.await?;
    }
    Ok(accepted.load(Ordering::Relaxed))
}
