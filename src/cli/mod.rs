//! The `hookgate` command line: `serve`, `migrate`, `client` administration and `purge` on the database,
//! and client commands that speak the HTTP API.

mod bench;
mod client;
mod invocations;
mod purge;
mod remote;
mod resources;
mod sources;
mod subscriptions;

pub use remote::{CliError, Exit};

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::clock::{SharedClock, SystemClock};
use crate::config::Settings;
use crate::startup::{Application, open_store};
use crate::telemetry;

#[derive(Debug, Parser)]
#[command(
    name = "hookgate",
    version,
    about = "Self-hosted event-trigger gateway (SailPoint Triggers API compatible)"
)]
pub struct Cli {
    /// A TOML configuration file (default: ./hookgate.toml when present).
    #[arg(long, global = true, env = "HOOKGATE_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    connection: remote::Connection,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the API server (the default command). Applies migrations at start.
    Serve {
        /// Address to bind, e.g. 0.0.0.0:8080 (overrides `HOOKGATE_LISTEN`).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Remove what is past its retention now (works directly on the database).
    Purge(purge::PurgeArgs),
    /// Manage API clients (works directly on the database).
    #[command(subcommand)]
    Client(client::ClientCommand),
    /// Create, change, list and fire triggers (over the HTTP API).
    #[command(subcommand)]
    Trigger(resources::TriggerCommand),
    /// Manage subscriptions (over the HTTP API).
    #[command(subcommand)]
    Subscription(subscriptions::SubscriptionCommand),
    /// Inspect and replay invocations (over the HTTP API).
    #[command(subcommand)]
    Invocation(invocations::InvocationCommand),
    /// Manage event sources, such as inbound webhooks (over the HTTP API).
    #[command(subcommand)]
    Source(sources::SourceCommand),
    /// List and replay dead letters (over the HTTP API).
    #[command(subcommand, name = "dead-letter")]
    DeadLetter(invocations::DeadLetterCommand),
    /// Generate encryption keys and rotate the one sealing secrets at rest (works directly on the
    /// database).
    #[command(subcommand)]
    Keys(crate::keys::KeysCommand),
    /// Measure end-to-end throughput and latency on a fresh database (prints JSON).
    Bench(bench::BenchArgs),
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let mut settings = Settings::load(cli.config.as_deref())?;
    // The benchmark's own subscriber and load generator log only what goes wrong: its stdout is
    // the result, and the server it runs logs to a file.
    let log = if matches!(cli.command, Some(Command::Bench(_))) { "warn" } else { settings.log.as_str() };
    telemetry::init(log, settings.log_format);
    let clock: SharedClock = Arc::new(SystemClock);
    match cli.command.unwrap_or(Command::Serve { listen: None }) {
        Command::Serve { listen } => {
            if let Some(listen) = listen {
                settings.listen =
                    listen.parse().with_context(|| format!("--listen: '{listen}' is not an address"))?;
            }
            serve(settings, clock)
        }
        Command::Migrate => {
            let store = open_store(&settings, &clock)?;
            println!("migrations applied ({} database)", store.backend().name());
            Ok(())
        }
        Command::Bench(args) => bench::run(&args),
        Command::Client(command) => {
            let store = open_store(&settings, &clock)?;
            client::run(command, &store, &clock, cli.connection.json)
        }
        Command::Keys(command @ crate::keys::KeysCommand::Generate) => {
            crate::keys::run(command, &settings, None, cli.connection.json)
        }
        Command::Keys(command) => {
            let store = open_store(&settings, &clock)?;
            crate::keys::run(command, &settings, Some(&store), cli.connection.json)
        }
        Command::Purge(args) => {
            let store = open_store(&settings, &clock)?;
            purge::run(&args, &settings, store, &clock, cli.connection.json)
        }
        command @ (Command::Trigger(_)
        | Command::Subscription(_)
        | Command::Invocation(_)
        | Command::Source(_)
        | Command::DeadLetter(_)) => remote(&settings, &cli.connection, command),
    }
}

/// Connects to hookgate and runs one client command.
fn remote(settings: &Settings, connection: &remote::Connection, command: Command) -> anyhow::Result<()> {
    crate::startup::install_tls_provider();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let remote = remote::Remote::connect(
            connection,
            settings.url.as_deref(),
            settings.client_id.as_deref(),
            settings.client_secret.as_deref(),
        )
        .await?;
        let json = connection.json;
        match command {
            Command::Trigger(c) => resources::trigger(&remote, c, json).await,
            Command::Subscription(c) => subscriptions::subscription(&remote, c, json).await,
            Command::Invocation(c) => invocations::invocation(&remote, c, json).await,
            Command::DeadLetter(c) => invocations::dead_letter(&remote, c, json).await,
            Command::Source(c) => sources::source(&remote, c, json).await,
            Command::Serve { .. }
            | Command::Migrate
            | Command::Client(_)
            | Command::Purge(_)
            | Command::Keys(_)
            | Command::Bench(_) => Ok(()),
        }
    })
}

fn serve(settings: Settings, clock: SharedClock) -> anyhow::Result<()> {
    let listen = settings.listen;
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(settings, clock)?;
        tracing::info!(address = %listen, port = app.port(), backend = app.store().backend().name(), "hookgate is serving");
        app.run_until_stopped().await.context("server failed")
    })
}
