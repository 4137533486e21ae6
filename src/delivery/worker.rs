//! The dispatcher: claims due invocations in batches, delivers them concurrently, records the
//! outcomes in one transaction per batch. No transaction or pooled connection is held across
//! an HTTP request; an invocation whose lease expires (a crashed worker) is claimed again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{NaiveDateTime, TimeDelta};
use reqwest::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use tokio::sync::{Notify, watch};
use tracing::Instrument as _;

use super::guard::{GuardedResolver, TargetGuard};
use super::policy::{AttemptResult, Response, RetryPolicy, Verdict, classify, classify_response};
use super::signer::{SigningKey, signature_header};
use crate::clock::SharedClock;
use crate::config::Settings;
use crate::domain::invocation::{Attempt, InvocationKind};
use crate::domain::schema::{Schemas, Side};
use crate::domain::subscription::{DispatchMode, HttpAuth, Subscription};
use crate::domain::trigger::{Trigger, TriggerType};
use crate::store::invocations::{self, Claimed, Next, Outcome};
use crate::store::{Store, StoreError, subscriptions, triggers};

/// The most of a subscriber's response body that is kept.
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024;

/// The largest `REQUEST_RESPONSE` output read from a subscriber's answer.
pub const MAX_OUTPUT_BYTES: usize = 1024 * 1024;

/// Tells running delivery loops to stop.
pub type Shutdown = watch::Receiver<bool>;

pub struct Dispatcher {
    store: Store,
    clock: SharedClock,
    client: reqwest::Client,
    guard: TargetGuard,
    policy: RetryPolicy,
    owner: String,
    lease: Duration,
    batch_size: u32,
    poll_interval: Duration,
    notify: Arc<Notify>,
    schemas: Schemas,
    /// How long a `REQUEST_RESPONSE` subscriber has to answer.
    response_timeout: Duration,
    /// Where `complete` callbacks go: `{callback_base}/trigger-invocations/v1/{id}/complete`.
    callback_base: String,
    /// When overdue awaiting invocations were last failed.
    last_sweep: Mutex<Option<NaiveDateTime>>,
    /// Fixes retry jitter (tests); `None` draws it at random.
    pub jitter_seed: Option<u64>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher").field("owner", &self.owner).finish_non_exhaustive()
    }
}

impl Dispatcher {
    pub fn new(
        store: Store,
        clock: SharedClock,
        settings: &Settings,
        callback_base: String,
    ) -> anyhow::Result<Self> {
        let guard = TargetGuard::new(settings.allowed_target_networks.clone());
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.delivery_timeout)
            .user_agent(concat!("hookgate/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(GuardedResolver { guard: guard.clone() }))
            .pool_max_idle_per_host(64)
            .build()?;
        Ok(Self {
            store,
            clock,
            client,
            guard,
            policy: RetryPolicy {
                schedule: settings.retry_schedule.clone(),
                retry_after_cap: settings.retry_after_cap,
            },
            owner: format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()),
            // Long enough for an attempt at its full timeout and the batch's recording.
            lease: settings.delivery_timeout * 2 + Duration::from_secs(2),
            batch_size: settings.batch_size,
            poll_interval: settings.poll_interval,
            notify: Arc::new(Notify::new()),
            schemas: Schemas::default(),
            response_timeout: settings.response_timeout,
            callback_base,
            last_sweep: Mutex::new(None),
            jitter_seed: None,
        })
    }

    /// Wakes idle loops (called after a publish commits).
    pub fn notifier(&self) -> Arc<Notify> {
        self.notify.clone()
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
        let expired = self.store.run(move |c| invocations::expire_overdue(c, now)).await?;
        if expired > 0 {
            tracing::info!(expired, "response deadlines passed");
        }
        Ok(())
    }

