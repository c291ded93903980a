//! The one entry path of every binary (ripgrep's `main` -> `run` -> exit code): the passes
//! (`a1-to-a2`, `box-poll`) and the operator commands (`reprocess`, `cleanup`, `box-setup`) all
//! go through [`run`] (or [`run_unconfigured`] for `box-setup doctor`, which reports a broken
//! configuration as one of its checks). It
//!
//! 1. installs the one stderr logger ([`init_logging`]),
//! 2. loads the configuration,
//! 3. runs the command,
//! 4. maps the outcome to the one exit policy ([`Exit`], design.md §6), and prints an error as
//!    its whole cause chain with a `hint:` line when the fix is known.
//!
//! The binaries only parse their arguments into [`CommonOptions`] and a command value.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use tracing::Level;
use tracing_subscriber::filter::FilterExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

use crate::config::{self, Config};
use crate::pipeline::operator::ProgressAwareStderr;
use crate::pipeline::{run_recorded, PassError, PassReport, Services};

/// Log line format on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line (for journald/log shippers).
    Json,
}

/// Options shared by every binary.
#[derive(Debug, Clone)]
pub struct CommonOptions {
    /// Directory holding `config.yaml` and its companions.
    pub config_dir: PathBuf,
    /// Environment overlay name (`environments/{name}.yaml`); `None` = from config/env.
    pub environment: Option<String>,
    /// Log line format.
    pub log_format: LogFormat,
    /// -1 = warnings and errors only (`--quiet`), 0 = info (or the configuration's
    /// `logging.level`), 1 = debug, 2+ = trace. `RUST_LOG` overrides (but never uncaps
    /// [`WIRE_TARGETS`]).
    pub verbosity: i8,
}

/// The exit policy of every binary (design.md §6). The one place exit codes are decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: done (a pass with per-file rejections is done too).
    Success,
    /// 1: the command failed, or (checks, `status --check`, a named item) found something that
    /// needs attention.
    Failure,
    /// 2: configuration, usage or credentials: bad configuration, Box app config missing or
    /// unreadable, wrong key passphrase, credentials refused, temp dir not private. A rerun will
    /// not fix it.
    Configuration,
    /// 75 (sysexits `EX_TEMPFAIL`): a dependency is unreachable for now; nothing was lost and the
    /// next run retries.
    Unavailable,
}

impl Exit {
    /// The process exit code.
    pub const fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failure => 1,
            Exit::Configuration => 2,
            Exit::Unavailable => 75,
        }
    }

    /// [`Exit::Success`] when `ok`, else [`Exit::Failure`].
    pub const fn success_if(ok: bool) -> Exit {
        if ok {
            Exit::Success
        } else {
            Exit::Failure
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit.code())
    }
}

/// Log targets that stay at `warn` whatever `RUST_LOG` or `-vv` ask: their debug and trace
/// output carries credentials. `ureq_proto` hex-dumps the raw wire data (`Authorization:
/// Bearer ...`, the token request body, OTMM's session cookie, Mailgun's Basic credential);
/// `ureq` shows Box download URLs (short-lived credentials); the PostgreSQL driver logs
/// statement parameters; rustls logs handshake details; `cookie_store` (ureq's cookie store, which
/// keeps the DAM session) logs every `Set-Cookie` it stores, value included (OTMM's `JSESSIONID`).
pub const WIRE_TARGETS: &[&str] = &[
    "ureq",
    "ureq_proto",
    "rustls",
    "postgres",
    "tokio_postgres",
    "cookie_store",
];

/// True when `target` is one of [`WIRE_TARGETS`] or a module of one.
fn is_wire_target(target: &str) -> bool {
    WIRE_TARGETS.iter().any(|wire| {
        target
            .strip_prefix(wire)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
    })
}

/// The level of lines logged without `RUST_LOG`: `-v`/`-vv`, else the configuration's
/// `logging.level` once loaded ([`apply_logging`]), else info. Stored as a [`level_rank`].
static LEVEL: AtomicU8 = AtomicU8::new(2);
/// False once the configuration said `logging.handlers.console.enabled: false`.
static CONSOLE: AtomicBool = AtomicBool::new(true);

