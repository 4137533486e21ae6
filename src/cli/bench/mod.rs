//! `hookgate bench`: an end-to-end load test. Starts `hookgate serve` as a child process on a
//! fresh database (its log goes to a file the result names), a local subscriber, N subscriptions;
//! publishes M events through the HTTP API, as fast as C connections go or at an offered
//! `--rate`; waits until every invocation is delivered; prints one JSON object on stdout.
//! Latency runs from the moment a publish was due to the subscriber's receipt. `--pending N`
//! instead publishes N events to a server that does not deliver, then starts one that does and
//! measures the drain.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpServer, web};
use anyhow::{Context as _, bail};
use clap::Args;
use serde_json::{Value, json};

use crate::clock::{Clock as _, SystemClock};
use crate::domain::scope::Scopes;
use crate::store::{Backend, Store, clients};

mod load;
mod process;
mod sink;
use load::{publish, publish_batches};
use process::{cpu_seconds, cpu_seconds_of_all, peak_rss_mb, round3};
use sink::{Received, free_port, percentile, receive};

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
    #[arg(long, default_value_t = 1)]
    workers: u32,
    /// Invocations a loop claims at once (`HOOKGATE_BATCH_SIZE`).
    #[arg(long, default_value_t = 64)]
    batch_size: u32,
    /// Give up when no delivery arrives for this many seconds.
    #[arg(long, default_value_t = 30)]
    idle_timeout: u64,
    /// Offered load in events per second (open loop); default: as fast as the connections go.
    #[arg(long)]
    rate: Option<f64>,
    /// Publish this many events while nothing delivers, then measure how fast they drain.
    #[arg(long)]
    pending: Option<usize>,
    /// The route events are published through: `start`, `webhook` (a signed inbound webhook
    /// source, one message per event), `redis-stream`, `nats` or `amqp` (messages on the local
    /// broker).
    #[arg(long, value_enum, default_value = "start")]
    via: load::Via,
    /// Pads each event's input with this many bytes (`"pad": "xxx…"`), for message-size runs.
    #[arg(long, default_value_t = 0)]
    pad: usize,
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
    if args.rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
        bail!("--rate takes a positive number of events per second");
    }
    if args.pending == Some(0) {
        bail!("--pending takes at least 1 event");
    }
    if args.pending.is_some() && args.via != load::Via::Start {
        bail!("--pending publishes in batches through start; --via sends one message per event");
    }
    let FreshDb { url, schema, dir } = fresh_database(args.database_url.as_deref())?;
    let log = std::env::temp_dir().join(format!("hookgate-bench-{}.log", uuid::Uuid::new_v4().simple()));
    let result = actix_web::rt::System::new().block_on(measure(args, &url, &log));
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

/// The key the servers of one benchmark seal its throwaway database's secrets with: the same
/// for every server on that database.
fn bench_key(url: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(format!("hookgate-bench:{url}")))
}

/// A running `hookgate serve`, its output appended to the benchmark's log file.
struct Server {
    child: std::process::Child,
    base: String,
}

impl Server {
    fn start(url: &str, log: &std::path::Path, workers: u32, batch_size: u32) -> anyhow::Result<Self> {
        let port = free_port()?;
        let out = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
        let child = std::process::Command::new(std::env::current_exe()?)
            .arg("serve")
            .env("HOOKGATE_DATABASE_URL", url)
            .env("HOOKGATE_LISTEN", format!("127.0.0.1:{port}"))
            .env("HOOKGATE_ALLOWED_TARGET_NETWORKS", "127.0.0.1/32")
            .env("HOOKGATE_WORKERS", workers.to_string())
            .env("HOOKGATE_BATCH_SIZE", batch_size.to_string())
            .env("HOOKGATE_SCHEDULER", "false")
            .env("HOOKGATE_ENCRYPTION_KEY", bench_key(url))
            .env("HOOKGATE_LOG", "warn")
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("starting hookgate serve")?;
        Ok(Self { child, base: format!("http://127.0.0.1:{port}") })
    }

