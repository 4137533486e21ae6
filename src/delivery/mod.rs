//! Delivery: the publisher (publishes committed together, handed off in memory), the dispatcher
//! (claim, send, record), the scheduler that fires scheduled triggers, the HTTP client with its
//! SSRF guard, the signer and the retry policy. Uses `store` and `domain`; knows nothing of the
//! HTTP API.

mod dispatcher;
pub mod guard;
mod intake;
mod lanes;
pub mod policy;
mod publisher;
mod recorder;
pub mod scheduler;
mod sender;
pub mod signer;
mod targets;

pub use dispatcher::{Dispatcher, Shutdown};
pub use intake::{Intake, Reservation};
pub use publisher::Publisher;
pub use scheduler::Scheduler;
