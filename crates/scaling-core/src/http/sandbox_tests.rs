//! The Box and OTMM clients against the sandbox (`crates/sandbox`), started in-process by the
//! shared launcher ([`sandbox::launch::Launch`]): part of a plain `cargo test`, nothing to build
//! first and nothing skipped (a sandbox that cannot start fails the test with the reason).
#![expect(
    clippy::print_stderr,
    reason = "test output: figures of the clients against the sandbox"
)]

use std::path::PathBuf;

use sandbox::launch::{Launch, Running};
use serde_json::{json, Value};

use crate::boxapi::{BoxAppConfig, BoxClient, BoxError, BoxItem};
use crate::config::{BoxConfig, BoxCredentials, DamAuth, DamConfig, WatchedFolder};
use crate::dam::DamClient;
use crate::http::{sha1_file, RetryPolicy};
use crate::secret::Secret;

/// A sandbox running the inline `scenario` (with the file `master.bin` it names beside it) and
/// the `sandbox serve` flags `args`.
fn start(scenario: Option<&str>, args: &[&str]) -> Running {
    let mut launch = Launch::new().args(args);
    if let Some(scenario) = scenario {
        launch = launch
            .scenario_text(scenario)
            .file("master.bin", &b"master content bytes"[..]);
    }
    launch.start()
}

fn box_client(sandbox: &Running) -> BoxClient {
    box_client_with(sandbox, |_| {})
}

fn box_client_with(sandbox: &Running, adjust: impl FnOnce(&mut BoxConfig)) -> BoxClient {
    let mut cfg = BoxConfig {
        base_url: sandbox.ready_str("base_url").to_owned(),
        upload_url: sandbox.ready_str("upload_url").to_owned(),
        oauth2_url: sandbox.ready_str("oauth2_url").to_owned(),
        credentials: BoxCredentials::AppConfigFile(PathBuf::from(
            sandbox.ready_str("box_app_config").to_owned(),
        )),
        root_folder_id: sandbox.ready_str("box_root_folder_id").to_owned(),
        watched_folders: vec![WatchedFolder {
            id: "x".into(),
            name: "incoming".into(),
            profile: None,
        }],
        processed_folder_name: "_PROCESSED".into(),
        errors_folder_name: "_errors".into(),
        rate_limit: crate::http::RequestWindow::per_second(50.0),
        connect_timeout_secs: 5,
        read_timeout_secs: 30,
        upload_parallel_parts: 4,
        chunked_upload_threshold_bytes: 50_000_000,
        max_retries: 3,
        token_cache_file: None,
    };
    adjust(&mut cfg);
    let app = BoxAppConfig::load(&cfg.credentials).unwrap();
    BoxClient::new(&cfg, app, ureq::Agent::new_with_defaults())
        .unwrap()
        .with_retry_policy(RetryPolicy::fast(3))
}

