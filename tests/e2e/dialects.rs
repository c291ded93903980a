//! OTMM as it really is (issue 12): the passes against every OTMM server variant the sandbox
//! plays (`sandbox serve --otmm-dialect strict|jobs|locking`, see `crates/sandbox/src/dialect.rs`),
//! with the `dam.api` settings that match it; and against a server whose settings do not match,
//! which must stop with exit 2 and a message naming the setting to change — never skip campaigns
//! silently, never wait for ever.
//!
//! `scripts/test.sh` also runs the whole `flow::` module once per dialect (`CS_OTMM_DIALECT`).

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::util::{
    box_files_in, box_folder, campaign_status, dialect_settings, final_assets, fixture, stderr,
    World,
};

/// A campaign with two live masters and a deleted one, which a listing shows unless it asks to
/// leave deleted assets out.
fn scenario(dir: &Path) -> PathBuf {
    let png = fixture("coffee.png");
    let jpg = fixture("rocket.jpg");
    let text = format!(
        r"
box:
  watched_folders: [incoming]
dam:
  import_delay_ms: 200
  campaigns:
    - number: C-2026-0777
      name: Dialect Check
      status: A1
      masters:
        - name: Dialect_KeyVisual.png
          file: {png}
          fields:
            FERRERO.FIELD.MKTG.ASSET TYPE: {{value: image, display: Image}}
            MAIN_LANGUAGES: {{value: EN, display: English}}
        - name: Dialect_Poster.jpg
          file: {jpg}
          fields:
            FERRERO.FIELD.MKTG.ASSET TYPE: {{value: print, display: Print}}
            MAIN_LANGUAGES: {{value: EN, display: English}}
        - name: Dialect_Withdrawn.png
          file: {png}
          deleted: true
",
        png = png.display(),
        jpg = jpg.display()
    );
    let path = dir.join("dialect.yaml");
    std::fs::write(&path, text).expect("scenario");
    path
}

fn world_of(dialect: &str) -> (World, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = scenario(dir.path());
    let world = World::with_sandbox(Some(&path), &["--otmm-dialect", dialect]);
    assert_eq!(world.sandbox.ready["otmm_dialect"], dialect);
    (world, dir)
}

fn campaign_id(world: &World) -> String {
    world.sandbox.ready["campaigns"][0]["folder_id"]
        .as_str()
        .expect("campaign id")
        .to_string()
}

/// Tracking IDs of the masters a1-to-a2 put into Box.
fn tracking_ids(world: &World) -> Vec<(String, String)> {
    let state = world.sandbox.state();
    let root = world.sandbox.str("box_root_folder_id");
    let Some(folder) = box_folder(&state, &root, "C-2026-0777 Dialect Check") else {
        return Vec::new();
    };
    box_files_in(&state, folder["id"].as_str().expect("id"))
        .iter()
        .filter_map(|file| file["name"].as_str())
        .map(|name| (name[..6].to_string(), name[7..].to_string()))
        .collect()
}

/// Asserts a pass stopped with exit 2 naming `setting` (and says how to find out).
fn assert_names_setting(output: &Output, setting: &str) {
    let text = stderr(output);
    assert_eq!(output.status.code(), Some(2), "exit code; stderr:\n{text}");
    assert!(
        text.contains(setting),
        "the message names {setting}:\n{text}"
    );
}

#[test]
fn every_dialect_with_its_settings_goes_a1_a2_a3() {
    for dialect in ["strict", "jobs", "locking"] {
        let (world, _dir) = world_of(dialect);
        let campaign = campaign_id(&world);
        let output = world.run_with_env("a1-to-a2", &[], &[]);
        assert_eq!(output.status.code(), Some(0), "{dialect}: a1-to-a2");
        let mut masters = tracking_ids(&world);
        masters.sort_by(|a, b| a.1.cmp(&b.1));
        let names: Vec<&str> = masters.iter().map(|(_, name)| name.as_str()).collect();
        assert_eq!(
            names,
            ["Dialect_KeyVisual.png", "Dialect_Poster.jpg"],
            "{dialect}: the deleted master is not sent to the agencies"
        );
        assert_eq!(
            campaign_status(&world.sandbox.state(), &campaign),
            "A2",
            "{dialect}"
        );

        let watched = world.sandbox.watched_folder_id();
        for (tracking_id, name) in &masters {
            let (source, extension) = if name.ends_with(".png") {
                (fixture("coffee.png"), "png")
            } else {
                (fixture("rocket.jpg"), "jpg")
            };
            let derivative = format!("{tracking_id}_Dialect_image_IT_1x1_v01.{extension}");
            world.sandbox.agency_upload(&watched, &derivative, &source);
        }
        let output = world.run_with_env("box-poll", &[], &[]);
        assert_eq!(output.status.code(), Some(0), "{dialect}: box-poll");
        let state = world.sandbox.state();
        assert_eq!(campaign_status(&state, &campaign), "A3", "{dialect}");
        let imported = final_assets(&state);
        assert_eq!(imported.len(), 2, "{dialect}: {imported:?}");
        for asset in &imported {
            let tracking = asset["fields"]["FERRERO.FIELD.CS TRACKING"]
                .as_str()
                .unwrap_or_default();
            assert!(
                masters
                    .iter()
                    .any(|(id, _)| tracking.starts_with(id.as_str())),
                "{dialect}: tracking marker {tracking:?}"
            );
            assert_eq!(asset["fields"]["MAIN_LANGUAGES"], "IT", "{dialect}");
        }
        let stats = world.sandbox.stats();
        let logouts = stats["routes"]["DELETE /otmmapi/v6/sessions 204"]
            .as_u64()
            .unwrap_or(0);
        assert_eq!(logouts, 2, "{dialect}: one logout per pass: {stats}");
    }
}

