//! Change detection through Box's events stream (issue 15): real `box-poll` passes against the
//! sandbox's `GET /2.0/events`. Each pass's `folders_listed` (its `runs.counts`) shows which
//! watched folders it listed; the sandbox's stream faults (`events` in `/_sandbox/config`) lose,
//! repeat, reorder and expire events, and every file is still delivered exactly once.

use serde_json::json;

use crate::exactly_once::Eo;
use crate::util::{assert_exactly_once_invariants, fixture, post_json, route_count};

/// Full listings only when the stream says so (an hour: never within a test).
const NO_CADENCE: [(&str, &str); 1] = [("POLLING_FULL_LISTING_INTERVAL_SECS", "3600")];
/// A full listing every pass.
const EVERY_PASS: [(&str, &str); 1] = [("POLLING_FULL_LISTING_INTERVAL_SECS", "0")];

/// Watched folders the last `box-poll` pass listed.
fn folders_listed(eo: &Eo) -> i64 {
    let mut db = eo.world.db.client();
    let row = db
        .query_one(
            "SELECT (counts->>'folders_listed')::bigint FROM runs \
             WHERE binary_name = 'box-poll' ORDER BY id DESC LIMIT 1",
            &[],
        )
        .expect("last box-poll run");
    row.get::<_, Option<i64>>(0)
        .expect("folders_listed recorded")
}

fn poll_listing(eo: &Eo, env: &[(&str, &str)]) -> i64 {
    let output = eo.poll(env);
    assert_eq!(output.status.code(), Some(0), "box-poll failed");
    folders_listed(eo)
}

fn events_config(eo: &Eo, events: serde_json::Value) {
    eo.set_sandbox(json!({ "events": events }));
}

/// An agency folder outside the watched folder.
fn outside_folder(eo: &Eo) -> String {
    let reply = post_json(
        &format!("{}/agency-folder", eo.world.sandbox.control()),
        &json!({"parent_id": eo.world.sandbox.str("box_root_folder_id"), "name": "agency-drafts"}),
    );
    reply["id"].as_str().expect("agency folder").to_string()
}

#[test]
fn upload_new_version_rename_in_and_move_out_come_through_the_stream() {
    let eo = Eo::new();
    let jpg = fixture("rocket.jpg");
    let outside = outside_folder(&eo);
    // First pass: no position yet, so every watched folder is listed; then idle passes list none.
    assert_eq!(
        poll_listing(&eo, &NO_CADENCE),
        1,
        "first pass lists in full"
    );
    let listings = route_count(&eo.world.sandbox.stats(), "GET /2.0/folders/{id}/items 200");
    assert_eq!(poll_listing(&eo, &NO_CADENCE), 0, "idle pass lists nothing");
    let stats = eo.world.sandbox.stats();
    assert_eq!(
        route_count(&stats, "GET /2.0/folders/{id}/items 200"),
        listings,
        "no listing in an idle pass: {}",
        stats["routes"]
    );

    // An upload.
    let name = |label: &str| format!("{}_{label}_image_EN_1x1_v01.jpg", eo.tid);
    eo.upload(&name("S1-Upload"), &jpg);
    assert_eq!(poll_listing(&eo, &NO_CADENCE), 1, "the upload's folder");
    assert_eq!(
        eo.asset_count(&eo.state(), "S1-Upload_image_EN_1x1.jpg", 1),
        1
    );
    assert_eq!(
        poll_listing(&eo, &NO_CADENCE),
        1,
        "listed once more: it held a file"
    );

    // A new version: the upload's own event is lost, only the version's event remains.
    events_config(&eo, json!({"drop_next": 1}));
    let corrupt = eo.world.temp.path().join("corrupt.jpg");
    std::fs::write(&corrupt, b"not an image").expect("write");
    let versioned = eo.upload(&name("S2-Version"), &corrupt);
    assert_eq!(
        poll_listing(&eo, &NO_CADENCE),
        0,
        "the lost upload touches nothing"
    );
    assert_eq!(
        eo.asset_count(&eo.state(), "S2-Version_image_EN_1x1.jpg", 1),
        0
    );
    eo.new_version(&versioned, &jpg);
    assert_eq!(
        poll_listing(&eo, &NO_CADENCE),
        1,
        "the new version's folder"
    );
    assert_eq!(
        eo.asset_count(&eo.state(), "S2-Version_image_EN_1x1.jpg", 1),
        1
    );

    // A rename into the watched folder: made outside, moved in under its right name.
    let drafted = eo.upload_to(&outside, "draft.jpg", &jpg);
    poll_listing(&eo, &NO_CADENCE);
    assert_eq!(
        poll_listing(&eo, &NO_CADENCE),
        0,
        "an upload elsewhere touches nothing"
    );
    eo.agency_move(&drafted, Some(&eo.watched), Some(&name("S3-Rename")));
    assert_eq!(poll_listing(&eo, &NO_CADENCE), 1, "moved and renamed in");
    assert_eq!(
        eo.asset_count(&eo.state(), "S3-Rename_image_EN_1x1.jpg", 1),
        1
    );

    // A move out before any pass saw the file: nothing is listed or delivered; moved back, it is.
    poll_listing(&eo, &NO_CADENCE);
    events_config(&eo, json!({"drop_next": 1}));
    let leaving = eo.upload(&name("S4-Move"), &jpg);
    eo.agency_move(&leaving, Some(&outside), None);
    assert_eq!(poll_listing(&eo, &NO_CADENCE), 0, "moved out: not listed");
    assert_eq!(
        eo.asset_count(&eo.state(), "S4-Move_image_EN_1x1.jpg", 1),
        0
    );
    eo.agency_move(&leaving, Some(&eo.watched), None);
    assert_eq!(poll_listing(&eo, &NO_CADENCE), 1, "moved back in");
    assert_eq!(
        eo.asset_count(&eo.state(), "S4-Move_image_EN_1x1.jpg", 1),
        1
    );
    assert_exactly_once_invariants(&eo.world);
}

