//! Test harness: a fresh PostgreSQL database per test, a sandbox per test (started by
//! [`sandbox::launch`], the launcher every test shares), and the real binaries run against both
//! with the `sandbox` config overlay.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use sandbox::launch::{Launch, Running};
use serde_json::Value;

/// Repository root (where `config/` lives).
pub(crate) fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `../shared/fixtures/media/{name}`; panics when it is absent (a test that needs it must fail,
/// not pass by skipping).
pub(crate) fn fixture(name: &str) -> PathBuf {
    let path = repo_root().join("../shared/fixtures/media").join(name);
    assert!(
        path.is_file(),
        "fixture {} is absent (../shared/fixtures/media holds the real media the tests need)",
        path.display()
    );
    path
}

/// Directory of the workspace's built binaries: `CS_BIN_DIR` if set, else target/debug (from
/// this test binary's path).
pub(crate) fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CS_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("test binary path");
    // target/debug/deps/e2e-xxxx -> target/debug
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

/// Path of a workspace binary; panics with the fix when it was not built.
pub(crate) fn bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.is_file(),
        "{} is not built: run scripts/test.sh (or `cargo build --workspace`) before `cargo test`",
        path.display()
    );
    path
}

/// Admin URL of the test PostgreSQL server.
pub(crate) fn admin_url() -> String {
    std::env::var("CS_TEST_DATABASE_URL")
        .or_else(|_| std::env::var("DATABASE_URL"))
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// A database created for one test and dropped afterwards.
pub(crate) struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub(crate) fn create() -> TestDb {
        let admin = admin_url();
        let mut client = postgres::Client::connect(&admin, postgres::NoTls)
            .unwrap_or_else(|error| panic!("cannot connect to test PostgreSQL at {admin}: {error} (scripts/test.sh sets it up)"));
        let name = format!("cs_test_{}_{}", std::process::id(), unique_suffix());
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create test database");
        let url = replace_db_name(&admin, &name);
        TestDb { name, url }
    }

    pub(crate) fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls).expect("connect to test database")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Ok(mut client) = postgres::Client::connect(&admin_url(), postgres::NoTls) {
            let _ = client.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{}_{}", COUNTER.fetch_add(1, Ordering::SeqCst), nanos)
}

fn replace_db_name(url: &str, name: &str) -> String {
    // postgres://user@host:port/db?params -> .../name?params
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let path_start = base[scheme_end..].find('/').map(|i| i + scheme_end);
    let host_part = match path_start {
        Some(i) => &base[..i],
        None => base,
    };
    format!("{host_part}/{name}{query}")
}

/// A sandbox for one test ([`sandbox::launch::Running`], stopped on drop) with what the e2e
/// tests add: the ready line as a public JSON field, shorthands for its keys and the variables
/// that point the binaries at it ([`Sandbox::env`]). Everything else (`state()`, `stats()`,
/// `add_fault()`, `clear_faults()`, ...) is [`Running`]'s, through `Deref`.
pub(crate) struct Sandbox {
    running: Running,
    /// The ready line, as `sandbox serve` prints it.
    pub ready: Value,
}

impl std::ops::Deref for Sandbox {
    type Target = Running;

    fn deref(&self) -> &Running {
        &self.running
    }
}

impl Sandbox {
    /// Starts the sandbox with the scenario at `scenario` (relative to the repo root).
    pub(crate) fn start(scenario: Option<&str>) -> Sandbox {
        let path = scenario.map(|scenario| repo_root().join(scenario));
        Sandbox::start_with(path.as_deref(), &[])
    }

    /// Starts the sandbox with a scenario file anywhere on disk (e.g. written into a temp dir by
    /// the test) and extra `sandbox serve` flags (`--fault-seed`, `--part-size`, ...); panics
    /// with the reason when it cannot start.
    ///
    /// Without an `--otmm-dialect` in `args`, the dialect is `CS_OTMM_DIALECT` when set (the
    /// dialect matrix of `scripts/test.sh`), else the sandbox's default (strict); [`Sandbox::env`]
    /// then gives the binaries the `dam.api` settings that match it.
    pub(crate) fn start_with(scenario: Option<&Path>, args: &[&str]) -> Sandbox {
        let mut launch = Launch::new().args(args);
        if !args.contains(&"--otmm-dialect") {
            if let Ok(dialect) = std::env::var("CS_OTMM_DIALECT") {
                if !dialect.is_empty() {
                    launch = launch.args(["--otmm-dialect", dialect.as_str()]);
                }
            }
        }
        if let Some(scenario) = scenario {
            launch = launch.scenario_file(scenario);
        }
        let running = launch.start();
        let ready = running.ready_line().clone();
        Sandbox { running, ready }
    }

