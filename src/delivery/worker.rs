//! The dispatcher: claims due invocations in batches, delivers them concurrently, records the
//! outcomes in one transaction per batch. No transaction or pooled connection is held across
//! an HTTP request; an invocation whose lease expires (a crashed worker) is claimed again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::TimeDelta;
use reqwest::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use tokio::sync::{Notify, watch};
use tracing::Instrument as _;

use super::guard::{GuardedResolver, TargetGuard};
use super::policy::{AttemptResult, RetryPolicy, Verdict, classify};
use super::signer::{SigningKey, signature_header};
use crate::clock::SharedClock;
use crate::config::Settings;
use crate::domain::invocation::{Attempt, InvocationKind};
use crate::domain::subscription::{HttpAuth, Subscription};
use crate::store::invocations::{self, Claimed, Next, Outcome};
use crate::store::{Store, StoreError, subscriptions};

/// The most of a subscriber's response body that is kept.
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024;

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
    /// Fixes retry jitter (tests); `None` draws it at random.
    pub jitter_seed: Option<u64>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher").field("owner", &self.owner).finish_non_exhaustive()
    }
}

impl Dispatcher {
    pub fn new(store: Store, clock: SharedClock, settings: &Settings) -> anyhow::Result<Self> {
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
            jitter_seed: None,
        })
    }

    /// Wakes idle loops (called after a publish commits).
    pub fn notifier(&self) -> Arc<Notify> {
        self.notify.clone()
    }

    /// Claims one batch, delivers it and records the outcomes; returns how many it handled.
    pub async fn run_once(&self) -> Result<usize, StoreError> {
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
                Ok(Context {
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
            let (result, response, error) = self.send(claimed, subscription, keys).await;
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

    /// Makes the HTTP request; returns what came back, the kept body, and an error text.
    async fn send(
        &self,
        claimed: &Claimed,
        subscription: &Subscription,
        keys: &[SigningKey],
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
        let body = claimed.payload.as_bytes();
        let mut request = self
            .client
            .post(&target.url)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature_header(keys, id, timestamp, body))
            .header("hookgate-trigger", invocation.trigger_id.as_str())
            .header("hookgate-attempt", invocation.attempts.to_string())
            .body(claimed.payload.clone());
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
                    let room = MAX_RESPONSE_BYTES - kept.len();
                    kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    if kept.len() >= MAX_RESPONSE_BYTES {
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

struct Context {
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