#[test]
fn box_client_against_the_sandbox() {
    let sandbox = start(None, &[]);
    let client = box_client(&sandbox);
    let root = sandbox.ready_str("box_root_folder_id").to_owned();
    let listing = client.list_folder(&root).unwrap();
    eprintln!("root listing: {listing:?}");

    let folder = client.create_folder(&root, "cs-client-test").unwrap();
    assert_eq!(
        client.create_folder(&root, "cs-client-test").unwrap().id,
        folder.id,
        "409 -> existing folder"
    );

    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("clip.bin");
    std::fs::write(&source, vec![42u8; 300_000]).unwrap();
    let (sha1, _) = sha1_file(&source).unwrap();
    let uploaded = client
        .upload(&folder.id, "Ab12CD_clip é.bin", &source)
        .unwrap();
    assert_eq!(uploaded.sha1.as_deref(), Some(sha1.as_str()));
    assert_eq!(uploaded.size, Some(300_000));
    assert_eq!(uploaded.parent_id.as_deref(), Some(folder.id.as_str()));
    assert_eq!(uploaded.name, "Ab12CD_clip é.bin");
    let again = client
        .upload(&folder.id, "Ab12CD_clip é.bin", &source)
        .unwrap();
    assert_eq!(again.id, uploaded.id, "409 with the same sha1 = success");
    let other = dir.path().join("other.bin");
    std::fs::write(&other, b"other").unwrap();
    let error = client
        .upload(&folder.id, "Ab12CD_clip é.bin", &other)
        .unwrap_err();
    assert_eq!(error.status(), Some(409), "{error}");

    let fetched = client.get_file(&uploaded.id).unwrap();
    assert_eq!(fetched.sha1, uploaded.sha1);
    let dest = dir.path().join("download.bin");
    assert_eq!(
        client
            .download_to(&uploaded.id, Some(&sha1.to_uppercase()), &dest)
            .unwrap(),
        300_000
    );
    assert_eq!(
        std::fs::read(&dest).unwrap(),
        std::fs::read(&source).unwrap()
    );
    let error = client
        .download_to(
            &uploaded.id,
            Some("0000000000000000000000000000000000000000"),
            &dest,
        )
        .unwrap_err();
    assert!(matches!(error, BoxError::Integrity { .. }), "{error}");

    let note = client
        .upload_text(&folder.id, "clip.error.txt", "first problem\n")
        .unwrap()
        .expect("a new note");
    // The same text again (a retry whose reply was lost): the same file, no new version.
    let again = client
        .upload_text(&folder.id, "clip.error.txt", "first problem\n")
        .unwrap()
        .expect("our own note");
    assert_eq!(
        (again.id.as_str(), again.file_version_id.as_deref()),
        (note.id.as_str(), note.file_version_id.as_deref())
    );
    // Other text under a taken name: refused, the existing file untouched.
    let other_text = client
        .upload_text(&folder.id, "clip.error.txt", "second problem\n")
        .unwrap();
    assert_eq!(other_text, None);
    assert_eq!(
        client.get_file(&note.id).unwrap().sha1.as_deref(),
        Some(crate::http::sha1_bytes(b"first problem\n").as_str())
    );

    let target = client.create_folder(&folder.id, "2026-11-10").unwrap();
    let moved = client
        .move_file(&uploaded.id, &target.id, "clip.bin")
        .unwrap();
    assert_eq!(
        (moved.name.as_str(), moved.parent_id.as_deref()),
        ("clip.bin", Some(target.id.as_str()))
    );
    let second = client.upload(&folder.id, "clip.bin", &other).unwrap();
    let renamed = crate::pipeline::box_poll::move_under_free_name(
        &client, &second.id, &target.id, "clip.bin",
    )
    .unwrap();
    assert_eq!(renamed.name, format!("{}_clip.bin", second.id));
    let names: Vec<String> = client
        .list_folder(&target.id)
        .unwrap()
        .iter()
        .map(|item| item.name().to_string())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");

    // Transient faults are retried; an upload hit by a 500 is checked and resent.
    sandbox.add_fault(json!({"method": "GET", "path_prefix": format!("/2.0/folders/{}/items", folder.id), "status": 503, "count": 2, "retry_after": 0}));
    assert!(client
        .list_folder(&folder.id)
        .unwrap()
        .iter()
        .any(|item| matches!(item, BoxItem::Folder(_))));
    sandbox.add_fault(json!({"method": "POST", "path_prefix": "/api/2.0/files/content", "status": 500, "count": 1}));
    let third = client.upload(&folder.id, "third.bin", &other).unwrap();
    assert_eq!(third.name, "third.bin");

    let missing = client.get_file("999999999").unwrap_err();
    eprintln!("missing file error: {missing}");
    assert_eq!(missing.status(), Some(404));
    eprintln!("stats: {}", sandbox.stats());
}

