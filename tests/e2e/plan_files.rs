//! The plan's own files, unchanged, in a deployment directory (issue 13): `config/config.yaml`,
//! `config/field_mappings.yaml` and `config/webhooks.yaml` exactly as `shared/plan-contracts.md`
//! gives them (`tests/fixtures/plan/config/`), its email templates in the plan's shape, and one
//! overlay (`config/environments/staging.yaml`, which the plan's `include:` names) with only
//! what the plan cannot know: the sandbox's URLs and IDs, the watched folder, the optional
//! webhook switched on, and a small log size so that rotation shows. The binaries run from the
//! deployment directory with the plan's environment variables, as the plan's crontab runs them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::util::{
    bin, box_files_in, box_folder, campaign_status, derivative_media, hooks_named, repo_root, World,
};

const DEMO: &str = "crates/sandbox/scenarios/demo.yaml";
const TOKEN: &str = "plan-files-webhook-token";

/// Lays out the deployment directory and returns its root.
fn deployment(world: &World) -> PathBuf {
    let root = world.temp.path().join("ferrero-automation");
    let config = root.join("config");
    std::fs::create_dir_all(config.join("environments")).expect("config dir");
    let plan = repo_root().join("tests/fixtures/plan/config");
    for file in [
        "config.yaml",
        "field_mappings.yaml",
        "webhooks.yaml",
        "email_templates.yaml",
    ] {
        std::fs::copy(plan.join(file), config.join(file)).expect("plan file");
    }
    let sandbox = &world.sandbox;
    let app: Value = serde_json::from_str(
        &std::fs::read_to_string(sandbox.str("box_app_config")).expect("app config"),
    )
    .expect("app config JSON");
    std::fs::write(
        root.join("box_private_key.pem"),
        app["boxAppSettings"]["appAuth"]["privateKey"]
            .as_str()
            .expect("private key"),
    )
    .expect("pem");
    let enterprise = match &app["enterpriseID"] {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    let hooks = sandbox.str("webhook_url");
    let overlay = format!(
        r#"# Only what the plan cannot know: this environment's URLs and IDs.
box:
  base_url: {base}
  upload_url: {upload}
  oauth2_url: {oauth}
  enterprise_id: "{enterprise}"
  root_folder_id: "{root_folder}"
  watched_folders:
    - id: "{watched}"
      name: incoming
notifications:
  mailgun:
    base_url: {mailgun}
webhooks:
  asset_upload_complete:
    enabled: true
    url: {hooks}/asset_upload_complete
logging:
  handlers:
    file:
      max_bytes: 600
      backup_count: 2
"#,
        base = sandbox.str("base_url"),
        upload = sandbox.str("upload_url"),
        oauth = sandbox.str("oauth2_url"),
        root_folder = sandbox.str("box_root_folder_id"),
        watched = sandbox.watched_folder_id(),
        mailgun = sandbox.str("mailgun_url"),
    );
    std::fs::write(config.join("environments/staging.yaml"), overlay).expect("overlay");
    root
}

/// The plan's environment variables (its `.env`), for the sandbox.
fn plan_env(world: &World, root: &Path) -> Vec<(String, String)> {
    let sandbox = &world.sandbox;
    let app: Value = serde_json::from_str(
        &std::fs::read_to_string(sandbox.str("box_app_config")).expect("app config"),
    )
    .expect("app config JSON");
    let settings = &app["boxAppSettings"];
    let text = |value: &Value| value.as_str().unwrap_or_default().to_string();
    vec![
        ("ENV", "staging".to_string()),
        ("DAM_BASE_URL", sandbox.str("dam_url")),
        ("DAM_AUTH_URL", sandbox.str("dam_oauth2_url")),
        ("DAM_CLIENT_ID", sandbox.str("dam_client_id")),
        ("DAM_CLIENT_SECRET", sandbox.str("dam_client_secret")),
        ("BOX_CLIENT_ID", text(&settings["clientID"])),
        ("BOX_CLIENT_SECRET", text(&settings["clientSecret"])),
        ("BOX_JWT_KEY_ID", text(&settings["appAuth"]["publicKeyID"])),
        (
            "BOX_PRIVATE_KEY_PATH",
            root.join("box_private_key.pem").display().to_string(),
        ),
        ("BOX_PASSPHRASE", text(&settings["appAuth"]["passphrase"])),
        ("DB_USER", "ferrero".to_string()),
        ("DB_PASSWORD", "not-used-DATABASE_URL-wins".to_string()),
        ("DATABASE_URL", world.db.url.clone()),
        (
            "CAMPAIGN_STATUS_WEBHOOK_URL",
            format!("{}/campaign_status_update", sandbox.str("webhook_url")),
        ),
        ("WEBHOOK_AUTH_TOKEN", TOKEN.to_string()),
        ("MAILGUN_API_KEY", sandbox.str("mailgun_api_key")),
        ("MAILGUN_DOMAIN", sandbox.str("mailgun_domain")),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_string(), value))
    .collect()
}

