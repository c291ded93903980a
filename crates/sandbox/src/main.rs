//! `sandbox`: the local Box / OTMM / Mailgun / webhook emulator (see the library docs).
//!
//! - `sandbox serve --listen 127.0.0.1:0 --state-dir DIR [--scenario FILE] [--token-lifetime-secs N]
//!   [--rate-limit N | --rate-limit-per-minute N [--rate-limit-burst N]] [--fault-seed N] [--part-size BYTES] [--commit-accepted N]`
//!   prints one JSON line on stdout when ready, then serves until killed.
//!   With `--env-file FILE` it also writes the binaries' environment there as `export` lines
//!   (mode 0600: it holds the sandbox's credentials) before the ready line.
//! - `sandbox env [READY_FILE]` prints that environment as `export` lines from a saved ready
//!   line (a file, or stdin).
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
    Serve {
        #[command(flatten)]
        args: ServeArgs,
        /// Also write the binaries' environment (`export NAME='value'` lines, mode 0600) to FILE
        /// when ready: `source FILE` in a shell, then run the binaries by hand.
        #[arg(long, value_name = "FILE")]
        env_file: Option<PathBuf>,
    },
    /// Print the binaries' environment as `export` lines from a saved ready line (FILE, or
    /// stdin): `eval "$(sandbox env ready.json)"`.
    Env {
        /// The ready line `sandbox serve` printed (default: stdin).
        ready_file: Option<PathBuf>,
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
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty()),
        )
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("sandbox=info")),
        )
        .init();
    let result = match cli.command {
        Command::Serve { args, env_file } => serve(args.into_options(), env_file),
        Command::Env { ready_file } => print_env(ready_file),
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

fn print_env(ready_file: Option<PathBuf>) -> anyhow::Result<()> {
    let text = match &ready_file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|error| anyhow::anyhow!("cannot read {}: {error}", path.display()))?,
        None => std::io::read_to_string(std::io::stdin())?,
    };
    let ready: serde_json::Value = serde_json::from_str(text.trim())
        .map_err(|error| anyhow::anyhow!("not a ready line (JSON): {error}"))?;
    let variables = sandbox::env::exports(&ready).map_err(anyhow::Error::msg)?;
    print_line(sandbox::env::export_lines(&variables).trim_end())
}

/// Writes the environment file privately (0600, created fresh) before the ready line.
fn write_env_file(path: &std::path::Path, ready: &serde_json::Value) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let variables = sandbox::env::exports(ready).map_err(anyhow::Error::msg)?;
    // A stale file from an earlier run would hold another sandbox's credentials.
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => {
            return Err(anyhow::anyhow!(
                "cannot replace {}: {error}",
                path.display()
            ))
        }
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|error| anyhow::anyhow!("cannot create {}: {error}", path.display()))?;
    file.write_all(sandbox::env::export_lines(&variables).as_bytes())?;
    Ok(())
}

fn serve(options: sandbox::server::ServeOptions, env_file: Option<PathBuf>) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let server = sandbox::server::prepare(options).await?;
        if let Some(path) = &env_file {
            write_env_file(path, &serde_json::to_value(&server.ready)?)?;
        }
        print_line(&serde_json::to_string(&server.ready)?)?;
        tracing::info!(base_url = %server.ready.base_url, "sandbox ready");
        server.run().await
    })
}
