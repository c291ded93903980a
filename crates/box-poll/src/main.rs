//! `box-poll`: One box-poll pass: derivatives in the watched Box folders -> DAM Final Assets -> archived; A2 -> A3.
//!
//! Thin binary: parses arguments and runs one pass through [`scaling_core::entry::run_pass`] (the one entry path of every binary),
//! or with `--dry-run` lists what the pass would do through [`scaling_core::entry::run_dry_run`].
//! Exit codes: 0 done, 1 pass failed, 2 configuration/usage error, 75 dependency unreachable.

use std::process::ExitCode;

use clap::Parser;
use cli_args::CommonArgs;
use scaling_core::entry::{run_dry_run, run_pass};
use scaling_core::pipeline::box_poll;

/// One box-poll pass: derivatives in the watched Box folders -> DAM Final Assets -> archived; A2 -> A3.
#[derive(Debug, Parser)]
#[command(version = cli_args::VERSION, about)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// List what the pass would do with each file of each watched folder (name check, master
    /// and campaign, where it would be imported and moved, or why it would be rejected) and
    /// change nothing: no Box, DAM or database writes. Every check runs, read-only.
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
            "box-poll",
            &options,
            args.json,
            box_poll::plan,
            box_poll::PollPlan::lines,
        );
    }
    run_pass("box-poll", &options, box_poll::run)
}
