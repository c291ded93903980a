//! `sandbox`: the local Box / OTMM / Mailgun / webhook emulator (see the library docs).
//!
//! - `sandbox serve --listen 127.0.0.1:0 --state-dir DIR [--scenario FILE] [--token-lifetime-secs N]
//!   [--rate-limit N | --rate-limit-per-minute N [--rate-limit-burst N]] [--fault-seed N] [--part-size BYTES] [--commit-accepted N]`
//!   prints one JSON line on stdout when ready, then serves until killed.
//! - `sandbox agency-upload --control-url URL --folder-id ID FILE [--name NAME]` uploads a file
//!   into Box as an agency would and prints the new file's JSON.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sandbox::cli::ServeArgs;

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
    Serve(ServeArgs),
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
        Command::Serve(args) => serve(args.into_options()),
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
            #[expect(clippy::print_stderr, reason = "the sandbox binary's error report")]
            {
                eprintln!("error: {error:#}");
            }
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