/// `level` as a number that grows with verbosity (error 0 ... trace 4).
fn level_rank(level: Level) -> u8 {
    match level {
        Level::ERROR => 0,
        Level::WARN => 1,
        Level::INFO => 2,
        Level::DEBUG => 3,
        Level::TRACE => 4,
    }
}

/// Installs the one logger of every binary: `info` (`-v` debug, `-vv` trace; `RUST_LOG`
/// overrides; else the configuration's `logging.level` once [`apply_logging`] ran), text or
/// JSON, on stderr (written around a progress bar when one is shown; off when the configuration
/// disables the console) and, once [`apply_logging`] installed one, in the configured log file
/// ([`crate::logfile`]), with [`WIRE_TARGETS`] capped at `warn` by a filter that `RUST_LOG`
/// cannot lift. Without `RUST_LOG` the migration runner's routine lines are left out too, so a
/// run with nothing to do prints nothing. Safe to call once per process.
pub fn init_logging(format: LogFormat, verbosity: i8) {
    LEVEL.store(rank_for_verbosity(verbosity), Ordering::Relaxed);
    let from_env = tracing_subscriber::EnvFilter::try_from_default_env().ok();
    let ansi = colour_allowed(std::io::stderr().is_terminal());
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(ProgressAwareStderr)
        .with_target(false)
        .with_ansi(ansi);
    let file = tracing_subscriber::fmt::layer()
        .with_writer(crate::logfile::CurrentLogFile)
        .with_target(false)
        .with_ansi(false);
    let console_on = tracing_subscriber::filter::filter_fn(|_| CONSOLE.load(Ordering::Relaxed));
    let file_on = tracing_subscriber::filter::filter_fn(|_| crate::logfile::installed());
    let layers = match format {
        LogFormat::Text => vec![
            stderr
                .with_filter(log_filter(from_env.clone()).and(console_on))
                .boxed(),
            file.with_filter(log_filter(from_env).and(file_on)).boxed(),
        ],
        LogFormat::Json => vec![
            stderr
                .json()
                .with_filter(log_filter(from_env.clone()).and(console_on))
                .boxed(),
            file.json()
                .with_filter(log_filter(from_env).and(file_on))
                .boxed(),
        ],
    };
    let result = tracing_subscriber::registry().with(layers).try_init();
    if let Err(error) = result {
        #[expect(
            clippy::print_stderr,
            reason = "logging is what failed to start, so stderr is the only channel left"
        )]
        {
            eprintln!("warning: logging already initialised: {error}");
        }
    }
}

/// The [`level_rank`] for a verbosity (-1 warn, 0 info, 1 debug, 2+ trace).
fn rank_for_verbosity(verbosity: i8) -> u8 {
    u8::try_from(verbosity.clamp(-1, 2) + 2).unwrap_or(2)
}

/// Whether colour (ANSI escapes) may be written to a stream: only to a terminal, and never when
/// `NO_COLOR` is set to a non-empty value (<https://no-color.org>).
pub fn colour_allowed(is_terminal: bool) -> bool {
    is_terminal && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty())
}

/// What a log layer lets through: `RUST_LOG` when set, else [`LEVEL`] with the migration
/// runner's routine lines left out; [`WIRE_TARGETS`] capped at `warn` in both cases.
fn log_filter(
    from_env: Option<tracing_subscriber::EnvFilter>,
) -> impl tracing_subscriber::layer::Filter<tracing_subscriber::Registry> {
    let wire_capped = tracing_subscriber::filter::filter_fn(|metadata| {
        !is_wire_target(metadata.target()) || *metadata.level() <= Level::WARN
    });
    let by_level = tracing_subscriber::filter::filter_fn(|metadata| {
        let rank = level_rank(*metadata.level());
        let routine = metadata.target().starts_with("refinery_core") && rank > 1;
        rank <= LEVEL.load(Ordering::Relaxed) && !routine
    });
    let wanted: Box<
        dyn tracing_subscriber::layer::Filter<tracing_subscriber::Registry> + Send + Sync,
    > = match from_env {
        Some(filter) => Box::new(filter),
        None => Box::new(by_level),
    };
    wanted.and(wire_capped)
}