#[test]
fn lost_repeated_and_reordered_events_still_deliver_each_file_once() {
    let eo = Eo::new();
    let jpg = fixture("rocket.jpg");
    poll_listing(&eo, &NO_CADENCE);
    events_config(&eo, json!({"duplicate": true, "reorder": true}));
    let names: Vec<String> = (1..=3)
        .map(|i| format!("{}_D{i}-Twice_image_EN_1x1_v01.jpg", eo.tid))
        .collect();
    for name in &names {
        eo.upload(name, &jpg);
    }
    for _ in 0..3 {
        poll_listing(&eo, &NO_CADENCE);
    }
    for i in 1..=3 {
        assert_eq!(
            eo.asset_count(&eo.state(), &format!("D{i}-Twice_image_EN_1x1.jpg"), 1),
            1,
            "repeated and reordered events: D{i} once"
        );
    }

    // Lost events: the file waits for the full-listing cadence, then is delivered once.
    events_config(
        &eo,
        json!({"drop_next": 2, "duplicate": false, "reorder": false}),
    );
    eo.upload(&format!("{}_L1-Lost_image_EN_1x1_v01.jpg", eo.tid), &jpg);
    eo.upload(&format!("{}_L2-Lost_image_EN_1x1_v01.jpg", eo.tid), &jpg);
    poll_listing(&eo, &NO_CADENCE);
    assert_eq!(
        poll_listing(&eo, &NO_CADENCE),
        0,
        "lost events: nothing listed"
    );
    assert_eq!(
        eo.asset_count(&eo.state(), "L1-Lost_image_EN_1x1.jpg", 1),
        0
    );
    assert_eq!(
        poll_listing(&eo, &EVERY_PASS),
        1,
        "the full-listing cadence"
    );
    for clean in ["L1-Lost_image_EN_1x1.jpg", "L2-Lost_image_EN_1x1.jpg"] {
        assert_eq!(eo.asset_count(&eo.state(), clean, 1), 1, "{clean} once");
    }
    poll_listing(&eo, &EVERY_PASS);
    assert_exactly_once_invariants(&eo.world);
}

#[test]
fn an_expired_position_falls_back_to_full_listings() {
    let eo = Eo::new();
    let jpg = fixture("rocket.jpg");
    poll_listing(&eo, &NO_CADENCE);
    assert_eq!(poll_listing(&eo, &NO_CADENCE), 0);
    events_config(&eo, json!({"keep_last": 1}));
    eo.upload(&format!("{}_X1-Expired_image_EN_1x1_v01.jpg", eo.tid), &jpg);
    eo.upload(&format!("{}_X2-Expired_image_EN_1x1_v01.jpg", eo.tid), &jpg);
    assert_eq!(poll_listing(&eo, &NO_CADENCE), 1, "expired: full listing");
    // The pass's own moves would expire its new position again with `keep_last: 1`.
    events_config(&eo, json!({"keep_last": null}));
    let stats = eo.world.sandbox.stats();
    assert_eq!(
        route_count(&stats, "GET /2.0/events 400"),
        1,
        "the saved position was refused once: {}",
        stats["routes"]
    );
    for clean in ["X1-Expired_image_EN_1x1.jpg", "X2-Expired_image_EN_1x1.jpg"] {
        assert_eq!(eo.asset_count(&eo.state(), clean, 1), 1, "{clean} once");
    }
    // The position taken before the full listing is current again: back to idle passes.
    poll_listing(&eo, &NO_CADENCE);
    assert_eq!(poll_listing(&eo, &NO_CADENCE), 0, "idle again");
    assert_exactly_once_invariants(&eo.world);
}
