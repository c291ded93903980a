//! The main flow end to end (issue 2): A1 -> A2 -> A3 on the demo scenario, partial failures,
//! rejections, overlapping passes.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;

use crate::util::{box_files_in, box_folder, campaign_status, dam_folder, fixture, World};

const DEMO: &str = "crates/sandbox/scenarios/demo.yaml";

struct Campaign {
    id: String,
    box_folder_id: String,
    /// master name in the DAM -> tracking ID (from the Box names).
    tracking_ids: BTreeMap<String, String>,
}

fn campaign_after_a1(world: &World) -> Campaign {
    let state = world.sandbox.state();
    let id = world.sandbox.ready["campaigns"][0]["folder_id"]
        .as_str()
        .expect("campaign id")
        .to_string();
    let root = world.sandbox.str("box_root_folder_id");
    let folder = box_folder(&state, &root, "C-2026-0142 Nutella Breakfast Moments")
        .expect("campaign folder in Box");
    let box_folder_id = folder["id"].as_str().expect("id").to_string();
    let mut tracking_ids = BTreeMap::new();
    for file in box_files_in(&state, &box_folder_id) {
        let name = file["name"].as_str().expect("name");
        let (tracking_id, original) = name.split_at(6);
        tracking_ids.insert(
            original.trim_start_matches('_').to_string(),
            tracking_id.to_string(),
        );
    }
    Campaign {
        id,
        box_folder_id,
        tracking_ids,
    }
}

fn is_crockford(id: &str) -> bool {
    id.len() == 6
        && id
            .chars()
            .all(|c| "0123456789ABCDEFGHJKMNPQRSTVWXYZ".contains(c))
}