/// Applies the configuration's `logging` section to the logger [`init_logging`] installed: the
/// level (unless `-v`/`-vv` or `RUST_LOG` chose one), the console on or off, and the log file
/// (created with its directory, mode 0750, when missing; rotated by size). `config_file` names
/// the file in an error.
///
/// Errors: [`config::ConfigError::Invalid`] at `logging.handlers.file.filename` when the log file
/// cannot be created or opened for writing.
pub fn apply_logging(
    logging: &config::LoggingConfig,
    verbosity: i8,
    config_file: &std::path::Path,
) -> Result<(), config::ConfigError> {
    if let Some(file) = &logging.file {
        let opened =
            crate::logfile::LogFile::open(file).map_err(|error| config::ConfigError::Invalid {
                file: config_file.to_path_buf(),
                key: "logging.handlers.file.filename".to_string(),
                message: format!(
                    "expected a log file this user can create and write, found {}: {error}",
                    file.path.display()
                ),
            })?;
        crate::logfile::install(opened);
    }
    if let (Some(level), 0) = (logging.level, verbosity) {
        LEVEL.store(level_rank(level), Ordering::Relaxed);
    }
    CONSOLE.store(logging.console, Ordering::Relaxed);
    tracing::callsite::rebuild_interest_cache();
    Ok(())
}

/// Sets up logging, loads the configuration, runs `command` with it, and returns the exit code
/// of its outcome or error (see the module docs). `command` returns [`Exit::Success`], or
/// [`Exit::Failure`] when it ran but something needs attention; every other ending is a
/// [`PassError`]. `binary` names the program in the error line.
pub fn run(
    binary: &str,
    options: &CommonOptions,
    command: impl FnOnce(Config) -> Result<Exit, PassError>,
) -> ExitCode {
    run_unconfigured(binary, options, |options| {
        let config = config::load(&options.config_dir, options.environment.as_deref())?;
        apply_logging(
            &config.logging,
            options.verbosity,
            &config.config_dir.join("config.yaml"),
        )?;
        tracing::debug!(
            environment = %config.environment,
            config_dir = %config.config_dir.display(),
            "{binary}: configuration loaded"
        );
        command(config)
    })
}

/// [`run`] for a command that loads the configuration itself (`box-setup doctor`).
pub fn run_unconfigured(
    binary: &str,
    options: &CommonOptions,
    command: impl FnOnce(&CommonOptions) -> Result<Exit, PassError>,
) -> ExitCode {
    init_logging(options.log_format, options.verbosity);
    // Crash points (tests): FAILPOINTS="name=return;..." arms them for this process.
    #[cfg(feature = "failpoints")]
    let _failpoints = fail::FailScenario::setup();
    let exit = match command(options) {
        Ok(exit) => exit,
        Err(error) => {
            report_error(binary, options.log_format, &error);
            error.exit()
        }
    };
    exit.into()
}

/// Prints `error` as [`run`] does (`error:` and `hint:` lines) and returns its exit code, for a
/// command that runs its own steps (`reprocess status`).
pub fn report_failure(binary: &str, options: &CommonOptions, error: &PassError) -> ExitCode {
    report_error(binary, options.log_format, error);
    error.exit().into()
}

/// `error` and its sources joined with `: ` (like anyhow's `{:#}`), leaving out a source whose
/// text the message already holds (many of ours quote their cause).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Prints `error: {binary}: {chain}` and `hint: {fix}` on stderr (text format, as two plain
/// lines that do not depend on the log level), or one JSON log event with a `hint` field.
fn report_error(binary: &str, format: LogFormat, error: &PassError) {
    let chain = error_chain(error);
    let hint = error.hint();
    match format {
        LogFormat::Json => {
            if let Some(hint) = &hint {
                tracing::error!(hint = %hint, "{binary}: {chain}");
            } else {
                tracing::error!("{binary}: {chain}");
            }
        }
        LogFormat::Text => {
            let mut text = format!("error: {binary}: {chain}\n");
            if let Some(hint) = hint {
                text.push_str(&format!("hint: {hint}\n"));
            }
            let mut writer = tracing_subscriber::fmt::MakeWriter::make_writer(&ProgressAwareStderr);
            // A closed stderr is nothing the command can report anywhere.
            let _ = writer.write_all(text.as_bytes());
        }
    }
}

