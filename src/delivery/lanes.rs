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

    /// The next invocation to send: from the first subscription in turn with room.
    pub fn next(&mut self, per_subscription: usize) -> Option<Claimed> {
        for _ in 0..self.turn.len() {
            let sub = self.turn.pop_front()?;
            let Some(lane) = self.lanes.get_mut(&sub) else { continue };
            if lane.in_flight >= per_subscription {
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

    /// Takes out what slow subscriptions could not start soon, each with how long it should wait
    /// (about when its turn would have come): it goes back to the database rather than let its
    /// lease run out in memory.
    pub fn trim_slow(&mut self, per_subscription: usize, lease: Duration) -> Vec<(Claimed, Duration)> {
        let mut out = Vec::new();
        let cap = per_subscription.max(1);
        for lane in self.lanes.values_mut().filter(|l| l.slow() && l.queue.len() > cap) {
            let per_request = lane.latency.max(lane.progress.elapsed()).max(SLOW);
            while lane.queue.len() > cap {
                let position = lane.queue.len() - 1;
                let rounds = u32::try_from(position / cap).unwrap_or(u32::MAX);
                if let Some(claimed) = lane.queue.pop_back() {
                    out.push((claimed, (per_request * rounds).clamp(SLOW, lease)));
                }
            }
        }
        out
    }
}
