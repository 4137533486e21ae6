//! What an attempt's result means, and when to try again. Pure values, unit-tested rule by rule.

use std::time::Duration;

use backon::{BackoffBuilder as _, ConstantBuilder};

use crate::domain::subscription::DispatchMode;

/// The result of one HTTP attempt, as far as the retry rules care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptResult {
    /// The subscriber answered with this status (and maybe a `Retry-After` in seconds).
    Status { code: u16, retry_after: Option<Duration> },
    /// No answer: connection refused or reset, DNS failure, refused target, timeout.
    Failed { timed_out: bool },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    /// 410 Gone: the subscriber asks not to be called again; the subscription is disabled.
    Gone,
    /// Try again after the policy's delay (at least `retry_after` when the subscriber asked).
    Retry {
        retry_after: Option<Duration>,
    },
}

/// Every 2xx is delivered. 410 disables the subscription (Standard Webhooks). Everything else
/// (3xx: redirects are never followed, 4xx, 429, 5xx, timeouts, connection errors) retries.
pub fn classify(result: &AttemptResult) -> Verdict {
    match *result {
        AttemptResult::Status { code, .. } if (200..300).contains(&code) => Verdict::Delivered,
        AttemptResult::Status { code: 410, .. } => Verdict::Gone,
        AttemptResult::Status { retry_after, .. } => Verdict::Retry { retry_after },
        AttemptResult::Failed { .. } => Verdict::Retry { retry_after: None },
    }
}

/// What a `REQUEST_RESPONSE` subscriber's answer means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// The body is the output (SYNC, or DYNAMIC answering 200); it still has to pass the schema.
    Output,
    /// The subscriber will call `complete` (ASYNC, or DYNAMIC answering 202).
    Acknowledged,
    /// Late or malformed: the invocation fails for this reason, with no retry.
    Failed(String),
    /// Not an answer at all (410, errors, other statuses): as for fire-and-forget.
    Undelivered(Verdict),
}

/// SYNC: 200 with the output. ASYNC: any 2xx acknowledges. DYNAMIC: either. A timeout means the
/// answer came too late, which fails the invocation (a retry would be later still).
pub fn classify_response(mode: DispatchMode, result: &AttemptResult) -> Response {
    match (mode, result) {
        (_, AttemptResult::Failed { timed_out: true }) => {
            Response::Failed("no answer within the response timeout".into())
        }
        (_, AttemptResult::Status { code, .. }) if (200..300).contains(code) => match (mode, code) {
            (DispatchMode::Async, _) | (DispatchMode::Dynamic, 202) => Response::Acknowledged,
            (_, 200) => Response::Output,
            (DispatchMode::Sync, code) => {
                Response::Failed(format!("answered {code}; a SYNC subscriber answers 200 with the output"))
            }
            (_, code) => Response::Failed(format!(
                "answered {code}; a DYNAMIC subscriber answers 200 with the output, or 202 and calls back"
            )),
        },
        _ => Response::Undelivered(classify(result)),
    }
}

/// The retry schedule: delays after the first attempt, each with ±20 % jitter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    pub schedule: Vec<Duration>,
    /// The longest `Retry-After` honoured; longer requests are cut to this.
    pub retry_after_cap: Duration,
}

/// Share of each step that is random: the delay lands in [0.8 d, 1.2 d).
const JITTER: f32 = 0.2;

impl RetryPolicy {
    /// The most attempts an invocation gets: the first one plus one per schedule step.
    pub fn max_attempts(&self) -> usize {
        self.schedule.len() + 1
    }

