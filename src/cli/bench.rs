//! `hookgate bench`: an end-to-end load test. Starts `hookgate serve` as a child process on a
//! fresh database, a local subscriber, N subscriptions; publishes M events over C concurrent
//! connections through the HTTP API; waits until every invocation is delivered; prints one JSON
//! object. Latency runs from the start of the publish request to the subscriber's receipt.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use anyhow::{Context as _, bail};
use clap::Args;
use serde_json::{Value, json};

use crate::clock::{Clock as _, SystemClock};
use crate::domain::scope::Scopes;
use crate::store::{Backend, Store, clients};

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Events to publish.
    #[arg(long, default_value_t = 10_000)]
    events: usize,
    /// Subscriptions to the benchmark trigger (each event goes to every one).
    #[arg(long, default_value_t = 1)]
    subscriptions: usize,
    /// Concurrent publishing connections.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// A PostgreSQL URL (a fresh schema is created and dropped); default: a temporary SQLite file.
    #[arg(long)]
    database_url: Option<String>,
    /// Delivery loops of the server (`HOOKGATE_WORKERS`).
    #[arg(long, default_value_t = 4)]
    workers: u32,
    /// Invocations a loop claims at once (`HOOKGATE_BATCH_SIZE`).
    #[arg(long, default_value_t = 64)]
    batch_size: u32,
    /// Give up when no delivery arrives for this many seconds.
    #[arg(long, default_value_t = 30)]
    idle_timeout: u64,
}

#[derive(Default)]
struct Received {
    /// (seq, subscription) → times received.
    seen: HashMap<(u64, usize), u32>,
    latencies_us: Vec<u64>,
    total: usize,
}

fn micros_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

async fn receive(req: HttpRequest, body: web::Bytes, state: web::Data<Arc<Mutex<Received>>>) -> HttpResponse {
    let now = micros_now();
    let sub: usize = req.path().trim_start_matches("/s").parse().unwrap_or(usize::MAX);
    if let Ok(v) = serde_json::from_slice::<Value>(&body) {
        let (seq, t0) = (v["seq"].as_u64().unwrap_or(u64::MAX), v["t0"].as_u64().unwrap_or(now));
        let mut r = state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *r.seen.entry((seq, sub)).or_default() += 1;
        r.latencies_us.push(now.saturating_sub(t0));
        r.total += 1;
    }
    HttpResponse::Ok().finish()
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn peak_rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 =
        status.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some((kb / 1024.0 * 10.0).round() / 10.0)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "an index into a short list"
    )]
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    #[expect(clippy::cast_precision_loss, reason = "microseconds fit in f64")]
    let ms = sorted[i] as f64 / 1000.0;
    (ms * 100.0).round() / 100.0
}

/// A database made for one run, and what to remove afterwards.
struct FreshDb {
    url: String,
    /// PostgreSQL: the admin URL and the schema to drop.
    schema: Option<(String, String)>,
    /// SQLite: the temporary directory.
    dir: Option<std::path::PathBuf>,
}

fn fresh_database(url: Option<&str>) -> anyhow::Result<FreshDb> {
    match url {
        Some(url) if Backend::from_url(url) == Backend::Postgres => {
            let schema = format!("bench_{}", uuid::Uuid::new_v4().simple());
            let admin = Store::open(url, 1, Duration::from_secs(10))?;
            admin.run_blocking(|c| {
                diesel::connection::SimpleConnection::batch_execute(c, &format!("CREATE SCHEMA {schema}"))
                    .map_err(Into::into)
            })?;
            let sep = if url.contains('?') { '&' } else { '?' };
            Ok(FreshDb {
                url: format!("{url}{sep}options=-csearch_path%3D{schema}"),
                schema: Some((url.to_owned(), schema)),
                dir: None,
            })
        }
        Some(_) => {
            bail!("--database-url takes a postgres:// URL; without it a temporary SQLite file is used")
        }
        None => {
            let dir = std::env::temp_dir().join(format!("hookgate-bench-{}", uuid::Uuid::new_v4().simple()));
            std::fs::create_dir_all(&dir)?;
            Ok(FreshDb { url: dir.join("bench.db").display().to_string(), schema: None, dir: Some(dir) })
        }
    }
}

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    if args.events == 0 || args.subscriptions == 0 || args.concurrency == 0 {
        bail!("--events, --subscriptions and --concurrency must be at least 1");
    }
    if args.subscriptions > 50 {
        bail!("--subscriptions is at most 50 (the fire-and-forget limit)");
    }
    let FreshDb { url, schema, dir } = fresh_database(args.database_url.as_deref())?;
    let result = actix_web::rt::System::new().block_on(measure(args, &url));
    if let Some((admin_url, schema)) = schema {
        let admin = Store::open(&admin_url, 1, Duration::from_secs(10))?;
        admin.run_blocking(|c| {
            diesel::connection::SimpleConnection::batch_execute(c, &format!("DROP SCHEMA {schema} CASCADE"))
                .map_err(Into::into)
        })?;
    }
    if let Some(dir) = dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    println!("{}", result?);
    Ok(())
}

