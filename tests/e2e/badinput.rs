//! Bad input end to end (issue 3): hostile and broken deliveries are each rejected with a note
//! or processed; none crashes the pass, none is lost, none escapes the temp dir.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::util::{box_files_in, box_folder, fixture, World};

const FAST: &str = "tests/e2e/scenarios/fast.yaml";

fn tracking_id_of_video(world: &World) -> String {
    let state = world.sandbox.state();
    let root = world.sandbox.str("box_root_folder_id");
    let folder = box_folder(&state, &root, "C-2026-0999 Crash Test").expect("campaign folder");
    box_files_in(&state, folder["id"].as_str().expect("id"))
        .iter()
        .filter_map(|file| file["name"].as_str())
        .find(|name| name.ends_with(".mp4"))
        .map(|name| name[..6].to_string())
        .expect("video master")
}

#[test]
fn hostile_and_broken_deliveries_are_rejected_or_processed_never_lost() {
    let (video, jpg) = (fixture("bigbuckbunny.mp4"), fixture("rocket.jpg"));
    let world = World::new(Some(FAST));
    assert_eq!(world.run("a1-to-a2", &[]).status.code(), Some(0));
    let id = tracking_id_of_video(&world);
    let watched = world.sandbox.watched_folder_id();

    let inputs = world.temp.path().join("inputs");
    std::fs::create_dir_all(&inputs).expect("inputs dir");
    let empty = inputs.join("empty.mp4");
    std::fs::write(&empty, b"").expect("empty file");
    let corrupt = inputs.join("corrupt.mp4");
    std::fs::write(
        &corrupt,
        (0..200_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect::<Vec<u8>>(),
    )
    .expect("corrupt file");

    let long_title = "Very-Long-Title".repeat(16);
    let mut cases: Vec<(String, std::path::PathBuf)> = vec![
        (format!("{id}_.._video_IT_1x1_v01.mp4"), video.clone()),
        (
            format!("{id}_{long_title}_video_IT_1x1_v01.mp4")[..255].to_string(),
            video.clone(),
        ),
        (
            format!("{id}_Bell\u{7}Title_video_IT_1x1_v01.mp4"),
            video.clone(),
        ),
        (
            format!("{id}_Caf\u{e9}-\u{1f370}_video_IT_1x1_v01.mp4"),
            video.clone(),
        ),
        (
            format!("{id}_Trailing_video_IT_1x1_v01.mp4. "),
            video.clone(),
        ),
        (
            format!("{id}_Trailing-Dot_video_IT_1x1_v01.mp4."),
            video.clone(),
        ),
        (
            format!("{id}_$(rm -rf ~);_video_IT_1x1_v01.mp4"),
            jpg.clone(),
        ),
        (
            format!("{id}_\"Quoted\"'_video_IT_1x1_v01.mp4"),
            jpg.clone(),
        ),
        (
            format!("{id}_%2e%2e%2fetc_video_IT_1x1_v01.mp4"),
            jpg.clone(),
        ),
        (format!("{id}_Empty_video_IT_1x1_v01.mp4"), empty.clone()),
        (
            format!("{id}_Corrupt_video_IT_1x1_v01.mp4"),
            corrupt.clone(),
        ),
        (
            format!("{id}_Unicode-Ümlaut_video_IT_1x1_v01.mp4"),
            video.clone(),
        ),
        ("\u{1f600}\u{1f600}\u{1f600}.mp4".to_string(), jpg.clone()),
        ("   .mp4".to_string(), jpg.clone()),
        (
            format!("{id}_Wrong-Type_spreadsheet_IT_1x1_v01.xlsx"),
            jpg.clone(),
        ),
    ];
    // Names Box itself refuses (path separators, `..`) cannot exist in a Box folder: the
    // sandbox answers 400 item_name_invalid like Box; they are not deliveries we could see.
    let mut uploaded = BTreeSet::new();
    for name in [
        format!("{id}_A/B_video_IT_1x1_v01.mp4"),
        format!("{id}_A\\B_video_IT_1x1_v01.mp4"),
        "..".to_string(),
    ] {
        cases.push((name, jpg.clone()));
    }
    for (name, source) in &cases {
        match world.sandbox.try_agency_upload(&watched, name, source) {
            Ok(_) => {
                uploaded.insert(name.clone());
            }
            Err(error) => {
                assert!(
                    error.starts_with("400"),
                    "only invalid names are refused: {name:?}: {error}"
                );
                eprintln!("Box refused {name:?}: {error}");
            }
        }
    }
    assert!(
        uploaded.len() >= 10,
        "most hostile names exist in Box: {uploaded:?}"
    );

    let output = world.run("box-poll", &[]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "the pass survives every input"
    );
    // A second pass: nothing left to do, nothing changes.
    assert_eq!(world.run("box-poll", &[]).status.code(), Some(0));

    let state = world.sandbox.state();
    let left: Vec<Value> = box_files_in(&state, &watched);
    let errors = box_folder(&state, &watched, "_errors").expect("_errors");
    let error_files = box_files_in(&state, errors["id"].as_str().expect("id"));
    let processed_files: Vec<Value> = box_folder(&state, &watched, "_PROCESSED")
        .map(|processed| {
            state["box"]["folders"]
                .as_array()
                .expect("folders")
                .iter()
                .filter(|folder| folder["parent_id"] == processed["id"])
                .flat_map(|folder| box_files_in(&state, folder["id"].as_str().expect("id")))
                .collect()
        })
        .unwrap_or_default();
    let names = |files: &[Value]| -> BTreeSet<String> {
        files
            .iter()
            .filter_map(|file| file["name"].as_str().map(str::to_string))
            .collect()
    };
    let (left, rejected, delivered) = (names(&left), names(&error_files), names(&processed_files));
    for name in &uploaded {
        // A clash in _errors/ gets the file id as a prefix: match on the suffix.
        let found = left.contains(name)
            || delivered.iter().any(|n| n.ends_with(name.as_str()))
            || rejected.iter().any(|n| n.ends_with(name.as_str()));
        assert!(found, "{name:?} is somewhere: not lost");
    }
    // Every rejected source has its note; the ignored debris names stay where they were.
    for name in rejected.iter().filter(|name| !name.ends_with(".error.txt")) {
        let has_note = error_files
            .iter()
            .filter_map(|file| file["name"].as_str())
            .any(|note| {
                note.ends_with(".error.txt")
                    && (note.starts_with(name.as_str())
                        || name.starts_with(note.trim_end_matches(".error.txt")))
            });
        assert!(has_note, "{name:?} has an .error.txt note");
    }
    let corrupt_name = format!("{id}_Corrupt_video_IT_1x1_v01.mp4");
    let empty_name = format!("{id}_Empty_video_IT_1x1_v01.mp4");
    assert!(
        rejected.contains(&corrupt_name),
        "a corrupt video is rejected: {rejected:?}"
    );
    assert!(
        rejected.contains(&empty_name),
        "an empty file is rejected: {rejected:?}"
    );
    let note = |file_name: &str| -> String {
        let file = error_files
            .iter()
            .find(|file| file["name"].as_str() == Some(&format!("{file_name}.error.txt")))
            .unwrap_or_else(|| panic!("note for {file_name}"));
        std::fs::read_to_string(file["content_path"].as_str().expect("content path")).expect("note")
    };
    assert!(
        note(&corrupt_name).contains("cannot be read"),
        "{}",
        note(&corrupt_name)
    );
    assert!(note(&empty_name).contains("empty"), "{}", note(&empty_name));
    assert!(
        delivered.iter().any(|name| name.contains("Unicode-Ümlaut")),
        "a valid Unicode name is delivered: {delivered:?}"
    );
    // Nothing the pass wrote is left in, or escaped from, its temp dir.
    // Downloads go to {temp}/downloads (apart from the token cache): look there and above.
    let downloads = world.temp.path().join("downloads");
    assert!(
        downloads.is_dir(),
        "the pass downloaded into {}",
        downloads.display()
    );
    let leftovers: Vec<String> = [world.temp.path(), downloads.as_path()]
        .into_iter()
        .flat_map(|dir| std::fs::read_dir(dir).expect("temp dir"))
        .filter_map(std::result::Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("cs-"))
        .collect();
    assert!(leftovers.is_empty(), "temp files removed: {leftovers:?}");
    let parent = world.temp.path().parent().expect("parent");
    for entry in std::fs::read_dir(parent)
        .expect("parent")
        .filter_map(std::result::Result::ok)
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        assert!(
            !name.contains("Trailing") && !name.contains("Bell"),
            "nothing named after a delivery outside the temp dir: {name}"
        );
    }
}
