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
use crate::domain::invocation::Invocation;
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

type Answer = oneshot::Sender<Result<Vec<Vec<Invocation>>, StoreError>>;

struct Request {
    drafts: Vec<Draft>,
    now: NaiveDateTime,
    answer: Answer,
}

pub struct Publisher {
    store: Store,
    intake: Intake,
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
    pub fn new(store: Store, intake: Intake) -> Self {
        let (queue, waiting) = mpsc::unbounded_channel();
        Self { store, intake, queue, waiting: Mutex::new(Some(waiting)), subscribers: Arc::default() }
    }

    /// Stores `drafts` and their invocations, and hands those created in flight to the
    /// dispatcher. A keyed request is written on its own (its key is checked in the same
    /// transaction); the others join the next group. Without a running loop ([`Publisher::run`])
    /// each request is its own group.
    pub async fn publish(
        &self,
        drafts: Vec<Draft>,
        key: Option<IdempotencyKey>,
        now: NaiveDateTime,
    ) -> Result<Published, StoreError> {
        if let Some(key) = key {
            return self.publish_keyed(drafts, key, now).await;
        }
        let (answer, answered) = oneshot::channel();
        if let Err(mpsc::error::SendError(request)) = self.queue.send(Request { drafts, now, answer }) {
            self.commit(vec![request]).await;
        }
        let lists = answered.await.map_err(|_| StoreError::WriterGone)??;
        Ok(Published::Created(lists))
    }

    async fn publish_keyed(
        &self,
        drafts: Vec<Draft>,
        key: IdempotencyKey,
        now: NaiveDateTime,
    ) -> Result<Published, StoreError> {
        let subscribers = self.subscribers.clone();
        let (published, leased, room) = self
            .write_offered(now, Writing::Transaction, move |c, offer| {
                events::publish_keyed(c, &drafts, &key, now, offer, &subscribers)
            })
            .await?;
        if matches!(published, Published::Created(_)) {
            self.hand_off(room, leased);
        }
        Ok(published)
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
        let (drafts, answers): (Vec<Vec<Draft>>, Vec<Answer>) =
            group.into_iter().map(|r| (r.drafts, r.answer)).unzip();
        let drafts = Arc::new(drafts);
        match self.write(drafts.clone(), now).await {
            Ok(lists) => {
                for (answer, list) in answers.into_iter().zip(lists) {
                    let _ = answer.send(Ok(list));
                }
            }
            Err(e) if answers.len() == 1 => {
                let _ = answers.into_iter().next().map(|a| a.send(Err(e)));
            }
            Err(e) => {
                tracing::debug!(error = %e, requests = answers.len(), "a publish group failed; writing each alone");
                let alone = answers.into_iter().enumerate().map(|(i, answer)| {
                    let one = Arc::new(vec![drafts[i].clone()]);
                    async move {
                        let result = self.write(one, now).await.map(|mut lists| lists.remove(0));
                        let _ = answer.send(result);
                    }
                });
                futures_util::future::join_all(alone).await;
            }
        }
    }

    /// One write for `requests`; per request, per event, the invocations it created.
    async fn write(
        &self,
        requests: Arc<Vec<Vec<Draft>>>,
        now: NaiveDateTime,
    ) -> Result<Vec<Vec<Vec<Invocation>>>, StoreError> {
        let subscribers = self.subscribers.clone();
        let (lists, leased, room) = self
            .write_offered(now, Writing::Atomic, move |c, offer| {
                events::publish_together(c, &requests, now, offer, &subscribers)
            })
            .await?;
        self.hand_off(room, leased);
        Ok(lists)
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
    /// Its statements need a transaction (a keyed publish reads and writes its key).
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