    pub(crate) fn str(&self, key: &str) -> String {
        self.running.ready_str(key).to_string()
    }

    pub(crate) fn watched_folder_id(&self) -> String {
        self.watched_folder_id_at(0)
    }

    /// The ready line's `watched_folder_ids[index]`.
    pub(crate) fn watched_folder_id_at(&self, index: usize) -> String {
        self.ready["watched_folder_ids"][index]
            .as_str()
            .unwrap_or_else(|| panic!("no watched folder {index} in {}", self.ready))
            .to_string()
    }

    pub(crate) fn control(&self) -> String {
        self.control_url().to_string()
    }

    /// Uploads `source` into Box folder `folder_id` as `name`, as an agency would.
    pub(crate) fn agency_upload(&self, folder_id: &str, name: &str, source: &Path) -> Value {
        self.try_agency_upload(folder_id, name, source)
            .unwrap_or_else(|error| panic!("agency upload of {name:?} refused: {error}"))
    }

    /// Like [`Sandbox::agency_upload`], but a refusal (e.g. 400 item_name_invalid for a name Box
    /// does not allow) is returned as `Err` with the status and body.
    pub(crate) fn try_agency_upload(
        &self,
        folder_id: &str,
        name: &str,
        source: &Path,
    ) -> Result<Value, String> {
        let (status, reply) = self.running.agency_upload(folder_id, name, source);
        if (200..300).contains(&status) {
            Ok(reply)
        } else {
            Err(format!("{status} {reply}"))
        }
    }

    /// Makes matching requests fail with `status` (`count` times, or forever with `None`).
    pub(crate) fn fault(&self, method: &str, path_prefix: &str, status: u16, count: Option<u32>) {
        self.add_fault(serde_json::json!({ "method": method, "path_prefix": path_prefix, "status": status, "count": count }));
    }

    /// Environment for the binaries: the `sandbox` overlay's variables
    /// ([`sandbox::env::exports`], what `sandbox serve --env-file` writes) plus this test's
    /// config dir, database, temp dir and log level.
    pub(crate) fn env(&self, db: &TestDb, temp: &Path) -> Vec<(String, String)> {
        let mut variables = vec![
            (
                "CS_CONFIG_DIR".into(),
                repo_root().join("config").display().to_string(),
            ),
            ("CS_ENVIRONMENT".into(), "sandbox".into()),
            ("DATABASE_URL".into(), db.url.clone()),
            ("CS_TEMP_DIR".into(), temp.display().to_string()),
            ("RUST_LOG".into(), "info".into()),
        ];
        variables.extend(sandbox::env::exports(self.ready_line()).expect("sandbox environment"));
        variables
    }
}

/// A binary's stdout as text, also echoed to the test's stderr (shown when the test fails).
pub(crate) fn stdout(output: &Output) -> String {
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    eprintln!("--- stdout\n{text}");
    text
}

/// A binary's stderr as text.
pub(crate) fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub(crate) fn get_json(url: &str) -> Value {
    let agent = ureq::Agent::new_with_defaults();
    let mut response = agent
        .get(url)
        .call()
        .unwrap_or_else(|error| panic!("GET {url}: {error}"));
    response
        .body_mut()
        .read_json()
        .unwrap_or_else(|error| panic!("GET {url}: not JSON: {error}"))
}

pub(crate) fn post_json(url: &str, body: &Value) -> Value {
    let agent = ureq::Agent::new_with_defaults();
    let mut response = agent
        .post(url)
        .send_json(body)
        .unwrap_or_else(|error| panic!("POST {url}: {error}"));
    response.body_mut().read_json().unwrap_or(Value::Null)
}

/// One test's world: database, sandbox, temp dir.
pub(crate) struct World {
    pub db: TestDb,
    pub sandbox: Sandbox,
    pub temp: tempfile::TempDir,
}

