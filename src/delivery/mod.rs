//! Delivery: the dispatcher (hand-off, claim, send, record), the scheduler that fires scheduled
//! triggers, the HTTP client with its SSRF guard, the signer and the retry policy. Uses `store`
//! and `domain`; knows nothing of the HTTP API.

mod dispatcher;
pub mod guard;
mod intake;
mod lanes;
pub mod policy;
mod recorder;
pub mod scheduler;
mod sender;
pub mod signer;

pub use dispatcher::{Dispatcher, Shutdown};
pub use intake::{Intake, Reservation};
pub use scheduler::Scheduler;
