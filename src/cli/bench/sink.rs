//! The benchmark's subscriber: counts every delivery by event and subscription, and how long it
//! took from the publish.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::Value;

#[derive(Default)]
pub struct Received {
    /// (seq, subscription) → times received.
    pub seen: HashMap<(u64, usize), u32>,
    pub latencies_us: Vec<u64>,
    pub total: usize,
}

pub fn micros_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

pub async fn receive(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<Arc<Mutex<Received>>>,
) -> HttpResponse {
    let now = micros_now();
    let sub: usize = req.path().trim_start_matches("/s").parse().unwrap_or(usize::MAX);
    if let Ok(v) = serde_json::from_slice::<Value>(&body) {
        let (seq, t0) = (v["seq"].as_u64().unwrap_or(u64::MAX), v["t0"].as_u64().unwrap_or(now));
        let mut r = state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *r.seen.entry((seq, sub)).or_default() += 1;
        r.latencies_us.push(now.saturating_sub(t0));
        r.total += 1;
    }
    HttpResponse::Ok().finish()
}

pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "an index into a short list"
    )]
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    #[expect(clippy::cast_precision_loss, reason = "microseconds fit in f64")]
    let ms = sorted[i] as f64 / 1000.0;
    (ms * 100.0).round() / 100.0
}
