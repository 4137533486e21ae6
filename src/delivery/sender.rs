//! One attempt: the signed HTTP request to the subscriber, and what its answer means for the
//! invocation. Holds no database connection.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{NaiveDateTime, TimeDelta};
use reqwest::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use tracing::Instrument as _;

use super::outbound::Outbound;
use super::policy::{AttemptResult, Response, RetryPolicy, Verdict, classify, classify_response};
use super::signer::{SigningKey, signature_header};
use crate::clock::SharedClock;
use crate::config::Settings;
use crate::domain::duration::IsoDuration;
use crate::domain::event::Eligibility;
use crate::domain::invocation::Attempt;
use crate::domain::invocation::{Invocation, Next};
use crate::domain::schema::{Schemas, Side};
use crate::domain::subscription::{
    ClientCertificate, DispatchMode, HttpAuth, HttpTarget, Subscription, Target as SubscriptionTarget,
};
use crate::domain::trace::TraceParent;
use crate::domain::trigger::Trigger;
use crate::metrics::Metrics;
use crate::store::outcomes::{Effect, Outcome};
use crate::store::queue::Claimed;

/// The most of a subscriber's response body that is kept.
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024;

/// The largest `REQUEST_RESPONSE` output read from a subscriber's answer.
pub const MAX_OUTPUT_BYTES: usize = 1024 * 1024;

/// What an attempt needs to know of its subscription.
#[derive(Debug)]
pub struct Target {
    pub subscription: Subscription,
    /// Its signing keys, current first.
    pub keys: Vec<SigningKey>,
    /// Its trigger, when that is a `REQUEST_RESPONSE` trigger.
    pub request_response: Option<Trigger>,
    /// For a chained subscription, the trigger it publishes on (`None`: it no longer exists).
    pub publishes_on: Option<Trigger>,
}

/// A subscriber asking to be sent less: a 429 or 503, with its `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pushback {
    pub retry_after: Option<Duration>,
}

impl Pushback {
    fn of(result: &AttemptResult) -> Option<Self> {
        match *result {
            AttemptResult::Status { code: 429 | 503, retry_after } => Some(Self { retry_after }),
            AttemptResult::Status { .. } | AttemptResult::Failed { .. } => None,
        }
    }
}

/// The status an attempt was answered with, if it was answered.
fn status_of(result: &AttemptResult) -> Option<u16> {
    match *result {
        AttemptResult::Status { code, .. } => Some(code),
        AttemptResult::Failed { .. } => None,
    }
}

/// One attempt's outcome, and whether its subscriber pushed back.
#[derive(Debug)]
pub struct Delivered {
    pub outcome: Outcome,
    pub pushback: Option<Pushback>,
}

impl From<Outcome> for Delivered {
    fn from(outcome: Outcome) -> Self {
        Self { outcome, pushback: None }
    }
}

pub struct Sender {
    clock: SharedClock,
    metrics: Arc<Metrics>,
    client: reqwest::Client,
    outbound: Outbound,
    /// The clients of subscriptions with a client certificate, by subscription, with the
    /// certificate each was built for.
    mtls: std::sync::Mutex<std::collections::HashMap<String, (ClientCertificate, reqwest::Client)>>,
    policy: RetryPolicy,
    schemas: Schemas,
    /// How long a `REQUEST_RESPONSE` subscriber has to answer.
    response_timeout: Duration,
    /// Where `complete` callbacks go: `{callback_base}/trigger-invocations/v1/{id}/complete`.
    callback_base: String,
    /// Fixes retry jitter (tests); `None` draws it at random.
    pub jitter_seed: Option<u64>,
}

impl Sender {
    pub fn new(
        clock: SharedClock,
        settings: &Settings,
        callback_base: String,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let outbound = Outbound::new(settings)?;
        let client = outbound.client(None)?;
        Ok(Self {
            clock,
            metrics,
            client,
            outbound,
            mtls: std::sync::Mutex::default(),
            policy: RetryPolicy {
                schedule: settings.retry_schedule.clone(),
                retry_after_cap: settings.retry_after_cap,
            },
            schemas: Schemas::default(),
            response_timeout: settings.response_timeout,
            callback_base,
            jitter_seed: None,
        })
    }