    async fn ready(&self, http: &reqwest::Client) -> anyhow::Result<()> {
        let since = Instant::now();
        let url = format!("{}/health/ready", self.base);
        while !http.get(&url).send().await.is_ok_and(|r| r.status().is_success()) {
            if since.elapsed() > Duration::from_secs(30) {
                bail!("hookgate serve did not become ready within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU seconds used so far by the server, the database server and this process.
#[derive(Clone, Copy, Default)]
struct Cpu {
    server: f64,
    database: f64,
    harness: f64,
}

impl Cpu {
    fn now(server: u32, backend: Backend) -> Self {
        Self {
            server: cpu_seconds(server).unwrap_or(0.0),
            database: if backend == Backend::Postgres { cpu_seconds_of_all("postgres") } else { 0.0 },
            harness: cpu_seconds(std::process::id()).unwrap_or(0.0),
        }
    }

    fn since(self, start: Self) -> Value {
        json!({
            "server": round3(self.server - start.server),
            "database": round3(self.database - start.database),
            "harness": round3(self.harness - start.harness),
        })
    }
}

async fn measure(args: &BenchArgs, url: &str, log: &std::path::Path) -> anyhow::Result<Value> {
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
    let http = reqwest::Client::builder().pool_max_idle_per_host(args.concurrency).build()?;
    let credentials = (client.id.to_string(), secret.expose().to_owned());

    let run = Run {
        args,
        url,
        log,
        backend,
        http: &http,
        credentials: &credentials,
        sink_port,
        received: &received,
    };
    let mut result = match args.pending {
        None => run.live().await,
        Some(pending) => run.pending(pending).await,
    };
    sink_handle.stop(false).await;
    if let Ok(Value::Object(fields)) = &mut result {
        let r = received.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let events = args.pending.unwrap_or(args.events);
        let expected = events * args.subscriptions;
        let duplicates: u32 = r.seen.values().map(|n| n - 1).sum();
        fields.insert("backend".into(), json!(backend.name()));
        fields.insert("subscriptions".into(), json!(args.subscriptions));
        fields.insert("deliveries".into(), json!(r.total));
        fields.insert("lost".into(), json!(expected.saturating_sub(r.seen.len())));
        fields.insert("duplicates".into(), json!(duplicates));
        fields.insert("concurrency".into(), json!(args.concurrency));
        fields.insert("workers".into(), json!(args.workers));
        fields.insert("batch_size".into(), json!(args.batch_size));
        fields.insert("server_log".into(), json!(log.display().to_string()));
    }
    result
}

/// What one benchmark run works with.
struct Run<'a> {
    args: &'a BenchArgs,
    url: &'a str,
    log: &'a std::path::Path,
    backend: Backend,
    http: &'a reqwest::Client,
    credentials: &'a (String, String),
    sink_port: u16,
    received: &'a Arc<Mutex<Received>>,
}

impl Run<'_> {
    /// Publishes while the server delivers; measures throughput, latency, memory and CPU.
    async fn live(&self) -> anyhow::Result<Value> {
        let Self { args, url, log, backend, http, credentials, sink_port, received } = *self;
        let server = Server::start(url, log, args.workers, args.batch_size)?;
        let outcome = async {
            server.ready(http).await?;
            let token = set_up(http, &server.base, credentials, args.subscriptions, sink_port).await?;
            let entry = load::Entry::open(args.via, http, &server.base, &token).await?;
            let cpu_start = Cpu::now(server.child.id(), backend);
            let started = Instant::now();
            let published = publish(args, http, &entry).await?;
            let done = wait_for(received, published * args.subscriptions, args.idle_timeout).await;
            let elapsed = started.elapsed().saturating_sub(done);
            entry.close().await;
            let cpu = Cpu::now(server.child.id(), backend).since(cpu_start);
            anyhow::Ok((published, elapsed, cpu))
        }
        .await;
        let rss = peak_rss_mb(server.child.id());
        server.stop();
        let (published, elapsed, cpu) = outcome?;
        let r = received.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut latencies = r.latencies_us.clone();
        latencies.sort_unstable();
        let secs = elapsed.as_secs_f64();
        Ok(json!({
            "events": published,
            "via": format!("{:?}", args.via).to_lowercase(),
            "rate": args.rate,
            "elapsed_s": round3(secs),
            "events_per_s": per_second(published, secs),
            "deliveries_per_s": per_second(r.total, secs),
            "latency_ms": {
                "p50": percentile(&latencies, 0.50),
                "p90": percentile(&latencies, 0.90),
                "p99": percentile(&latencies, 0.99),
                "max": percentile(&latencies, 1.0),
            },
            "peak_rss_mb": rss,
            "cpu_s": cpu,
        }))
    }

    /// Publishes `pending` events to a server that delivers nothing, stops it, then starts one that
    /// delivers and measures the drain.
    async fn pending(&self, pending: usize) -> anyhow::Result<Value> {
        let Self { args, url, log, backend, http, credentials, sink_port, received } = *self;
        let holding = Server::start(url, log, 0, args.batch_size)?;
        let filled = async {
            holding.ready(http).await?;
            let token = set_up(http, &holding.base, credentials, args.subscriptions, sink_port).await?;
            let started = Instant::now();
            let published = publish_batches(pending, args.concurrency, http, &holding.base, &token).await?;
            anyhow::Ok((published, started.elapsed()))
        }
        .await;
        let holding_rss = peak_rss_mb(holding.child.id());
        holding.stop();
        let (published, publish_time) = filled?;
        let delivering = Server::start(url, log, args.workers, args.batch_size)?;
        let drained = async {
            delivering.ready(http).await?;
            let cpu_start = Cpu::now(delivering.child.id(), backend);
            let started = Instant::now();
            let done = wait_for(received, published * args.subscriptions, args.idle_timeout).await;
            let cpu = Cpu::now(delivering.child.id(), backend).since(cpu_start);
            anyhow::Ok((started.elapsed().saturating_sub(done), cpu))
        }
        .await;
        let rss = peak_rss_mb(delivering.child.id());
        delivering.stop();
        let (elapsed, cpu) = drained?;
        let total = received.lock().unwrap_or_else(std::sync::PoisonError::into_inner).total;
        let secs = elapsed.as_secs_f64();
        Ok(json!({
            "events": published,
            "pending": published * args.subscriptions,
            "publish_s": round3(publish_time.as_secs_f64()),
            "publishing_peak_rss_mb": holding_rss,
            "drain_s": round3(secs),
            "deliveries_per_s": per_second(total, secs),
            "peak_rss_mb": rss,
            "cpu_s": cpu,
        }))
    }
}

fn per_second(n: usize, secs: f64) -> f64 {
    #[expect(clippy::cast_precision_loss, reason = "counts far below 2^52")]
    let n = n as f64;
    ((n / secs) * 10.0).round() / 10.0
}

/// Takes a token, creates the benchmark trigger and its subscriptions; returns the token.
async fn set_up(
    http: &reqwest::Client,
    base: &str,
    (client_id, client_secret): &(String, String),
    subscriptions: usize,
    sink_port: u16,
) -> anyhow::Result<String> {
    let token: Value = http
        .post(format!("{base}/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client_id.as_str()),
            ("client_secret", client_secret.as_str()),
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
    for k in 0..subscriptions {
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
    Ok(token)
}

/// Waits until `expected` deliveries arrived, or none for `idle_timeout` seconds; returns how
/// long ago the last one arrived (so the caller measures up to it, not up to the give-up).
async fn wait_for(received: &Arc<Mutex<Received>>, expected: usize, idle_timeout: u64) -> Duration {
    let mut last = (0, Instant::now());
    loop {
        let total = received.lock().unwrap_or_else(std::sync::PoisonError::into_inner).total;
        if total >= expected {
            return Duration::ZERO;
        }
        if total != last.0 {
            last = (total, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(idle_timeout) {
            return last.1.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