async fn measure(args: &BenchArgs, url: &str) -> anyhow::Result<Value> {
    crate::startup::install_tls_provider();
    let store = Store::open(url, 2, Duration::from_secs(10))?;
    store.migrate()?;
    let scopes = Scopes::parse(crate::domain::scope::ALL).map_err(anyhow::Error::msg)?;
    let now = SystemClock.now();
    let (client, secret) = store.run_blocking(|c| clients::create(c, "bench", &scopes, now))?;
    let backend = store.backend();
    drop(store);

    let received = Arc::new(Mutex::new(Received::default()));
    let sink_port = free_port()?;
    let data = web::Data::new(received.clone());
    let sink = HttpServer::new(move || App::new().app_data(data.clone()).default_service(web::to(receive)))
        .workers(1)
        .backlog(4096)
        .bind(("127.0.0.1", sink_port))?
        .run();
    let sink_handle = sink.handle();
    actix_web::rt::spawn(sink);

    let port = free_port()?;
    let mut server = std::process::Command::new(std::env::current_exe()?)
        .arg("serve")
        .env("HOOKGATE_DATABASE_URL", url)
        .env("HOOKGATE_LISTEN", format!("127.0.0.1:{port}"))
        .env("HOOKGATE_ALLOWED_TARGET_NETWORKS", "127.0.0.1/32")
        .env("HOOKGATE_WORKERS", args.workers.to_string())
        .env("HOOKGATE_BATCH_SIZE", args.batch_size.to_string())
        .env("HOOKGATE_LOG", "warn")
        .spawn()
        .context("starting hookgate serve")?;
    let outcome = drive(args, port, sink_port, &client.id.to_string(), secret.expose(), &received).await;
    let rss = peak_rss_mb(server.id());
    let _ = server.kill();
    let _ = server.wait();
    sink_handle.stop(false).await;
    let (elapsed, published) = outcome?;

    let r = received.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let expected = args.events * args.subscriptions;
    let distinct = r.seen.len();
    let duplicates: u32 = r.seen.values().map(|n| n - 1).sum();
    let mut latencies = r.latencies_us.clone();
    latencies.sort_unstable();
    let secs = elapsed.as_secs_f64();
    #[expect(clippy::cast_precision_loss, reason = "counts far below 2^52")]
    let per_second = |n: usize| ((n as f64 / secs) * 10.0).round() / 10.0;
    Ok(json!({
        "backend": backend.name(),
        "events": published,
        "subscriptions": args.subscriptions,
        "deliveries": r.total,
        "elapsed_s": (secs * 1000.0).round() / 1000.0,
        "events_per_s": per_second(published),
        "deliveries_per_s": per_second(r.total),
        "latency_ms": {
            "p50": percentile(&latencies, 0.50),
            "p90": percentile(&latencies, 0.90),
            "p99": percentile(&latencies, 0.99),
            "max": percentile(&latencies, 1.0),
        },
        "lost": expected.saturating_sub(distinct),
        "duplicates": duplicates,
        "peak_rss_mb": rss,
        "concurrency": args.concurrency,
        "workers": args.workers,
        "batch_size": args.batch_size,
    }))
}

/// Sets up the trigger and subscriptions, publishes, and waits for the deliveries; returns the
/// time from the first publish to the last delivery, and how many events were accepted.
async fn drive(
    args: &BenchArgs,
    port: u16,
    sink_port: u16,
    client_id: &str,
    client_secret: &str,
    received: &Arc<Mutex<Received>>,
) -> anyhow::Result<(Duration, usize)> {
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder().pool_max_idle_per_host(args.concurrency).build()?;
    let ready = Instant::now();
    while !http.get(format!("{base}/health/ready")).send().await.is_ok_and(|r| r.status().is_success()) {
        if ready.elapsed() > Duration::from_secs(30) {
            bail!("hookgate serve did not become ready within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let token: Value = http
        .post(format!("{base}/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", client_secret),
        ])
        .send()
        .await?
        .json()
        .await?;
    let token = token["access_token"].as_str().context("no token")?.to_owned();
    let trigger = json!({"id": "bench:event", "name": "Benchmark", "type": "FIRE_AND_FORGET",
        "inputSchema": {"type": "object"}, "exampleInput": {"seq": 0, "t0": 0}});
    let created = http.post(format!("{base}/triggers/v1")).bearer_auth(&token).json(&trigger).send().await?;
    if !created.status().is_success() {
        bail!("creating the benchmark trigger: {}", created.text().await?);
    }
    for k in 0..args.subscriptions {
        let body = json!({"name": format!("s{k}"), "triggerId": "bench:event", "type": "HTTP",
            "httpConfig": {"url": format!("http://127.0.0.1:{sink_port}/s{k}"), "httpDispatchMode": "SYNC"}});
        let r = http
            .post(format!("{base}/trigger-subscriptions/v1"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("creating subscription {k}: {}", r.text().await?);
        }
    }

    let next = Arc::new(AtomicUsize::new(0));
    let accepted = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let publishers: Vec<_> = (0..args.concurrency)
        .map(|_| {
            let (http, next, accepted, token) = (http.clone(), next.clone(), accepted.clone(), token.clone());
            let (url, events) = (format!("{base}/trigger-invocations/v1/start"), args.events);
            actix_web::rt::spawn(async move {
                loop {
                    let seq = next.fetch_add(1, Ordering::Relaxed);
                    if seq >= events {
                        return;
                    }
                    let body = json!({"triggerId": "bench:event", "input": {"seq": seq, "t0": micros_now()}});
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
    let expected = args.events * args.subscriptions;
    let mut last = (0, Instant::now());
    loop {
        let total = received.lock().unwrap_or_else(std::sync::PoisonError::into_inner).total;
        if total >= expected {
            break;
        }
        if total != last.0 {
            last = (total, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(args.idle_timeout) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok((started.elapsed(), accepted.load(Ordering::Relaxed)))
}
