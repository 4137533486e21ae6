//! Delivery: the worker loop, the scheduler that fires scheduled triggers, the HTTP client with its SSRF guard, the signer and the retry
//! policy. Uses `store` and `domain`; knows nothing of the HTTP API.

pub mod guard;
pub mod policy;
pub mod scheduler;
pub mod signer;
mod worker;

pub use scheduler::Scheduler;
pub use worker::{Dispatcher, Shutdown};
