//! What an instance counts, in Prometheus' text format at `GET /metrics`. Each application has
//! its own registry, so two instances in one process (the tests) count apart. Label values are
//! bounded: trigger ids, outcomes, states, route patterns and a top-N of subscriptions.

use std::sync::Mutex;
use std::time::Duration;

use chrono::{NaiveDateTime, TimeDelta};

use prometheus::{
    Encoder as _, Gauge, Histogram, HistogramOpts, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::store::gauges::{self, Gauges};
use crate::store::{Store, StoreError};

/// How long gauges read from the database are reused before they are read again, so that
/// several scrapers cost one read.
const GAUGES_FOR: TimeDelta = TimeDelta::seconds(5);

/// How many failing subscriptions the top-N gauge names.
pub const TOP_FAILING: i64 = 10;

/// How an attempt ended, as `hookgate_deliveries_total` counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Delivered,
    /// Failed, and will be tried again.
    Retried,
    /// Failed, and its invocation is now a dead letter.
    Dead,
    /// Stopped by the SSRF guard before any request was made.
    Refused,
}

impl Delivery {
    const ALL: [Self; 4] = [Self::Delivered, Self::Retried, Self::Dead, Self::Refused];

    fn label(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Retried => "retried",
            Self::Dead => "dead",
            Self::Refused => "refused",
        }
    }
}

pub struct Metrics {
    registry: Registry,
    events_published: IntCounterVec,
    deliveries: IntCounterVec,
    delivery_duration: Histogram,
    http_requests: IntCounterVec,
    purged: IntCounterVec,
    invocations: IntGaugeVec,
    oldest_due: Gauge,
    failing: IntGaugeVec,
    pool_connections: IntGauge,
    pool_idle: IntGauge,
    pool_waiting: IntGauge,
    /// When the database gauges were last read, by the application's clock.
    read_at: Mutex<Option<NaiveDateTime>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let metric = IntCounterVec::new(Opts::new(name, help), labels).unwrap_or_else(|e| panic!("{name}: {e}"));
    registry.register(Box::new(metric.clone())).unwrap_or_else(|e| panic!("{name}: {e}"));
    metric
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let metric = IntGaugeVec::new(Opts::new(name, help), labels).unwrap_or_else(|e| panic!("{name}: {e}"));
    registry.register(Box::new(metric.clone())).unwrap_or_else(|e| panic!("{name}: {e}"));
    metric
}

fn int_gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let metric = IntGauge::new(name, help).unwrap_or_else(|e| panic!("{name}: {e}"));
    registry.register(Box::new(metric.clone())).unwrap_or_else(|e| panic!("{name}: {e}"));
    metric
}

impl Metrics {
    /// A registry with every metric, at zero. The names and labels are constants, so a failure
    /// to register one is a bug, found by any test.
    pub fn new() -> Self {
        let registry = Registry::new();
        let delivery_duration = Histogram::with_opts(
            HistogramOpts::new(
                "hookgate_delivery_duration_seconds",
                "How long delivery requests took, until the subscriber's answer was read.",
            )
            .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
        )
        .unwrap_or_else(|e| panic!("hookgate_delivery_duration_seconds: {e}"));
        registry
            .register(Box::new(delivery_duration.clone()))
            .unwrap_or_else(|e| panic!("hookgate_delivery_duration_seconds: {e}"));
        let oldest_due = Gauge::new(
            "hookgate_oldest_due_seconds",
            "How long the oldest invocation that is due has waited (0: none waits).",
        )
        .unwrap_or_else(|e| panic!("hookgate_oldest_due_seconds: {e}"));
        registry.register(Box::new(oldest_due.clone())).unwrap_or_else(|e| panic!("oldest_due: {e}"));
        let deliveries = counter(
            &registry,
            "hookgate_deliveries_total",
            "Delivery attempts by how they ended: delivered, retried, dead or refused.",
            &["outcome"],
        );
        // Shown at zero from the start, so that rates over them begin at once.
        for how in Delivery::ALL {
            deliveries.with_label_values(&[how.label()]);
        }
        Self {
            events_published: counter(
                &registry,
                "hookgate_events_published_total",
                "Events stored, by trigger.",
                &["trigger"],
            ),
            deliveries,
            delivery_duration,
            http_requests: counter(
                &registry,
                "hookgate_http_requests_total",
                "API requests served, by route pattern and status.",
                &["route", "status"],
            ),
            purged: counter(
                &registry,
                "hookgate_purged_total",
                "Rows the retention purge removed, by kind.",
                &["kind"],
            ),
            invocations: gauge_vec(
                &registry,
                "hookgate_invocations",
                "Invocations in the database, by state.",
                &["state"],
            ),
            oldest_due,
            failing: gauge_vec(
                &registry,
                "hookgate_subscription_failing_invocations",
                "Invocations waiting for a retry, for the subscriptions with the most of them.",
                &["subscription"],
            ),
            pool_connections: int_gauge(
                &registry,
                "hookgate_db_pool_connections",
                "Open connections in the database pool.",
            ),
            pool_idle: int_gauge(
                &registry,
                "hookgate_db_pool_idle",
                "Idle connections in the database pool.",
            ),
            pool_waiting: int_gauge(
                &registry,
                "hookgate_db_pool_waiting",
                "Tasks waiting for a connection from the database pool.",
            ),
            registry,
            read_at: Mutex::new(None),
        }
    }

    pub fn published(&self, trigger: &str, events: u64) {
        self.events_published.with_label_values(&[trigger]).inc_by(events);
    }

    pub fn delivery(&self, how: Delivery, attempts: u64) {
        if attempts > 0 {
            self.deliveries.with_label_values(&[how.label()]).inc_by(attempts);
        }
    }

    pub fn request_took(&self, took: Duration) {
        self.delivery_duration.observe(took.as_secs_f64());
    }

    pub fn served(&self, route: &str, status: u16) {
        self.http_requests.with_label_values(&[route, &status.to_string()]).inc();
    }

    pub fn purged(&self, kind: &str, rows: u64) {
        if rows > 0 {
            self.purged.with_label_values(&[kind]).inc_by(rows);
        }
    }

    /// Every metric in the text format, with the database gauges read again when they are older
    /// than a few seconds.
    pub async fn render(&self, store: &Store, now: NaiveDateTime) -> Result<String, StoreError> {
        let stale = self
            .read_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_none_or(|at| now < at || now - at >= GAUGES_FOR);
        if stale {
            let read = store.run(move |c| gauges::read(c, now, TOP_FAILING)).await?;
            self.set_gauges(&read);
            *self.read_at.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(now);
        }
        let pool = store.pool_status();
        self.pool_connections.set(i64::from(pool.connections));
        self.pool_idle.set(i64::from(pool.idle));
        self.pool_waiting.set(i64::try_from(pool.waiting).unwrap_or(i64::MAX));
        let mut text = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut text)
            .map_err(|e| StoreError::Corrupt(format!("encoding the metrics: {e}")))?;
        Ok(String::from_utf8_lossy(&text).into_owned())
    }

    fn set_gauges(&self, read: &Gauges) {
        for (state, count) in &read.by_state {
            self.invocations.with_label_values(&[state]).set(*count);
        }
        #[expect(clippy::cast_precision_loss, reason = "seconds of waiting, far below 2^52")]
        self.oldest_due.set(read.oldest_due_ms as f64 / 1000.0);
        self.failing.reset();
        for (subscription, count) in &read.failing {
            self.failing.with_label_values(&[subscription]).set(*count);
        }
    }
}
