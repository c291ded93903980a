//! `sandbox`: the local Box / OTMM / Mailgun / webhook emulator (see the library docs).
//!
//! - `sandbox serve --listen 127.0.0.1:0 --state-dir DIR [--scenario FILE] [--token-lifetime-secs N]
//!   [--rate-limit N] [--fault-seed N] [--part-size BYTES] [--commit-accepted N]`
//!   prints one JSON line on stdout when ready, then serves until killed.
//! - `sandbox agency-upload --control-url URL --folder-id ID FILE [--name NAME]` uploads a file
//!   into Box as an agency would and prints the new file's JSON.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Local emulator of Box, OpenText Media Management, Mailgun and webhook receivers.
#[derive(Debug, Parser)]
#[command(name = "sandbox", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the emulator; prints one JSON line with URLs, IDs and credentials when ready.
    Serve {
        /// Main listen address (loopback only); port 0 picks a free port.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Directory for the generated Box app config, credentials and stored file contents.
        #[arg(long)]
        state_dir: PathBuf,
        /// Scenario YAML (campaigns, masters, lookup domains); default: one watched folder, no campaigns.
        #[arg(long)]
        scenario: Option<PathBuf>,
        /// Lifetime of Box access tokens, DAM tokens and DAM sessions, in seconds.
        #[arg(long, default_value_t = 3600)]
        token_lifetime_secs: u64,
        /// Milliseconds a DAM import job stays IN_PROGRESS (default: scenario value, else 300).
        #[arg(long)]
        import_delay_ms: Option<u64>,
        /// Box API requests allowed per access token per second (1 s window); more get 429
        /// rate_limit_exceeded with Retry-After. Default: no limit. Also `POST /_sandbox/config`.
        #[arg(long)]
        rate_limit: Option<u32>,
        /// Seed of the fault-injection generator (default: random; see `GET /_sandbox/faults`).
        #[arg(long)]
        fault_seed: Option<u64>,
        /// part_size of chunked upload sessions, in bytes.
        #[arg(long, default_value_t = sandbox::state::DEFAULT_PART_SIZE)]
        part_size: u64,
        /// How many 202 + Retry-After replies a valid upload-session commit gets first.
        #[arg(long, default_value_t = 1)]
        commit_accepted: u32,
    },
    /// Upload a file into a Box folder of a running sandbox as an agency collaborator.
    AgencyUpload {
        /// The sandbox's control URL (`control_url` of the ready line).
        #[arg(long)]
        control_url: String,
        /// Box folder ID to upload into.
        #[arg(long)]
        folder_id: String,
        /// The file to upload.
        file: PathBuf,
        /// Name in Box (default: the file's name).
        #[arg(long)]
        name: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("sandbox=info")),
        )
        .init();
    let result = match cli.command {
        Command::Serve {
            listen,
            state_dir,
            scenario,
            token_lifetime_secs,
            import_delay_ms,
            rate_limit,
            fault_seed,
            part_size,
            commit_accepted,
        } => serve(sandbox::server::ServeOptions {
            listen,
            state_dir,
            scenario,
            token_lifetime_secs,
            import_delay_ms,
            rate_limit_per_second: rate_limit,
            fault_seed,
            part_size,
            commit_accepted_responses: commit_accepted,
        }),
        Command::AgencyUpload {
            control_url,
            folder_id,
            file,
            name,
        } => sandbox::agency_upload::run(&control_url, &folder_id, &file, name.as_deref())
            .and_then(|body| print_line(&body)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn print_line(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{text}")?;
    stdout.flush()?;
    Ok(())
}

fn serve(options: sandbox::server::ServeOptions) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let server = sandbox::server::prepare(options).await?;
        print_line(&serde_json::to_string(&server.ready)?)?;
        tracing::info!(base_url = %server.ready.base_url, "sandbox ready");
        server.run().await
    })
}
