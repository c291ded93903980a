//! `a1-to-a2`: One a1-to-a2 pass: DAM campaigns at A1 -> masters into Box with tracking IDs -> A2.
//!
//! Thin binary: parses arguments and runs one pass through [`scaling_core::entry::run_pass`] (the one entry path of every binary),
//! or with `--dry-run` lists what the pass would do through [`scaling_core::entry::run_dry_run`].
//! Exit codes: 0 done, 1 pass failed, 2 configuration/usage error, 75 dependency unreachable.

use std::process::ExitCode;

use clap::Parser;
use cli_args::CommonArgs;
use scaling_core::entry::{run_dry_run, run_pass};
use scaling_core::pipeline::a1_to_a2;

/// One a1-to-a2 pass: DAM campaigns at A1 -> masters into Box with tracking IDs -> A2.
#[derive(Debug, Parser)]
#[command(version = cli_args::VERSION, about)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// List what the pass would do (campaigns at A1, per master what would be uploaded where
    /// and which already are) and change nothing: no Box, DAM or database writes.
    #[arg(long)]
    dry_run: bool,
    /// With --dry-run: print the plan as one JSON document on stdout.
    #[arg(long, requires = "dry_run")]
    json: bool,
}

fn main() -> ExitCode {
    let args = cli_args::parse::<Args>();
    let options = args.common.options();
    if args.dry_run {
        return run_dry_run(
            "a1-to-a2",
            &options,
            args.json,
            a1_to_a2::plan,
            a1_to_a2::A1Plan::lines,
        );
    }
    run_pass("a1-to-a2", &options, a1_to_a2::run)
}
