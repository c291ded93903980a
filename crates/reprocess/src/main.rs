//! `reprocess`: operators send work through the pipeline again, now; and `reprocess status`.
//!
//! Thin binary: parses arguments and calls [`scaling_core::pipeline::reprocess::run`] or
//! [`scaling_core::pipeline::status::run`]. Exit codes: 0 done, 1 failed (or, for `file` and
//! `campaign`, nothing could be done; for `status --check`, something needs attention), 2
//! configuration/usage error, 75 dependency unreachable.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use cli_args::CommonArgs;
use scaling_core::pipeline::reprocess::{self, parse_since, Command, Timestamp};
use scaling_core::pipeline::status::{self, StatusOptions};

/// Send work through the pipeline again, now: a file from `_errors/`, every rejected file, a
/// campaign, the undelivered notifications; or show the status dashboard.
#[derive(Debug, Parser)]
#[command(version = cli_args::VERSION, about)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// Print exactly what would happen and change nothing (Box, database, notifications).
    #[arg(long, global = true)]
    dry_run: bool,
    #[command(subcommand)]
    command: CommandArg,
}

#[derive(Debug, Subcommand)]
enum CommandArg {
    /// Move a file back from `_errors/` to its watched folder and process it now.
    File {
        /// Box file id (the number at the end of the file's Box URL).
        box_file_id: String,
    },
    /// Reprocess every file in `_errors/` (whose name is now valid).
    Errors {
        /// Only files of this watched folder (a box.watched_folders id).
        #[arg(long = "folder", value_name = "ID")]
        folder_id: Option<String>,
        /// Only files rejected since this date (2026-11-20, UTC) or time (2026-11-20T08:00:00Z).
        #[arg(long, value_name = "DATE", value_parser = parse_since)]
        since: Option<Timestamp>,
    },
    /// Re-run a campaign's A1 -> A2 work (at A1) or its A2 -> A3 check (at A2).
    Campaign {
        /// DAM folder id of the campaign folder.
        dam_id: String,
    },
    /// Deliver every undelivered email and webhook now.
    Notifications,
    /// Dashboard: masters, derivatives, campaigns, errors, retries, outbox, last pass per binary.
    Status {
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Exit 1 when something needs attention (for monitoring).
        #[arg(long)]
        check: bool,
    },
}

fn main() -> ExitCode {
    let args = cli_args::parse::<Args>();
    let options = args.common.options();
    let command = match args.command {
        CommandArg::File { box_file_id } => Command::File {
            file_id: box_file_id,
        },
        CommandArg::Errors { folder_id, since } => Command::Errors { folder_id, since },
        CommandArg::Campaign { dam_id } => Command::Campaign { dam_id },
        CommandArg::Notifications => Command::Notifications,
        CommandArg::Status { json, check } => {
            return status::run(&options, StatusOptions { json, check });
        }
    };
    reprocess::run(&options, &command, args.dry_run)
}
