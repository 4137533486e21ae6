//! Integration tests: each spawns a real app on port 0 with its own database.
#![expect(clippy::unwrap_used, clippy::expect_used, reason = "a test that cannot proceed should fail loudly")]

mod audit;
mod auth;
mod brokers;
mod caches;
mod chains;
mod cli;
mod cli_remote;
mod delivery;
mod encryption;
mod engine;
mod erasure;
mod errors;
mod flow;
mod helpers;
mod hooks;
mod invocations;
mod metrics;
mod openapi;
mod operational;
mod ordering;
mod outbound;
mod polls;
mod publish;
mod replay;
mod request_response;
pub mod resilience;
mod retention;
mod schedules;
mod sink;
mod sources;
mod store;
mod subscriptions;
mod trace;
mod triggers;
