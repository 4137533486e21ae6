//! Polls and monitors: every instance runs the same pass each second. A due source is taken by
//! moving its next fetch time forward (one instance wins), fetched through the same SSRF guard
//! as deliveries, and what it found is fired exactly once (`store::polls`). A failed fetch is
//! shown in the source's `status.lastError` and tried again at the next interval.

use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDateTime, TimeDelta};
use serde_json::{Map, Value};

use super::Tally;
use crate::clock::SharedClock;
use crate::config::Settings;
use crate::delivery::{Intake, Outbound, Shutdown};
use crate::domain::schema::Schemas;
use crate::domain::source::poll::Fetch;
use crate::domain::source::{RejectReason, Rejection, Source, SourceType, schema_rejection};
use crate::domain::trigger::Trigger;
use crate::store::polls::{self, Found};
use crate::store::{Store, StoreError, triggers};

/// How often the running loop looks for due sources.
const PASS_INTERVAL: Duration = Duration::from_secs(1);

pub struct Poller {
    store: Store,
    clock: SharedClock,
    intake: Intake,
    tally: Arc<Tally>,
    outbound: Outbound,
    client: reqwest::Client,
    schemas: Schemas,
    max_body: usize,
}

impl std::fmt::Debug for Poller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Poller").finish_non_exhaustive()
    }
}

/// Why a fetch gave nothing to fire.
type Failure = String;

impl Poller {
    pub fn new(
        store: Store,
        clock: SharedClock,
        intake: Intake,
        tally: Arc<Tally>,
        settings: &Settings,
    ) -> anyhow::Result<Self> {
        let outbound = Outbound::new(settings)?;
        let client = outbound.client(None)?;
        Ok(Self {
            store,
            clock,
            intake,
            tally,
            outbound,
            client,
            schemas: Schemas::default(),
            max_body: settings.max_body_size,
        })
    }

    /// Fetches every due poll and monitor this instance takes; returns how many events fired.
    pub async fn run_once(&self) -> Result<usize, StoreError> {
        let now = self.clock.now();
        let due = self.store.run(move |c| polls::due(c, now)).await?;
        let mut fired = 0;
        for source in due {
            let Some(fetch) = source.spec.fetch() else { continue };
            let next = now + TimeDelta::from_std(fetch.interval()).unwrap_or(TimeDelta::minutes(1));
            let id = source.id.clone();
            if !self.store.write(move |c| polls::take(c, &id, now, next)).await? {
                continue;
            }
            match self.poll(&source, fetch, now).await {
                Ok(n) => {
                    self.tally.worked(&source.id);
                    fired += n;
                }
                Err(failure) => {
                    tracing::debug!(source = %source.id, error = %failure, "a source's fetch failed; trying again at its next interval");
                    self.tally.failed(&source.id, failure);
                }
            }
        }
        if fired > 0 {
            self.intake.wake();
        }
        Ok(fired)
    }

    /// Runs passes until `shutdown` turns true.
    pub async fn run(self: Arc<Self>, shutdown: Shutdown) {
        crate::delivery::every(PASS_INTERVAL, shutdown, "source poll pass", || self.run_once()).await;
    }

    async fn poll(&self, source: &Source, fetch: &Fetch, now: NaiveDateTime) -> Result<usize, Failure> {
        let document = self.fetch(fetch).await?;
        let trigger_id = source.spec.trigger_id.clone();
        let trigger =
            self.store.run(move |c| triggers::get(c, &trigger_id)).await.map_err(|e| e.to_string())?;
        if !trigger.enabled {
            return Err(format!("trigger '{}' is disabled", trigger.id));
        }
        match source.spec.kind {
            SourceType::Monitor => self.monitor(source, &trigger, &document, now).await,
            _ => self.new_items(source, &trigger, &document, now).await,
        }
    }

