//! What every pass binary does around its pass: logging set-up, configuration loading,
//! connecting, running the pass once, and mapping the result to an exit code (design.md §6):
//! 0 pass completed (even with per-file rejections), 1 the pass failed, 2 configuration or
//! usage error, 75 (EX_TEMPFAIL) a dependency unreachable.
//!
//! The binaries only parse their arguments into [`CommonOptions`] and call [`run_pass`].

use std::io::IsTerminal;
use std::path::PathBuf;

use crate::config;
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

/// Options shared by every pass binary.
#[derive(Debug, Clone)]
pub struct CommonOptions {
    /// Directory holding `config.yaml` and its companions.
    pub config_dir: PathBuf,
    /// Environment overlay name (`environments/{name}.yaml`); `None` = from config/env.
    pub environment: Option<String>,
    /// Log line format.
    pub log_format: LogFormat,
    /// 0 = info, 1 = debug, 2+ = trace. `RUST_LOG` overrides.
    pub verbosity: u8,
}

/// Exit code: a dependency was unreachable (sysexits EX_TEMPFAIL).
pub const EXIT_TEMPFAIL: u8 = 75;
/// Exit code: configuration or usage error.
pub const EXIT_CONFIG: u8 = 2;

/// Installs the stderr logger. Safe to call once per process.
pub fn init_logging(format: LogFormat, verbosity: u8) {
    let default = match verbosity {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = match tracing_subscriber::EnvFilter::try_from_default_env() {
        // Whatever RUST_LOG asks, the HTTP client stays at warn as in the default filter:
        // ureq_proto's trace output hex-dumps the raw wire data (Authorization headers with
        // access tokens, token request bodies) and ureq's trace shows Box download URLs
        // (short-lived credentials).
        Ok(filter) => ["ureq_proto=warn", "ureq=warn"]
            .iter()
            .filter_map(|directive| directive.parse().ok())
            .fold(filter, tracing_subscriber::EnvFilter::add_directive),
        Err(_) => tracing_subscriber::EnvFilter::new(format!(
            "{default},ureq=warn,ureq_proto=warn,rustls=warn,refinery_core=warn,postgres=warn,tokio_postgres=warn"
        )),
    };
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal());
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    if let Err(error) = result {
        eprintln!("warning: logging already initialised: {error}");
    }
}

/// Loads the configuration, connects, runs `pass` once as `binary_name`, logs a summary and
/// returns the exit code.
pub fn run_pass(
    binary_name: &str,
    options: &CommonOptions,
    pass: impl FnOnce(&mut Services, &mut PassReport) -> Result<(), PassError>,
) -> u8 {
    init_logging(options.log_format, options.verbosity);
    // Crash points (tests): FAILPOINTS="name=return;..." arms them for this process.
    #[cfg(feature = "failpoints")]
    let _failpoints = fail::FailScenario::setup();
    let config = match config::load(&options.config_dir, options.environment.as_deref()) {
        Ok(config) => config,
        Err(error) => {
            tracing::error!("configuration error: {error}");
            return EXIT_CONFIG;
        }
    };
    let mut services = match Services::connect(config) {
        Ok(services) => services,
        Err(error) => {
            tracing::error!("{binary_name}: cannot start the pass: {error}");
            return error.exit_code();
        }
    };
    match run_recorded(&mut services, binary_name, pass) {
        Ok(report) => {
            if report.is_idle() {
                tracing::debug!(?report, "{binary_name}: nothing to do");
            } else {
                tracing::info!(
                    masters_uploaded = report.masters_uploaded,
                    masters_failed = report.masters_failed,
                    campaigns_advanced = report.campaigns_advanced,
                    derivatives_delivered = report.derivatives_delivered,
                    files_rejected = report.files_rejected,
                    files_retry_later = report.files_retry_later,
                    notifications_sent = report.notifications_sent,
                    "{binary_name}: pass completed"
                );
            }
            if report.campaigns_locked > 0 {
                tracing::info!(
                    campaigns_locked = report.campaigns_locked,
                    "{binary_name}: another pass is running; its work was left to it"
                );
            }
            0
        }
        Err(error) => {
            tracing::error!("{binary_name}: pass failed: {error}");
            error.exit_code()
        }
    }
}
