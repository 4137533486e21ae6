//! Publishing, coalesced: publishes that arrive while others are being written commit together,
//! one transaction and one insert per table for all of them, and what they create in flight goes
//! to this instance's dispatcher in memory ([`Intake`]). Under load a group grows by itself, so the
//! database sees a few statements per group instead of per event; an idle server commits each
//! publish as soon as it arrives.

use std::sync::{Arc, Mutex, PoisonError};

use chrono::NaiveDateTime;
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::Shutdown;
use super::intake::{Intake, Reservation};
use crate::metrics::Metrics;
use crate::store::events::{self, Draft, Offer, Published};
use crate::store::idempotency::IdempotencyKey;
use crate::store::queue::Claimed;
use crate::store::subscribers::Subscribers;
use crate::store::{AnyConnection, Store, StoreError};

/// The most publish requests, and events, one transaction takes.
const MAX_REQUESTS: usize = 256;
const MAX_EVENTS: usize = 1024;

/// Groups written at once: one fills while another commits.
const GROUPS_AT_ONCE: usize = 2;

type Answer = oneshot::Sender<Result<Published, StoreError>>;

struct Request {
    drafts: Vec<Draft>,
    key: Option<IdempotencyKey>,
    now: NaiveDateTime,
    answer: Answer,
}

pub struct Publisher {
    store: Store,
    intake: Intake,
    metrics: Arc<Metrics>,
    queue: mpsc::UnboundedSender<Request>,
    /// The queue's receiving end, taken by the running loop.
    waiting: Mutex<Option<mpsc::UnboundedReceiver<Request>>>,
    /// Each trigger's subscribers, as last read.
    subscribers: Arc<Subscribers>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Publisher")
    }
}

impl Publisher {
    pub fn new(store: Store, intake: Intake, metrics: Arc<Metrics>) -> Self {
        let (queue, waiting) = mpsc::unbounded_channel();
        Self {
            store,
            intake,
            metrics,
            queue,
            waiting: Mutex::new(Some(waiting)),
            subscribers: Arc::default(),
        }
    }

    /// Stores `drafts` and their invocations, and hands those created in flight to the
    /// dispatcher. The request joins the next group; a keyed one has its key checked and
    /// remembered in the group's transaction. Without a running loop ([`Publisher::run`]) each
    /// request is its own group.
    pub async fn publish(
        &self,
        drafts: Vec<Draft>,
        key: Option<IdempotencyKey>,
        now: NaiveDateTime,
    ) -> Result<Published, StoreError> {
        let (answer, answered) = oneshot::channel();
        if let Err(mpsc::error::SendError(request)) = self.queue.send(Request { drafts, key, now, answer }) {
            self.commit(vec![request]).await;
        }
        answered.await.map_err(|_| StoreError::WriterGone)?
    }

    /// Commits queued publishes in groups until `shutdown`, then those still queued.
    pub async fn run(self: Arc<Self>, mut shutdown: Shutdown) {
        let Some(mut waiting) = self.waiting.lock().unwrap_or_else(PoisonError::into_inner).take() else {
            tracing::warn!("the publisher is already running");
            return;
        };
        let permits = Arc::new(Semaphore::new(GROUPS_AT_ONCE));
        loop {
            let Ok(permit) = permits.clone().acquire_owned().await else { break };
            let first = tokio::select! {
                request = waiting.recv() => request,
                _ = shutdown.wait_for(|stop| *stop) => None,
            };
            let Some(first) = first else { break };
            let group = gather(first, &mut waiting);
            let this = self.clone();
            actix_web::rt::spawn(async move {
                this.commit(group).await;
                drop(permit);
            });
        }
        waiting.close();
        let mut rest = Vec::new();
        while let Ok(request) = waiting.try_recv() {
            rest.push(request);
        }
        if !rest.is_empty() {
            self.commit(rest).await;
        }
        let _ = permits.acquire_many(u32::try_from(GROUPS_AT_ONCE).unwrap_or(u32::MAX)).await;
    }

