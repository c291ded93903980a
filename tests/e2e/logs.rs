//! Logs people can act on (issue 14): a dependency outage ends a pass after one retry cycle with
//! one summary line naming the URL; per-item lines carry `box_file=` / `campaign=` (also as JSON
//! fields); `-v` prints readable summaries, never a Debug struct.

use serde_json::{json, Value};

use crate::crash::Scene;
use crate::util::{box_files_in, box_folder, post_json};

/// `dam.max_retries` of `config/config.yaml` (the sandbox overlay keeps it): one retry cycle is
/// this many retries after the first attempt.
const DAM_MAX_RETRIES: u64 = 5;

fn dam_requests(scene: &Scene) -> u64 {
    scene.world.sandbox.stats()["dam_requests"]
        .as_u64()
        .expect("dam_requests in the sandbox stats")
}

/// Lines of a text log at WARN or ERROR, and the final `error:` line.
fn alarming_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|line| {
            line.starts_with("error:") || line.contains(" WARN ") || line.contains(" ERROR ")
        })
        .collect()
}

#[test]
fn a_dam_outage_ends_the_pass_after_one_retry_cycle_with_one_line_naming_the_url() {
    let scene = Scene::new();
    scene.run_until_ok("a1-to-a2", 1);
    scene.deliver(1, 0);
    let control = scene.world.sandbox.str("control_url");
    post_json(
        &format!("{control}/faults"),
        &json!({ "path_prefix": "/otmmapi/", "kind": "drop" }),
    );
    let dam_origin = {
        let url = scene.world.sandbox.str("dam_url");
        let after_scheme = url.find("://").map_or(0, |at| at + 3);
        let end = url[after_scheme..]
            .find('/')
            .map_or(url.len(), |at| after_scheme + at);
        url[..end].to_string()
    };

    for binary in ["box-poll", "a1-to-a2"] {
        let before = dam_requests(&scene);
        let output = scene.world.run(binary, &[]);
        assert_eq!(output.status.code(), Some(75), "{binary}: DAM unreachable");
        let sent = dam_requests(&scene) - before;
        assert_eq!(
            sent,
            DAM_MAX_RETRIES + 1,
            "{binary}: one retry cycle of DAM requests, then no more"
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        let alarming = alarming_lines(&stderr);
        assert_eq!(alarming.len(), 1, "{binary}: one summary line: {stderr}");
        assert!(
            alarming[0].contains("DAM unreachable") && alarming[0].contains(&dam_origin),
            "{binary}: the summary names the DAM URL {dam_origin}: {}",
            alarming[0]
        );
        // The waits between the attempts are said at INFO, with their length.
        assert!(
            stderr.contains("before retrying POST /otmmapi/v6/sessions"),
            "{binary}: {stderr}"
        );
    }
}

/// The JSON log lines of `stderr` (one object per line).
fn json_lines(stderr: &str) -> Vec<Value> {
    stderr
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .collect()
}

#[test]
fn per_item_lines_carry_box_file_and_campaign_fields_and_verbose_summaries_read_well() {
    let scene = Scene::new();
    let output = scene.world.run("a1-to-a2", &["--log-format", "json"]);
    assert_eq!(output.status.code(), Some(0));
    let lines = json_lines(&String::from_utf8_lossy(&output.stderr));
    let uploads: Vec<&Value> = lines
        .iter()
        .filter(|line| line["fields"]["message"] == "master uploaded to Box")
        .collect();
    assert_eq!(uploads.len(), 3, "{lines:?}");
    for line in &uploads {
        assert_eq!(line["fields"]["campaign"], "C-2026-0999", "{line}");
        assert!(line["fields"]["box_file"].is_string(), "{line}");
        assert!(line["fields"]["dam_asset"].is_string(), "{line}");
    }
    let moved = lines
        .iter()
        .find(|line| line["fields"]["message"] == "campaign moved A1 -> A2")
        .unwrap_or_else(|| panic!("A2 line: {lines:?}"));
    assert_eq!(moved["fields"]["campaign"], "C-2026-0999");
    assert_eq!(moved["fields"]["dam_folder"], scene.campaign_id.as_str());

    scene.deliver(0, 1);
    let output = scene.world.run("box-poll", &["--log-format", "json"]);
    assert_eq!(output.status.code(), Some(0));
    let state = scene.world.sandbox.state();
    let watched = scene.world.sandbox.watched_folder_id();
    let errors = box_folder(&state, &watched, "_errors").expect("_errors");
    let rejected: Vec<String> = box_files_in(&state, errors["id"].as_str().expect("id"))
        .iter()
        .filter(|file| file["name"] == "not-a-v2-name-0.jpg")
        .filter_map(|file| file["id"].as_str().map(str::to_string))
        .collect();
    assert_eq!(rejected.len(), 1, "{state}");
    let lines = json_lines(&String::from_utf8_lossy(&output.stderr));
    let rejection = lines
        .iter()
        .find(|line| {
            line["fields"]["message"]
                .as_str()
                .is_some_and(|message| message.starts_with("file rejected"))
        })
        .unwrap_or_else(|| panic!("rejection line: {lines:?}"));
    assert_eq!(rejection["fields"]["box_file"], rejected[0].as_str());

    // -v (without RUST_LOG, which would override it): readable summaries, no Debug struct.
    for binary in ["box-poll", "a1-to-a2"] {
        let output = scene.world.run_without(binary, &["-v"], &[], &["RUST_LOG"]);
        assert_eq!(output.status.code(), Some(0));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("PassReport {"), "{binary}: {stderr}");
        assert!(!stderr.contains("PassReport"), "{binary}: {stderr}");
        assert!(
            stderr.contains(&format!("{binary}: nothing to do (")),
            "{binary}: {stderr}"
        );
    }
}
