//! `--dry-run` on the passes (issue 14): `a1-to-a2 --dry-run` and `box-poll --dry-run` list what
//! the pass would do, change nothing (sandbox state, the sandbox's write requests, every
//! database table), and the real pass then does what the dry run said.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::crash::Scene;
use crate::ops::snapshot;
use crate::util::{box_files_in, box_folder, campaign_status, dam_folder, fixture, stdout, World};

/// Whether the test database has any table (a migrated one has).
fn has_tables(world: &World) -> bool {
    let mut db = world.db.client();
    let count: i64 = db
        .query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
            &[],
        )
        .expect("tables")
        .get(0);
    count > 0
}

/// Request counters of the sandbox for writes (`POST`, `PUT`, `PATCH`, `DELETE`), logins and
/// logouts left out.
fn write_requests(world: &World) -> BTreeMap<String, u64> {
    let stats = world.sandbox.stats();
    stats["routes"]
        .as_object()
        .map(|routes| {
            routes
                .iter()
                .filter(|(key, _)| {
                    ["POST ", "PUT ", "PATCH ", "DELETE "]
                        .iter()
                        .any(|method| key.starts_with(method))
                })
                .filter(|(key, _)| !key.contains("/oauth2/token") && !key.contains("/sessions"))
                .map(|(key, count)| (key.clone(), count.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default()
}

/// Runs `binary --dry-run --json`, asserts exit 0 and that nothing changed, returns the plan.
fn dry_run_json(world: &World, binary: &str) -> Value {
    let (before, writes_before) = (snapshot(world), write_requests(world));
    let output = world.run(binary, &["--dry-run", "--json"]);
    assert_eq!(output.status.code(), Some(0), "{binary} --dry-run --json");
    assert_eq!(
        write_requests(world),
        writes_before,
        "{binary} --dry-run sent write requests"
    );
    assert!(
        snapshot(world) == before,
        "{binary} --dry-run changed the sandbox, the database or the temp dir"
    );
    let document: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!("one JSON document on stdout: {error}: {}", stdout(&output))
    });
    assert_eq!(document["pass"], binary);
    assert_eq!(document["dry_run"], true);
    document["plan"].clone()
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_dry_run_refuses_a_database_it_would_have_to_migrate() {
    let scene = Scene::new();
    let output = scene.world.run("a1-to-a2", &["--dry-run"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("does not migrate"), "{stderr}");
    assert!(stderr.contains("hint: run the pass once"), "{stderr}");
    assert!(!has_tables(&scene.world), "the dry run created no table");
}

#[test]
fn dry_runs_list_the_plan_change_nothing_and_the_passes_do_what_they_said() {
    let scene = Scene::new();
    let world = &scene.world;
    // Migrates the database; the watched folder is empty, so nothing else happens.
    world.run_ok("box-poll");

    // --- a1-to-a2: one campaign at A1, three masters to upload, a Box folder to create.
    let plan = dry_run_json(world, "a1-to-a2");
    let campaigns = plan["campaigns"].as_array().expect("campaigns");
    assert_eq!(campaigns.len(), 1, "{plan}");
    let campaign = &campaigns[0];
    assert_eq!(campaign["dam_folder"], scene.campaign_id.as_str());
    assert_eq!(campaign["campaign"], "C-2026-0999");
    assert_eq!(campaign["action"], "process");
    assert_eq!(campaign["box_folder"], "C-2026-0999 Crash Test");
    assert!(campaign["box_folder_id"].is_null(), "not created yet");
    assert_eq!(campaign["to_a2"], true);
    let mut masters: Vec<(String, String)> = campaign["masters"]
        .as_array()
        .expect("masters")
        .iter()
        .map(|master| {
            (
                master["name"].as_str().unwrap_or_default().to_string(),
                master["action"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    masters.sort();
    assert_eq!(
        masters,
        [
            ("Crash_KeyVisual.png".to_string(), "upload".to_string()),
            ("Crash_Master.mp4".to_string(), "upload".to_string()),
            ("Crash_Poster.jpg".to_string(), "upload".to_string()),
        ]
    );
    // The text form says the same, one line per master.
    let output = world.run("a1-to-a2", &["--dry-run"]);
    assert_eq!(output.status.code(), Some(0));
    let listing = stdout(&output);
    assert!(listing.contains("nothing was changed"), "{listing}");
    assert!(
        listing.contains("create Box folder \"C-2026-0999 Crash Test\""),
        "{listing}"
    );
    assert_eq!(listing.matches("\n  upload \"").count(), 3, "{listing}");
    assert!(
        listing.contains("then move campaign C-2026-0999 A1 -> A2"),
        "{listing}"
    );

    // The real pass does it.
    world.run_ok("a1-to-a2");
    let tracking_ids = scene.tracking_ids();
    let mut uploaded: Vec<&String> = tracking_ids.keys().collect();
    uploaded.sort();
    assert_eq!(
        uploaded,
        [
            "Crash_KeyVisual.png",
            "Crash_Master.mp4",
            "Crash_Poster.jpg"
        ]
    );
    assert_eq!(
        campaign_status(&world.sandbox.state(), &scene.campaign_id),
        "A2"
    );

    // A second dry run finds nothing at A1.
    let plan = dry_run_json(world, "a1-to-a2");
    assert_eq!(
        plan["campaigns"].as_array().map(Vec::len),
        Some(0),
        "{plan}"
    );

    // --- box-poll: two good derivatives, a bad name, an unknown tracking ID, debris.
    let watched = world.sandbox.watched_folder_id();
    let jpg = fixture("rocket.jpg");
    let poster = &tracking_ids["Crash_Poster.jpg"];
    let visual = &tracking_ids["Crash_KeyVisual.png"];
    let good = [
        format!("{poster}_Item-0_image_EN_1x1_v01.jpg"),
        format!("{visual}_Item-1_image_IT_1x1_v01.jpg"),
    ];
    let mut ids = BTreeMap::new();
    for name in good.iter().cloned().chain([
        "not-a-v2-name.jpg".to_string(),
        "ZZZZZZ_Item-2_image_EN_1x1_v01.jpg".to_string(),
        ".DS_Store".to_string(),
    ]) {
        let uploaded = world.sandbox.agency_upload(&watched, &name, &jpg);
        let id = uploaded["entries"][0]["id"]
            .as_str()
            .or_else(|| uploaded["id"].as_str())
            .unwrap_or_else(|| panic!("file id in {uploaded}"))
            .to_string();
        ids.insert(name, id);
    }
    let plan = dry_run_json(world, "box-poll");
    let folders = plan["folders"].as_array().expect("folders");
    assert_eq!(folders.len(), 1, "{plan}");
    assert_eq!(folders[0]["folder"], watched.as_str());
    let files: BTreeMap<String, Value> = folders[0]["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|file| {
            (
                file["name"].as_str().unwrap_or_default().to_string(),
                file.clone(),
            )
        })
        .collect();
    assert_eq!(
        files.keys().collect::<Vec<_>>(),
        ids.keys().collect::<Vec<_>>(),
        "every file of the watched folder is listed: {plan}"
    );
    let state = world.sandbox.state();
    let final_assets =
        dam_folder(&state, &scene.campaign_id, "Final Assets").expect("Final Assets");
    let today = jiff::Timestamp::now().strftime("%Y-%m-%d").to_string();
    for name in &good {
        let file = &files[name];
        assert_eq!(file["action"], "import", "{file}");
        assert_eq!(file["box_file"], ids[name].as_str());
        assert_eq!(file["name_parses"], true);
        assert_eq!(file["campaign"], "C-2026-0999");
        assert_eq!(file["import_into"], final_assets["id"]);
        assert_eq!(file["move_to"], format!("_PROCESSED/{today}").as_str());
    }
    assert_eq!(files[&good[0]]["master"], "Crash_Poster.jpg");
    assert_eq!(files[&good[0]]["import_as"], "Item-0_image_EN_1x1.jpg");
    let bad = &files["not-a-v2-name.jpg"];
    assert_eq!(bad["action"], "reject", "{bad}");
    assert_eq!(bad["name_parses"], false);
    assert_eq!(bad["move_to"], "_errors");
    assert!(!strings(&bad["reasons"]).is_empty(), "{bad}");
    let unknown = &files["ZZZZZZ_Item-2_image_EN_1x1_v01.jpg"];
    assert_eq!(unknown["action"], "reject", "{unknown}");
    assert_eq!(unknown["name_parses"], true);
    assert!(
        strings(&unknown["reasons"])
            .iter()
            .any(|reason| reason.contains("matches no master")),
        "{unknown}"
    );
    assert_eq!(files[".DS_Store"]["action"], "ignore");
    assert!(
        strings(&plan["campaigns_to_a3"]).is_empty(),
        "the video master still lacks a derivative: {plan}"
    );

    // The text form: one line per file with its box_file id.
    let output = world.run("box-poll", &["--dry-run"]);
    assert_eq!(output.status.code(), Some(0));
    let listing = stdout(&output);
    for (name, id) in &ids {
        assert!(
            listing.contains(&format!("box_file={id} \"{name}\"")),
            "{name}: {listing}"
        );
    }
    assert!(
        listing.contains("files: 1 ignore, 2 import, 2 reject"),
        "{listing}"
    );

    // The real pass does what the dry run said.
    let output = world.run("box-poll", &[]);
    assert_eq!(output.status.code(), Some(0));
    let state = world.sandbox.state();
    let mut imported: Vec<String> = state["dam"]["assets"]
        .as_array()
        .expect("assets")
        .iter()
        .filter(|asset| asset["folder_id"] == final_assets["id"])
        .filter_map(|asset| asset["name"].as_str().map(str::to_string))
        .collect();
    imported.sort();
    assert_eq!(
        imported,
        ["Item-0_image_EN_1x1.jpg", "Item-1_image_IT_1x1.jpg"]
    );
    let processed = box_folder(&state, &watched, "_PROCESSED").expect("_PROCESSED");
    let dated = box_folder(&state, processed["id"].as_str().expect("id"), &today)
        .expect("_PROCESSED/{today}");
    let mut archived: Vec<String> = box_files_in(&state, dated["id"].as_str().expect("id"))
        .iter()
        .filter_map(|file| file["id"].as_str().map(str::to_string))
        .collect();
    archived.sort();
    let mut expected: Vec<String> = good.iter().map(|name| ids[name].clone()).collect();
    expected.sort();
    assert_eq!(archived, expected);
    let errors = box_folder(&state, &watched, "_errors").expect("_errors");
    let rejected: Vec<String> = box_files_in(&state, errors["id"].as_str().expect("id"))
        .iter()
        .filter_map(|file| file["id"].as_str().map(str::to_string))
        .collect();
    for name in ["not-a-v2-name.jpg", "ZZZZZZ_Item-2_image_EN_1x1_v01.jpg"] {
        assert!(
            rejected.contains(&ids[name]),
            "{name} in _errors: {rejected:?}"
        );
        // The rejection's log line names the Box file (the id `reprocess file` takes).
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.lines().any(|line| line.contains("file rejected")
                && line.contains(&format!("box_file={}", ids[name]))),
            "{name}: {stderr}"
        );
    }
    // Nothing left to do but the debris: a dry run now says so.
    let plan = dry_run_json(world, "box-poll");
    let actions: Vec<String> = plan["folders"][0]["files"]
        .as_array()
        .expect("files")
        .iter()
        .filter_map(|file| file["action"].as_str().map(str::to_string))
        .collect();
    assert_eq!(actions, ["ignore"], "{plan}");
}
