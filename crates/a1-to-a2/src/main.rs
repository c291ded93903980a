//! `a1-to-a2`: One a1-to-a2 pass: DAM campaigns at A1 -> masters into Box with tracking IDs -> A2.
//!
//! Thin binary: parses arguments and runs one pass through [`scaling_core::entry::run_pass`] (the one entry path of every binary).
//! Exit codes: 0 done, 1 pass failed, 2 configuration/usage error, 75 dependency unreachable.

use std::process::ExitCode;

use clap::Parser;
use cli_args::CommonArgs;
use scaling_core::entry::run_pass;
use scaling_core::pipeline::a1_to_a2;

/// One a1-to-a2 pass: DAM campaigns at A1 -> masters into Box with tracking IDs -> A2.
#[derive(Debug, Parser)]
#[command(version = cli_args::VERSION, about)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
}

fn main() -> ExitCode {
    let args = cli_args::parse::<Args>();
    let options = args.common.options();
    run_pass("a1-to-a2", &options, a1_to_a2::run)
}
