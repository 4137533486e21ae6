//! `hookgate purge`: removes what is past its retention now, on the database, as the
//! background purge does; or, with `--dry-run`, counts what it would remove.

use std::io::Write as _;
use std::sync::Arc;

use clap::Args;

use crate::clock::SharedClock;
use crate::config::{Settings, parse_duration};
use crate::retention::{Purger, Retention};
use crate::store::Store;
use crate::store::purge::{self, Purged};

#[derive(Debug, Args)]
pub struct PurgeArgs {
    /// Remove finished work older than this, delivered and dead alike (e.g. 3d); by default
    /// the configured retentions.

    #[arg(long, value_parser = parse_duration)]
    older_than: Option<std::time::Duration>,
    /// Count what would be removed, and remove nothing.
    #[arg(long)]
    dry_run: bool,
}

pub fn run(
    args: &PurgeArgs,
    settings: &Settings,
    store: Store,
    clock: &SharedClock,
    json: bool,
) -> anyhow::Result<()> {
    let retention = args.older_than.map_or_else(|| Retention::of(settings), Retention::all);
    let purged = if args.dry_run {
        let cutoffs = retention.cutoffs(clock.now());
        store.run_blocking(|c| purge::preview(c, cutoffs))?
    } else {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        runtime.block_on(Purger::new(store, Arc::clone(clock), retention, Arc::default()).run_once())?
    };
    let mut out = std::io::stdout().lock();
    if json {
        let mut body = serde_json::to_value(purged)?;
        body["dryRun"] = args.dry_run.into();
        writeln!(out, "{body}")?;
        return Ok(());
    }
    let verb = if args.dry_run { "would remove" } else { "removed" };
    let Purged { invocations, attempts, events, schedule_ticks, idempotency_keys, tokens, audit_entries } =
        purged;
    writeln!(
        out,
        "{verb} {invocations} invocations, {attempts} attempts, {events} events, {schedule_ticks} schedule \
         ticks, {idempotency_keys} idempotency keys, {tokens} tokens, {audit_entries} audit entries"
    )?;
    Ok(())
}