#[test]
fn a_server_that_does_not_lock_folders_stops_lock_folders_always() {
    let (world, _dir) = world_of("strict");
    let output = world.run_with_env("a1-to-a2", &[], &[("DAM_API_LOCK_FOLDERS", "always")]);
    assert_names_setting(&output, "dam.api.lock_folders: when_allowed");
    assert_eq!(
        campaign_status(&world.sandbox.state(), &campaign_id(&world)),
        "A1",
        "the status is not written half-way"
    );
    // With the setting changed, the next pass finishes the campaign.
    let output = world.run_with_env("a1-to-a2", &[], &[]);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        campaign_status(&world.sandbox.state(), &campaign_id(&world)),
        "A2"
    );
}

#[test]
fn a_server_that_needs_other_settings_says_which() {
    let (world, _dir) = world_of("locking");
    // The locking server honours only load_type=metadata: the documented default (custom)
    // reads the folder without its status, which must not look like "not at A1".
    let output = world.run_with_env("a1-to-a2", &[], &[("DAM_API_FOLDER_LOAD", "")]);
    assert_names_setting(&output, "dam.api.folder_load");
    // Plain values where it wants lookup-domain values.
    let output = world.run_with_env("a1-to-a2", &[], &[("DAM_API_STATUS_VALUE_SHAPE", "plain")]);
    assert_names_setting(&output, "dam.api.status_value_shape: domain_value");
    // No lock where it needs one.
    let output = world.run_with_env("a1-to-a2", &[], &[("DAM_API_LOCK_FOLDERS", "never")]);
    assert_names_setting(&output, "dam.api.lock_folders: always");
    assert_eq!(
        campaign_status(&world.sandbox.state(), &campaign_id(&world)),
        "A1"
    );
    let output = world.run_with_env("a1-to-a2", &[], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        campaign_status(&world.sandbox.state(), &campaign_id(&world)),
        "A2"
    );
}

#[test]
fn import_completion_by_jobs_on_a_server_without_them_is_an_error_not_a_wait() {
    let (world, _dir) = world_of("strict");
    assert!(dialect_settings("strict").is_empty());
    let output = world.run_with_env("a1-to-a2", &[], &[]);
    assert_eq!(output.status.code(), Some(0));
    let (tracking_id, _) = tracking_ids(&world).into_iter().next().expect("master");
    let watched = world.sandbox.watched_folder_id();
    world.sandbox.agency_upload(
        &watched,
        &format!("{tracking_id}_Dialect_image_IT_1x1_v01.png"),
        &fixture("coffee.png"),
    );
    let started = std::time::Instant::now();
    let output = world.run_with_env(
        "box-poll",
        &[],
        &[
            ("DAM_API_IMPORT_COMPLETION", "jobs"),
            ("DAM_IMPORT_JOB_TIMEOUT_SECS", "600"),
        ],
    );
    assert_names_setting(&output, "dam.api.import_completion: search");
    assert!(
        started.elapsed() < std::time::Duration::from_mins(2),
        "no waiting for a job the server cannot show"
    );
    // The import request went out once; with the setting fixed, later passes adopt it (once
    // the sandbox's import delay has passed) instead of importing again.
    crate::util::wait_for(
        std::time::Duration::from_secs(30),
        "the import adopted",
        || {
            let output = world.run_with_env("box-poll", &[], &[]);
            assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
            (!final_assets(&world.sandbox.state()).is_empty()).then_some(())
        },
    );
    assert_eq!(
        final_assets(&world.sandbox.state()).len(),
        1,
        "imported once"
    );
}

