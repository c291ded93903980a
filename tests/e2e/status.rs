//! `reprocess status` tells the truth (issue 14): after real passes against the sandbox leave
//! delivered, superseded, rejected, retrying and in-progress files, every count and list matches
//! the sandbox and the database; it runs with only `DATABASE_URL` set and never migrates; the
//! status page renders in a real browser (headless Chromium) with the same content.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::util::{
    bin, box_files_in, box_folder, campaign_status, derivative_media, fixture, repo_root, TestDb,
    World,
};

const DEMO: &str = "crates/sandbox/scenarios/demo.yaml";
const BAD_NAME: &str = "Breakfast_image_EN_v1.png";
const CAMPAIGN_NUMBER: &str = "C-2026-0142";

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `reprocess ARGS` with a cleared environment: only `DATABASE_URL` (what a monitoring host
/// holds), the configuration directory and environment given as arguments.
fn status_only_db(database_url: &str, args: &[&str]) -> Output {
    let config = repo_root().join("config");
    let output = Command::new(bin("reprocess"))
        .env_clear()
        .env("DATABASE_URL", database_url)
        .arg("--config-dir")
        .arg(&config)
        .args(["--env", "sandbox"])
        .args(args)
        .output()
        .expect("run reprocess");
    eprintln!(
        "--- reprocess {args:?} (only DATABASE_URL) exit {:?}\n{}\n--- stdout\n{}",
        output.status.code(),
        text(&output.stderr),
        text(&output.stdout)
    );
    output
}

/// The demo campaign's masters in Box: (tracking ID, master file name).
fn masters(world: &World) -> Vec<(String, String)> {
    let state = world.sandbox.state();
    let root = world.sandbox.str("box_root_folder_id");
    let folder = box_folder(&state, &root, "C-2026-0142 Nutella Breakfast Moments")
        .expect("campaign folder in Box");
    let mut masters: Vec<(String, String)> =
        box_files_in(&state, folder["id"].as_str().expect("id"))
            .iter()
            .filter_map(|file| file["name"].as_str())
            .map(|name| (name[..6].to_string(), name[7..].to_string()))
            .collect();
    masters.sort();
    masters
}

/// Uploads a valid derivative of `master` at `version` into the watched folder; its Box id.
fn upload_derivative(world: &World, master: &(String, String), version: u32) -> String {
    let (source, ext, kind) = derivative_media(&master.1);
    let name = format!(
        "{}_Breakfast-Moments_{kind}_EN_9x16-15s_v{version:02}.{ext}",
        master.0
    );
    let watched = world.sandbox.watched_folder_id();
    let file = world.sandbox.agency_upload(&watched, &name, &source);
    file["id"].as_str().expect("uploaded file id").to_string()
}

fn ledger_state(world: &World, file_id: &str) -> String {
    world
        .db
        .client()
        .query_one(
            "SELECT state FROM box_files WHERE file_id = $1 ORDER BY updated_at DESC LIMIT 1",
            &[&file_id],
        )
        .expect("ledger row")
        .get(0)
}

/// The headless browser: `CS_CHROMIUM`, else Debian's `/usr/bin/chromium` (scripts/test.sh
/// installs it). Missing is a failure, as with ffmpeg: the test must not pass by skipping.
fn chromium() -> PathBuf {
    let path = std::env::var_os("CS_CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    assert!(
        path.is_file(),
        "{} not found: the status page browser test needs Debian's chromium (scripts/test.sh installs it with apt-get install chromium; or set CS_CHROMIUM)",
        path.display()
    );
    path
}

/// Runs headless Chromium on `page` with `args` (plus the headless flags); its stdout.
fn headless(browser: &Path, page: &Path, args: &[&str]) -> String {
    let profile = tempfile::tempdir().expect("browser profile dir");
    let output = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium");
    assert!(
        output.status.success(),
        "chromium {args:?} failed: {}",
        text(&output.stderr)
    );
    text(&output.stdout)
}

/// Issue 14, "What it must show": delivered, superseded, rejected, retrying and in-progress
/// files from real passes; `status` (only `DATABASE_URL` set) counts and lists exactly them,
/// with each file's error and the command that acts on it; the status page shows the same in
/// headless Chromium (screenshot under target/); the listed command works; then the campaign
/// reaches A3 and `reprocess campaign C-2026-0142` (by number) has nothing to do (exit 0).
#[test]
fn status_counts_and_lists_what_the_passes_left_and_the_page_shows_it() {
    let world = World::new(Some(DEMO));
    world.run_ok("a1-to-a2");
    let masters = masters(&world);
    assert_eq!(masters.len(), 3);
    let watched = world.sandbox.watched_folder_id();

    // Delivered, then re-delivered at v02: one derivative delivered, one delivery superseded.
    upload_derivative(&world, &masters[0], 1);
    world.run_ok("box-poll");
    upload_derivative(&world, &masters[0], 2);
    world.run_ok("box-poll");
    // Rejected: a bad name goes to _errors/.
    let bad = world
        .sandbox
        .agency_upload(&watched, BAD_NAME, &fixture("coffee.png"));
    let rejected_id = bad["id"].as_str().expect("id").to_string();
    world.run_ok("box-poll");
    assert_eq!(ledger_state(&world, &rejected_id), "rejected");
    // Waiting for a retry: Box answers 503 to its download for a whole pass.
    let retry_id = upload_derivative(&world, &masters[1], 1);
    world
        .sandbox
        .fault("GET", &format!("/2.0/files/{retry_id}/content"), 503, None);
    let _ = world.run("box-poll", &[]);
    world.sandbox.clear_faults();
    assert_eq!(ledger_state(&world, &retry_id), "failed_transient");
    // In progress: a claim a live pass holds now (lease ahead); and a claim whose pass died
    // (lease expired), which is waiting for a retry, not in progress.
    world
        .db
        .client()
        .execute(
            "INSERT INTO box_files (file_id, file_version_id, watched_folder_id, name, state, lease_owner, lease_expires_at)
             VALUES ('7770001', '1', $1, 'live-claim.png', 'claimed', 'other-host:4242:1', now() + interval '10 minutes'),
                    ('7770002', '1', $1, 'dead-claim.png', 'claimed', 'other-host:4243:1', now() - interval '10 minutes')",
            &[&watched],
        )
        .expect("insert claims");

    // Status with only DATABASE_URL: no Box, DAM or Mailgun variable.
    let output = status_only_db(&world.db.url, &["status", "--json"]);
    assert_eq!(output.status.code(), Some(0));
    let json: Value = serde_json::from_str(&text(&output.stdout)).expect("status JSON");
    let figures = &json["figures"];
    assert_eq!(figures["derivatives_delivered"], 1, "{figures}");
    assert_eq!(figures["deliveries_superseded"], 1, "{figures}");
    assert_eq!(figures["files_in_errors"], 1, "{figures}");
    assert_eq!(figures["files_waiting_retry"], 2, "{figures}");
    assert_eq!(figures["files_in_progress"], 1, "{figures}");
    assert_eq!(figures["imports_unconfirmed"], 0, "{figures}");
    assert_eq!(figures["campaigns_by_status"]["A2"], 1, "{figures}");
    // The lists: the rejected file and the two waiting ones, each with folder, error, command.
    let files = json["files"].as_array().expect("files");
    let rejected = files
        .iter()
        .find(|file| file["file_id"] == rejected_id.as_str())
        .expect("the rejected file is listed");
    assert_eq!(rejected["list"], "in_errors");
    assert_eq!(rejected["name"], BAD_NAME);
    assert_eq!(rejected["watched_folder_id"], watched.as_str());
    assert_eq!(rejected["watched_folder_name"], "incoming");
    assert_eq!(rejected["command"], format!("reprocess file {rejected_id}"));
    assert!(
        rejected["error_line"]
            .as_str()
            .is_some_and(|error| !error.is_empty()),
        "{rejected}"
    );
    let retrying = files
        .iter()
        .find(|file| file["file_id"] == retry_id.as_str())
        .expect("the retrying file is listed");
    assert_eq!(retrying["list"], "waiting_retry");
    assert!(
        retrying["error_line"]
            .as_str()
            .is_some_and(|error| error.contains("503")),
        "{retrying}"
    );
    assert_eq!(retrying["command"], format!("reprocess file {retry_id}"));
    assert!(
        files.iter().all(|file| file["file_id"] != "7770001"),
        "a file a live pass holds is in progress, not on a list"
    );
    assert_eq!(files.len(), 3, "{files:?}");
    // The campaign's progress and the folder's health.
    let campaign = &json["campaigns"][0];
    assert_eq!(campaign["campaign_number"], CAMPAIGN_NUMBER);
    assert_eq!(campaign["masters_total"], 3);
    assert_eq!(campaign["masters_in_box"], 3);
    assert_eq!(campaign["masters_with_derivative"], 1);
    let folder = &json["folders"][0];
    assert_eq!(folder["name"], "incoming");
    assert_eq!(folder["health"], "ok");
    assert!(folder["record"]["last_listed_at"].is_string(), "{folder}");

    // Text with --files: the same, readable, with the command for each file.
    let output = status_only_db(&world.db.url, &["status", "--files"]);
    assert_eq!(output.status.code(), Some(0));
    let report = text(&output.stdout);
    for expected in [
        "1 delivered to the DAM, 1 superseded by a higher version",
        "1 rejected (in _errors/), 2 waiting for a retry, 1 in progress (held by a live pass now)",
        "C-2026-0142 \"Nutella Breakfast Moments\" (A2): masters in Box 3 of 3, derivatives 1 of 3",
        &format!("incoming ({watched}): ok, last listed"),
        &format!("{rejected_id} \"{BAD_NAME}\" in incoming ({watched})"),
        &format!("then run: reprocess file {rejected_id}"),
        &format!("now: reprocess file {retry_id}"),
        "files in _errors/ (1):",
        "files waiting for a retry (2):",
    ] {
        assert!(
            report.contains(expected),
            "missing {expected:?} in:\n{report}"
        );
    }
    assert!(
        !report.contains("4 in progress"),
        "rejected files are not in progress"
    );

    // The status page, in a real browser.
    let page = world.temp.path().join("www").join("status.html");
    std::fs::create_dir_all(page.parent().expect("dir")).expect("web root");
    let output = status_only_db(
        &world.db.url,
        &["status", "--html", page.to_str().expect("utf-8 path")],
    );
    assert_eq!(output.status.code(), Some(0));
    let html = std::fs::read_to_string(&page).expect("status page written");
    assert!(
        !html.contains("<script"),
        "works without JavaScript: no script"
    );
    for external in ["src=\"http", "href=\"http", "url(http", "<link", "@import"] {
        assert!(
            !html.contains(external),
            "self-contained: {external} in the page"
        );
    }
    let browser = chromium();
    let dom = headless(&browser, &page, &["--dump-dom"]);
    for expected in [
        "C-2026-0142",
        "1 of 3",
        "3 of 3",
        "incoming",
        &watched,
        BAD_NAME,
        &rejected_id,
        &format!("reprocess file {rejected_id}"),
        &format!("reprocess file {retry_id}"),
        "Files in _errors (1)",
        "Waiting for a retry (2)",
        "id=\"timeline\"",
    ] {
        assert!(
            dom.contains(expected),
            "rendered page lacks {expected:?}:\n{dom}"
        );
    }
    let screenshot = repo_root().join("target").join("status-page.png");
    std::fs::create_dir_all(screenshot.parent().expect("target")).expect("target dir");
    let _ = std::fs::remove_file(&screenshot);
    headless(
        &browser,
        &page,
        &[
            &format!("--screenshot={}", screenshot.display()),
            "--window-size=1200,1600",
        ],
    );
    let size = std::fs::metadata(&screenshot)
        .map(|meta| meta.len())
        .unwrap_or(0);
    assert!(
        size > 10_000,
        "screenshot {} is {size} bytes",
        screenshot.display()
    );
    eprintln!("figures: status page screenshot: {}", screenshot.display());

    // The command status printed for the retrying file delivers it now.
    let output = world.run("reprocess", &["file", &retry_id]);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(ledger_state(&world, &retry_id), "archived");
    // The last master's derivative: the campaign completes (A3).
    world
        .db
        .client()
        .execute(
            "DELETE FROM box_files WHERE file_id IN ('7770001', '7770002')",
            &[],
        )
        .expect("remove the test claims");
    upload_derivative(&world, &masters[2], 1);
    world.run_ok("box-poll");
    let campaign_id = json["campaigns"][0]["dam_folder_id"]
        .as_str()
        .expect("dam id")
        .to_string();
    assert_eq!(campaign_status(&world.sandbox.state(), &campaign_id), "A3");
    // Idempotent commands: nothing to do is exit 0, and says so; by campaign number.
    let output = world.run("reprocess", &["campaign", CAMPAIGN_NUMBER]);
    let said = text(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{said}");
    assert!(
        said.contains("nothing to do: it is at A3 already"),
        "{said}"
    );
    let output = world.run("reprocess", &["file", &retry_id]);
    let said = text(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{said}");
    assert!(said.contains("nothing to do: it was delivered"), "{said}");
    let output = status_only_db(&world.db.url, &["status", "--json"]);
    let json: Value = serde_json::from_str(&text(&output.stdout)).expect("status JSON");
    assert_eq!(json["figures"]["derivatives_delivered"], 3);
    assert_eq!(json["figures"]["files_waiting_retry"], 0);
    assert_eq!(json["campaigns"][0]["masters_with_derivative"], 3);
}

/// A watched folder Box refuses to list (403) shows as such, with the fix, not as a stopped cron.
#[test]
fn a_folder_box_refuses_shows_its_error_and_the_fix() {
    let world = World::new(Some(DEMO));
    world.run_ok("a1-to-a2");
    world.run_ok("box-poll");
    let watched = world.sandbox.watched_folder_id();
    world
        .sandbox
        .fault("GET", &format!("/2.0/folders/{watched}/items"), 403, None);
    let _ = world.run_with_env("box-poll", &[], &[("POLLING_EVENTS_STREAM", "false")]);
    let output = status_only_db(&world.db.url, &["status"]);
    assert_eq!(output.status.code(), Some(0));
    let report = text(&output.stdout);
    assert!(
        report.contains(&format!("incoming ({watched}): ERROR: Box:")),
        "{report}"
    );
    assert!(report.contains("403"), "{report}");
    assert!(
        report
            .contains("fix: invite the service account (the Box app's automation user) as Editor"),
        "{report}"
    );
    assert!(
        !report.contains("is its cron job or timer running"),
        "box-poll runs; it is the folder that fails: {report}"
    );
    let output = status_only_db(&world.db.url, &["status", "--check"]);
    let line = text(&output.stdout);
    assert!(
        matches!(output.status.code(), Some(1 | 2)),
        "a refused folder is a WARNING (an alerted incident CRITICAL): {line}"
    );
    assert_eq!(line.lines().count(), 1, "one line: {line}");
    assert!(line.contains("watched folder incoming"), "{line}");
}

/// `status` never migrates: on an empty database it says what to do and creates nothing.
#[test]
fn status_never_migrates_an_empty_database() {
    let db = TestDb::create();
    let output = status_only_db(&db.url, &["status"]);
    assert_eq!(output.status.code(), Some(0));
    let report = text(&output.stdout);
    assert!(report.contains("database not initialised"), "{report}");
    assert!(report.contains("run a pass (or `cleanup`)"), "{report}");
    let output = status_only_db(&db.url, &["status", "--check"]);
    assert_eq!(output.status.code(), Some(1), "WARNING");
    assert!(text(&output.stdout).starts_with("CONTENT-SCALING WARNING - database not initialised"));
    let tables: i64 = db
        .client()
        .query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
            &[],
        )
        .expect("tables")
        .get(0);
    assert_eq!(
        tables, 0,
        "status created nothing (no refinery_schema_history)"
    );
    // --dry-run means nothing to status: a usage error.
    let output = status_only_db(&db.url, &["status", "--dry-run"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("--dry-run does not apply"));
}
