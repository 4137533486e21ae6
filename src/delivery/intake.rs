//! The hand-off from publishing to this instance's dispatcher: invocations a publish created
//! already leased to this instance go straight into memory, with no claim query and no re-read.
//! Room in memory is counted, so a burst beyond it stays pending in the database instead.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{NaiveDateTime, TimeDelta};
use tokio::sync::{Notify, mpsc};

use crate::store::invocations::Lease;
use crate::store::queue::Claimed;

/// The dispatcher's door: cheap to clone, shared with the API.
#[derive(Clone)]
pub struct Intake(Arc<Shared>);

struct Shared {
    owner: String,
    lease: Duration,
    /// How many invocations may be in memory at once (0: this instance delivers nothing).
    capacity: usize,
    /// How many are: reserved, queued, being sent, or waiting to be recorded.
    held: AtomicUsize,
    queue: mpsc::UnboundedSender<Claimed>,
    /// Wakes the claim loop: work was published that it should look for.
    wake: Notify,
}

impl std::fmt::Debug for Intake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Intake").field("capacity", &self.0.capacity).finish_non_exhaustive()
    }
}

/// Room for `count` invocations; given back when dropped unless they were handed over.
pub struct Reservation {
    intake: Intake,
    count: usize,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.intake.release(self.count);
    }
}

impl Intake {
    pub(super) fn new(
        owner: String,
        lease: Duration,
        capacity: usize,
    ) -> (Self, mpsc::UnboundedReceiver<Claimed>) {
        let (queue, receiver) = mpsc::unbounded_channel();
        let shared = Shared { owner, lease, capacity, held: AtomicUsize::new(0), queue, wake: Notify::new() };
        (Self(Arc::new(shared)), receiver)
    }

    pub fn owner(&self) -> &str {
        &self.0.owner
    }

    /// Room for `count` invocations and the lease to create them under, if there is room.
    pub fn reserve(&self, count: usize, now: NaiveDateTime) -> Option<(Reservation, Lease)> {
        self.take(count)?;
        let until = now + TimeDelta::from_std(self.0.lease).unwrap_or(TimeDelta::minutes(1));
        let reservation = Reservation { intake: self.clone(), count };
        Some((reservation, Lease { owner: self.0.owner.clone(), until }))
    }

    /// Hands over the invocations created under a reservation's lease (after their commit).
    pub fn hand_off(&self, mut reservation: Reservation, claimed: Vec<Claimed>) {
        let unused = reservation.count.saturating_sub(claimed.len());
        reservation.count = unused;
        for item in claimed {
            if self.0.queue.send(item).is_err() {
                // The dispatcher stopped: the lease expires and another claim takes it.
                self.release(1);
            }
        }
    }

    /// Queues an invocation the claim loop took (its room already taken).
    pub(super) fn enqueue(&self, item: Claimed) {
        if self.0.queue.send(item).is_err() {
            self.release(1);
        }
    }

    /// Wakes the claim loop (work was published without a lease, or became due).
    pub fn wake(&self) {
        self.0.wake.notify_one();
    }

    pub(super) async fn woken(&self) {
        self.0.wake.notified().await;
    }

    /// Takes room for `count`, all or nothing.
    pub(super) fn take(&self, count: usize) -> Option<()> {
        let held = &self.0.held;
        let mut current = held.load(Ordering::Relaxed);
        loop {
            let next = current.checked_add(count).filter(|n| *n <= self.0.capacity)?;
            match held.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return Some(()),
                Err(seen) => current = seen,
            }
        }
    }

    /// Room not yet taken.
    pub(super) fn room(&self) -> usize {
        self.0.capacity.saturating_sub(self.0.held.load(Ordering::Relaxed))
    }

    /// Gives back room for `count` invocations that left memory.
    pub(super) fn release(&self, count: usize) {
        if count > 0 {
            self.0.held.fetch_sub(count, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_is_taken_all_or_nothing_and_comes_back_when_a_reservation_drops() {
        let (intake, _rx) = Intake::new("me".into(), Duration::from_secs(30), 10);
        let now = chrono::Utc::now().naive_utc();
        let (first, lease) = intake.reserve(6, now).unwrap();
        assert_eq!(lease.owner, "me");
        assert!(lease.until > now);
        assert!(intake.reserve(5, now).is_none(), "only 4 left");
        assert_eq!(intake.room(), 4);
        drop(first);
        assert_eq!(intake.room(), 10);
    }

    #[test]
    fn handed_off_invocations_hold_their_room_until_released() {
        let (intake, _rx) = Intake::new("me".into(), Duration::from_secs(30), 4);
        let (reservation, _) = intake.reserve(4, chrono::Utc::now().naive_utc()).unwrap();
        intake.hand_off(reservation, Vec::new());
        assert_eq!(intake.room(), 4, "nothing was handed over, so nothing is held");
        let (reservation, _) = intake.reserve(3, chrono::Utc::now().naive_utc()).unwrap();
        std::mem::forget(reservation);
        assert_eq!(intake.room(), 1);
        intake.release(3);
        assert_eq!(intake.room(), 4);
    }

    #[test]
    fn an_instance_that_delivers_nothing_has_no_room() {
        let (intake, _rx) = Intake::new("me".into(), Duration::from_secs(30), 0);
        assert!(intake.reserve(1, chrono::Utc::now().naive_utc()).is_none());
    }
}