/// Runs `binary` from the deployment directory with only the plan's variables (no
/// `CS_CONFIG_DIR`, no `CS_ENVIRONMENT`: `./config` and the plan's `include:` decide).
fn run(root: &Path, env: &[(String, String)], binary: &str) -> Output {
    let mut command = Command::new(bin(binary));
    command
        .current_dir(root)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(
            env.iter()
                .map(|(key, value)| (key.as_str(), value.as_str())),
        );
    let output = command.output().expect("run binary");
    eprintln!(
        "--- {binary} exit {:?}\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

#[test]
fn the_plans_files_run_the_whole_flow_from_a_deployment_directory() {
    let world = World::new(Some(DEMO));
    let root = deployment(&world);
    let env = plan_env(&world, &root);
    let campaign = world.sandbox.ready["campaigns"][0]["folder_id"]
        .as_str()
        .expect("campaign id")
        .to_string();

    let output = run(&root, &env, "a1-to-a2");
    assert_eq!(output.status.code(), Some(0), "a1-to-a2");
    let state = world.sandbox.state();
    assert_eq!(campaign_status(&state, &campaign), "A2");
    let box_root = world.sandbox.str("box_root_folder_id");
    let folder = box_folder(&state, &box_root, "C-2026-0142 Nutella Breakfast Moments")
        .expect("campaign folder in Box");
    let masters: Vec<(String, String)> = box_files_in(&state, folder["id"].as_str().expect("id"))
        .iter()
        .filter_map(|file| file["name"].as_str())
        .map(|name| (name[..6].to_string(), name[7..].to_string()))
        .collect();
    assert_eq!(masters.len(), 3);

    let watched = world.sandbox.watched_folder_id();
    for (tracking_id, master) in &masters {
        let (source, ext, kind) = derivative_media(master);
        // The language in lower case: the plan's `transform: uppercase` makes it IT.
        let name = format!("{tracking_id}_Breakfast-Moments_{kind}_it_9x16-15s_v01.{ext}");
        world.sandbox.agency_upload(&watched, &name, &source);
    }
    let output = run(&root, &env, "box-poll");
    assert_eq!(output.status.code(), Some(0), "box-poll");
    let state = world.sandbox.state();
    assert_eq!(campaign_status(&state, &campaign), "A3");

    // The plan's webhook: twice, exactly its keys, A1->A2 then A2->A3, with its Authorization.
    let status_hooks = hooks_named(&state, "campaign_status_update");
    assert_eq!(status_hooks.len(), 2, "{status_hooks:?}");
    let transitions: Vec<(String, String)> = status_hooks
        .iter()
        .map(|hook| {
            assert_eq!(hook["headers"]["authorization"], format!("Bearer {TOKEN}"));
            let body = &hook["body"];
            let mut keys: Vec<&str> = body
                .as_object()
                .expect("object")
                .keys()
                .map(String::as_str)
                .collect();
            keys.sort_unstable();
            assert_eq!(
                keys,
                [
                    "asset_count",
                    "campaign_id",
                    "campaign_name",
                    "campaign_number",
                    "new_status",
                    "old_status",
                    "processed_assets",
                    "timestamp"
                ]
            );
            assert_eq!(body["campaign_id"], campaign.as_str());
            assert_eq!(body["asset_count"], 3);
            let tracking: Vec<&str> = body["processed_assets"]
                .as_array()
                .expect("array")
                .iter()
                .filter_map(|asset| asset["tracking_id"].as_str())
                .collect();
            for (tracking_id, _) in &masters {
                assert!(tracking.contains(&tracking_id.as_str()), "{body}");
            }
            (
                body["old_status"].as_str().unwrap_or_default().to_string(),
                body["new_status"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        transitions,
        [
            ("A1".to_string(), "A2".to_string()),
            ("A2".into(), "A3".into())
        ]
    );
    assert_eq!(hooks_named(&state, "asset_upload_complete").len(), 3);

    // The A2 and A3 emails from the plan-shaped templates, to the plan's success recipients.
    let emails = state["emails"].as_array().cloned().unwrap_or_default();
    let subjects: Vec<&str> = emails
        .iter()
        .filter_map(|email| email["subject"].as_str())
        .collect();
    assert!(
        subjects.contains(&"Campaign Nutella Breakfast Moments (C-2026-0142) ready in Box"),
        "{subjects:?}"
    );
    assert!(
        subjects.contains(&"Campaign Nutella Breakfast Moments complete (A3)"),
        "{subjects:?}"
    );
    for email in &emails {
        assert_eq!(
            email["to"],
            serde_json::json!(["team@ferrero.com", "agency@example.com"]),
            "{email}"
        );
    }

    // The plan's field mappings on every derivative.
    let finals: Vec<Value> = crate::util::final_assets(&state);
    assert_eq!(finals.len(), 3);
    for asset in &finals {
        assert_eq!(asset["fields"]["FERRERO.FIELD.STATE"], "Local", "{asset}");
        assert_eq!(asset["fields"]["MAIN_LANGUAGES"], "IT", "{asset}");
        assert_eq!(
            asset["fields"]["FERRERO.FIELD.FISCAL YEAR"], "2025/2026",
            "{asset}"
        );
    }

    // logs/app.log written and rotated (max_bytes 600 in the overlay, backup_count 2).
    let logs = root.join("logs");
    let log = std::fs::read_to_string(logs.join("app.log")).expect("logs/app.log");
    assert!(!log.is_empty());
    assert!(logs.join("app.log.1").is_file(), "rotated once at least");
    assert!(!logs.join("app.log.3").exists(), "backup_count 2");
    // The plan's temp directory was used (and cleaned by the passes).
    assert!(root.join("temp/downloads").is_dir());
}