    /// GETs the URL: a JSON document, or why not.
    async fn fetch(&self, fetch: &Fetch) -> Result<Value, Failure> {
        if let Some(refused) = self.outbound.refuses(&fetch.url).await {
            return Err(refused);
        }
        let mut request = self.client.get(&fetch.url);
        for (name, value) in fetch.headers.iter().flatten() {
            request = request.header(name, value);
        }
        let mut response = request.send().await.map_err(|e| format!("fetching {}: {e}", fetch.url))?;
        if !response.status().is_success() {
            return Err(format!("fetching {}: answered {}", fetch.url, response.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| format!("reading {}: {e}", fetch.url))? {
            if body.len() + chunk.len() > self.max_body {
                return Err(format!("{} answered more than {} bytes", fetch.url, self.max_body));
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|e| format!("{} did not answer JSON: {e}", fetch.url))
    }

    /// The event input an item or reading makes, checked against the trigger's schema.
    fn checked(
        &self,
        source: &Source,
        trigger: &Trigger,
        input: Map<String, Value>,
        raw: &Value,
        now: NaiveDateTime,
    ) -> Option<Map<String, Value>> {
        let value = Value::Object(input);
        match schema_rejection(&self.schemas, trigger, &value) {
            Ok(None) => {}
            Ok(Some(rejection)) => {
                self.tally.rejected(&source.id, now, &rejection, raw.to_string().as_bytes());
                return None;
            }
            Err(e) => {
                self.tally.failed(&source.id, e);
                return None;
            }
        }
        let Value::Object(input) = value else { unreachable!("made from an object") };
        Some(input)
    }

    async fn new_items(
        &self,
        source: &Source,
        trigger: &Trigger,
        document: &Value,
        now: NaiveDateTime,
    ) -> Result<usize, Failure> {
        let poll = source.spec.poll.as_ref().ok_or("an HTTP_POLL source without its settings")?;
        let mut refused = Vec::new();
        let mut found = Vec::new();
        for (item_id, item) in poll.items(document) {
            let Some(item_id) = item_id else {
                refused.push((
                    Rejection::new(RejectReason::NotAnObject, "idPath selects no id in this item"),
                    item,
                ));
                continue;
            };
            let input = match source.spec.event_of(item, |_| None) {
                Ok((_, input)) => self.checked(source, trigger, input, item, now),
                Err(r) => {
                    refused.push((r, item));
                    None
                }
            };
            found.push(Found { id: item_id, input });
        }
        for (rejection, item) in &refused {
            self.tally.rejected(&source.id, now, rejection, item.to_string().as_bytes());
        }
        let with_event: Vec<String> =
            found.iter().filter(|f| f.input.is_some()).map(|f| f.id.clone()).collect();
        let (id, owned) = (source.id.clone(), trigger.clone());
        let new = self
            .store
            .write(move |c| polls::fire_new(c, &id, &owned, &found, now))
            .await
            .map_err(|e| e.to_string())?;
        let fired = new.iter().filter(|id| with_event.contains(id)).count();
        for _ in &new {
            self.tally.received(&source.id);
        }
        for _ in 0..fired {
            self.tally.fired(&source.id, now);
        }
        Ok(fired)
    }

    async fn monitor(
        &self,
        source: &Source,
        trigger: &Trigger,
        document: &Value,
        now: NaiveDateTime,
    ) -> Result<usize, Failure> {
        let monitor = source.spec.monitor.as_ref().ok_or("a MONITOR source without its settings")?;
        let value = monitor
            .value_of(document)
            .ok_or_else(|| format!("valuePath {} selects no number", monitor.value_path))?;
        let id = source.id.clone();
        let was = self.store.run(move |c| polls::reading(c, &id)).await.map_err(|e| e.to_string())?;
        let (reading, input) = monitor.read(was.as_ref().map(|(_, r)| *r), value, source.id.as_str());
        self.tally.received(&source.id);
        let input = input.and_then(|input| self.checked(source, trigger, input, document, now));
        let fires = input.is_some();
        let (id, owned) = (source.id.clone(), trigger.clone());
        let was_text = was.map(|(text, _)| text);
        let moved = self
            .store
            .write(move |c| {
                let event = input.as_ref().map(|i| (&owned, i));
                polls::record_reading(c, &id, was_text.as_deref(), &reading, event, now)
            })
            .await
            .map_err(|e| e.to_string())?;
        if moved && fires {
            self.tally.fired(&source.id, now);
            return Ok(1);
        }
        Ok(0)
    }
}
