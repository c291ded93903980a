//! The command-line options every content-scaling binary shares, as one clap struct to
//! `#[command(flatten)]` into each binary's arguments, turned into the core's
//! [`CommonOptions`]. This lives apart from `scaling-core`, which never depends on clap.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use scaling_core::entry::{CommonOptions, LogFormat};

/// Log line format on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormatArg {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line.
    Json,
}

/// `--config-dir`, `--env`, `--log-format`, `-v`: accepted before or after a subcommand.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Directory holding config.yaml, field_mappings.yaml, webhooks.yaml, email_templates.yaml.
    #[arg(long, env = "CS_CONFIG_DIR", default_value = "config", global = true)]
    pub config_dir: PathBuf,
    /// Environment overlay: config/environments/{ENV}.yaml (staging, production, sandbox).
    #[arg(long = "env", env = "CS_ENVIRONMENT", global = true)]
    pub environment: Option<String>,
    /// Log line format on stderr.
    #[arg(long, value_enum, default_value = "text", global = true)]
    pub log_format: LogFormatArg,
    /// More log detail (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
}

impl CommonArgs {
    /// The core's options for these arguments.
    pub fn options(&self) -> CommonOptions {
        CommonOptions {
            config_dir: self.config_dir.clone(),
            environment: self.environment.clone(),
            log_format: match self.log_format {
                LogFormatArg::Text => LogFormat::Text,
                LogFormatArg::Json => LogFormat::Json,
            },
            verbosity: self.verbose,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        common: CommonArgs,
    }

    #[test]
    fn options_follow_the_arguments() {
        let cli = Cli::parse_from([
            "x",
            "--config-dir",
            "/etc/cs",
            "--env",
            "staging",
            "--log-format",
            "json",
            "-vv",
        ]);
        let options = cli.common.options();
        assert_eq!(options.config_dir, PathBuf::from("/etc/cs"));
        assert_eq!(options.environment.as_deref(), Some("staging"));
        assert_eq!(options.log_format, LogFormat::Json);
        assert_eq!(options.verbosity, 2);
    }

    #[test]
    fn unknown_log_format_is_a_usage_error() {
        let error = Cli::try_parse_from(["x", "--log-format", "xml"]).expect_err("usage error");
        assert_eq!(error.exit_code(), 2);
    }
}