    /// Claims one batch, delivers it and records the outcomes; returns how many it handled.
    pub async fn run_once(&self) -> Result<usize, StoreError> {
        self.expire_overdue().await?;
        let (owner, now, lease, limit) =
            (self.owner.clone(), self.clock.now(), self.lease, i64::from(self.batch_size));
        let batch = self.store.run(move |c| invocations::claim(c, &owner, now, lease, limit)).await?;
        if batch.is_empty() {
            return Ok(0);
        }
        let context = self.load_context(&batch).await?;
        let deliveries = batch.iter().map(|claimed| self.deliver(claimed, &context));
        let outcomes: Vec<Outcome> = futures_util::future::join_all(deliveries).await;
        let (owner, now, handled) = (self.owner.clone(), self.clock.now(), outcomes.len());
        self.store.run(move |c| invocations::record(c, &owner, &outcomes, now)).await?;
        Ok(handled)
    }

    /// Delivers until nothing is due (tests: time moves only when the clock is advanced).
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

    /// Runs until `shutdown` turns true, then gives back what it still holds.
    pub async fn run(self: Arc<Self>, mut shutdown: Shutdown) {
        while !*shutdown.borrow() {
            match self.run_once().await {
                Ok(n) if n > 0 => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "delivery loop failed; retrying"),
            }
            tokio::select! {
                () = self.notify.notified() => {}
                () = tokio::time::sleep(self.poll_interval) => {}
                _ = shutdown.changed() => {}
            }
        }
        let (owner, now) = (self.owner.clone(), self.clock.now());
        match self.store.run(move |c| invocations::release(c, &owner, now)).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(released = n, "gave back in-flight invocations"),
            Err(e) => {
                tracing::warn!(error = %e, "could not give back in-flight invocations; their leases will expire");
            }
        }
    }

    async fn load_context(&self, batch: &[Claimed]) -> Result<Context, StoreError> {
        let mut ids: Vec<String> = batch.iter().map(|c| c.invocation.subscription_id.to_string()).collect();
        ids.sort();
        ids.dedup();
        let now = self.clock.now();
        self.store
            .run(move |c| {
                let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
                let subs = subscriptions::by_ids(c, &refs)?;
                let secrets = subscriptions::signing_secrets_of(c, &refs, now)?;
                let mut trigger_ids: Vec<_> = subs.iter().map(|s| s.trigger_id.clone()).collect();
                trigger_ids.sort_by(|a, b| a.as_str().cmp(b.as_str()));
                trigger_ids.dedup();
                let mut request_response = HashMap::new();
                for id in trigger_ids {
                    match triggers::get(c, &id) {
                        Ok(t) if t.kind == TriggerType::RequestResponse => {
                            request_response.insert(id.to_string(), t);
                        }
                        Ok(_) | Err(StoreError::NotFound) => {}
                        Err(e) => return Err(e),
                    }
                }
                Ok(Context {
                    request_response,
                    keys: secrets
                        .into_iter()
                        .map(|(id, list)| (id, list.iter().filter_map(SigningKey::from_secret).collect()))
                        .collect(),
                    subscriptions: subs.into_iter().map(|s| (s.id.to_string(), s)).collect(),
                })
            })
            .await
    }

    async fn deliver(&self, claimed: &Claimed, context: &Context) -> Outcome {
        let invocation = &claimed.invocation;
        let span = tracing::debug_span!(
            "delivery",
            invocation.id = %invocation.id,
            subscription.id = %invocation.subscription_id,
            invocation.attempt = invocation.attempts,
        );
        async move {
            let started_at = self.clock.now();
            let started = Instant::now();
            let sub_id = invocation.subscription_id.as_str();
            let attempt = |status: Option<u16>, response: Option<String>, error: Option<String>| Attempt {
                attempt: invocation.attempts,
                started: started_at,
                duration_ms: i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX),
                status: status.map(i32::from),
                response,
                error,
            };
            let Some(subscription) = context.subscriptions.get(sub_id) else {
                let a = attempt(None, None, Some("the subscription was deleted".into()));
                return Outcome {
                    invocation: invocation.id.clone(),
                    attempt: a,
                    next: Next::Dead,
                    disable: None,
                };
            };
            if !subscription.spec.enabled
                && invocation.kind == InvocationKind::RealTime
                && !invocation.deliver_when_disabled
            {
                let reason = subscription
                    .disabled_reason
                    .clone()
                    .unwrap_or_else(|| "the subscription is disabled".into());
                let a = attempt(None, None, Some(reason));
                return Outcome {
                    invocation: invocation.id.clone(),
                    attempt: a,
                    next: Next::Dead,
                    disable: None,
                };
            }
            let keys = context.keys.get(sub_id).map_or(&[][..], Vec::as_slice);
            let trigger = context.request_response.get(subscription.trigger_id.as_str());
            let (result, response, error) = self.send(claimed, subscription, keys, trigger.is_some()).await;
            if let Some(trigger) = trigger
                && let Some((next, failure)) =
                    self.answered(trigger, subscription, &result, response.as_deref())
            {
                let code = match result {
                    AttemptResult::Status { code, .. } => Some(code),
                    AttemptResult::Failed { .. } => None,
                };
                let mut a = attempt(code, response.map(|r| truncate(r, MAX_RESPONSE_BYTES)), error);
                if let Some(reason) = failure {
                    a.error = Some(reason);
                }
                tracing::debug!(status = ?a.status, next = ?next, "request/response attempt finished");
                return Outcome { invocation: invocation.id.clone(), attempt: a, next, disable: None };
            }
            let response = response.map(|r| truncate(r, MAX_RESPONSE_BYTES));
            let a = attempt(
                match result {
                    AttemptResult::Status { code, .. } => Some(code),
                    AttemptResult::Failed { .. } => None,
                },
                response,
                error,
            );
            let (next, disable) = match classify(&result) {
                Verdict::Delivered => (Next::Delivered, None),
                Verdict::Gone => {
                    let reason =
                        format!("the subscriber answered 410 Gone at {}", crate::api::iso(started_at));
                    (Next::Dead, Some((invocation.subscription_id.clone(), reason)))
                }
                Verdict::Retry { retry_after } => {
                    let attempts = usize::try_from(invocation.attempts).unwrap_or(usize::MAX);
                    let seed = self.jitter_seed.map(|s| s ^ u64::from(invocation.attempts.unsigned_abs()));
                    match self.policy.delay(attempts, retry_after, seed) {
                        Some(delay) => {
                            let delay = TimeDelta::from_std(delay).unwrap_or(TimeDelta::hours(1));
                            (Next::RetryAt(self.clock.now() + delay), None)
                        }
                        None => (Next::Dead, None),
                    }
                }
            };
            tracing::debug!(status = ?a.status, next = ?next, "attempt finished");
            Outcome { invocation: invocation.id.clone(), attempt: a, next, disable }
        }
        .instrument(span)
        .await
    }

    /// What a `REQUEST_RESPONSE` subscriber's answer settles: the next state and, for a failure,
    /// its reason. `None` when it was no answer at all (retried like any delivery).
    fn answered(
        &self,
        trigger: &Trigger,
        subscription: &Subscription,
        result: &AttemptResult,
        body: Option<&str>,
    ) -> Option<(Next, Option<String>)> {
        match classify_response(subscription.spec.target.dispatch_mode, result) {
            Response::Acknowledged => {
                let deadline = TimeDelta::from_std(subscription.spec.response_deadline.duration())
                    .unwrap_or(TimeDelta::hours(1));
                Some((Next::Awaiting(self.clock.now() + deadline), None))
            }
            Response::Output => Some(match self.check_output(trigger, body) {
                Ok(output) => (Next::Answered(output), None),
                Err(reason) => (Next::Dead, Some(reason)),
            }),
            Response::Failed(reason) => Some((Next::Dead, Some(reason))),
            Response::Undelivered(_) => None,
        }
    }

    /// Parses and checks a SYNC or DYNAMIC answer against the trigger's output schema; returns
    /// the output as JSON text, or why it is not one.
    fn check_output(&self, trigger: &Trigger, body: Option<&str>) -> Result<String, String> {
        let body = body.map(str::trim).filter(|b| !b.is_empty()).ok_or("answered without an output")?;
        let output: serde_json::Value =
            serde_json::from_str(body).map_err(|e| format!("the answer is not JSON: {e}"))?;
        let problems = self.schemas.problems(trigger, Side::Output, &output)?;
        if let Some(first) = problems.first() {
            return Err(format!("the answer does not match the output schema of '{}': {first}", trigger.id));
        }
        Ok(output.to_string())
    }

    /// The body a subscriber receives: the stored payload, plus SailPoint's `_metadata` for
    /// `REQUEST_RESPONSE` subscriptions that may call back (ASYNC, DYNAMIC).
    fn body_for(&self, claimed: &Claimed, subscription: &Subscription, request_response: bool) -> String {
        let mode = subscription.spec.target.dispatch_mode;
        if !request_response || mode == DispatchMode::Sync {
            return claimed.payload.clone();
        }
        let invocation = &claimed.invocation;
        let metadata = serde_json::json!({
            "callbackURL": format!("{}/trigger-invocations/v1/{}/complete", self.callback_base, invocation.id),
            "responseMode": mode.as_str().to_ascii_lowercase(),
            "secret": invocation.secret,
            "triggerId": invocation.trigger_id.as_str(),
            "triggerType": "requestResponse",
        });
        let payload = claimed.payload.trim_end();
        let Some(open) = payload.strip_suffix('}') else { return claimed.payload.clone() };
        let separator = if open.trim_end().ends_with('{') { "" } else { "," };
        format!("{open}{separator}\"_metadata\":{metadata}}}")
    }

    /// Makes the HTTP request; returns what came back, the body read (up to the body limit for a
    /// `REQUEST_RESPONSE` answer, else the kept size), and an error text.
    async fn send(
        &self,
        claimed: &Claimed,
        subscription: &Subscription,
        keys: &[SigningKey],
        request_response: bool,
    ) -> (AttemptResult, Option<String>, Option<String>) {
        let target = &subscription.spec.target;
        if let Ok(url) = reqwest::Url::parse(&target.url) {
            let literal = url.host_str().and_then(|h| {
                h.trim_start_matches('[').trim_end_matches(']').parse::<std::net::IpAddr>().ok()
            });
            if literal.is_some_and(|ip| !self.guard.permits(ip)) {
                let error = format!(
                    "refused: {} is not a permitted delivery address",
                    url.host_str().unwrap_or_default()
                );
                return (AttemptResult::Failed { timed_out: false }, None, Some(error));
            }
        }
        let invocation = &claimed.invocation;
        let id = invocation.id.as_str();
        let timestamp = self.clock.now().and_utc().timestamp();
        let payload = self.body_for(claimed, subscription, request_response);
        let body = payload.as_bytes();
        let mut request = self
            .client
            .post(&target.url)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature_header(keys, id, timestamp, body))
            .header("hookgate-trigger", invocation.trigger_id.as_str())
            .header("hookgate-attempt", invocation.attempts.to_string())
            .body(payload.clone());
        let limit = if request_response {
            request = request.timeout(self.response_timeout);
            MAX_OUTPUT_BYTES
        } else {
            MAX_RESPONSE_BYTES
        };
        request = match &target.auth {
            HttpAuth::None => request,
            HttpAuth::Basic { user, password } => request.basic_auth(user, Some(password.expose())),
            HttpAuth::Bearer { token } => request.bearer_auth(token.expose()),
        };
        let mut response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                return (AttemptResult::Failed { timed_out: e.is_timeout() }, None, Some(error_chain(&e)));
            }
        };
        let code = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let mut kept = Vec::new();
        let mut error = None;
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = limit - kept.len();
                    kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    if kept.len() >= limit {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    error = Some(format!("reading the response: {}", error_chain(&e)));
                    break;
                }
            }
        }
        let text = (!kept.is_empty()).then(|| String::from_utf8_lossy(&kept).into_owned());
        (AttemptResult::Status { code, retry_after }, text, error)
    }
}

/// Cuts a kept response body to `max` bytes, on a character boundary.
fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

struct Context {
    /// The `REQUEST_RESPONSE` triggers of the batch's subscriptions, by id.
    request_response: HashMap<String, Trigger>,
    subscriptions: HashMap<String, Subscription>,
    keys: HashMap<String, Vec<SigningKey>>,
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