    pub async fn deliver(&self, claimed: &Claimed, target: Option<&Target>) -> Delivered {
        let invocation = &claimed.invocation;
        let trace = claimed.trace.map_or_else(TraceParent::start, |t| t.child());
        let span = tracing::debug_span!(
            "delivery",
            trace.id = %trace.trace_id(),
            invocation.id = %invocation.id,
            subscription.id = %invocation.subscription_id,
            invocation.attempt = invocation.attempts,
        );
        async move {
            let started_at = self.clock.now();
            let started = Instant::now();
            let attempt = |status: Option<u16>, response: Option<String>, error: Option<String>| Attempt {
                attempt: invocation.attempts,
                started: started_at,
                duration_ms: i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX),
                status: status.map(i32::from),
                response,
                error,
            };
            let dead = |reason: String| Outcome {
                invocation: invocation.id.clone(),
                attempt: attempt(None, None, Some(reason)),
                next: Next::Dead,
                effect: Effect::None,
                refused: false,
                subscription: None,
            };
            // An attempt made (or refused by the guard) tells of its subscription's health.
            let tried = |attempt: Attempt, next: Next, effect: Effect, refused: bool| Outcome {
                invocation: invocation.id.clone(),
                attempt,
                next,
                effect,
                refused,
                subscription: Some(invocation.subscription_id.clone()),
            };
            let Some(target) = target else {
                return dead("the subscription was deleted".into()).into();
            };
            let eligibility =
                Eligibility::of(&target.subscription, invocation.kind, invocation.deliver_when_disabled);
            if let Some(reason) = eligibility.refusal() {
                return dead(reason).into();
            }
            let subscription = &target.subscription;
            let http = match &subscription.spec.target {
                SubscriptionTarget::Http(http) => http,
                SubscriptionTarget::Trigger(chain) => {
                    let chained = super::chain::deliver(&self.schemas, claimed, target, chain, trace);
                    let a = attempt(None, chained.response, chained.error);
                    tracing::debug!(next = ?chained.next, "chained delivery finished");
                    return tried(a, chained.next, chained.effect, false).into();
                }
            };
            let trigger = target.request_response.as_ref();
            let Sent { result, response, error, refused } =
                self.send(claimed, http, &target.keys, trigger.is_some(), &trace).await;
            let pushback = Pushback::of(&result);
            if let Some(trigger) = trigger
                && let Some((next, failure)) = self.answered(
                    trigger,
                    &subscription.spec.response_deadline,
                    http,
                    &result,
                    response.as_deref(),
                )
            {
                let mut a =
                    attempt(status_of(&result), response.map(|r| truncate(r, MAX_RESPONSE_BYTES)), error);
                if let Some(reason) = failure {
                    a.error = Some(reason);
                }
                tracing::debug!(status = ?a.status, next = ?next, "request/response attempt finished");
                let outcome = tried(a, next, Effect::None, refused);
                return Delivered { outcome, pushback };
            }
            let response = response.map(|r| truncate(r, MAX_RESPONSE_BYTES));
            let a = attempt(status_of(&result), response, error);
            let (next, effect) = self.next_after(invocation, &result, started_at);
            tracing::debug!(status = ?a.status, next = ?next, "attempt finished");
            let outcome = tried(a, next, effect, refused);
            Delivered { outcome, pushback }
        }
        .instrument(span)
        .await
    }

    /// Where a plain delivery's answer leaves the invocation: delivered, retried by the policy,
    /// or dead; a 410 Gone also switches its subscription off.
    fn next_after(
        &self,
        invocation: &Invocation,
        result: &AttemptResult,
        started_at: NaiveDateTime,
    ) -> (Next, Effect) {
        match classify(result) {
            Verdict::Delivered => (Next::Delivered, Effect::None),
            Verdict::Gone => {
                let reason =
                    format!("the subscriber answered 410 Gone at {}", crate::domain::time::iso(started_at));
                (Next::Dead, Effect::Disable(invocation.subscription_id.clone(), reason))
            }
            Verdict::Retry { retry_after } => {
                let attempts = usize::try_from(invocation.attempts).unwrap_or(usize::MAX);
                let seed = self.jitter_seed.map(|s| s ^ u64::from(invocation.attempts.unsigned_abs()));
                match self.policy.delay(attempts, retry_after, seed) {
                    Some(delay) => {
                        let delay = TimeDelta::from_std(delay).unwrap_or(TimeDelta::hours(1));
                        (Next::RetryAt(self.clock.now() + delay), Effect::None)
                    }
                    None => (Next::Dead, Effect::None),
                }
            }
        }
    }

    /// What a `REQUEST_RESPONSE` subscriber's answer settles: the next state and, for a failure,
    /// its reason. `None` when it was no answer at all (retried like any delivery).
    fn answered(
        &self,
        trigger: &Trigger,
        response_deadline: &IsoDuration,
        http: &HttpTarget,
        result: &AttemptResult,
        body: Option<&str>,
    ) -> Option<(Next, Option<String>)> {
        match classify_response(http.dispatch_mode, result) {
            Response::Acknowledged => {
                let deadline =
                    TimeDelta::from_std(response_deadline.duration()).unwrap_or(TimeDelta::hours(1));
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
    fn body_for(&self, claimed: &Claimed, http: &HttpTarget, request_response: bool) -> String {
        let mode = http.dispatch_mode;
        if !request_response || mode == DispatchMode::Sync {
            return claimed.payload.to_string();
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
        let Some(open) = payload.strip_suffix('}') else { return claimed.payload.to_string() };
        let separator = if open.trim_end().ends_with('{') { "" } else { "," };
        format!("{open}{separator}\"_metadata\":{metadata}}}")
    }

    /// Makes the HTTP request and reads the answer, timing it.
    async fn send(
        &self,
        claimed: &Claimed,
        target: &HttpTarget,
        keys: &[SigningKey],
        request_response: bool,
        trace: &TraceParent,
    ) -> Sent {
        if let Some(error) = self.outbound.refuses(&target.url).await {
            return Sent::refused(error);
        }
        let started = Instant::now();
        let sent = self.request(claimed, target, keys, request_response, trace).await;
        if !sent.refused {
            self.metrics.request_took(started.elapsed());
        }
        sent
    }

    /// The client for `target`: the shared one, or the subscription's own when it presents a
    /// client certificate (built once per certificate).
    fn client_of(&self, subscription: &str, target: &HttpTarget) -> anyhow::Result<reqwest::Client> {
        let Some(certificate) = &target.client_certificate else { return Ok(self.client.clone()) };
        let mut clients = self.mtls.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((built_for, client)) = clients.get(subscription)
            && built_for == certificate
        {
            return Ok(client.clone());
        }
        let client = self.outbound.client(Some(certificate))?;
        clients.insert(subscription.to_owned(), (certificate.clone(), client.clone()));
        Ok(client)
    }

    /// The request itself: what came back, the body read (up to the body limit for a
    /// `REQUEST_RESPONSE` answer, else the kept size), and an error text.
    async fn request(
        &self,
        claimed: &Claimed,
        target: &HttpTarget,
        keys: &[SigningKey],
        request_response: bool,
        trace: &TraceParent,
    ) -> Sent {
        let invocation = &claimed.invocation;
        let id = invocation.id.as_str();
        let timestamp = self.clock.now().and_utc().timestamp();
        let payload = self.body_for(claimed, target, request_response);
        let body = payload.as_bytes();
        let client = match self.client_of(invocation.subscription_id.as_str(), target) {
            Ok(client) => client,
            Err(e) => {
                let error = Some(format!("the client certificate cannot be used: {e:#}"));
                return Sent {
                    result: AttemptResult::Failed { timed_out: false },
                    response: None,
                    error,
                    refused: false,
                };
            }
        };
        let mut request = client
            .post(&target.url)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature_header(keys, id, timestamp, body))
            .header("hookgate-trigger", invocation.trigger_id.as_str())
            .header("hookgate-attempt", invocation.attempts.to_string())
            .header("traceparent", trace.to_string())
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
            Err(e) if super::guard::is_refusal(&e) => return Sent::refused(error_chain(&e)),
            Err(e) => {
                let result = AttemptResult::Failed { timed_out: e.is_timeout() };
                return Sent { result, response: None, error: Some(error_chain(&e)), refused: false };
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
        // Kept as text in the database, which cannot hold NUL: those become U+FFFD.
        let text = (!kept.is_empty()).then(|| String::from_utf8_lossy(&kept).replace('\0', "\u{FFFD}"));
        Sent { result: AttemptResult::Status { code, retry_after }, response: text, error, refused: false }
    }
}

/// What an attempt's request came to.
struct Sent {
    result: AttemptResult,
    response: Option<String>,
    error: Option<String>,
    /// The SSRF guard stopped it: nothing was sent.
    refused: bool,
}

impl Sent {
    fn refused(error: String) -> Self {
        Self {
            result: AttemptResult::Failed { timed_out: false },
            response: None,
            error: Some(error),
            refused: true,
        }
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