    /// Writes a group in one transaction and answers each request. If the group fails, each
    /// request is written alone, so one that cannot be stored does not take the others with it.
    async fn commit(&self, group: Vec<Request>) {
        let Some(now) = group.iter().map(|r| r.now).max() else { return };
        let (requests, answers): (Vec<events::Request>, Vec<Answer>) =
            group.into_iter().map(|r| ((r.drafts, r.key), r.answer)).unzip();
        let requests = Arc::new(requests);
        match self.write(requests.clone(), now).await {
            Ok(published) => {
                for (answer, one) in answers.into_iter().zip(published) {
                    let _ = answer.send(Ok(one));
                }
            }
            Err(e) if answers.len() == 1 => {
                let _ = answers.into_iter().next().map(|a| a.send(Err(e)));
            }
            Err(e) => {
                tracing::debug!(error = %e, requests = answers.len(), "a publish group failed; writing each alone");
                let alone = answers.into_iter().enumerate().map(|(i, answer)| {
                    let one = Arc::new(vec![requests[i].clone()]);
                    async move {
                        let result = self.write(one, now).await.map(|mut published| published.remove(0));
                        let _ = answer.send(result);
                    }
                });
                futures_util::future::join_all(alone).await;
            }
        }
    }

    /// One write for `requests`; per request, what it published. Without keys it is one
    /// statement on PostgreSQL; keys need a transaction, which reads and writes them.
    async fn write(
        &self,
        requests: Arc<Vec<events::Request>>,
        now: NaiveDateTime,
    ) -> Result<Vec<Published>, StoreError> {
        let subscribers = self.subscribers.clone();
        let written = requests.clone();
        let (published, leased, room) = if requests.iter().any(|(_, key)| key.is_some()) {
            self.write_offered(now, Writing::Transaction, move |c, offer| {
                events::publish_group(c, &requests, now, offer, &subscribers)
            })
            .await?
        } else {
            let (lists, leased, room) = self
                .write_offered(now, Writing::Atomic, move |c, offer| {
                    let drafts: Vec<&[Draft]> =
                        requests.iter().map(|(drafts, _)| drafts.as_slice()).collect();
                    events::publish_together(c, &drafts, now, offer, &subscribers)
                })
                .await?;
            (lists.into_iter().map(Published::Created).collect(), leased, room)
        };
        self.hand_off(room, leased);
        for ((drafts, _), one) in written.iter().zip(&published) {
            if matches!(one, Published::Created(_)) {
                for draft in drafts {
                    self.metrics.published(draft.trigger_id.as_str(), 1);
                }
            }
        }
        Ok(published)
    }

    /// Runs `publish` as a write, offering it room from the intake; returns what it returned,
    /// with the reservation taken for what it created in flight.
    async fn write_offered<T, F>(
        &self,
        now: NaiveDateTime,
        writing: Writing,
        publish: F,
    ) -> Result<(T, Vec<Claimed>, Option<Reservation>), StoreError>
    where
        F: FnOnce(&mut AnyConnection, &mut Offer<'_>) -> Result<(T, Vec<Claimed>), StoreError>
            + Send
            + 'static,
        T: Send + 'static,
    {
        let intake = self.intake.clone();
        let write = move |c: &mut AnyConnection| {
            let mut room = None;
            let mut offer = |count| {
                let (reservation, lease) = intake.reserve(count, now)?;
                room = Some(reservation);
                Some(lease)
            };
            let (out, leased) = publish(c, &mut offer)?;
            Ok((out, leased, room))
        };
        match writing {
            Writing::Transaction => self.store.write(write).await,
            Writing::Atomic => self.store.write_atomic(write).await,
        }
    }

    fn hand_off(&self, room: Option<Reservation>, leased: Vec<Claimed>) {
        match room {
            Some(room) if !leased.is_empty() => self.intake.hand_off(room, leased),
            _ => self.intake.wake(),
        }
    }
}

/// How a publish is written.
enum Writing {
    /// Its statements need a transaction (keyed publishes read and write their keys).
    Transaction,
    /// It is atomic by itself ([`events::publish_together`]).
    Atomic,
}

/// `first` and what queued behind it, up to a group's limits.
fn gather(first: Request, waiting: &mut mpsc::UnboundedReceiver<Request>) -> Vec<Request> {
    let mut events = first.drafts.len();
    let mut group = vec![first];
    while group.len() < MAX_REQUESTS && events < MAX_EVENTS {
        let Ok(next) = waiting.try_recv() else { break };
        events += next.drafts.len();
        group.push(next);
    }
    group
}
