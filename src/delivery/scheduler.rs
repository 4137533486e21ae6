//! Fires scheduled triggers. Every instance runs the same pass; a tick's row in
//! `schedule_ticks` decides which one fires it, so each tick yields exactly one event.
//!
//! The rule for missed ticks: a pass fires only a trigger's latest tick, and only while it is at
//! most [`GRACE`] old. Ticks that passed while no instance was running are skipped, never
//! replayed in a burst; the schedule resumes with its next tick.

use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDateTime, TimeDelta};
use serde_json::Value;

use super::{Intake, Shutdown};
use crate::clock::SharedClock;
use crate::domain::event::NewEvent;
use crate::domain::invocation::{InvocationKind, merge_params};
use crate::domain::trigger::{Trigger, scheduled_input};
use crate::metrics::Metrics;
use crate::store::{Store, StoreError, schedules, subscriptions, triggers};

/// How late a tick may still fire.
pub const GRACE: TimeDelta = TimeDelta::seconds(60);

/// How often the running loop looks for due ticks.
const PASS_INTERVAL: Duration = Duration::from_secs(1);

pub struct Scheduler {
    store: Store,
    clock: SharedClock,
    intake: Intake,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler").finish_non_exhaustive()
    }
}

impl Scheduler {
    pub fn new(store: Store, clock: SharedClock, intake: Intake, metrics: Arc<Metrics>) -> Self {
        Self { store, clock, intake, metrics }
    }

    /// Fires every scheduled trigger whose latest tick is due and not yet fired; returns how many
    /// ticks this pass fired.
    pub async fn run_once(&self) -> Result<usize, StoreError> {
        let now = self.clock.now();
        let due: Vec<(Trigger, NaiveDateTime)> = self
            .store
            .run(triggers::scheduled)
            .await?
            .into_iter()
            .filter_map(|t| {
                let tick = t.schedule.as_ref()?.latest_tick(now)?;
                (now - tick <= GRACE).then_some((t, tick))
            })
            .collect();
        let mut fired = 0;
        for (trigger, tick) in due {
            let id = trigger.id.clone();
            let created = self.store.run(move |c| fire(c, &trigger, tick, now)).await?;
            if let Some(invocations) = created {
                fired += 1;
                self.metrics.published(id.as_str(), 1);
                tracing::info!(tick = %crate::domain::time::iso(tick), invocations, "scheduled trigger fired");
            }
        }
        if fired > 0 {
            self.intake.wake();
        }
        Ok(fired)
    }

    /// Runs passes until `shutdown` turns true.
    pub async fn run(self: Arc<Self>, shutdown: Shutdown) {
        super::every(PASS_INTERVAL, shutdown, "scheduler pass", || self.run_once()).await;
    }
}

fn fire(
    conn: &mut crate::store::AnyConnection,
    trigger: &Trigger,
    tick: NaiveDateTime,
    now: NaiveDateTime,
) -> Result<Option<usize>, StoreError> {
    schedules::fire(conn, &trigger.id, tick, now, |conn| {
        let input = scheduled_input(tick);
        let payload = Value::Object(merge_params(&trigger.params, &input));
        let subscribers = subscriptions::all_for_trigger(conn, &trigger.id)?;
        Ok(NewEvent::new(
            InvocationKind::RealTime,
            &trigger.id,
            Value::Object(input).to_string(),
            "{}".into(),
            &payload,
            &subscribers,
        ))
    })
}
