//! Work in memory, one lane per subscription: lanes take turns, each with a cap on requests
//! under way, and a slow lane keeps only what it can start soon.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::store::queue::Claimed;

/// A subscription whose requests take longer than this is slow: it may hold no more work in
/// memory than it can send within its lease.
const SLOW: Duration = Duration::from_secs(1);

/// Per-subscription queues of work in memory, taking turns.
#[derive(Default)]
pub struct Lanes {
    lanes: HashMap<String, Lane>,
    /// Subscriptions with queued work, in turn order.
    turn: VecDeque<String>,
}

struct Lane {
    queue: VecDeque<Claimed>,
    in_flight: usize,
    /// A moving average of how long its requests take.
    latency: Duration,
    /// When a request of it last finished, or its first one started.
    progress: Instant,
}

impl Lane {
    fn slow(&self) -> bool {
        self.latency > SLOW || (self.in_flight > 0 && self.progress.elapsed() > SLOW)
    }
}

impl Lanes {
    pub fn push(&mut self, claimed: Claimed) {
        let sub = claimed.invocation.subscription_id.to_string();
        let lane = self.lanes.entry(sub.clone()).or_insert_with(|| Lane {
            queue: VecDeque::new(),
            in_flight: 0,
            latency: Duration::ZERO,
            progress: Instant::now(),
        });
        if lane.queue.is_empty() {
            self.turn.push_back(sub);
        }
        lane.queue.push_back(claimed);
    }

    /// The next invocation to send: from the first subscription in turn with room that `admit`
    /// lets start one more (given how many of it are under way).
    pub fn next(
        &mut self,
        per_subscription: usize,
        mut admit: impl FnMut(&str, usize) -> bool,
    ) -> Option<Claimed> {
        for _ in 0..self.turn.len() {
            let sub = self.turn.pop_front()?;
            let Some(lane) = self.lanes.get_mut(&sub) else { continue };
            if lane.in_flight >= per_subscription || !admit(&sub, lane.in_flight) {
                self.turn.push_back(sub);
                continue;
            }
            let claimed = lane.queue.pop_front()?;
            if lane.in_flight == 0 {
                lane.progress = Instant::now();
            }
            lane.in_flight += 1;
            if !lane.queue.is_empty() {
                self.turn.push_back(sub);
            }
            return Some(claimed);
        }
        None
    }

    pub fn finished(&mut self, sub: &str, took: Duration) {
        let Some(lane) = self.lanes.get_mut(sub) else { return };
        lane.in_flight = lane.in_flight.saturating_sub(1);
        lane.latency = if lane.latency.is_zero() { took } else { (lane.latency * 4 + took) / 5 };
        lane.progress = Instant::now();
        if lane.in_flight == 0 && lane.queue.is_empty() && !lane.slow() {
            self.lanes.remove(sub);
        }
    }

    /// What a subscription has waiting and under way.
    pub fn demand(&self, sub: &str) -> (usize, usize) {
        self.lanes.get(sub).map_or((0, 0), |l| (l.queue.len(), l.in_flight))
    }

    /// About how many requests a second a subscription is being sent (those under way over how
    /// long each takes), told as one of them that took `took` has just finished.
    pub fn observed_rate(&self, sub: &str, took: Duration) -> f64 {
        let (in_flight, latency) = self
            .lanes
            .get(sub)
            .map_or((1, took), |l| (l.in_flight.max(1), if l.latency.is_zero() { took } else { l.latency }));
        let latency = latency.max(Duration::from_millis(1)).as_secs_f64();
        f64::from(u32::try_from(in_flight).unwrap_or(u32::MAX)) / latency
    }

    /// Takes out what subscriptions could not start soon, each with how long it should wait
    /// (about when its turn would have come): it goes back to the database rather than let its
    /// lease run out in memory. A slow subscription keeps what it can start at once; one held
    /// back by its flow limits (`pace`: the gap they leave between starts, and how many may be
    /// under way) keeps what it can start within half a lease.
    pub fn trim(
        &mut self,
        per_subscription: usize,
        lease: Duration,
        pace: impl Fn(&str) -> Option<(Option<Duration>, Option<usize>)>,
    ) -> Vec<(Claimed, Duration)> {
        let mut out = Vec::new();
        for (sub, lane) in &mut self.lanes {
            let paced = pace(sub);
            if paced.is_none() && !lane.slow() {
                continue;
            }
            let (gap, concurrency) = paced.unwrap_or((None, None));
            let concurrency = concurrency.unwrap_or(per_subscription).clamp(1, per_subscription.max(1));
            let took = lane.latency.max(lane.progress.elapsed());
            let per_start =
                (took / u32::try_from(concurrency).unwrap_or(u32::MAX)).max(gap.unwrap_or_default());
            let cap = if paced.is_none() {
                concurrency
            } else {
                let within = (lease / 2).as_nanos() / per_start.as_nanos().max(1_000_000);
                usize::try_from(within).unwrap_or(usize::MAX).max(concurrency)
            };
            while lane.queue.len() > cap {
                let position = u32::try_from(lane.queue.len() - 1).unwrap_or(u32::MAX);
                if let Some(claimed) = lane.queue.pop_back() {
                    out.push((claimed, (per_start.max(SLOW / 4) * position).clamp(SLOW, lease)));
                }
            }
        }
        out
    }
}
