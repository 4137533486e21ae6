//! Builds the running application (HTTP server on a bound port, store, seeded catalog) from
//! settings. Used by `hookgate serve` and by the tests.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{App, HttpServer, web};
use anyhow::Context as _;

use crate::api::{self, AppState};
use crate::clock::SharedClock;
use crate::config::Settings;
use crate::delivery::{Dispatcher, Publisher, Scheduler};
use crate::domain::catalog::{default_catalog, operational_catalog};
use crate::store::{self, Store};

pub struct Application {
    port: u16,
    server: Server,
    store: Store,
    dispatcher: Arc<Dispatcher>,
    scheduler: Arc<Scheduler>,
    poller: Arc<crate::sources::Poller>,
    purger: Arc<crate::retention::Purger>,
    workers: Vec<tokio::task::JoinHandle<()>>,
    stop_workers: tokio::sync::watch::Sender<bool>,
}

/// Installs the TLS crypto provider (ring) once per process; reqwest needs it before any client.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Opens the database, applies migrations and seeds the catalog on first start.
pub fn open_store(settings: &Settings, clock: &SharedClock) -> anyhow::Result<Store> {
    let store = Store::open(&settings.database_url, settings.db_pool_size, Duration::from_secs(10))
        .with_context(|| {
            format!("opening the {} database", store::Backend::from_url(&settings.database_url).name())
        })?;
    let applied = store.migrate().context("applying migrations")?;
    if applied > 0 {
        tracing::info!(migrations = applied, backend = store.backend().name(), "database migrated");
    }
    crate::keys::install(settings, &store)?;
    let now = clock.now();
    for (marker, catalog) in [
        (store::triggers::DEFAULT_CATALOG, default_catalog().context("loading the default trigger catalog")?),
        (
            store::triggers::OPERATIONAL_CATALOG,
            operational_catalog().context("loading the operational triggers")?,
        ),
    ] {
        let seeded = store
            .run_blocking(move |conn| store::triggers::seed_catalog(conn, marker, &catalog, now))
            .context("seeding the trigger catalog")?;
        if seeded > 0 {
            tracing::info!(triggers = seeded, catalog = marker, "trigger catalog seeded");
        }
    }
    Ok(store)
}

impl Application {
    pub fn build(settings: Settings, clock: SharedClock) -> anyhow::Result<Self> {
        install_tls_provider();
        let mut store = open_store(&settings, &clock)?;
        store.start_writer().context("starting the SQLite writer")?;
        let listener =
            TcpListener::bind(settings.listen).with_context(|| format!("binding {}", settings.listen))?;
        let port = listener.local_addr()?.port();
        let max_body_size = settings.max_body_size;
        let callback_base = settings.callback_base(port);
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let dispatcher = Arc::new(Dispatcher::new(
            store.clone(),
            clock.clone(),
            &settings,
            callback_base.clone(),
            metrics.clone(),
        )?);
        let (stop_workers, stopped) = tokio::sync::watch::channel(false);
        let mut workers = Vec::new();
        let checkpoints = store.clone();
        let stop = stopped.clone();
        workers.push(actix_web::rt::spawn(async move { checkpoints.checkpoint_loop(stop).await }));
        if settings.workers > 0 {
            workers.push(actix_web::rt::spawn(dispatcher.clone().run(stopped.clone())));
        }
        let publisher = Arc::new(Publisher::new(store.clone(), dispatcher.intake(), metrics.clone()));
        workers.push(actix_web::rt::spawn(publisher.clone().run(stopped.clone())));
        let (watcher, intake, stop) = (store.clone(), dispatcher.intake(), stopped.clone());
        workers.push(actix_web::rt::spawn(async move { watcher.watch(move || intake.wake(), stop).await }));
        let scheduler =
            Arc::new(Scheduler::new(store.clone(), clock.clone(), dispatcher.intake(), metrics.clone()));
        if settings.scheduler {
            workers.push(actix_web::rt::spawn(scheduler.clone().run(stopped.clone())));
        }
        let tally = Arc::new(crate::sources::Tally::default());
        workers.push(actix_web::rt::spawn(tally.clone().run(store.clone(), clock.clone(), stopped.clone())));
        let poller = Arc::new(crate::sources::Poller::new(
            store.clone(),
            clock.clone(),
            dispatcher.intake(),
            tally.clone(),
            &settings,
        )?);
        if settings.sources {
            workers.push(actix_web::rt::spawn(poller.clone().run(stopped.clone())));
        }
        let consumers = Arc::new(crate::sources::Consumers::new(
            store.clone(),
            clock.clone(),
            publisher.clone(),
            tally.clone(),
            settings.idempotency_ttl,
        ));
        if settings.sources {
            workers.push(actix_web::rt::spawn(consumers.run(stopped.clone())));
        }
        let retention = crate::retention::Retention::of(&settings);
        let purger =
            Arc::new(crate::retention::Purger::new(store.clone(), clock.clone(), retention, metrics.clone()));
        if settings.purge {
            workers.push(actix_web::rt::spawn(purger.clone().run(stopped.clone())));
        }
        if let Some(after) = settings.disable_after {
            let sweeper = Arc::new(crate::health::Sweeper::new(store.clone(), clock.clone(), after));
            workers.push(actix_web::rt::spawn(sweeper.run(stopped.clone())));
        }
        let state = web::Data::new(AppState {
            store: store.clone(),
            clock,
            settings: Arc::new(settings),
            intake: dispatcher.intake(),
            publisher,
            triggers: crate::api::TriggerCache::default(),
            sources: crate::api::SourceCache::default(),
            tally,
            public_base: callback_base.clone(),
            tokens: crate::api::TokenCache::default(),
            schemas: crate::domain::schema::Schemas::default(),
            metrics,
        });
        let server = HttpServer::new(move || {
            App::new()
                .wrap(actix_web::middleware::from_fn(api::request_span))
                .app_data(state.clone())
                .configure(|cfg| api::extractor_config(cfg, max_body_size))
                .configure(api::configure)
                .default_service(web::to(api::no_route))
        })
        .listen(listener)?
        .run();
        Ok(Self { port, server, store, dispatcher, scheduler, poller, purger, workers, stop_workers })
    }

    /// The dispatcher the delivery loops run; tests drive it directly.
    pub fn dispatcher(&self) -> Arc<Dispatcher> {
        self.dispatcher.clone()
    }

    /// The scheduler that fires scheduled triggers; tests drive it directly.
    pub fn scheduler(&self) -> Arc<Scheduler> {
        self.scheduler.clone()
    }

    /// The poller that fetches polled and monitor sources; tests drive it directly.
    pub fn poller(&self) -> Arc<crate::sources::Poller> {
        self.poller.clone()
    }

    /// The purge of what is past its retention; tests drive it directly.
    pub fn purger(&self) -> Arc<crate::retention::Purger> {
        self.purger.clone()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Serves until the server stops (SIGINT/SIGTERM, or the handle's `stop`), then stops the
    /// delivery loops: each finishes its batch and gives back anything it still holds.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = self.server.await;
        let _ = self.stop_workers.send(true);
        for worker in self.workers {
            let _ = worker.await;
        }
        served
    }

    pub fn server_handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }
}
