//! `box-poll`: One box-poll pass: derivatives in the watched Box folders -> DAM Final Assets -> archived; A2 -> A3.
//!
//! Thin binary: parses arguments and runs one pass through [`scaling_core::entry::run_pass`].
//! Exit codes: 0 done, 1 pass failed, 2 configuration/usage error, 75 dependency unreachable.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use scaling_core::entry::{run_pass, CommonOptions, LogFormat};
use scaling_core::pipeline::box_poll;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

/// One box-poll pass: derivatives in the watched Box folders -> DAM Final Assets -> archived; A2 -> A3.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Directory holding config.yaml, field_mappings.yaml, webhooks.yaml, email_templates.yaml.
    #[arg(long, env = "CS_CONFIG_DIR", default_value = "config")]
    config_dir: PathBuf,
    /// Environment overlay: config/environments/{ENV}.yaml (staging, production, sandbox).
    #[arg(long = "env", env = "CS_ENVIRONMENT")]
    environment: Option<String>,
    /// Log line format on stderr.
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormatArg,
    /// More log detail (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let options = CommonOptions {
        config_dir: args.config_dir,
        environment: args.environment,
        log_format: match args.log_format {
            LogFormatArg::Text => LogFormat::Text,
            LogFormatArg::Json => LogFormat::Json,
        },
        verbosity: args.verbose,
    };
    ExitCode::from(run_pass("box-poll", &options, box_poll::run))
}
