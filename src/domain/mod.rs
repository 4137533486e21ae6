//! Domain types: what hookgate's words mean, independent of HTTP and SQL.

pub mod catalog;
pub mod chain;
pub mod duration;
pub mod event;
pub mod filter;
pub mod flow;
pub mod ids;
pub mod invocation;
pub mod keyring;
pub mod query;
pub mod schedule;
pub mod schema;
pub mod scope;
pub mod secret;
pub mod source;
pub mod subscription;
pub mod time;
pub mod trace;
pub mod trigger;
