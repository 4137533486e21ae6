//! The dispatcher: takes work (handed over by publishes in memory, or claimed from the database),
//! sends it with bounded concurrency and per-subscription fairness, and records the outcomes in
//! batches. The three stages run at once, joined by queues: the sender never waits for a batch
//! to be recorded. No transaction or pooled connection is held across an HTTP request; work whose
//! lease expires (an instance that died) is claimed again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{NaiveDateTime, TimeDelta};
use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use tokio::sync::{mpsc, watch};

use super::flow::Flow;
use super::intake::Intake;
use super::lanes::Lanes;
use super::recorder;
use super::sender::Sender;
use super::targets::{self, Targets};
use crate::clock::SharedClock;
use crate::config::Settings;
use crate::domain::invocation::Attempt;
use crate::domain::invocation::Next;
use crate::metrics::Metrics;
use crate::store::instances;
use crate::store::outcomes::{Effect, Outcome};
use crate::store::queue::{self, Claimed};
use crate::store::{Store, StoreError};

/// Tells running delivery loops to stop.
pub type Shutdown = watch::Receiver<bool>;

/// Work held in memory per request allowed in flight: what is being sent, what waits its turn and
/// what waits to be recorded. Each one held is one claim saved: a burst of 10,000 events to 10
/// subscriptions ran at about 8,400 deliveries/s on PostgreSQL with 4 per request (a third of the
/// invocations claimed from the database), 10,400/s with 16, and no faster with 64.
const IN_MEMORY_PER_REQUEST: usize = 16;

/// How often a running pipeline records that its instance is alive.
const HEARTBEAT: Duration = Duration::from_millis(250);

/// An instance silent for this long is dead: its work is taken over.
const SILENCE: TimeDelta = TimeDelta::milliseconds(1500);

/// How often a running pipeline looks for dead instances.
const TAKEOVER_EVERY: Duration = Duration::from_millis(500);

pub struct Dispatcher {
    store: Store,
    clock: SharedClock,
    metrics: Arc<Metrics>,
    sender: Sender,
    intake: Intake,
    /// The hand-off queue's receiving end, taken by the running pipeline.
    queue: Mutex<Option<mpsc::UnboundedReceiver<Claimed>>>,
    lease: Duration,
    batch_size: u32,
    claim_loops: u32,
    poll_interval: Duration,
    max_in_flight: usize,
    per_subscription: usize,
    /// The claim loop found no room in memory: the recorder wakes it when room comes back.
    starved: AtomicBool,
    /// When overdue awaiting invocations were last failed.
    last_sweep: Mutex<Option<NaiveDateTime>>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher").field("owner", &self.intake.owner()).finish_non_exhaustive()
    }
}