const SCENARIO: &str = r"
dam:
  import_delay_ms: 100
  campaigns:
    - number: C-9
      name: Client Test
      status: A1
      masters:
        - name: master.bin
          file: master.bin
          mime_type: application/octet-stream
          fields:
            ARTESIA.FIELD.ASSET DESCRIPTION: client test master
            FERRERO.FIELD.MKTG.ASSET TYPE: {value: video, display: Video}
";

fn dam_config(sandbox: &Running, auth: DamAuth) -> DamConfig {
    DamConfig {
        read_timeout_secs: 30,
        content_timeout_secs: 60,
        import_job_timeout_secs: 10,
        import_landing_secs: 2,
        max_retries: 3,
        max_requests_per_second: 1000.0,
        ..DamConfig::new(sandbox.ready_str("dam_url").to_owned(), auth)
    }
}

/// The sandbox's DAM configuration with its session user, and a client of it retrying fast.
fn session_client(sandbox: &Running) -> (DamConfig, DamClient) {
    let auth = DamAuth::Session {
        username: sandbox.ready_str("dam_username").to_owned(),
        password: Secret::new(sandbox.ready_str("dam_password").to_owned()),
    };
    let cfg = dam_config(sandbox, auth);
    let dam = DamClient::new(&cfg, ureq::Agent::new_with_defaults())
        .with_retry_policy(RetryPolicy::fast(3));
    (cfg, dam)
}

fn field_value(json: &Value, field_id: &str) -> Option<String> {
    match json {
        Value::Object(map) => {
            if map.get("id").and_then(Value::as_str) == Some(field_id) {
                let value = map.get("value")?.get("value")?;
                return value
                    .pointer("/field_value/value")
                    .or_else(|| value.get("value"))
                    .and_then(|value| {
                        value
                            .as_str()
                            .map(str::to_string)
                            .or_else(|| Some(value.to_string()))
                    });
            }
            map.values().find_map(|child| field_value(child, field_id))
        }
        Value::Array(items) => items.iter().find_map(|child| field_value(child, field_id)),
        _ => None,
    }
}

