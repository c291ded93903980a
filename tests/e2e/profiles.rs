//! Per-folder profiles (issue 13): `box.watched_folders[].profile` selects a `profiles.<name>` of
//! `field_mappings.yaml` whose forced/default values, field updates, naming grammar and error
//! recipients apply to that folder's deliveries; a folder without one uses the defaults.

use std::path::Path;

use crate::util::{box_files_in, box_folder, copy_config_dir, final_assets, fixture, World};

/// Two watched folders (`incoming`, `incoming-de`) and one campaign with one master.
fn scenario(dir: &Path) -> std::path::PathBuf {
    let text = format!(
        r"
box:
  watched_folders: [incoming, incoming-de]
dam:
  import_delay_ms: 50
  campaigns:
    - number: C-2026-0555
      name: Profiles
      status: A1
      masters:
        - name: Profiles_KeyVisual.png
          file: {png}
          fields:
            FERRERO.FIELD.MKTG.ASSET TYPE: {{value: image, display: Image}}
            MAIN_LANGUAGES: {{value: EN, display: English}}
",
        png = fixture("coffee.png").display()
    );
    let path = dir.join("profiles.yaml");
    std::fs::write(&path, text).expect("scenario");
    path
}

/// The repository's config with the second folder under profile `germany`.
fn config(dir: &Path) -> std::path::PathBuf {
    let config = copy_config_dir(dir);
    let overlay = config.join("environments/sandbox.yaml");
    let text = std::fs::read_to_string(&overlay).expect("overlay");
    let watched = "  watched_folders:\n    - id: ${BOX_WATCHED_FOLDER_ID}\n      name: incoming\n      profile: default\n";
    assert!(
        text.contains(watched),
        "the overlay's watched folder block changed"
    );
    std::fs::write(
        &overlay,
        text.replace(
            watched,
            &format!("{watched}    - id: ${{BOX_WATCHED_FOLDER_ID_DE}}\n      name: incoming-de\n      profile: germany\n"),
        ),
    )
    .expect("write overlay");
    let mappings = config.join("field_mappings.yaml");
    let mut text = std::fs::read_to_string(&mappings).expect("mappings");
    text.push_str(
        "\nprofiles:\n  germany:\n    forced_field_values:\n      FERRERO.FIELD.SOURCE SYSTEM: content-scaling-de\n      FERRERO.FIELD.MARKET: DE\n    default_field_values:\n      FERRERO.FIELD.USAGE RIGHTS: Germany only\n    error_recipients: [de-agency-errors@example.com]\n",
    );
    std::fs::write(&mappings, text).expect("write mappings");
    config
}

#[test]
fn two_watched_folders_with_different_profiles() {
    let dir = tempfile::tempdir().expect("temp dir");
    let world = World::with_sandbox(Some(&scenario(dir.path())), &[]);
    let config = config(dir.path());
    let config_env = config.display().to_string();
    let german = world.sandbox.watched_folder_id_at(1);
    let env = [
        ("CS_CONFIG_DIR", config_env.as_str()),
        ("BOX_WATCHED_FOLDER_ID_DE", german.as_str()),
    ];

    // An unknown profile is a configuration error naming the key.
    let broken = dir.path().join("broken");
    std::fs::create_dir_all(&broken).expect("dir");
    let broken_config = copy_config_dir(&broken);
    let overlay = broken_config.join("environments/sandbox.yaml");
    let text = std::fs::read_to_string(&overlay).expect("overlay");
    std::fs::write(
        &overlay,
        text.replace("profile: default", "profile: austria"),
    )
    .expect("write");
    let broken_env = broken_config.display().to_string();
    let output = world.run_with_env("a1-to-a2", &[], &[("CS_CONFIG_DIR", &broken_env)]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("box.watched_folders[0].profile: expected default or a profile of"),
        "{stderr}"
    );

    let output = world.run_with_env("a1-to-a2", &[], &env);
    assert_eq!(output.status.code(), Some(0), "a1-to-a2");
    let state = world.sandbox.state();
    let root = world.sandbox.str("box_root_folder_id");
    let folder = box_folder(&state, &root, "C-2026-0555 Profiles").expect("campaign in Box");
    let tracking_id = box_files_in(&state, folder["id"].as_str().expect("id"))[0]["name"]
        .as_str()
        .expect("name")[..6]
        .to_string();

    let png = fixture("coffee.png");
    let italian = world.sandbox.watched_folder_id();
    world.sandbox.agency_upload(
        &italian,
        &format!("{tracking_id}_Profiles-IT_image_IT_1x1_v01.png"),
        &png,
    );
    world.sandbox.agency_upload(
        &german,
        &format!("{tracking_id}_Profiles-DE_image_DE_1x1_v01.png"),
        &png,
    );
    // One bad name in each folder: each rejection goes to its folder's recipients.
    world.sandbox.agency_upload(
        &italian,
        &format!("{tracking_id}_Bad-IT_nosuchtype_IT_1x1_v01.png"),
        &png,
    );
    world.sandbox.agency_upload(
        &german,
        &format!("{tracking_id}_Bad-DE_nosuchtype_DE_1x1_v01.png"),
        &png,
    );
    let output = world.run_with_env("box-poll", &[], &env);
    assert_eq!(output.status.code(), Some(0), "box-poll");

    let state = world.sandbox.state();
    let assets = final_assets(&state);
    let field = |name_part: &str, field: &str| -> String {
        assets
            .iter()
            .find(|asset| asset["name"].as_str().unwrap_or("").contains(name_part))
            .unwrap_or_else(|| panic!("no asset {name_part}: {assets:?}"))["fields"][field]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(
        field("Profiles-IT", "FERRERO.FIELD.SOURCE SYSTEM"),
        "content-scaling"
    );
    assert_eq!(field("Profiles-IT", "FERRERO.FIELD.MARKET"), "");
    assert_eq!(
        field("Profiles-IT", "FERRERO.FIELD.USAGE RIGHTS"),
        "Standard"
    );
    assert_eq!(
        field("Profiles-DE", "FERRERO.FIELD.SOURCE SYSTEM"),
        "content-scaling-de"
    );
    assert_eq!(field("Profiles-DE", "FERRERO.FIELD.MARKET"), "DE");
    assert_eq!(
        field("Profiles-DE", "FERRERO.FIELD.USAGE RIGHTS"),
        "Germany only"
    );
    // Fields the profile does not override stay the defaults'.
    assert_eq!(field("Profiles-DE", "FERRERO.FIELD.ASSET STATUS"), "Final");

    let emails = state["emails"].as_array().cloned().unwrap_or_default();
    let rejections: Vec<(String, String)> = emails
        .iter()
        .filter(|email| {
            email["subject"]
                .as_str()
                .is_some_and(|subject| subject.starts_with("Upload rejected"))
        })
        .map(|email| (email["to"].to_string(), email["subject"].to_string()))
        .collect();
    assert_eq!(rejections.len(), 2, "{emails:?}");
    assert!(
        rejections
            .iter()
            .any(|(to, subject)| to.contains("de-agency-errors@example.com")
                && !to.contains("dam-support@example.com")
                && subject.contains("Bad-DE")),
        "the German folder's rejection goes to its profile's recipients: {rejections:?}"
    );
    assert!(
        rejections
            .iter()
            .any(|(to, subject)| to.contains("dam-support@example.com")
                && !to.contains("de-agency-errors")
                && subject.contains("Bad-IT")),
        "the default folder's rejection goes to email.error_recipients: {rejections:?}"
    );
}