impl Dispatcher {
    pub fn new(
        store: Store,
        clock: SharedClock,
        settings: &Settings,
        callback_base: String,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let owner = format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple());
        // Long enough for an attempt at its full timeout and the batch's recording.
        let lease = settings.delivery_timeout * 2 + Duration::from_secs(2);
        let max_in_flight = settings.max_in_flight;
        let capacity = if settings.workers == 0 { 0 } else { max_in_flight * IN_MEMORY_PER_REQUEST };
        let (intake, queue) = Intake::new(owner, lease, capacity);
        Ok(Self {
            sender: Sender::new(clock.clone(), settings, callback_base, metrics.clone())?,
            metrics,
            store,
            clock,
            intake,
            queue: Mutex::new(Some(queue)),
            lease,
            batch_size: settings.batch_size,
            claim_loops: settings.workers.max(1),
            poll_interval: settings.poll_interval,
            max_in_flight,
            per_subscription: settings.max_in_flight_per_subscription.min(max_in_flight),
            starved: AtomicBool::new(false),
            last_sweep: Mutex::new(None),
        })
    }

    fn recorder(&self) -> recorder::Recorder<'_> {
        recorder::Recorder {
            store: &self.store,
            owner: self.intake.owner(),
            clock: &self.clock,
            metrics: &self.metrics,
        }
    }

    /// Where publishes hand their invocations over, and wake the claim loop.
    pub fn intake(&self) -> Intake {
        self.intake.clone()
    }

    /// Fails awaiting invocations whose response deadline passed, at most once a second.
    async fn expire_overdue(&self) -> Result<(), StoreError> {
        let now = self.clock.now();
        {
            let mut last = self.last_sweep.lock().unwrap_or_else(PoisonError::into_inner);
            if last.is_some_and(|at| now < at + TimeDelta::seconds(1)) {
                return Ok(());
            }
            *last = Some(now);
        }
        let expired = self.store.write(move |c| queue::expire_overdue(c, now)).await?;
        if expired > 0 {
            tracing::info!(expired, "response deadlines passed");
        }
        Ok(())
    }

    async fn claim(&self, limit: usize) -> Result<Vec<Claimed>, StoreError> {
        let (owner, now, lease) = (self.intake.owner().to_owned(), self.clock.now(), self.lease);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.store.write(move |c| queue::claim(c, &owner, now, lease, limit)).await
    }

    /// Claims one batch, delivers it and records the outcomes; returns how many it handled.
    /// Tests drive delivery with it (time moves only when their clock is advanced).
    pub async fn run_once(&self) -> Result<usize, StoreError> {
        self.expire_overdue().await?;
        let batch = self.claim(self.batch_size as usize).await?;
        if batch.is_empty() {
            return Ok(0);
        }
        let mut ids: Vec<String> = batch.iter().map(|c| c.invocation.subscription_id.to_string()).collect();
        ids.sort_unstable();
        ids.dedup();
        let targets = targets::load(&self.store, ids, self.clock.now()).await?;
        let deliveries = batch.iter().map(|claimed| {
            let target =
                targets.get(claimed.invocation.subscription_id.as_str()).and_then(|(t, _)| t.as_deref());
            self.sender.deliver(claimed, target)
        });
        let outcomes: Vec<Outcome> =
            futures_util::future::join_all(deliveries).await.into_iter().map(|d| d.outcome).collect();
        let handled = outcomes.len();
        self.recorder().record(Arc::new(outcomes)).await?;
        Ok(handled)
    }

    /// Delivers until nothing is due.
    pub async fn run_until_idle(&self) -> Result<usize, StoreError> {
        let mut total = 0;
        loop {
            let n = self.run_once().await?;
            if n == 0 {
                return Ok(total);
            }
            total += n;
        }
    }

    /// Runs the pipeline until `shutdown` turns true: the requests under way finish and are
    /// recorded, then everything still held is given back.
    pub async fn run(self: Arc<Self>, shutdown: Shutdown) {
        let Some(queue) = self.queue.lock().unwrap_or_else(PoisonError::into_inner).take() else {
            tracing::warn!("the delivery pipeline is already running");
            return;
        };
        let (outcomes, recorded) = mpsc::unbounded_channel();
        let recording = actix_web::rt::spawn(self.clone().record_loop(recorded));
        let beating = actix_web::rt::spawn(self.clone().heartbeat_loop(shutdown.clone()));
        let claiming: Vec<_> = (0..self.claim_loops)
            .map(|_| actix_web::rt::spawn(self.clone().claim_loop(shutdown.clone())))
            .collect();
        self.clone().pump(queue, outcomes, shutdown).await;
        for claimer in claiming {
            let _ = claimer.await;
        }
        let _ = recording.await;
        let _ = beating.await;
        let (owner, now) = (self.intake.owner().to_owned(), self.clock.now());
        let gave_back = self
            .store
            .write(move |c| {
                let n = queue::release(c, &owner, now)?;
                instances::leave(c, &owner)?;
                Ok(n)
            })
            .await;
        match gave_back {
            Ok(0) => {}
            Ok(n) => tracing::info!(released = n, "gave back in-flight invocations"),
            Err(e) => {
                tracing::warn!(error = %e, "could not give back in-flight invocations; they will be taken over");
            }
        }
    }

    /// Records that this instance is alive, and takes over the work of instances that are not.
    async fn heartbeat_loop(self: Arc<Self>, mut shutdown: Shutdown) {
        let mut looked = None::<Instant>;
        while !*shutdown.borrow() {
            let (me, now) = (self.intake.owner().to_owned(), self.clock.now());
            let look = looked.is_none_or(|at| at.elapsed() >= TAKEOVER_EVERY);
            if look {
                looked = Some(Instant::now());
            }
            let done = self
                .store
                .write(move |c| {
                    instances::beat(c, &me, now)?;
                    if look {
                        instances::take_over_dead(c, &me, now, SILENCE)
                    } else {
                        Ok(instances::Takeover::default())
                    }
                })
                .await;
            match done {
                Ok(takeover) if !takeover.dead.is_empty() => {
                    tracing::info!(
                        dead = ?takeover.dead,
                        invocations = takeover.invocations,
                        "took over the work of instances that stopped beating"
                    );
                    self.intake.wake();
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "heartbeat failed; retrying"),
            }
            tokio::select! {
                () = tokio::time::sleep(HEARTBEAT) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// Claims retries, expired leases and work published without a lease, whenever there is
    /// room in memory and a reason to look: a wake-up, the poll interval, or a full last batch.
    async fn claim_loop(self: Arc<Self>, mut shutdown: Shutdown) {
        let mut again = true;
        while !*shutdown.borrow() {
            if !again {
                tokio::select! {
                    () = self.intake.woken() => {}
                    () = tokio::time::sleep(self.poll_interval) => {}
                    _ = shutdown.changed() => continue,
                }
            }
            again = false;
            if let Err(e) = self.expire_overdue().await {
                tracing::warn!(error = %e, "failing overdue responses failed; retrying");
            }
            let want = self.intake.room().min(self.batch_size as usize);
            if want == 0 || self.intake.take(want).is_none() {
                self.starved.store(true, Ordering::Release);
                continue;
            }
            match self.claim(want).await {
                Ok(claimed) => {
                    let got = claimed.len();
                    self.intake.release(want - got);
                    again = got == want;
                    for item in claimed {
                        self.intake.enqueue(item);
                    }
                }
                Err(e) => {
                    self.intake.release(want);
                    tracing::warn!(error = %e, "claiming due invocations failed; retrying");
                }
            }
        }
    }

    /// Records outcomes as they come, as many per transaction as have arrived meanwhile. Once an
    /// ordered invocation's outcome is recorded, the next of its stream may be claimed, and a
    /// chained delivery's events wait to be claimed: the claim loop is woken.
    async fn record_loop(self: Arc<Self>, mut outcomes: mpsc::UnboundedReceiver<Finished>) {
        while let Some(first) = outcomes.recv().await {
            let mut batch = vec![first];
            while batch.len() < recorder::MAX_BATCH {
                match outcomes.try_recv() {
                    Ok(finished) => batch.push(finished),
                    Err(_) => break,
                }
            }
            let n = batch.len();
            let wakes = batch.iter().any(|f| f.ordered || matches!(f.outcome.effect, Effect::Publish(_)));
            let batch = batch.into_iter().map(|f| f.outcome).collect();
            self.recorder().record_until_done(batch).await;
            self.intake.release(n);
            if self.starved.swap(false, Ordering::AcqRel) || wakes {
                self.intake.wake();
            }
        }
    }

    /// Sends what is handed over or claimed: at most `max_in_flight` requests at once, at most
    /// `per_subscription` to one subscription, subscriptions taking turns.
    async fn pump(
        self: Arc<Self>,
        mut queue: mpsc::UnboundedReceiver<Claimed>,
        outcomes: mpsc::UnboundedSender<Finished>,
        mut shutdown: Shutdown,
    ) {
        let mut lanes = Lanes::default();
        let mut targets = Targets::new(self.store.clone(), self.clock.clone());
        let mut flow = Flow::new(self.store.clone(), self.clock.clone(), self.intake.owner().to_owned());
        let mut running = FuturesUnordered::new();
        let mut closing = *shutdown.borrow();
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            while !closing && running.len() < self.max_in_flight {
                let Some(claimed) = lanes.next(self.per_subscription, |sub, n| flow.admit(sub, n)) else {
                    break;
                };
                let sub = claimed.invocation.subscription_id.to_string();
                let target = targets.get(&sub);
                let this = self.clone();
                running.push(async move {
                    let started = Instant::now();
                    let delivered = this.sender.deliver(&claimed, target.as_deref()).await;
                    let ordered = claimed.invocation.order_key.is_some();
                    let finished = Finished { outcome: delivered.outcome, ordered };
                    (sub, target, delivered.pushback, finished, started.elapsed())
                });
            }
            if closing && running.is_empty() {
                break;
            }
            flow.ask(&lanes);
            let next_start = flow.next_start().map(tokio::time::Instant::from_std);
            tokio::select! {
                item = queue.recv(), if !closing => {
                    let Some(first) = item else { closing = true; continue };
                    let mut arrivals = vec![first];
                    while let Ok(more) = queue.try_recv() {
                        arrivals.push(more);
                    }
                    targets.refresh(arrivals.iter().map(|c| c.invocation.subscription_id.as_str())).await;
                    let mut last = None::<String>;
                    for claimed in arrivals {
                        let sub = claimed.invocation.subscription_id.as_str();
                        if last.as_deref() != Some(sub) {
                            flow.watch(sub, targets.get(sub).as_deref());
                            last = Some(sub.to_owned());
                        }
                        lanes.push(claimed);
                    }
                }
                Some((sub, target, pushback, finished, took)) = running.next(), if !running.is_empty() => {
                    if let Some(pushback) = pushback {
                        flow.push_back(&sub, target.as_deref(), pushback, lanes.observed_rate(&sub, took));
                    }
                    lanes.finished(&sub, took);
                    let _ = outcomes.send(finished);
                }
                () = flow.answer() => {}
                () = tokio::time::sleep_until(next_start.unwrap_or_else(tokio::time::Instant::now)), if next_start.is_some() => {}
                changed = shutdown.changed(), if !closing => {
                    closing = changed.is_err() || *shutdown.borrow();
                }
                _ = tick.tick() => {}
            }
            for (claimed, wait) in lanes.trim(self.per_subscription, self.lease, |sub| flow.pace(sub)) {
                let ordered = claimed.invocation.order_key.is_some();
                let _ = outcomes.send(Finished { outcome: self.deferred(&claimed, wait), ordered });
            }
        }
    }

    /// A claimed invocation given back unattempted, due again after `wait`.
    fn deferred(&self, claimed: &Claimed, wait: Duration) -> Outcome {
        let now = self.clock.now();
        Outcome {
            invocation: claimed.invocation.id.clone(),
            attempt: Attempt {
                attempt: claimed.invocation.attempts,
                started: now,
                duration_ms: 0,
                status: None,
                response: None,
                error: None,
            },
            next: Next::Deferred(now + TimeDelta::from_std(wait).unwrap_or(TimeDelta::seconds(1))),
            effect: Effect::None,
            refused: false,
            subscription: None,
        }
    }
}

/// An outcome on its way to the recorder.
struct Finished {
    outcome: Outcome,
    /// Of an ordered invocation: recording it may let the next of its stream go.
    ordered: bool,
}
