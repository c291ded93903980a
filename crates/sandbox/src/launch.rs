//! The one way tests start a sandbox: the end-to-end tests (`tests/e2e`), the clients' tests in
//! `scaling-core` and this crate's own tests all call [`Launch::start`] and talk to the
//! [`Running`] sandbox it returns (its URLs, its control API, stopped when dropped).
//!
//! ```no_run
//! let sandbox = sandbox::launch::Launch::new()
//!     .scenario_text("dam:\n  campaigns: [{number: C-1, name: One, status: A1}]\n")
//!     .args(["--fault-seed", "7"])
//!     .start();
//! assert!(sandbox.state()["dam"]["folders"].is_array());
//! ```
//!
//! # In-process, not the binary
//!
//! The sandbox runs on its own thread and tokio runtime inside the test process
//! ([`BackgroundServer`]), through the very startup the `sandbox serve` binary runs
//! ([`crate::server::prepare`], flags parsed by the same [`ServeArgs`]); the binary adds only
//! the ready line on stdout, which `tests/it/api.rs` checks by running it. Spawning the binary
//! instead would make every test depend on a build step `cargo test` does not do for another
//! package: the launcher would have to guess the target directory (`CARGO_TARGET_DIR`,
//! `CS_BIN_DIR`, `target/debug`), could run a stale binary built from older sources, and
//! either fail on a fresh checkout or (as the clients' tests did) skip. In-process, `cargo test`
//! builds exactly the sandbox it runs, startup errors come back as an error chain rather than
//! an empty ready line, and dropping [`Running`] shuts the server down and joins its thread.
//! The price: the sandbox shares the test process (each connection is its own tokio task, so a
//! panic in a handler ends that connection, not the test; it logs nothing unless the test
//! installs a `tracing` subscriber).
//!
//! Nothing here skips: a missing scenario or media file, a bad flag or a port that cannot be
//! bound makes [`Launch::start`] panic with the reason, and every control-API helper panics with
//! the request and the reply when the sandbox refuses.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use serde_json::Value;

use crate::cli::ServeArgs;
use crate::server::{BackgroundServer, ReadyInfo};

/// What to start: a scenario, files next to it, and `sandbox serve` flags.
#[derive(Debug, Default)]
pub struct Launch {
    scenario: Option<ScenarioSource>,
    files: Vec<(PathBuf, Vec<u8>)>,
    args: Vec<String>,
}

#[derive(Debug)]
enum ScenarioSource {
    File(PathBuf),
    Text(String),
}

/// `sandbox serve` flags as a test gives them (the state directory is the launch's own).
#[derive(Debug, Parser)]
#[command(name = "sandbox serve", no_binary_name = true)]
struct LaunchArgs {
    #[command(flatten)]
    serve: ServeArgs,
}

impl Launch {
    /// The default scenario (one watched folder `incoming`, no campaigns), default flags.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs the scenario file at `path` (relative paths from the test's working directory, the
    /// package root under `cargo test`; media paths inside it relative to the file).
    #[must_use]
    pub fn scenario_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.scenario = Some(ScenarioSource::File(path.into()));
        self
    }

    /// Runs a scenario given as YAML text (written to `scenario.yaml` in the launch's temporary
    /// directory, so its media paths are relative to that directory: see [`Launch::file`]).
    #[must_use]
    pub fn scenario_text(mut self, yaml: impl Into<String>) -> Self {
        self.scenario = Some(ScenarioSource::Text(yaml.into()));
        self
    }

    /// Writes `contents` to `relative` inside the launch's temporary directory before the
    /// sandbox starts (media files an inline scenario names).
    #[must_use]
    pub fn file(mut self, relative: impl Into<PathBuf>, contents: impl Into<Vec<u8>>) -> Self {
        self.files.push((relative.into(), contents.into()));
        self
    }

    /// Adds `sandbox serve` flags (`--fault-seed 7`, `--part-size 4194304`,
    /// `--token-lifetime-secs 2`, `--listen ADDR`, ...); parsed like the binary's command line.
    #[must_use]
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.args
            .extend(args.into_iter().map(|arg| arg.as_ref().to_owned()));
        self
    }

    /// Starts the sandbox and returns once both ports are bound.
    ///
    /// # Panics
    /// When [`Launch::try_start`] fails, with the whole error chain.
    pub fn start(self) -> Running {
        self.try_start()
            .unwrap_or_else(|error| panic!("the sandbox did not start: {error:#}"))
    }

    /// Starts the sandbox and returns once both ports are bound.
    ///
    /// # Errors
    /// A flag `sandbox serve` does not accept, a temporary directory or file that cannot be
    /// written, or anything [`crate::server::prepare`] refuses (a missing scenario or media
    /// file, an invalid scenario, a non-loopback address, a port that cannot be bound).
    pub fn try_start(self) -> anyhow::Result<Running> {
        let dir = tempfile::tempdir().context("creating the sandbox's temporary directory")?;
        for (relative, contents) in &self.files {
            let path = dir.path().join(relative);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
            }
            std::fs::write(&path, contents)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        let scenario = match self.scenario {
            None => None,
            Some(ScenarioSource::File(path)) => Some(path),
            Some(ScenarioSource::Text(text)) => {
                let path = dir.path().join("scenario.yaml");
                std::fs::write(&path, text)
                    .with_context(|| format!("writing {}", path.display()))?;
                Some(path)
            }
        };
        let mut command_line = vec![
            "--state-dir".to_owned(),
            dir.path().join("state").display().to_string(),
        ];
        if let Some(scenario) = scenario {
            command_line.push("--scenario".to_owned());
            command_line.push(scenario.display().to_string());
        }
        command_line.extend(self.args);
        let parsed = LaunchArgs::try_parse_from(&command_line)
            .with_context(|| format!("sandbox serve flags {command_line:?}"))?;
        let server = BackgroundServer::start(parsed.serve.into_options())?;
        let ready_line =
            serde_json::to_value(&server.ready).context("serialising the ready line")?;
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_mins(10)))
            .build()
            .into();
        Ok(Running {
            server,
            ready_line,
            agent,
            dir,
        })
    }
}