/// Runs one pass as `binary_name` through [`run`]: connects ([`Services::connect`]), runs
/// `pass` once ([`run_recorded`]), logs a summary, exits 0 (even with per-file rejections).
pub fn run_pass(
    binary_name: &str,
    options: &CommonOptions,
    pass: impl FnOnce(&mut Services, &mut PassReport) -> Result<(), PassError>,
) -> ExitCode {
    run(binary_name, options, |config| {
        let mut services = Services::connect(config)?;
        let report = run_recorded(&mut services, binary_name, pass)?;
        if report.is_idle() {
            tracing::debug!("{binary_name}: nothing to do ({report})");
        } else {
            tracing::info!(
                masters_uploaded = report.masters_uploaded,
                masters_failed = report.masters_failed,
                campaigns_advanced = report.campaigns_advanced,
                derivatives_delivered = report.derivatives_delivered,
                files_rejected = report.files_rejected,
                files_retry_later = report.files_retry_later,
                notifications_sent = report.notifications_sent,
                "{binary_name}: pass completed: {report}"
            );
        }
        if report.campaigns_locked > 0 {
            tracing::info!(
                campaigns_locked = report.campaigns_locked,
                "{binary_name}: another pass is running; its work was left to it"
            );
        }
        Ok(Exit::Success)
    })
}

/// Runs a pass's dry run as `binary_name` through [`run`]: connects read-only
/// ([`Services::connect_read_only`]: no migration), plans (`plan` must read only), and prints
/// the plan on stdout, as lines (`lines`) or, with `json`, as one JSON document
/// `{"pass": ..., "dry_run": true, "plan": ...}`. Writes no `runs` row, takes no lease or lock,
/// delivers no notification. Exits 0 (the plan is the answer, whatever it holds).
pub fn run_dry_run<P: serde::Serialize>(
    binary_name: &str,
    options: &CommonOptions,
    json: bool,
    plan: impl FnOnce(&mut Services) -> Result<P, PassError>,
    lines: impl FnOnce(&P) -> Vec<String>,
) -> ExitCode {
    run(binary_name, options, |config| {
        let mut services = Services::connect_read_only(config)?;
        let planned = plan(&mut services).map_err(|error| error.naming_url(&services.config));
        services.dam.logout();
        let planned = planned?;
        if json {
            let document = serde_json::json!({
                "pass": binary_name,
                "dry_run": true,
                "plan": planned,
            });
            let text = serde_json::to_string_pretty(&document)
                .map_err(|error| PassError::Failed(format!("plan as JSON: {error}")))?;
            crate::pipeline::operator::say(&text);
        } else {
            for line in lines(&planned) {
                crate::pipeline::operator::say(&line);
            }
        }
        Ok(Exit::Success)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_the_policy() {
        assert_eq!(Exit::Success.code(), 0);
        assert_eq!(Exit::Failure.code(), 1);
        assert_eq!(Exit::Configuration.code(), 2);
        assert_eq!(Exit::Unavailable.code(), 75);
        assert_eq!(Exit::success_if(true), Exit::Success);
        assert_eq!(Exit::success_if(false), Exit::Failure);
    }

    #[test]
    fn wire_targets_and_their_modules_are_recognised() {
        for target in [
            "ureq",
            "ureq::unversioned::transport",
            "ureq_proto",
            "ureq_proto::util",
            "tokio_postgres::prepare",
            "cookie_store::cookie_store",
        ] {
            assert!(is_wire_target(target), "{target}");
        }
        for target in [
            "scaling_core::boxapi",
            "ureqx",
            "ureq_protocol",
            "postgresql",
        ] {
            assert!(!is_wire_target(target), "{target}");
        }
    }

    #[test]
    fn the_chain_leaves_out_causes_already_quoted() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer: {0}")]
        struct Quoting(#[source] std::io::Error);
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Plain(#[source] std::io::Error);
        let io = || std::io::Error::other("disk on fire");
        assert_eq!(error_chain(&Quoting(io())), "outer: disk on fire");
        assert_eq!(error_chain(&Plain(io())), "outer: disk on fire");
    }
}
