//! Delivery: the publisher (publishes committed together, handed off in memory), the dispatcher
//! (claim, send, record), the scheduler that fires scheduled triggers, the outbound HTTP clients
//! (SSRF guard, proxy, extra roots, client certificates), the signer, the retry policy, and the loop of periodic passes. Uses `store` and `domain`; knows nothing of the
//! HTTP API.

mod chain;
mod dispatcher;
mod flow;
pub mod guard;
mod intake;
mod lanes;
pub mod outbound;
pub mod policy;
mod publisher;
mod recorder;
pub mod scheduler;
mod sender;
pub mod signer;
mod targets;

pub use dispatcher::{Dispatcher, Shutdown};
pub use intake::{Intake, Reservation};
pub use outbound::Outbound;
pub use publisher::Publisher;
pub use scheduler::Scheduler;

/// Runs `pass` every `interval` until `shutdown` turns true; a failed pass is logged (as `what`)
/// and the next one tries again.
pub async fn every<T, F, Fut>(interval: std::time::Duration, mut shutdown: Shutdown, what: &str, mut pass: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, crate::store::StoreError>>,
{
    while !*shutdown.borrow() {
        if let Err(e) = pass().await {
            tracing::warn!(error = %e, "{what} failed; retrying");
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => {}
        }
    }
}
