mod auth;
mod cli;
mod errors;
mod helpers;

mod store;
mod subscriptions;
mod triggers;
