//! Flow control in the dispatcher: a gate per subscription that has limits or a brake, which
//! lets a request start only on a start slot reserved in the database (its rate, shared by
//! every instance) and within the permits this instance holds (its `maxInFlight`, shared the
//! same way). Reservations and brakes are written by tasks of their own, so the pump never
//! waits on the database; their answers come back through [`Flow::answer`].

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::lanes::Lanes;
use super::sender::{Pushback, Target};
use crate::clock::SharedClock;
use crate::domain::flow::{self, Brake, Limits};
use crate::store::flow::{Ask, Grant};
use crate::store::{Store, StoreError};

/// How far ahead start slots are reserved at once.
const RESERVE_AHEAD: f64 = 0.5;

/// The most start slots reserved at once.
const MOST_SLOTS: u32 = 1000;

/// Slots this far in the past when their turn comes are dropped but one: they would make a burst.
const STALE_SLOT: Duration = Duration::from_millis(100);

/// Permits beyond what is needed are given back after this long.
const GIVE_BACK_AFTER: Duration = Duration::from_millis(500);

/// After a failed reservation, the next waits this long.
const QUIET_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// How many start slots to reserve at once at `rate`: about half a second's worth.
#[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "clamped to 1..=MOST_SLOTS")]
fn slots_ahead(rate: f64) -> u32 {
    (rate * RESERVE_AHEAD).ceil().clamp(1.0, f64::from(MOST_SLOTS)) as u32
}

#[derive(Default)]
struct Gate {
    limits: Limits,
    brake: Option<Brake>,
    /// Reserved starts not used yet.
    slots: VecDeque<Instant>,
    /// Requests this instance may have under way (with a `maxInFlight`).
    permits: u32,
    asking: bool,
    braking: bool,
    /// Since when it has held more permits than it needs.
    surplus_since: Option<Instant>,
    quiet_until: Option<Instant>,
}

impl Gate {
    fn rate(&self, clock: &SharedClock) -> Option<f64> {
        flow::current_rate(self.limits, self.brake, clock.now())
    }

    /// Whether it still holds anything back.
    fn needed(&self, clock: &SharedClock) -> bool {
        let now = clock.now();
        !self.limits.is_unlimited()
            || self.brake.is_some_and(|b| b.at > now || b.rate_at(now, None).is_some())
    }
}

enum Answer {
    Granted(String, Option<Grant>),
    Braked(String, Option<Brake>),
    Failed(String, StoreError),
}

pub struct Flow {
    store: Store,
    clock: SharedClock,
    owner: String,
    gates: HashMap<String, Gate>,
    send: mpsc::UnboundedSender<Answer>,
    answers: mpsc::UnboundedReceiver<Answer>,
}

impl Flow {
    pub fn new(store: Store, clock: SharedClock, owner: String) -> Self {
        let (send, answers) = mpsc::unbounded_channel();
        Self { store, clock, owner, gates: HashMap::new(), send, answers }
    }

    /// Notes a subscription's limits and brake as just read: a gate opens for it if they hold it
    /// back, and closes once nothing does.
    pub fn watch(&mut self, sub: &str, target: Option<&Target>) {
        let Some(target) = target else {
            self.gates.remove(sub);
            return;
        };
        let subscription = &target.subscription;
        let Some(gate) = self.gates.get_mut(sub) else {
            let fresh =
                Gate { limits: subscription.spec.limits, brake: subscription.brake, ..Gate::default() };
            if fresh.needed(&self.clock) {
                self.gates.insert(sub.to_owned(), fresh);
            }
            return;
        };
        gate.limits = subscription.spec.limits;
        if let Some(read) = subscription.brake
            && gate.brake.is_none_or(|known| read.at >= known.at)
        {
            gate.brake = Some(read);
        }
        if !gate.needed(&self.clock) && gate.permits == 0 && !gate.asking && !gate.braking {
            self.gates.remove(sub);
        }
    }

    /// Whether one more request of `sub` may start now, with `in_flight` under way; takes its
    /// start slot if so.
    pub fn admit(&mut self, sub: &str, in_flight: usize) -> bool {
        let Some(gate) = self.gates.get_mut(sub) else { return true };
        if gate.limits.max_in_flight.is_some() && in_flight >= gate.permits as usize {
            return false;
        }
        if gate.rate(&self.clock).is_none() {
            return true;
        }
        let now = Instant::now();
        // Slots missed while the pump was busy are dropped, all but the last: it starts now.
        while gate.slots.len() > 1 && gate.slots.get(1).is_some_and(|at| *at + STALE_SLOT < now) {
            gate.slots.pop_front();
        }
        if gate.slots.front().is_some_and(|at| *at <= now) {
            gate.slots.pop_front();
            return true;
        }
        false
    }

    /// The gap between starts and the requests that may be under way, for a gated subscription.
    pub fn pace(&self, sub: &str) -> Option<(Option<Duration>, Option<usize>)> {
        let gate = self.gates.get(sub)?;
        let gap = gate.rate(&self.clock).map(flow::spacing);
        let concurrency = gate.limits.max_in_flight.map(|m| m as usize);
        (gap.is_some() || concurrency.is_some()).then_some((gap, concurrency))
    }

