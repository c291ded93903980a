//! `box-poll`: One box-poll pass: derivatives in the watched Box folders -> DAM Final Assets -> archived; A2 -> A3.
//!
//! Thin binary: parses arguments and runs one pass through [`scaling_core::entry::run_pass`] (the one entry path of every binary).
//! Exit codes: 0 done, 1 pass failed, 2 configuration/usage error, 75 dependency unreachable.

use std::process::ExitCode;

use clap::Parser;
use cli_args::CommonArgs;
use scaling_core::entry::run_pass;
use scaling_core::pipeline::box_poll;

/// One box-poll pass: derivatives in the watched Box folders -> DAM Final Assets -> archived; A2 -> A3.
#[derive(Debug, Parser)]
#[command(version = cli_args::VERSION, about)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
}

fn main() -> ExitCode {
    let args = cli_args::parse::<Args>();
    let options = args.common.options();
    run_pass("box-poll", &options, box_poll::run)
}
