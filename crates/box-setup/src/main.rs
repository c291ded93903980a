//! `box-setup`: the onboarding runbook as commands (list-folder, check, ensure-folders,
//! check-config, doctor, dam-check, install-dirs).
//!
//! Thin binary: parses arguments and calls [`scaling_core::pipeline::setup::run`].
//! Exit codes: 0 all ok, 1 a check failed, 2 configuration/usage error, 75 Box unreachable.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use cli_args::CommonArgs;
use scaling_core::pipeline::check_config::CheckConfigOutput;
use scaling_core::pipeline::setup::{self, SetupCommand};

/// Box onboarding and installation checks: list a folder, check the service account's access to
/// every configured folder, create _PROCESSED/_errors, check the whole installation.
#[derive(Debug, Parser)]
#[command(version = cli_args::VERSION, about)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    #[command(subcommand)]
    command: CommandArg,
}

#[derive(Debug, Subcommand)]
enum CommandArg {
    /// List a Box folder as the service account sees it.
    ListFolder {
        /// Box folder id (the number at the end of the folder's Box URL).
        folder_id: String,
    },
    /// Check that the service account can read, and create subfolders in, every configured folder.
    Check {
        /// One JSON document instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Create _PROCESSED and _errors in every watched folder (idempotent).
    EnsureFolders {
        /// Only say which are missing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Check the installation: check-config first, then database, Box, DAM, Mailgun, ffprobe,
    /// temp dir (one attempt each, short timeouts, the URL tried shown).
    Doctor {
        /// One JSON document instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Check the configuration offline (no network, no database): every file, variable,
    /// mapping, webhook event, recipient and email template; every problem at once (exit 2).
    CheckConfig {
        /// Also print the effective merged configuration (secrets redacted) with the origin of
        /// each value.
        #[arg(long)]
        show: bool,
        /// One JSON document instead of lines.
        #[arg(long)]
        json: bool,
        /// Print the .env.example generated from the config directory's files.
        #[arg(long, conflicts_with_all = ["show", "json"])]
        env_example: bool,
    },
    /// Create the log directory the crontab writes to (mode 0750); "nothing to do" when present.
    InstallDirs {
        /// The log directory (as in crontab.example).
        #[arg(long, value_name = "DIR", default_value = "/var/log/content-scaling")]
        log_dir: std::path::PathBuf,
        /// The service user who writes the logs (run install-dirs as root): the directory is
        /// given to this user and its primary group.
        #[arg(long, value_name = "USER")]
        owner: Option<String>,
    },
    /// Check what the real OTMM server does for each dam.api setting: confirmed, refuted (with
    /// the setting to change) or unknown. Read-only unless --write-test-folder is given.
    DamCheck {
        /// A scratch DAM folder (40-hex id) nothing else uses: its campaign status field is
        /// written (to its current value, A3 when it has none) and a small test file is imported
        /// into it (and left there).
        #[arg(long, value_name = "FOLDER_ID")]
        write_test_folder: Option<String>,
    },
}

fn main() -> ExitCode {
    let args = cli_args::parse::<Args>();
    let options = args.common.options();
    let command = match args.command {
        CommandArg::ListFolder { folder_id } => SetupCommand::ListFolder { folder_id },
        CommandArg::Check { json } => SetupCommand::Check { json },
        CommandArg::EnsureFolders { dry_run } => SetupCommand::EnsureFolders { dry_run },
        CommandArg::Doctor { json } => SetupCommand::Doctor { json },
        CommandArg::CheckConfig {
            show,
            json,
            env_example,
        } => SetupCommand::CheckConfig(CheckConfigOutput {
            show,
            json,
            env_example,
        }),
        CommandArg::InstallDirs { log_dir, owner } => SetupCommand::InstallDirs { log_dir, owner },
        CommandArg::DamCheck { write_test_folder } => SetupCommand::DamCheck { write_test_folder },
    };
    setup::run(&options, &command)
}