    /// When the next reserved start comes, if one is still ahead.
    pub fn next_start(&self) -> Option<Instant> {
        let now = Instant::now();
        self.gates.values().filter_map(|g| g.slots.front().copied()).filter(|at| *at > now).min()
    }

    /// Asks the database for the start slots and permits that work waiting in `lanes` needs,
    /// and gives back permits no longer needed.
    pub fn ask(&mut self, lanes: &Lanes) {
        let now = Instant::now();
        for (sub, gate) in &mut self.gates {
            if gate.asking || gate.quiet_until.is_some_and(|until| now < until) {
                continue;
            }
            let (queued, in_flight) = lanes.demand(sub);
            let slots = match gate.rate(&self.clock) {
                Some(rate) if queued > 0 && gate.slots.is_empty() => {
                    u32::try_from(queued).unwrap_or(u32::MAX).min(slots_ahead(rate))
                }
                _ => 0,
            };
            let needs = u32::try_from(queued + in_flight).unwrap_or(u32::MAX);
            let permits = match gate.limits.max_in_flight {
                None => gate.permits,
                Some(max) if gate.permits < needs.min(max) => needs.min(max),
                Some(_) if gate.permits > needs => {
                    let since = *gate.surplus_since.get_or_insert(now);
                    if since.elapsed() < GIVE_BACK_AFTER { gate.permits } else { needs }
                }
                Some(_) => {
                    gate.surplus_since = None;
                    gate.permits
                }
            };
            let stale_permits = gate.limits.max_in_flight.is_none() && gate.permits > 0;
            if slots == 0 && permits == gate.permits && !stale_permits {
                continue;
            }
            gate.asking = true;
            gate.surplus_since = None;
            let (store, clock, owner, send) =
                (self.store.clone(), self.clock.clone(), self.owner.clone(), self.send.clone());
            let sub = sub.clone();
            actix_web::rt::spawn(async move {
                let ask = Ask { slots, permits };
                let key = sub.clone();
                let got = store
                    .write(move |c| crate::store::flow::acquire(c, &key, &owner, clock.now(), ask))
                    .await;
                let _ = send.send(match got {
                    Ok(grant) => Answer::Granted(sub, grant),
                    Err(e) => Answer::Failed(sub, e),
                });
            });
        }
    }

    /// A subscriber pushed back: puts the brake on its subscription for every instance.
    pub fn push_back(&mut self, sub: &str, target: Option<&Target>, pushback: Pushback, observed: f64) {
        let gate = self.gates.entry(sub.to_owned()).or_default();
        if let Some(target) = target {
            gate.limits = target.subscription.spec.limits;
        }
        if gate.braking {
            return;
        }
        gate.braking = true;
        let (store, now, send, key) =
            (self.store.clone(), self.clock.now(), self.send.clone(), sub.to_owned());
        actix_web::rt::spawn(async move {
            let sub = key.clone();
            let got = store
                .write(move |c| crate::store::flow::push_back(c, &key, now, observed, pushback.retry_after))
                .await;
            let _ = send.send(match got {
                Ok(brake) => Answer::Braked(sub, brake),
                Err(e) => Answer::Failed(sub, e),
            });
        });
    }

    /// Waits for the next answer from the database.
    pub async fn answer(&mut self) {
        let Some(answer) = self.answers.recv().await else { return std::future::pending().await };
        self.apply(answer);
    }

    fn apply(&mut self, answer: Answer) {
        match answer {
            Answer::Granted(sub, None) | Answer::Braked(sub, None) => {
                self.gates.remove(&sub);
            }
            Answer::Granted(sub, Some(grant)) => {
                let Some(gate) = self.gates.get_mut(&sub) else { return };
                gate.asking = false;
                gate.limits = grant.limits;
                gate.brake = grant.brake;
                gate.permits = grant.permits.unwrap_or(0);
                if grant.rate.is_some() && grant.slots > 0 {
                    let ahead = (grant.start - self.clock.now()).to_std().unwrap_or_default();
                    let first = Instant::now() + ahead;
                    let gap = (grant.end - grant.start).to_std().unwrap_or_default() / grant.slots;
                    gate.slots.extend((0..grant.slots).map(|i| first + gap * i));
                }
            }
            Answer::Braked(sub, Some(brake)) => {
                let Some(gate) = self.gates.get_mut(&sub) else { return };
                gate.braking = false;
                if gate.brake != Some(brake) {
                    tracing::info!(subscription.id = %sub, rate = brake.rate, "the subscriber pushed back; slowed down");
                    gate.slots.clear();
                }
                gate.brake = Some(brake);
            }
            Answer::Failed(sub, e) => {
                tracing::warn!(subscription.id = %sub, error = %e, "flow control could not reach the database; retrying");
                let Some(gate) = self.gates.get_mut(&sub) else { return };
                (gate.asking, gate.braking) = (false, false);
                gate.quiet_until = Some(Instant::now() + QUIET_AFTER_FAILURE);
            }
        }
    }
}