#[test]
fn dam_client_against_the_sandbox() {
    let sandbox = start(Some(SCENARIO), &[]);
    let (cfg, dam) = session_client(&sandbox);

    let campaigns = dam
        .search_folders_by_field(
            &cfg.campaign.status_field_id,
            &cfg.campaign.search_operator_id,
            "A1",
            10,
        )
        .unwrap();
    assert_eq!(campaigns.len(), 1, "{campaigns:?}");
    let campaign = dam.get_folder(&campaigns[0].id).unwrap();
    assert_eq!(
        field_value(&campaign.json, "FERRERO.FIELD.CAMPAIGN NUMBER").as_deref(),
        Some("C-9")
    );
    let children = dam.list_children(&campaign.id).unwrap();
    let masters = children
        .iter()
        .find(|child| child.name == "Master Assets")
        .expect("masters folder");
    let final_assets = children
        .iter()
        .find(|child| child.name == "Final Assets")
        .expect("final assets folder");
    assert!(masters.is_folder && final_assets.is_folder);
    let master = dam
        .find_asset_in_folder(&masters.id, "master.bin")
        .unwrap()
        .expect("master");
    let full = dam.get_asset(&master.id).unwrap();
    assert_eq!(
        field_value(&full.json, "FERRERO.FIELD.MKTG.ASSET TYPE").as_deref(),
        Some("video")
    );
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("master.bin");
    assert_eq!(dam.download_to(&master.id, &dest).unwrap(), 20);
    assert_eq!(std::fs::read(&dest).unwrap(), b"master content bytes");

    let source = dir.path().join("derivative.mp4");
    std::fs::write(&source, b"derivative bytes").unwrap();
    let representation = json!({"asset_resource": {"asset": {
        "metadata_model_id": cfg.metadata_model_id, "security_policy_list": [{"id": 2}],
        "metadata": {"metadata_element_list": [{"type": "com.artesia.metadata.MetadataField", "id": "ARTESIA.FIELD.ASSET NAME",
            "value": {"value": {"type": "string", "value": "Ab12CD_clip é.mp4"}}},
            {"type": "com.artesia.metadata.MetadataField", "id": cfg.tracking_field_id,
            "value": {"value": {"type": "string", "value": "Ab12CD v01 box:1/2"}}}]}}}});
    let job = dam
        .import_asset(
            &final_assets.id,
            &source,
            "Ab12CD_clip é.mp4",
            "video/mp4",
            &representation,
        )
        .unwrap();
    let probe = crate::dam::ImportProbe {
        job_id: Some(&job),
        folder_id: &final_assets.id,
        name: "Ab12CD_clip é.mp4",
        field_id: &cfg.tracking_field_id,
        marker: "Ab12CD v01 box:1/2",
    };
    let asset_id = dam
        .wait_for_import(&probe, None)
        .unwrap()
        .expect("imported");
    let imported = dam.get_asset(&asset_id).unwrap();
    assert_eq!(imported.name, "Ab12CD_clip é.mp4");
    assert_eq!(
        dam.find_asset_in_folder(&final_assets.id, "Ab12CD_clip é.mp4")
            .unwrap()
            .map(|asset| asset.id),
        Some(imported.id)
    );

    dam.set_folder_field(&campaign.id, &cfg.campaign.status_field_id, "A2")
        .unwrap();
    let updated = dam.get_folder(&campaign.id).unwrap();
    assert_eq!(
        field_value(&updated.json, &cfg.campaign.status_field_id).as_deref(),
        Some("A2")
    );
    assert!(dam
        .search_folders_by_field(
            &cfg.campaign.status_field_id,
            &cfg.campaign.search_operator_id,
            "A1",
            10
        )
        .unwrap()
        .is_empty());

    let domain = dam.lookup_domain("FERRERO.DOMAIN.MKTG ASSET TYPE").unwrap();
    assert!(
        domain.iter().any(|value| value.value == "video"),
        "{domain:?}"
    );
    let missing = dam
        .get_asset("0000000000000000000000000000000000000000")
        .unwrap_err();
    eprintln!("missing asset error: {missing}");
    assert_eq!(missing.status(), Some(404));

    // OAuth2 client credentials.
    let auth = DamAuth::OAuth2 {
        auth_url: sandbox.ready_str("dam_oauth2_url").to_owned(),
        client_id: sandbox.ready_str("dam_client_id").to_owned(),
        client_secret: Secret::new(sandbox.ready_str("dam_client_secret").to_owned()),
        grant: crate::config::OAuthGrant::ClientCredentials,
    };
    let oauth = DamClient::new(
        &dam_config(&sandbox, auth),
        ureq::Agent::new_with_defaults(),
    );
    assert!(!oauth
        .lookup_domain("FERRERO.DOMAIN.LANGUAGES")
        .unwrap()
        .is_empty());
    oauth
        .set_folder_field(&campaign.id, &cfg.campaign.status_field_id, "A3")
        .unwrap();
    eprintln!("stats: {}", sandbox.stats());
}

#[test]
fn expired_tokens_and_sessions_are_renewed() {
    let sandbox = start(Some(SCENARIO), &["--token-lifetime-secs", "2"]);
    let client = box_client(&sandbox);
    let root = sandbox.ready_str("box_root_folder_id").to_owned();
    client.list_folder(&root).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2500));
    client.list_folder(&root).unwrap();

    let (_, dam) = session_client(&sandbox);
    assert!(!dam
        .lookup_domain("FERRERO.DOMAIN.LANGUAGES")
        .unwrap()
        .is_empty());
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert!(!dam
        .lookup_domain("FERRERO.DOMAIN.LANGUAGES")
        .unwrap()
        .is_empty());
    let stats = sandbox.stats();
    eprintln!("stats: {stats}");
    assert_eq!(stats["routes"]["POST /oauth2/token 200"], 2);
    assert_eq!(stats["routes"]["POST /otmmapi/v6/sessions 200"], 2);
}

