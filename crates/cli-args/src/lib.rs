//! The command-line options every content-scaling binary shares, as one clap struct to
//! `#[command(flatten)]` into each binary's arguments, turned into the core's
//! [`CommonOptions`]; the version line every binary prints ([`VERSION`]); and
//! [`parse`], the one way a binary reads its arguments, which also answers
//! `--generate man|bash|zsh|fish|elvish|powershell` (the man page and shell completions that
//! `scripts/release.sh` ships, from the same clap definitions). This lives apart from
//! `scaling-core`, which never depends on clap.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, ValueEnum};
use scaling_core::entry::{CommonOptions, LogFormat};

/// Log line format on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormatArg {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line.
    Json,
}

/// The version line (`--version`): the package version, the git commit and its date, and the
/// build date, e.g. `0.1.0 (commit 316a20f1c2 2026-12-04, built 2026-12-04)`. Stamped by
/// `build.rs`; the commit reads `unknown` outside a git checkout.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("CS_GIT_COMMIT"),
    " ",
    env!("CS_GIT_DATE"),
    ", built ",
    env!("CS_BUILD_DATE"),
    ")"
);

/// What `--generate` writes on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Generate {
    /// The man page (roff, section 1), with one section per subcommand.
    Man,
    /// Bash completion script.
    Bash,
    /// Zsh completion script.
    Zsh,
    /// Fish completion script.
    Fish,
    /// Elvish completion script.
    Elvish,
    /// PowerShell completion script.
    Powershell,
}

/// Writes `what` for the binary whose arguments are `T` (its clap definition) to `out`.
///
/// # Errors
/// Writing to `out` failed.
pub fn generate<T: CommandFactory>(what: Generate, out: &mut dyn Write) -> std::io::Result<()> {
    let mut command = T::command();
    let name = command.get_name().to_string();
    let shell = match what {
        Generate::Man => return clap_mangen::Man::new(command).render(out),
        Generate::Bash => clap_complete::Shell::Bash,
        Generate::Zsh => clap_complete::Shell::Zsh,
        Generate::Fish => clap_complete::Shell::Fish,
        Generate::Elvish => clap_complete::Shell::Elvish,
        Generate::Powershell => clap_complete::Shell::PowerShell,
    };
    clap_complete::generate(shell, &mut command, name, out);
    Ok(())
}

/// The one way every binary reads its arguments: `T::parse()`, except that
/// `BINARY --generate WHAT` (as the only two arguments) writes the man page or a completion
/// script ([`Generate`]) on stdout and exits 0 (2 with the valid values on an unknown one).
/// Hidden from `--help` because it is for packagers (`scripts/release.sh`), like ripgrep's
/// `--generate`.
pub fn parse<T: Parser>() -> T {
    let arguments: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if arguments.len() == 3 && arguments[1] == "--generate" {
        let code = if let Ok(what) = Generate::from_str(&arguments[2].to_string_lossy(), true) {
            // A closed stdout (`| head`) is not worth a message.
            i32::from(generate::<T>(what, &mut std::io::stdout().lock()).is_err())
        } else {
            let values = Generate::value_variants()
                .iter()
                .filter_map(|value| value.to_possible_value())
                .map(|value| value.get_name().to_string())
                .collect::<Vec<_>>()
                .join(", ");
            #[expect(
                clippy::print_stderr,
                reason = "a usage error before logging exists, like clap's own"
            )]
            {
                eprintln!("error: --generate expects one of: {values}");
            }
            2
        };
        std::process::exit(code);
    }
    T::parse()
}

/// `--config-dir`, `--env`, `--log-format`, `-v`, `-q`: accepted before or after a subcommand.
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
    /// Log only warnings and errors (results on stdout are unchanged). RUST_LOG overrides.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
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
            verbosity: if self.quiet {
                -1
            } else {
                i8::try_from(self.verbose.min(2)).unwrap_or(2)
            },
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
    fn quiet_lowers_the_level_and_conflicts_with_verbose() {
        let cli = Cli::parse_from(["x", "-q"]);
        assert_eq!(cli.common.options().verbosity, -1);
        let error = Cli::try_parse_from(["x", "-q", "-v"]).expect_err("usage error");
        assert_eq!(error.exit_code(), 2);
    }

    #[test]
    fn the_version_names_the_commit_and_the_dates() {
        assert!(VERSION.starts_with(env!("CARGO_PKG_VERSION")), "{VERSION}");
        assert!(VERSION.contains("(commit "), "{VERSION}");
        assert!(VERSION.contains(", built 20"), "{VERSION}");
    }

    #[test]
    fn man_page_and_completions_come_from_the_definitions() {
        let mut man = Vec::new();
        generate::<Cli>(Generate::Man, &mut man).expect("man page");
        let man = String::from_utf8(man).expect("utf-8");
        assert!(man.starts_with(".ie"), "roff: {man}");
        assert!(man.contains("config\\-dir"), "{man}");
        let mut bash = Vec::new();
        generate::<Cli>(Generate::Bash, &mut bash).expect("bash");
        let bash = String::from_utf8(bash).expect("utf-8");
        assert!(bash.contains("--log-format"), "{bash}");
        assert!(bash.contains("complete -F"), "{bash}");
    }

    #[test]
    fn unknown_log_format_is_a_usage_error() {
        let error = Cli::try_parse_from(["x", "--log-format", "xml"]).expect_err("usage error");
        assert_eq!(error.exit_code(), 2);
    }
}
