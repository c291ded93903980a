//! The flags of `sandbox serve`, parsed by clap in one place: the binary reads them from its
//! command line, [`crate::launch::Launch::args`] from a test's argument list, so a test starts
//! the sandbox with exactly the flags an operator would type (`--fault-seed 7`,
//! `--part-size 4194304`, ...; `sandbox serve --help` lists them).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use crate::server::ServeOptions;

/// The flags of `sandbox serve` (see [`ServeOptions`] for what each one sets).
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Main listen address (loopback only); port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Directory for the generated Box app config, credentials and stored file contents.
    #[arg(long)]
    pub state_dir: PathBuf,
    /// Scenario YAML (campaigns, masters, lookup domains); default: one watched folder, no campaigns.
    #[arg(long)]
    pub scenario: Option<PathBuf>,
    /// Lifetime of Box access tokens, DAM tokens and DAM sessions, in seconds.
    #[arg(long, default_value_t = 3600)]
    pub token_lifetime_secs: u64,
    /// Milliseconds a DAM import job stays IN_PROGRESS (default: scenario value, else 300).
    #[arg(long)]
    pub import_delay_ms: Option<u64>,
    /// Box API requests per access token per second, with a burst of as many (shorthand for
    /// `--rate-limit-per-minute 60N --rate-limit-burst N`); more get 429 rate_limit_exceeded with
    /// Retry-After. Default: no limit. Also `POST /_sandbox/config`.
    #[arg(long, conflicts_with = "rate_limit_per_minute")]
    pub rate_limit: Option<u32>,
    /// Box API requests per access token per minute, sustained (a GCRA bucket, as Box counts
    /// per user and minute); see --rate-limit-burst.
    #[arg(long)]
    pub rate_limit_per_minute: Option<u32>,
    /// Requests of one token admitted at once by --rate-limit-per-minute (default 1).
    #[arg(long, requires = "rate_limit_per_minute")]
    pub rate_limit_burst: Option<u32>,
    /// Seed of the fault-injection generator (default: random; see `GET /_sandbox/faults`).
    #[arg(long)]
    pub fault_seed: Option<u64>,
    /// part_size of chunked upload sessions, in bytes.
    #[arg(long, default_value_t = crate::state::DEFAULT_PART_SIZE)]
    pub part_size: u64,
    /// How many 202 + Retry-After replies a valid upload-session commit gets first.
    #[arg(long, default_value_t = 1)]
    pub commit_accepted: u32,
    /// The OTMM server variant to play (see `sandbox::dialect`): strict, jobs or locking.
    #[arg(long, value_enum, default_value_t = crate::dialect::OtmmDialect::Strict)]
    pub otmm_dialect: crate::dialect::OtmmDialect,
}

impl ServeArgs {
    /// The [`ServeOptions`] these flags stand for.
    pub fn into_options(self) -> ServeOptions {
        ServeOptions {
            listen: self.listen,
            state_dir: self.state_dir,
            scenario: self.scenario,
            token_lifetime_secs: self.token_lifetime_secs,
            import_delay_ms: self.import_delay_ms,
            rate_limit: match (self.rate_limit, self.rate_limit_per_minute) {
                (_, Some(per_minute)) => Some(crate::state::RateLimit {
                    per_minute,
                    burst: self.rate_limit_burst.unwrap_or(1),
                }),
                (Some(per_second), None) => Some(crate::state::RateLimit::per_second(per_second)),
                (None, None) => None,
            },
            fault_seed: self.fault_seed,
            part_size: self.part_size,
            commit_accepted_responses: self.commit_accepted,
            otmm_dialect: self.otmm_dialect,
        }
    }
}