#[test]
fn the_oauth2_password_grant_as_opentexts_client_sends_it() {
    let (world, _dir) = world_of("strict");
    let client_id = world.sandbox.str("dam_client_id");
    let client_secret = world.sandbox.str("dam_client_secret");
    let output = world.run_with_env(
        "a1-to-a2",
        &[],
        &[
            ("DAM_AUTH_METHOD", "oauth2"),
            ("DAM_CLIENT_ID", &client_id),
            ("DAM_CLIENT_SECRET", &client_secret),
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let stats = world.sandbox.stats();
    assert_eq!(
        stats["routes"]["POST /otmmapi/v6/sessions/oauth2/token 200"].as_u64(),
        Some(1),
        "{stats}"
    );
    assert_eq!(
        stats["routes"]["POST /otmmapi/v6/sessions 200"].as_u64(),
        None,
        "no session login"
    );
    assert_eq!(
        campaign_status(&world.sandbox.state(), &campaign_id(&world)),
        "A2"
    );
}

fn dam_check(world: &World, args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut all = vec!["dam-check"];
    all.extend_from_slice(args);
    let output = world.run_with_env("box-setup", &all, env);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    eprintln!("--- dam-check {args:?} {env:?}\n{stdout}");
    (output.status.code(), stdout)
}

fn has_line(stdout: &str, start: &str) -> bool {
    stdout.lines().any(|line| line.starts_with(start))
}

#[test]
fn dam_check_confirms_and_refutes_each_setting_per_dialect() {
    // Strict server, documented defaults: nothing refuted; the write test shows folders are
    // not locked (when_allowed copes), plain values work, the import is found by search and
    // there is no job resource.
    let (world, _dir) = world_of("strict");
    let scratch = world.sandbox.ready["campaigns"][0]["final_assets_folder_id"]
        .as_str()
        .expect("final assets folder")
        .to_string();
    let (code, out) = dam_check(&world, &[], &[]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        has_line(&out, "confirmed  dam.api.folder_load: custom"),
        "{out}"
    );
    assert!(
        has_line(&out, "confirmed  dam.api.import_completion: search"),
        "{out}"
    );
    assert!(
        has_line(
            &out,
            "unknown    dam.api.lock_folders: when_allowed (needs --write-test-folder ID)"
        ),
        "{out}"
    );
    assert!(out.contains("(needs --write-test-folder ID)"), "{out}");
    let (code, out) = dam_check(&world, &["--write-test-folder", &scratch], &[]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        has_line(
            &out,
            "confirmed  dam.api.lock_folders: when_allowed, status_value_shape: plain"
        ),
        "{out}"
    );
    assert!(has_line(&out, "confirmed  import: dam-check-"), "{out}");
    assert!(out.contains("GET /jobs/{id}/assets is absent"), "{out}");
    // The same server with settings it does not match: each refuted with its setting.
    let (code, out) = dam_check(
        &world,
        &["--write-test-folder", &scratch],
        &[
            ("DAM_API_LOCK_FOLDERS", "always"),
            ("DAM_API_IMPORT_COMPLETION", "jobs"),
        ],
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.lines().any(
            |line| line.starts_with("refuted    dam.api.lock_folders: always")
                && line.ends_with(
                    "-> set dam.api.lock_folders: when_allowed, dam.api.status_value_shape: plain"
                )
        ),
        "{out}"
    );
    assert!(
        out.lines().any(|line| line.starts_with("refuted    ")
            && line.ends_with("-> set dam.api.import_completion: search")),
        "{out}"
    );

    // Locking server, documented defaults: folder_load and the value shape refuted.
    let (world, _dir) = world_of("locking");
    let scratch = world.sandbox.ready["campaigns"][0]["final_assets_folder_id"]
        .as_str()
        .expect("final assets folder")
        .to_string();
    let defaults = [
        ("DAM_API_LOCK_FOLDERS", ""),
        ("DAM_API_STATUS_VALUE_SHAPE", ""),
        ("DAM_API_FOLDER_LOAD", ""),
    ];
    let (code, out) = dam_check(&world, &["--write-test-folder", &scratch], &defaults);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.lines().any(
            |line| line.starts_with("refuted    dam.api.folder_load: custom")
                && line.ends_with("-> set dam.api.folder_load: metadata")
        ),
        "{out}"
    );
    assert!(
        out.lines().any(|line| line.starts_with(
            "refuted    dam.api.lock_folders: when_allowed, status_value_shape: plain"
        ) && line.ends_with(
            "-> set dam.api.lock_folders: when_allowed, dam.api.status_value_shape: domain_value"
        )),
        "{out}"
    );
    // With its matching settings: nothing refuted.
    let (code, out) = dam_check(&world, &["--write-test-folder", &scratch], &[]);
    assert_eq!(code, Some(0), "{out}");

    // Jobs server: the job resource is there.
    let (world, _dir) = world_of("jobs");
    let scratch = world.sandbox.ready["campaigns"][0]["final_assets_folder_id"]
        .as_str()
        .expect("final assets folder")
        .to_string();
    let (code, out) = dam_check(
        &world,
        &["--write-test-folder", &scratch],
        &[("DAM_API_IMPORT_COMPLETION", "")],
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("GET /jobs/{id}/assets is present"), "{out}");
}
