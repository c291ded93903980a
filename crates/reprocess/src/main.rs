//! `reprocess`: operators send work through the pipeline again, now; and `reprocess status`.
//!
//! Thin binary: parses arguments and calls [`scaling_core::pipeline::reprocess::run`] or
//! [`scaling_core::pipeline::status::run`]. Exit codes: 0 done or nothing to do, 1 failed (or,
//! for `file` and `campaign`, the item could not be done), 2 configuration/usage error, 75
//! dependency unreachable; `status --check` exits 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use cli_args::CommonArgs;
use scaling_core::pipeline::reprocess::{self, parse_since, Command, ReprocessOptions, Timestamp};
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
    /// Print the result (with --dry-run: the plan) as one JSON document on stdout.
    #[arg(long, global = true)]
    json: bool,
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
        /// Only files of this watched folder: its name (incoming) or id (box.watched_folders).
        #[arg(long = "folder", value_name = "NAME|ID")]
        folder: Option<String>,
        /// Only files rejected since this date (2026-11-20, UTC) or time (2026-11-20T08:00:00Z).
        #[arg(long, value_name = "DATE", value_parser = parse_since)]
        since: Option<Timestamp>,
    },
    /// Re-run a campaign's A1 -> A2 work (at A1) or its A2 -> A3 check (at A2).
    Campaign {
        /// Campaign number (C-2026-0142) or DAM folder id (40 hex) of the campaign folder.
        #[arg(value_name = "NUMBER|DAM_ID")]
        campaign: String,
    },
    /// Deliver every undelivered email and webhook now.
    Notifications,
    /// What the pipeline holds now: files, campaigns, folders, passes, what needs attention.
    /// Needs only the database (DATABASE_URL); never changes it.
    Status {
        /// Exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN with one summary line (monitoring).
        #[arg(long)]
        check: bool,
        /// List the files in `_errors/` and those waiting for a retry, with the command for each.
        #[arg(long)]
        files: bool,
        /// Write the status page (self-contained HTML) to FILE, atomically; prints nothing else
        /// unless --files, --json or --check asks.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let args = cli_args::parse::<Args>();
    let options = args.common.options();
    let command = match args.command {
        CommandArg::File { box_file_id } => Command::File {
            file_id: box_file_id,
        },
        CommandArg::Errors { folder, since } => Command::Errors {
            folder_id: folder,
            since,
        },
        CommandArg::Campaign { campaign } => Command::Campaign { campaign },
        CommandArg::Notifications => Command::Notifications,
        CommandArg::Status { check, files, html } => {
            if args.dry_run {
                Args::command()
                    .error(
                        clap::error::ErrorKind::ArgumentConflict,
                        "`reprocess status` never changes anything: --dry-run does not apply to it",
                    )
                    .exit();
            }
            return status::run(
                &options,
                &StatusOptions {
                    json: args.json,
                    check,
                    files,
                    html,
                },
            );
        }
    };
    reprocess::run(
        &options,
        &command,
        ReprocessOptions {
            dry_run: args.dry_run,
            json: args.json,
        },
    )
}