fn dam_asset_fields(asset: &Value) -> BTreeMap<String, String> {
    asset["fields"]
        .as_object()
        .map(|fields| {
            fields
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| v.to_string()),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn campaign_goes_a1_a2_a3_with_rejections_and_notifications() {
    let world = World::new(Some(DEMO));
    let video = fixture("bigbuckbunny.mp4");
    let png = fixture("coffee.png");
    let jpg = fixture("rocket.jpg");

    // --- a1-to-a2: masters into Box with tracking IDs, status A2, email + webhook.
    world.run_ok("a1-to-a2");
    let campaign = campaign_after_a1(&world);
    let state = world.sandbox.state();
    assert_eq!(campaign_status(&state, &campaign.id), "A2");
    assert_eq!(
        campaign.tracking_ids.len(),
        3,
        "three masters in the Box campaign folder: {:?}",
        campaign.tracking_ids
    );
    for (name, tracking_id) in &campaign.tracking_ids {
        assert!(
            is_crockford(tracking_id),
            "tracking ID {tracking_id} of {name} is Crockford base32"
        );
    }
    let mut db = world.db.client();
    let rows = db
        .query(
            "SELECT tracking_id, status, box_file_id, full_metadata FROM master_assets ORDER BY id",
            &[],
        )
        .expect("masters");
    assert_eq!(rows.len(), 3);
    for row in &rows {
        let status: String = row.get(1);
        assert_eq!(status, "uploaded");
        let metadata: Value = row.get(3);
        assert!(
            metadata.to_string().contains("ARTESIA.FIELD.ASSET NAME"),
            "full DAM metadata stored for the master: {metadata}"
        );
    }
    let emails = state["emails"].as_array().cloned().unwrap_or_default();
    assert_eq!(emails.len(), 1, "one A2 success email: {emails:?}");
    let webhooks = state["webhooks"].as_array().cloned().unwrap_or_default();
    assert_eq!(webhooks.len(), 1, "one A2 webhook: {webhooks:?}");
    assert_eq!(webhooks[0]["body"]["event"], "campaign.a2");
    assert_webhook_authentic(&webhooks[0]);

    // --- agencies deliver derivatives: several valid names per master, one invalid, one unknown ID.
    let watched = world.sandbox.watched_folder_id();
    let mut expected_clean = Vec::new();
    for (master, tracking_id) in &campaign.tracking_ids {
        let (source, ext, kind) = if master.ends_with(".mp4") {
            (&video, "mp4", "video")
        } else if master.ends_with(".png") {
            (&png, "png", "image")
        } else {
            (&jpg, "jpg", "banner")
        };
        for language in ["it", "DE"] {
            let name = format!(
                "{}_Breakfast-Moments_{kind}_{language}_9x16-15s_v01.{ext}",
                tracking_id.to_lowercase()
            );
            world.sandbox.agency_upload(&watched, &name, source);
            expected_clean.push(format!(
                "Breakfast-Moments_{kind}_{}_9x16-15s.{ext}",
                language.to_uppercase()
            ));
        }
    }
    let video_tracking_id = campaign
        .tracking_ids
        .iter()
        .find(|(name, _)| name.ends_with(".mp4"))
        .map(|(_, id)| id.clone())
        .expect("video master");
    world
        .sandbox
        .agency_upload(&watched, "Breakfast_video_ITA_v1.mp4", &video);
    world.sandbox.agency_upload(
        &watched,
        "ZZZZZZ_Breakfast-Moments_video_IT_9x16-15s_v01.mp4",
        &video,
    );
    world.sandbox.agency_upload(&watched, ".DS_Store", &png);

    world.run_ok("box-poll");
    let state = world.sandbox.state();

    // Derivatives in the DAM Final Assets folder, with the mapped metadata.
    let final_folder =
        dam_folder(&state, &campaign.id, "Final Assets").expect("Final Assets folder");
    let final_id = final_folder["id"].as_str().expect("id").to_string();
    let assets: Vec<Value> = state["dam"]["assets"]
        .as_array()
        .expect("assets")
        .iter()
        .filter(|asset| asset["folder_id"] == final_id.as_str())
        .cloned()
        .collect();
    let mut names: Vec<String> = assets
        .iter()
        .map(|asset| asset["name"].as_str().unwrap_or_default().to_string())
        .collect();
    names.sort();
    expected_clean.sort();
    assert_eq!(
        names, expected_clean,
        "each derivative exactly once, under its clean filename"
    );
    let video_asset = assets
        .iter()
        .find(|asset| asset["name"] == "Breakfast-Moments_video_IT_9x16-15s.mp4")
        .expect("video derivative");
    let fields = dam_asset_fields(video_asset);
    assert_eq!(
        fields.get("ARTESIA.FIELD.ASSET NAME").map(String::as_str),
        Some("Breakfast-Moments_video_IT_9x16-15s.mp4")
    );
    assert_eq!(
        fields
            .get("ARTESIA.FIELD.ASSET DESCRIPTION")
            .map(String::as_str),
        Some("Breakfast Moments")
    );
    assert_eq!(fields.get("MAIN_LANGUAGES").map(String::as_str), Some("IT"));
    assert_eq!(
        fields
            .get("FERRERO.FIELD.MKTG.ASSET TYPE")
            .map(String::as_str),
        Some("video")
    );
    assert_eq!(
        fields.get("FERRERO.FIELD.BRAND").map(String::as_str),
        Some("NUTELLA"),
        "MVP field copied from the master"
    );
    let duration: f64 = fields
        .get("FERRERO.MARKETING.FIELD.DURATION_SECONDS")
        .and_then(|value| value.parse().ok())
        .expect("duration field");
    assert!(
        (duration - 5.0).abs() < 1.0,
        "video duration from ffprobe, got {duration}"
    );
    for (field, value) in crate::forced_and_default_fields() {
        assert_eq!(
            fields.get(field).map(String::as_str),
            Some(value),
            "{field}"
        );
    }

    // Sources archived under _PROCESSED/<date>/; rejected files in _errors/ with notes.
    let processed = box_folder(&state, &watched, "_PROCESSED").expect("_PROCESSED");
    let date = jiff_today();
    let dated = box_folder(&state, processed["id"].as_str().expect("id"), &date)
        .expect("_PROCESSED/<date>");
    assert_eq!(
        box_files_in(&state, dated["id"].as_str().expect("id")).len(),
        6
    );
    let errors = box_folder(&state, &watched, "_errors").expect("_errors");
    let error_files = box_files_in(&state, errors["id"].as_str().expect("id"));
    let error_names: Vec<&str> = error_files
        .iter()
        .filter_map(|file| file["name"].as_str())
        .collect();
    assert!(
        error_names.contains(&"Breakfast_video_ITA_v1.mp4"),
        "{error_names:?}"
    );
    assert!(
        error_names.contains(&"ZZZZZZ_Breakfast-Moments_video_IT_9x16-15s_v01.mp4"),
        "{error_names:?}"
    );
    let note = note_text(&error_files, "Breakfast_video_ITA_v1.mp4.error.txt");
    assert!(
        note.contains("expected 6 parts"),
        "note names the segment count problem: {note}"
    );
    let note = note_text(
        &error_files,
        "ZZZZZZ_Breakfast-Moments_video_IT_9x16-15s_v01.mp4.error.txt",
    );
    assert!(note.contains("ZZZZZZ matches no master asset"), "{note}");
    assert_eq!(
        box_files_in(&state, &watched)
            .iter()
            .filter(|f| f["name"] == ".DS_Store")
            .count(),
        1,
        "debris ignored, left alone"
    );

    // A3 once, with its email and webhook; rejection emails to the error recipients.
    assert_eq!(campaign_status(&state, &campaign.id), "A3");
    let changes: Vec<&Value> = state["dam"]["status_changes"]
        .as_array()
        .expect("changes")
        .iter()
        .collect();
    assert_eq!(
        changes.len(),
        2,
        "A1->A2 and A2->A3 exactly once each: {changes:?}"
    );
    let webhooks = state["webhooks"].as_array().cloned().unwrap_or_default();
    let events: Vec<&str> = webhooks
        .iter()
        .filter_map(|hook| hook["body"]["event"].as_str())
        .collect();
    assert_eq!(events, ["campaign.a2", "campaign.a3"]);
    let emails = state["emails"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        emails.len(),
        4,
        "A2, A3 and two rejection emails: {emails:?}"
    );

    // Derivatives recorded; a further pass does nothing.
    let delivered: i64 = db
        .query_one(
            "SELECT count(*) FROM derivative_assets WHERE upload_status = 'uploaded'",
            &[],
        )
        .expect("count")
        .get(0);
    assert_eq!(delivered, 6);
    let _ = video_tracking_id;
    world.run_ok("box-poll");
    world.run_ok("a1-to-a2");
    let after = world.sandbox.state();
    assert_eq!(
        after["dam"]["assets"], state["dam"]["assets"],
        "an idle pass changes nothing in the DAM"
    );
    assert_eq!(after["emails"].as_array().map(Vec::len), Some(4));
    let runs: i64 = db
        .query_one("SELECT count(*) FROM runs WHERE outcome = 'completed'", &[])
        .expect("runs")
        .get(0);
    assert_eq!(runs, 4, "one runs row per pass");
    let tokens = after["tokens_issued"].as_u64().expect("tokens_issued");
    assert!(
        tokens <= 4,
        "one Box token per pass at most (reused within a pass), got {tokens}"
    );
    let stats = world.sandbox.stats();
    eprintln!(
        "figures: Box requests {}, DAM requests {} for 6 delivered derivatives and 3 masters",
        stats["box_requests"], stats["dam_requests"]
    );
}

/// The webhook carries the bearer token, an idempotency key and an HMAC-SHA256 signature of its
/// body with the sandbox overlay's signing secret (config/webhooks.yaml).
fn assert_webhook_authentic(hook: &Value) {
    use hmac::{Hmac, Mac};
    let headers = &hook["headers"];
    assert_eq!(headers["authorization"], "Bearer sandbox-webhook-token");
    let key = headers["idempotency-key"]
        .as_str()
        .expect("Idempotency-Key header");
    assert_eq!(hook["body"]["idempotency_key"], key);
    // The body was sent as serde_json writes it (keys sorted): re-encode to get the same bytes.
    let body = serde_json::to_vec(&hook["body"]).expect("body");
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"sandbox-signing-secret").expect("key");
    mac.update(&body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(
        headers["x-cs-signature"].as_str(),
        Some(expected.as_str()),
        "signature over the body"
    );
}

fn jiff_today() -> String {
    // UTC date, as the pass names the _PROCESSED subfolder.
    let output = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .expect("date");
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

fn note_text(files: &[Value], name: &str) -> String {
    let file = files
        .iter()
        .find(|file| file["name"] == name)
        .unwrap_or_else(|| panic!("note {name} in _errors"));
    let path = file["content_path"]
        .as_str()
        .expect("sandbox state gives the content path");
    std::fs::read_to_string(PathBuf::from(path)).expect("note content")
}

#[test]
fn partial_failure_stays_a1_and_retries_only_the_failed_master() {
    let world = World::new(Some(DEMO));
    let campaign_id = world.sandbox.ready["campaigns"][0]["folder_id"]
        .as_str()
        .expect("id")
        .to_string();
    let state = world.sandbox.state();
    let failing = state["dam"]["assets"]
        .as_array()
        .expect("assets")
        .iter()
        .find(|asset| {
            asset["name"]
                .as_str()
                .is_some_and(|name| name.ends_with(".png"))
        })
        .expect("png master")
        .clone();
    let failing_id = failing["id"].as_str().expect("id");
    world.sandbox.fault(
        "GET",
        &format!("/otmmapi/v6/assets/{failing_id}/contents"),
        500,
        None,
    );

    world.run_ok("a1-to-a2");
    let state = world.sandbox.state();
    assert_eq!(
        campaign_status(&state, &campaign_id),
        "A1",
        "a partial failure leaves A1"
    );
    let emails = state["emails"].as_array().cloned().unwrap_or_default();
    assert_eq!(emails.len(), 1, "one partial-failure email: {emails:?}");
    let email_text = emails[0].to_string();
    assert!(
        email_text.contains(failing["name"].as_str().expect("name")),
        "the email names the failed master: {email_text}"
    );
    let first = campaign_after_a1(&world);
    assert_eq!(first.tracking_ids.len(), 2);

    // Same failure again: no second email.
    world.run_ok("a1-to-a2");
    assert_eq!(
        world.sandbox.state()["emails"].as_array().map(Vec::len),
        Some(1),
        "partial email not repeated"
    );

    world.sandbox.clear_faults();
    world.run_ok("a1-to-a2");
    let state = world.sandbox.state();
    assert_eq!(campaign_status(&state, &campaign_id), "A2");
    let second = campaign_after_a1(&world);
    assert_eq!(
        second.tracking_ids.len(),
        3,
        "exactly one Box copy per master"
    );
    for (name, tracking_id) in &first.tracking_ids {
        assert_eq!(
            second.tracking_ids.get(name),
            Some(tracking_id),
            "no second tracking ID for {name}"
        );
    }
    let mut db = world.db.client();
    let masters: i64 = db
        .query_one("SELECT count(*) FROM master_assets", &[])
        .expect("count")
        .get(0);
    assert_eq!(masters, 3);
    let _ = second.box_folder_id;
}

#[test]
fn overlapping_box_poll_passes_deliver_each_file_once() {
    let world = World::new(Some(DEMO));
    world.run_ok("a1-to-a2");
    let campaign = campaign_after_a1(&world);
    let watched = world.sandbox.watched_folder_id();
    let png = fixture("coffee.png");
    let tracking_id = campaign
        .tracking_ids
        .iter()
        .find(|(name, _)| name.ends_with(".png"))
        .map(|(_, id)| id.clone())
        .expect("png");
    for index in 0..6 {
        world.sandbox.agency_upload(
            &watched,
            &format!("{tracking_id}_Overlap-{index}_image_EN_1x1_v01.png"),
            &png,
        );
    }
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let mut command = std::process::Command::new(crate::util::bin("box-poll"));
            command.envs(world.sandbox.env(&world.db, world.temp.path()));
            command.stderr(std::process::Stdio::piped());
            command.spawn().expect("spawn box-poll")
        })
        .collect();
    for handle in handles {
        let output = handle.wait_with_output().expect("wait");
        assert_eq!(
            output.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    // Whatever the first two left (lock held), a third pass finishes.
    world.run_ok("box-poll");
    let state = world.sandbox.state();
    let final_folder = dam_folder(&state, &campaign.id, "Final Assets").expect("Final Assets");
    let names: Vec<String> = state["dam"]["assets"]
        .as_array()
        .expect("assets")
        .iter()
        .filter(|asset| asset["folder_id"] == final_folder["id"])
        .filter_map(|asset| asset["name"].as_str().map(str::to_string))
        .collect();
    assert_eq!(
        names.len(),
        6,
        "each derivative imported exactly once: {names:?}"
    );
    let unique: std::collections::BTreeSet<&String> = names.iter().collect();
    assert_eq!(unique.len(), 6);
}

/// Copies `config/` (with `environments/`) into a temp dir so a test can break one file.
fn config_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("dir");
    let source = crate::util::repo_root().join("config");
    std::fs::create_dir(dir.path().join("environments")).expect("environments");
    for sub in ["", "environments"] {
        for entry in std::fs::read_dir(source.join(sub)).expect("config dir") {
            let entry = entry.expect("entry");
            if entry.path().is_file() {
                std::fs::copy(entry.path(), dir.path().join(sub).join(entry.file_name()))
                    .expect("copy");
            }
        }
    }
    dir
}

fn run_box_poll_with_config(dir: &std::path::Path, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let output = std::process::Command::new(crate::util::bin("box-poll"))
        .arg("--config-dir")
        .arg(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .output()
        .expect("run");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

const DUMMY_SANDBOX_ENV: &[(&str, &str)] = &[
    ("CS_ENVIRONMENT", "sandbox"),
    ("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none"),
    ("BOX_API_BASE_URL", "http://127.0.0.1:1"),
    ("BOX_UPLOAD_BASE_URL", "http://127.0.0.1:1/api"),
    ("BOX_OAUTH2_URL", "http://127.0.0.1:1/oauth2/token"),
    ("BOX_CONFIG_FILE", "/nonexistent/box.json"),
    ("BOX_ROOT_FOLDER_ID", "1"),
    ("BOX_WATCHED_FOLDER_ID", "2"),
    ("DAM_BASE_URL", "http://127.0.0.1:1"),
    ("DAM_USERNAME", "u"),
    ("DAM_PASSWORD", "p"),
    ("MAILGUN_BASE_URL", "http://127.0.0.1:1"),
    ("MAILGUN_DOMAIN", "example.test"),
    ("MAILGUN_API_KEY", "k"),
    ("WEBHOOK_BASE_URL", "http://127.0.0.1:1"),
];

#[test]
fn config_error_names_file_key_and_expectation() {
    // A value of the wrong type: exit 2, naming file, key and what was expected.
    let dir = config_copy();
    let overlay = dir.path().join("environments/sandbox.yaml");
    let config = std::fs::read_to_string(&overlay).expect("sandbox.yaml");
    let broken = config.replacen(
        "max_requests_per_second:",
        "max_requests_per_second: ten #",
        1,
    );
    assert_ne!(
        broken, config,
        "sandbox.yaml has box.max_requests_per_second"
    );
    std::fs::write(&overlay, broken).expect("write");
    let (code, stderr) = run_box_poll_with_config(dir.path(), DUMMY_SANDBOX_ENV);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("environments/sandbox.yaml"), "{stderr}");
    assert!(stderr.contains("box.max_requests_per_second"), "{stderr}");
    assert!(
        stderr.contains("ten"),
        "the offending value is quoted: {stderr}"
    );

    // A missing variable: names the key and the variable.
    let dir = config_copy();
    let without: Vec<(&str, &str)> = DUMMY_SANDBOX_ENV
        .iter()
        .copied()
        .filter(|(name, _)| *name != "BOX_ROOT_FOLDER_ID")
        .collect();
    let (code, stderr) = run_box_poll_with_config(dir.path(), &without);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("box.root_folder_id") && stderr.contains("BOX_ROOT_FOLDER_ID"),
        "{stderr}"
    );

    // The database unreachable with a valid config: 75, and the password is not printed.
    let dir = config_copy();
    let mut env: Vec<(&str, &str)> = DUMMY_SANDBOX_ENV
        .iter()
        .copied()
        .filter(|(name, _)| *name != "DATABASE_URL")
        .collect();
    env.push((
        "DATABASE_URL",
        "postgres://cs:s3cret-db-pass@127.0.0.1:1/none",
    ));
    let (code, stderr) = run_box_poll_with_config(dir.path(), &env);
    assert_eq!(code, Some(75), "{stderr}");
    assert!(!stderr.contains("s3cret-db-pass"), "{stderr}");
}