    /// The delay before the next attempt once `attempts` have been made, or `None` when they are
    /// exhausted. `seed` fixes the jitter (tests); `None` draws it at random.
    pub fn delay(
        &self,
        attempts: usize,
        retry_after: Option<Duration>,
        seed: Option<u64>,
    ) -> Option<Duration> {
        let step = *self.schedule.get(attempts.checked_sub(1)?)?;
        // backon's jitter turns a delay x into x + rand[0, 1) × x, in [x, 2x). With x = 2·J·step on
        // top of (1 − 3·J)·step, the delay lands in [(1 − J)·step, (1 + J)·step).
        let mut jitter =
            ConstantBuilder::default().with_delay(step.mul_f32(2.0 * JITTER)).with_max_times(1).with_jitter();
        if let Some(seed) = seed {
            jitter = jitter.with_jitter_seed(seed);
        }
        let jittered = step.mul_f32(1.0 - 3.0 * JITTER) + jitter.build().next().unwrap_or_default();
        Some(match retry_after {
            Some(asked) => jittered.max(asked.min(self.retry_after_cap)),
            None => jittered,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> AttemptResult {
        AttemptResult::Status { code, retry_after: None }
    }

    #[test]
    fn classification_table() {
        let secs = |s| Some(Duration::from_secs(s));
        let cases = [
            (status(200), Verdict::Delivered),
            (status(204), Verdict::Delivered),
            (status(299), Verdict::Delivered),
            (status(410), Verdict::Gone),
            (status(301), Verdict::Retry { retry_after: None }),
            (status(400), Verdict::Retry { retry_after: None }),
            (status(404), Verdict::Retry { retry_after: None }),
            (status(500), Verdict::Retry { retry_after: None }),
            (
                AttemptResult::Status { code: 429, retry_after: secs(30) },
                Verdict::Retry { retry_after: secs(30) },
            ),
            (
                AttemptResult::Status { code: 503, retry_after: secs(7) },
                Verdict::Retry { retry_after: secs(7) },
            ),
            (AttemptResult::Failed { timed_out: true }, Verdict::Retry { retry_after: None }),
            (AttemptResult::Failed { timed_out: false }, Verdict::Retry { retry_after: None }),
        ];
        for (result, verdict) in cases {
            assert_eq!(classify(&result), verdict, "{result:?}");
        }
    }

    fn policy() -> RetryPolicy {
        RetryPolicy {
            schedule: [5, 300, 1800].map(Duration::from_secs).to_vec(),
            retry_after_cap: Duration::from_secs(3600),
        }
    }

    #[test]
    fn delays_follow_the_schedule_within_twenty_percent() {
        let p = policy();
        for (attempts, step) in [(1, 5.0), (2, 300.0), (3, 1800.0)] {
            for seed in 0..50 {
                let d = p.delay(attempts, None, Some(seed)).unwrap().as_secs_f64();
                assert!(d >= step * 0.8 - 1e-6 && d < step * 1.2 + 1e-6, "attempts {attempts}: {d}");
            }
        }
    }

    #[test]
    fn jitter_spreads_delays() {
        let p = policy();
        let delays: std::collections::BTreeSet<_> =
            (0..20).map(|s| p.delay(2, None, Some(s)).unwrap()).collect();
        assert!(delays.len() > 10);
    }

    #[test]
    fn attempts_run_out_after_the_schedule() {
        let p = policy();
        assert_eq!(p.max_attempts(), 4);
        assert!(p.delay(3, None, Some(1)).is_some());
        assert_eq!(p.delay(4, None, Some(1)), None);
        assert_eq!(p.delay(0, None, Some(1)), None);
    }

    #[test]
    fn retry_after_is_honoured_up_to_the_cap_and_never_shortens_the_schedule() {
        let p = policy();
        let asked = p.delay(1, Some(Duration::from_secs(120)), Some(1)).unwrap();
        assert_eq!(asked, Duration::from_secs(120));
        let capped = p.delay(1, Some(Duration::from_secs(86_400)), Some(1)).unwrap();
        assert_eq!(capped, Duration::from_secs(3600));
        let short = p.delay(3, Some(Duration::from_secs(1)), Some(1)).unwrap();
        assert!(short >= Duration::from_secs(1440));
    }

    #[test]
    fn request_response_answers_follow_the_dispatch_mode() {
        let status = |code| AttemptResult::Status { code, retry_after: None };
        assert_eq!(classify_response(DispatchMode::Sync, &status(200)), Response::Output);
        assert!(matches!(classify_response(DispatchMode::Sync, &status(202)), Response::Failed(_)));
        assert_eq!(classify_response(DispatchMode::Async, &status(200)), Response::Acknowledged);
        assert_eq!(classify_response(DispatchMode::Async, &status(204)), Response::Acknowledged);
        assert_eq!(classify_response(DispatchMode::Dynamic, &status(200)), Response::Output);
        assert_eq!(classify_response(DispatchMode::Dynamic, &status(202)), Response::Acknowledged);
        assert!(matches!(classify_response(DispatchMode::Dynamic, &status(204)), Response::Failed(_)));
        assert!(matches!(
            classify_response(DispatchMode::Sync, &AttemptResult::Failed { timed_out: true }),
            Response::Failed(_)
        ));
        assert_eq!(
            classify_response(DispatchMode::Async, &status(503)),
            Response::Undelivered(Verdict::Retry { retry_after: None })
        );
        assert_eq!(classify_response(DispatchMode::Sync, &status(410)), Response::Undelivered(Verdict::Gone));
    }
}