#[test]
fn chunked_uploads_against_the_sandbox_with_faults() {
    // Parts of 4 MiB; two 202s before each commit succeeds.
    let sandbox = start(None, &["--part-size", "4194304", "--commit-accepted", "2"]);
    let dir = tempfile::tempdir().unwrap();
    let client = box_client_with(&sandbox, |cfg| {
        cfg.chunked_upload_threshold_bytes = crate::config::MIN_CHUNKED_UPLOAD_THRESHOLD;
    });
    let root = sandbox.ready_str("box_root_folder_id").to_owned();
    let folder = client.create_folder(&root, "cs-chunked-test").unwrap();

    // 22 MB (6 parts): one part stored despite a 500, one dropped connection, one 500 on commit
    // after it landed.
    let source = dir.path().join("big.bin");
    let content: Vec<u8> = (0..22_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&source, &content).unwrap();
    let (sha1, _) = sha1_file(&source).unwrap();
    sandbox.add_fault(json!({"method": "PUT", "path_prefix": "/api/2.0/files/upload_sessions/", "status": 500, "after": true, "count": 1}));
    sandbox.add_fault(json!({"method": "PUT", "path_prefix": "/api/2.0/files/upload_sessions/", "kind": "drop", "count": 1}));
    let uploaded = client.upload(&folder.id, "big.bin", &source).unwrap();
    assert_eq!(uploaded.sha1.as_deref(), Some(sha1.as_str()));
    assert_eq!(uploaded.size, Some(22_000_000));
    assert_eq!(uploaded.parent_id.as_deref(), Some(folder.id.as_str()));
    let stats = sandbox.stats();
    let routes = &stats["routes"];
    eprintln!("routes: {routes}");
    assert_eq!(
        routes["POST /api/2.0/files/upload_sessions/{session_id}/commit 201"],
        1
    );
    // Six parts: the one stored despite its 500 is not sent again, the dropped one is.
    assert_eq!(
        (
            &routes["PUT /api/2.0/files/upload_sessions/{session_id} 200"],
            &routes["PUT /api/2.0/files/upload_sessions/{session_id} 500"],
            &routes["PUT /api/2.0/files/upload_sessions/{session_id} dropped"],
        ),
        (&json!(5), &json!(1), &json!(1))
    );

    // The same bytes again: 409 on session creation with the same sha1 = success.
    let again = client.upload(&folder.id, "big.bin", &source).unwrap();
    assert_eq!(again.id, uploaded.id);

    // A commit that landed although its reply was a 500.
    sandbox.add_fault(json!({"method": "POST", "path_prefix": "/api/2.0/files/upload_sessions/", "status": 500, "after": true, "count": 3}));
    let second = client.upload(&folder.id, "big-2.bin", &source).unwrap();
    assert_eq!(second.sha1.as_deref(), Some(sha1.as_str()));
    sandbox.clear_faults();

    // A new version through a session for the existing file.
    let changed = dir.path().join("big-v2.bin");
    let mut content = content;
    content[0] ^= 0xff;
    std::fs::write(&changed, &content).unwrap();
    let (sha1_v2, _) = sha1_file(&changed).unwrap();
    let version = client
        .upload_new_version(&uploaded.id, "big.bin", &changed)
        .unwrap();
    assert_eq!(version.id, uploaded.id);
    assert_eq!(version.sha1.as_deref(), Some(sha1_v2.as_str()));
    assert_ne!(version.file_version_id, uploaded.file_version_id);

    // The download of the new version is intact.
    let dest = dir.path().join("download.bin");
    client
        .download_to(&uploaded.id, Some(&sha1_v2), &dest)
        .unwrap();
    assert_eq!(sha1_file(&dest).unwrap().0, sha1_v2);
}
