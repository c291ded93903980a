//! `cleanup`: old temp files, the temp size cap, expired leases, history past the retention.
//!
//! Thin binary: parses arguments and calls [`scaling_core::pipeline::cleanup::run`].
//! Exit codes: 0 done, 1 failed, 2 configuration/usage error, 75 dependency unreachable.

use std::process::ExitCode;

use clap::Parser;
use cli_args::CommonArgs;
use scaling_core::pipeline::cleanup;

/// Daily housekeeping: temp files older than temp.cleanup_after_hours, the temp.max_size_mb cap,
/// expired leases, history older than retention.history_days.
#[derive(Debug, Parser)]
#[command(version = cli_args::VERSION, about)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// Print what would be removed, released and deleted, and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// With --dry-run: print the plan as one JSON document.
    #[arg(long, requires = "dry_run")]
    json: bool,
}

fn main() -> ExitCode {
    let args = cli_args::parse::<Args>();
    let options = args.common.options();
    cleanup::run(&options, args.dry_run, args.json)
}
