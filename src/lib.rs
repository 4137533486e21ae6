//! hookgate: a self-hosted event-trigger gateway, wire-compatible with SailPoint's Triggers API.

pub mod api;
pub mod cli;
pub mod clock;
pub mod config;
pub mod delivery;
pub mod domain;
pub mod health;
pub mod keys;
pub mod metrics;
#[cfg(test)]
mod properties;
pub mod retention;
pub mod sources;
pub mod startup;
pub mod store;
pub mod telemetry;