impl World {
    pub(crate) fn new(scenario: Option<&str>) -> World {
        World {
            db: TestDb::create(),
            sandbox: Sandbox::start(scenario),
            temp: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// Runs a workspace binary with the sandbox environment; returns its output.
    pub(crate) fn run(&self, binary: &str, args: &[&str]) -> Output {
        let mut command = Command::new(bin(binary));
        command
            .args(args)
            .envs(self.sandbox.env(&self.db, self.temp.path()))
            .env_remove("CS_TEST_DATABASE_URL");
        let output = command.output().expect("run binary");
        eprintln!(
            "--- {binary} {args:?} exit {:?}\n{}",
            output.status.code(),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// Runs a binary and asserts it exits with `code`.
    pub(crate) fn run_ok(&self, binary: &str) -> Output {
        let output = self.run(binary, &[]);
        assert_eq!(output.status.code(), Some(0), "{binary} failed");
        output
    }
}

/// Polls `check` until it returns `Some`, or panics after `timeout`.
pub(crate) fn wait_for<T>(
    timeout: Duration,
    what: &str,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Files of the sandbox Box state whose parent folder is `folder_id`.
pub(crate) fn box_files_in(state: &Value, folder_id: &str) -> Vec<Value> {
    box_items_in(state, "files", folder_id)
}

/// Box folders of the sandbox state directly in `folder_id`.
pub(crate) fn box_folders_in(state: &Value, folder_id: &str) -> Vec<Value> {
    box_items_in(state, "folders", folder_id)
}

/// `kind` (`files` or `folders`) of the sandbox state directly in `folder_id`.
fn box_items_in(state: &Value, kind: &str, folder_id: &str) -> Vec<Value> {
    state["box"][kind]
        .as_array()
        .map(|files| {
            files
                .iter()
                .filter(|file| file["parent_id"] == folder_id)
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// Box folder of the sandbox state named `name` under `parent_id`.
pub(crate) fn box_folder(state: &Value, parent_id: &str, name: &str) -> Option<Value> {
    state["box"]["folders"]
        .as_array()?
        .iter()
        .find(|folder| folder["parent_id"] == parent_id && folder["name"] == name)
        .cloned()
}

/// DAM folder of the sandbox state named `name` under `parent_id`.
pub(crate) fn dam_folder(state: &Value, parent_id: &str, name: &str) -> Option<Value> {
    state["dam"]["folders"]
        .as_array()?
        .iter()
        .find(|folder| folder["parent_id"] == parent_id && folder["name"] == name)
        .cloned()
}

/// The campaign folder's status in the sandbox DAM.
pub(crate) fn campaign_status(state: &Value, campaign_id: &str) -> String {
    state["dam"]["folders"]
        .as_array()
        .and_then(|folders| folders.iter().find(|folder| folder["id"] == campaign_id))
        .and_then(|folder| folder["status"].as_str().map(str::to_string))
        .unwrap_or_default()
}

// ----- helpers added for the transport and secrets tests (issue 6) -----

impl World {
    /// A world whose sandbox runs `scenario` (a path anywhere) with extra `serve` arguments.
    pub(crate) fn with_sandbox(scenario: Option<&Path>, sandbox_args: &[&str]) -> World {
        World {
            db: TestDb::create(),
            sandbox: Sandbox::start_with(scenario, sandbox_args),
            temp: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// Runs a workspace binary with the sandbox environment, `extra` variables added or
    /// replacing it; returns its output (stderr is echoed like [`World::run`]).
    pub(crate) fn run_with_env(
        &self,
        binary: &str,
        args: &[&str],
        extra: &[(&str, &str)],
    ) -> Output {
        let mut command = Command::new(bin(binary));
        command
            .args(args)
            .envs(self.sandbox.env(&self.db, self.temp.path()))
            .env_remove("CS_TEST_DATABASE_URL");
        for (name, value) in extra {
            command.env(name, value);
        }
        let output = command.output().expect("run binary");
        eprintln!(
            "--- {binary} {args:?} exit {:?} ({} bytes of stderr)\n{}",
            output.status.code(),
            output.stderr.len(),
            tail(&String::from_utf8_lossy(&output.stderr), 60)
        );
        output
    }
}

impl World {
    /// [`World::run_with_env`] with the variables in `remove` taken out of the environment
    /// (e.g. `RUST_LOG`, so that `-vv` decides the log level).
    pub(crate) fn run_without(
        &self,
        binary: &str,
        args: &[&str],
        extra: &[(&str, &str)],
        remove: &[&str],
    ) -> Output {
        let mut command = Command::new(bin(binary));
        command
            .args(args)
            .envs(self.sandbox.env(&self.db, self.temp.path()))
            .env_remove("CS_TEST_DATABASE_URL");
        for (name, value) in extra {
            command.env(name, value);
        }
        for name in remove {
            command.env_remove(name);
        }
        let output = command.output().expect("run binary");
        eprintln!(
            "--- {binary} {args:?} without {remove:?} exit {:?} ({} bytes of stderr)\n{}",
            output.status.code(),
            output.stderr.len(),
            tail(&String::from_utf8_lossy(&output.stderr), 20)
        );
        output
    }
}

/// The last `lines` lines of `text`.
pub(crate) fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Copies the repository's `config/` directory to `dest/config` (for tests that edit it) and
/// returns the copy's path.
pub(crate) fn copy_config_dir(dest: &Path) -> PathBuf {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).expect("create config copy");
        for entry in std::fs::read_dir(from).expect("read config dir") {
            let entry = entry.expect("config entry");
            let target = to.join(entry.file_name());
            if entry.path().is_dir() {
                copy(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), &target).expect("copy config file");
            }
        }
    }
    let target = dest.join("config");
    copy(&repo_root().join("config"), &target);
    target
}

/// Panics unless `ffmpeg` runs (scripts/lib.sh installs it with ffprobe): a test that needs it
/// must fail, not pass by skipping.
pub(crate) fn require_ffmpeg() {
    let found = Command::new("ffmpeg")
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    assert!(
        found,
        "ffmpeg is not installed: run the tests with scripts/test.sh, which installs it with ffprobe"
    );
}

/// Writes a raw-video QuickTime file (`frames` frames of `source`, a lavfi source such as
/// `testsrc=size=1280x720:rate=25`) to `dest`: 1280x720 uyvy422 (QuickTime's `2vuy`, which
/// ffprobe reads back; raw yuv420p is not valid in .mov) is 1.84 MB per frame, so 109 frames
/// make a ~200 MB valid video in seconds.
pub(crate) fn ffmpeg_video(dest: &Path, source: &str, frames: u32) {
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(source)
        .arg("-frames:v")
        .arg(frames.to_string())
        .args(["-c:v", "rawvideo", "-pix_fmt", "uyvy422"])
        .arg(dest)
        .status()
        .expect("run ffmpeg");
    assert!(status.success(), "ffmpeg failed: {}", dest.display());
}

/// SHA-1 (lowercase hex) of a file, streamed.
pub(crate) fn sha1_of(path: &Path) -> String {
    scaling_core::http::sha1_file(path)
        .unwrap_or_else(|error| panic!("hash {}: {error}", path.display()))
        .0
}

/// `GET /_sandbox/stats` route counter `"{METHOD} {route template} {outcome}"` (0 when absent).
pub(crate) fn route_count(stats: &Value, key: &str) -> u64 {
    stats["routes"][key].as_u64().unwrap_or(0)
}

/// Sum of the route counters whose key starts with `prefix` (e.g. `"GET /2.0/folders/{id}/items "`).
pub(crate) fn route_count_prefix(stats: &Value, prefix: &str) -> u64 {
    stats["routes"]
        .as_object()
        .map(|routes| {
            routes
                .iter()
                .filter(|(key, _)| key.starts_with(prefix))
                .filter_map(|(_, count)| count.as_u64())
                .sum()
        })
        .unwrap_or(0)
}

// ----- helpers added for the exactly-once tests (issue 11) -----

/// Names of Box/OS debris that box-poll ignores and leaves in the watched folder.
fn is_debris(name: &str) -> bool {
    let lower = name.to_lowercase();
    name.starts_with('.')
        || name.starts_with("~$")
        || lower == "thumbs.db"
        || lower == "desktop.ini"
        || [".tmp", ".part", ".crdownload"]
            .iter()
            .any(|ext| lower.ends_with(ext))
}

/// The key of a DAM derivative: (tracking ID, clean name in NFC, version), from the asset name
/// and the tracking field `FERRERO.FIELD.CS TRACKING` (its first 6-character token is the
/// tracking ID, its `v{n}` token the version); `?` where the field says nothing.
pub(crate) fn asset_key(asset: &Value) -> (String, String, String) {
    use unicode_normalization::UnicodeNormalization;
    let name: String = asset["name"].as_str().unwrap_or_default().nfc().collect();
    let marker = asset["fields"]["FERRERO.FIELD.CS TRACKING"]
        .as_str()
        .unwrap_or_default();
    let tokens: Vec<&str> = marker
        .split([' ', ':', '/', '|', ','])
        .filter(|t| !t.is_empty())
        .collect();
    let tracking = tokens
        .first()
        .filter(|t| t.len() == 6 && t.chars().all(|c| c.is_ascii_alphanumeric()))
        .map_or("?".to_string(), |t| t.to_uppercase());
    let version = tokens
        .iter()
        .find_map(|t| {
            let digits = t.strip_prefix('v').or_else(|| t.strip_prefix('V'))?;
            (!digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()))
                .then(|| digits.parse::<u32>().ok())
                .flatten()
        })
        .map_or("?".to_string(), |v| v.to_string());
    (tracking, name, version)
}

/// The derivatives in every DAM folder named `Final Assets`.
pub(crate) fn final_assets(state: &Value) -> Vec<Value> {
    let finals: Vec<Value> = state["dam"]["folders"]
        .as_array()
        .map(|folders| {
            folders
                .iter()
                .filter(|folder| folder["name"] == "Final Assets")
                .map(|folder| folder["id"].clone())
                .collect()
        })
        .unwrap_or_default();
    state["dam"]["assets"]
        .as_array()
        .map(|assets| {
            assets
                .iter()
                .filter(|asset| finals.contains(&asset["folder_id"]))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// How many DAM derivatives there are per (tracking ID, clean name, version).
pub(crate) fn asset_key_counts(
    state: &Value,
) -> std::collections::BTreeMap<(String, String, String), usize> {
    let mut counts = std::collections::BTreeMap::new();
    for asset in final_assets(state) {
        *counts.entry(asset_key(&asset)).or_insert(0) += 1;
    }
    counts
}

/// Where a Box file is, relative to its watched folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Place {
    Watched,
    /// `_PROCESSED/{date}/`.
    Processed,
    Errors,
    Trash,
    Elsewhere(String),
    Missing,
}

/// Where file `file_id` is now (per the sandbox state).
pub(crate) fn place_of(world: &World, state: &Value, file_id: &str) -> Place {
    let watched: Vec<String> = world.sandbox.ready["watched_folder_ids"]
        .as_array()
        .map(|ids| {
            ids.iter()
                .filter_map(|id| id.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if state["box"]["trash"]
        .as_array()
        .is_some_and(|trash| trash.iter().any(|item| item["id"] == file_id))
    {
        return Place::Trash;
    }
    let Some(file) = state["box"]["files"]
        .as_array()
        .and_then(|files| files.iter().find(|file| file["id"] == file_id))
    else {
        return Place::Missing;
    };
    let parent = file["parent_id"].as_str().unwrap_or_default();
    for folder in &watched {
        if parent == folder {
            return Place::Watched;
        }
        if box_folder(state, folder, "_errors").is_some_and(|f| f["id"] == parent) {
            return Place::Errors;
        }
        if let Some(processed) = box_folder(state, folder, "_PROCESSED") {
            let processed_id = processed["id"].as_str().unwrap_or_default();
            if box_folders_in(state, processed_id)
                .iter()
                .any(|dated| dated["id"] == parent)
            {
                return Place::Processed;
            }
        }
    }
    Place::Elsewhere(file["path"].as_str().unwrap_or(parent).to_string())
}

/// Every violation of the exactly-once invariants (issue 11), one sentence each:
/// - every file an agency uploaded is in exactly one final place (`_PROCESSED/{date}/` or
///   `_errors/`; debris may stay in the watched folder), none in the trash;
/// - one DAM asset per delivered (tracking ID, clean name, version), and as many delivered keys
///   as agency files in `_PROCESSED/`;
/// - no `box_files` row (of the file's current version) non-final, and no `derivative_assets`
///   row pending/importing, for a file in `_PROCESSED/` or `_errors/`; no undelivered outbox row;
/// - each DAM status change once, each webhook and each email once per idempotency key.
pub(crate) fn exactly_once_problems(world: &World) -> Vec<String> {
    let state = world.sandbox.state();
    let mut problems = Vec::new();
    let files: Vec<Value> = state["box"]["files"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut processed_files = 0usize;
    let mut final_files: Vec<(String, String, Place)> = Vec::new();
    for file in files.iter().filter(|file| file["created_by"] == "agency") {
        let id = file["id"].as_str().unwrap_or_default().to_string();
        let name = file["name"].as_str().unwrap_or_default().to_string();
        let place = place_of(world, &state, &id);
        match &place {
            Place::Processed => processed_files += 1,
            Place::Errors => {}
            Place::Watched if is_debris(&name) => continue,
            other => problems.push(format!(
                "agency file {id} {name:?} is not in _PROCESSED/ or _errors/ but {other:?}"
            )),
        }
        let version = file["file_version_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        final_files.push((id, version, place));
    }
    let counts = asset_key_counts(&state);
    for (key, count) in &counts {
        if *count != 1 {
            problems.push(format!(
                "{count} DAM assets for one delivery (tracking ID, clean name, version) {key:?}"
            ));
        }
    }
    if counts.len() != processed_files {
        problems.push(format!(
            "{} distinct deliveries in the DAM but {processed_files} agency files in _PROCESSED/: {:?}",
            counts.len(),
            counts.keys().collect::<Vec<_>>()
        ));
    }
    let mut db = world.db.client();
    for (id, version, place) in &final_files {
        if !matches!(place, Place::Processed | Place::Errors) {
            continue;
        }
        for row in db
            .query(
                "SELECT state FROM box_files WHERE file_id = $1 AND file_version_id = $2",
                &[id, version],
            )
            .expect("box_files")
        {
            let ledger: String = row.get(0);
            if !["archived", "rejected", "ignored"].contains(&ledger.as_str()) {
                problems.push(format!(
                    "box_files row of file {id} version {version} is {ledger:?} although the file is in {place:?}"
                ));
            }
        }
        for row in db
            .query(
                "SELECT id, upload_status FROM derivative_assets WHERE box_file_id = $1 AND upload_status IN ('pending', 'importing')",
                &[id],
            )
            .expect("derivative_assets")
        {
            let (row_id, status): (i64, String) = (row.get(0), row.get(1));
            problems.push(format!(
                "derivative_assets row {row_id} of file {id} is {status:?} although the file is in {place:?}"
            ));
        }
    }
    for row in db
        .query(
            "SELECT idempotency_key, last_error FROM outbox WHERE sent_at IS NULL",
            &[],
        )
        .expect("outbox")
    {
        let (key, error): (String, Option<String>) = (row.get(0), row.get(1));
        problems.push(format!(
            "outbox row {key} never delivered (last error {error:?})"
        ));
    }
    let mut changes = std::collections::BTreeMap::new();
    for change in state["dam"]["status_changes"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        *changes
            .entry(format!(
                "{} {}->{}",
                change["folder_id"], change["from"], change["to"]
            ))
            .or_insert(0usize) += 1;
    }
    let mut hooks = std::collections::BTreeMap::new();
    for hook in state["webhooks"].as_array().cloned().unwrap_or_default() {
        let key = hook["headers"]["idempotency-key"]
            .as_str()
            .map_or_else(|| hook["body"].to_string(), str::to_string);
        *hooks.entry(key).or_insert(0usize) += 1;
    }
    let mut emails = std::collections::BTreeMap::new();
    for email in state["emails"].as_array().cloned().unwrap_or_default() {
        let key = email["headers"]["X-Idempotency-Key"]
            .as_str()
            .map_or_else(|| format!("(no key) {}", email["subject"]), str::to_string);
        *emails.entry(key).or_insert(0usize) += 1;
    }
    for (what, map) in [
        ("DAM status change", changes),
        ("webhook", hooks),
        ("email in the sandbox inbox", emails),
    ] {
        for (key, count) in map {
            if count > 1 {
                problems.push(format!("{what} {key} received {count} times"));
            }
        }
    }
    problems
}

/// Panics listing every violation of [`exactly_once_problems`].
pub(crate) fn assert_exactly_once_invariants(world: &World) {
    let problems = exactly_once_problems(world);
    assert!(
        problems.is_empty(),
        "exactly-once invariants violated:\n  - {}",
        problems.join("\n  - ")
    );
}

/// A TCP proxy in front of the test PostgreSQL server that counts the client's round trips:
/// every `Sync` (`S`, end of an extended-protocol batch) and simple `Query` (`Q`) message the
/// server answers, summed over every connection made through it. Connection start-up is not
/// counted. Connect through [`RoundTripProxy::url`] (TLS off, so the messages can be read).
pub(crate) struct RoundTripProxy {
    pub url: String,
    count: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl RoundTripProxy {
    /// Starts the proxy for the database at `db_url` (`postgres://user@host:port/name`).
    pub(crate) fn start(db_url: &str) -> RoundTripProxy {
        use std::net::{TcpListener, TcpStream};
        let (scheme_user, rest) = db_url.split_once('@').expect("database URL with user@");
        let (upstream, path) = rest.split_once('/').expect("database URL with a path");
        let upstream = upstream.to_string();
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy listener");
        let port = listener.local_addr().expect("proxy address").port();
        let count = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = count.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let (mut client_read, mut server_write) = (
                    client.try_clone().expect("clone"),
                    server.try_clone().expect("clone"),
                );
                let (mut server_read, mut client_write) = (server, client);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut server_read, &mut client_write);
                    let _ = client_write.shutdown(std::net::Shutdown::Both);
                });
                let counter = counter.clone();
                std::thread::spawn(move || {
                    count_frontend_messages(&mut client_read, &mut server_write, &counter);
                    let _ = server_write.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        let separator = if path.contains('?') { '&' } else { '?' };
        RoundTripProxy {
            url: format!("{scheme_user}@127.0.0.1:{port}/{path}{separator}sslmode=disable"),
            count,
        }
    }

    /// Round trips counted so far.
    pub(crate) fn round_trips(&self) -> u64 {
        self.count.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Forwards the client's bytes to the server, counting `S` and `Q` messages after the untyped
/// start-up message.
fn count_frontend_messages(
    from: &mut impl std::io::Read,
    to: &mut impl std::io::Write,
    count: &std::sync::atomic::AtomicU64,
) {
    let mut pending: Vec<u8> = Vec::new();
    let mut started = false;
    let mut buffer = [0_u8; 16 * 1024];
    while let Ok(read) = from.read(&mut buffer) {
        if read == 0 || to.write_all(&buffer[..read]).is_err() {
            return;
        }
        pending.extend_from_slice(&buffer[..read]);
        loop {
            let header = if started { 5 } else { 4 };
            if pending.len() < header {
                break;
            }
            let offset = header - 4;
            let length = u32::from_be_bytes([
                pending[offset],
                pending[offset + 1],
                pending[offset + 2],
                pending[offset + 3],
            ]) as usize;
            let total = offset + length;
            if pending.len() < total {
                break;
            }
            if started && matches!(pending[0], b'S' | b'Q') {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            started = true;
            pending.drain(..total);
        }
    }
}

/// The `dam.api` settings (as the sandbox overlay's variables) that match an OTMM dialect of the
/// sandbox ([`sandbox::dialect::OtmmDialect::client_settings`]).
pub(crate) fn dialect_settings(dialect: &str) -> &'static [(&'static str, &'static str)] {
    match dialect {
        "jobs" => sandbox::dialect::OtmmDialect::Jobs.client_settings(),
        "locking" => sandbox::dialect::OtmmDialect::Locking.client_settings(),
        _ => sandbox::dialect::OtmmDialect::Strict.client_settings(),
    }
}

/// The webhooks the sandbox received for the receiver `name` (`/_sandbox/webhooks/{name}`).
pub(crate) fn hooks_named(state: &Value, name: &str) -> Vec<Value> {
    state["webhooks"]
        .as_array()
        .map(|hooks| {
            hooks
                .iter()
                .filter(|hook| hook["name"] == name)
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// A real media file, its extension and the V2 asset type for a derivative of the demo master
/// `master` (a video for the .mp4 master, an image for the .png one, a banner otherwise).
pub(crate) fn derivative_media(master: &str) -> (PathBuf, &'static str, &'static str) {
    if master.ends_with(".mp4") {
        (fixture("bigbuckbunny.mp4"), "mp4", "video")
    } else if master.ends_with(".png") {
        (fixture("coffee.png"), "png", "image")
    } else {
        (fixture("rocket.jpg"), "jpg", "banner")
    }
}