/// An HTTP agent for tests that talk to the sandbox's APIs as a client would: error statuses come
/// back as responses, no redirect is followed (a test sees Box's 302 to the download host), and a
/// request gives up after 60 s.
pub fn client_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_mins(1)))
        .build()
        .into()
}

/// A sandbox serving on loopback until dropped (dropping stops it, joins its thread and removes
/// its temporary directory).
pub struct Running {
    // Declared first so that it is dropped (the server stopped) before the directory goes.
    server: BackgroundServer,
    ready_line: Value,
    agent: ureq::Agent,
    dir: tempfile::TempDir,
}

impl Running {
    /// URLs, IDs and credentials (what `sandbox serve` prints as its ready line).
    pub fn ready(&self) -> &ReadyInfo {
        &self.server.ready
    }

    /// The ready line as JSON, exactly as `sandbox serve` prints it (for lookups by key and for
    /// handing to other processes).
    pub fn ready_line(&self) -> &Value {
        &self.ready_line
    }

    /// The ready line's string `key` (`base_url`, `dam_password`, ...).
    ///
    /// # Panics
    /// When the ready line has no string under `key`.
    pub fn ready_str(&self, key: &str) -> &str {
        self.ready_line[key]
            .as_str()
            .unwrap_or_else(|| panic!("the ready line has no string {key}: {}", self.ready_line))
    }

    /// Box API root without `/2.0` (`http://127.0.0.1:PORT`).
    pub fn base_url(&self) -> &str {
        &self.server.ready.base_url
    }

    /// Control API root (`http://127.0.0.1:PORT/_sandbox`).
    pub fn control_url(&self) -> &str {
        &self.server.ready.control_url
    }

    /// The launch's temporary directory (inline scenario, its files, `state/`); removed on drop.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Sends `method` (`GET`, `POST`, `DELETE`) to `{control_url}{path}` with an optional JSON
    /// body; returns the status and the JSON reply (`Null` when empty or not JSON).
    ///
    /// # Panics
    /// When the request cannot be sent (the sandbox is not serving) or `method` is none of the
    /// three.
    pub fn control_request(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let url = format!("{}{path}", self.control_url());
        let sent = match (method, body) {
            ("POST", Some(body)) => self.agent.post(&url).send_json(body),
            ("POST", None) => self.agent.post(&url).send_empty(),
            ("GET", _) => self.agent.get(&url).call(),
            ("DELETE", _) => self.agent.delete(&url).call(),
            _ => panic!("control request {method} {url}: only GET, POST and DELETE are used"),
        };
        let mut response = sent.unwrap_or_else(|error| panic!("{method} {url}: {error}"));
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .unwrap_or_else(|error| panic!("{method} {url}: reading the reply: {error}"));
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Like [`Running::control_request`], but the reply must be a success (2xx).
    ///
    /// # Panics
    /// On a transport failure or any other status, with the reply.
    pub fn control_ok(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let (status, reply) = self.control_request(method, path, body);
        assert!(
            (200..300).contains(&status),
            "{method} {}{path} answered {status}: {reply}",
            self.control_url()
        );
        reply
    }

    /// `GET /_sandbox/state`: Box, DAM, emails and webhooks as the sandbox holds them.
    ///
    /// # Panics
    /// When the control API does not answer 2xx.
    pub fn state(&self) -> Value {
        self.control_ok("GET", "/state", None)
    }

    /// `GET /_sandbox/stats`: request counters per route and outcome.
    ///
    /// # Panics
    /// When the control API does not answer 2xx.
    pub fn stats(&self) -> Value {
        self.control_ok("GET", "/stats", None)
    }

    /// Adds a fault rule in any shape `POST /_sandbox/faults` accepts (see [`crate::faults`]);
    /// returns the rule as the sandbox stored it.
    ///
    /// # Panics
    /// When the sandbox refuses the rule.
    pub fn add_fault(&self, rule: Value) -> Value {
        self.control_ok("POST", "/faults", Some(&rule))
    }

    /// Removes every fault rule.
    ///
    /// # Panics
    /// When the control API does not answer 2xx.
    pub fn clear_faults(&self) {
        self.control_ok("DELETE", "/faults", None);
    }

    /// Uploads the local file `source` into Box folder `folder_id` as `name`, as an agency would
    /// (`POST /_sandbox/agency-upload`); returns the status and the reply (the Box file object,
    /// or the error a refused name gets, e.g. 400 `item_name_invalid`).
    ///
    /// # Panics
    /// When the request cannot be sent.
    pub fn agency_upload(&self, folder_id: &str, name: &str, source: &Path) -> (u16, Value) {
        let body =
            serde_json::json!({ "folder_id": folder_id, "name": name, "source_path": source });
        self.control_request("POST", "/agency-upload", Some(&body))
    }
}
