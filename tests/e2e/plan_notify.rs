//! The plan's notification contracts end to end (issue 13): its `notifications:` section, its
//! named webhooks with `payload_template` (received exactly as the marketing system expects),
//! its email templates (`templates:`, `str.format` subjects), and critical alerts once per
//! incident with one recovery email.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::util::{
    box_files_in, box_folder, campaign_status, copy_config_dir, derivative_media, hooks_named,
    World,
};

const DEMO: &str = "crates/sandbox/scenarios/demo.yaml";
const TOKEN: &str = "plan-webhook-token";

/// The plan's `webhooks:` block of config.yaml, and the optional webhook switched on with the
/// sandbox receiver as its URL.
const WEBHOOKS: &str = r"
webhooks:
  campaign_status_update:
    enabled: true
    url: ${CAMPAIGN_STATUS_WEBHOOK_URL}
    timeout_seconds: 10
    retry_on_failure: true
    auth:
      type: bearer  # bearer, basic, none
      token: ${WEBHOOK_AUTH_TOKEN}
  asset_upload_complete:
    enabled: true
    url: ${ASSET_WEBHOOK_URL}
";

/// A copy of `config/` in `dest` using the plan's files: its `webhooks.yaml` unchanged, email
/// templates in its shape, and the sandbox overlay's `email:` replaced by `notifications:`
/// (plus `extra`).
fn plan_config(dest: &Path, extra: &str) -> PathBuf {
    let config = copy_config_dir(dest);
    let fixtures = crate::util::repo_root().join("tests/fixtures/plan");
    std::fs::copy(
        fixtures.join("config/webhooks.yaml"),
        config.join("webhooks.yaml"),
    )
    .expect("plan webhooks.yaml");
    std::fs::copy(
        fixtures.join("config/email_templates.yaml"),
        config.join("plan_email_templates.yaml"),
    )
    .expect("plan templates");
    let overlay = config.join("environments/sandbox.yaml");
    let text = std::fs::read_to_string(&overlay).expect("sandbox overlay");
    assert!(
        text.contains("email:\n  enabled: true\n"),
        "sandbox overlay has an email block"
    );
    let text = text.replacen(
        "email:\n  enabled: true\n",
        "email: null\nemail_as_shipped:\n  enabled: true\n",
        1,
    );
    let notifications =
        std::fs::read_to_string(fixtures.join("notifications.yaml")).expect("notifications block");
    std::fs::write(&overlay, format!("{text}\n{notifications}{extra}")).expect("write overlay");
    config
}

fn env_for(world: &World, config: &Path) -> Vec<(String, String)> {
    let hooks = world.sandbox.str("webhook_url");
    vec![
        ("CS_CONFIG_DIR".into(), config.display().to_string()),
        (
            "CAMPAIGN_STATUS_WEBHOOK_URL".into(),
            format!("{hooks}/campaign_status_update"),
        ),
        (
            "ASSET_WEBHOOK_URL".into(),
            format!("{hooks}/asset_upload_complete"),
        ),
        ("WEBHOOK_AUTH_TOKEN".into(), TOKEN.into()),
    ]
}

fn run(world: &World, env: &[(String, String)], binary: &str) -> Option<i32> {
    let extra: Vec<(&str, &str)> = env
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    world.run_with_env(binary, &[], &extra).status.code()
}

fn keys(value: &Value) -> BTreeSet<String> {
    value
        .as_object()
        .map(|map| map.keys().cloned().collect())
        .unwrap_or_default()
}

fn now_secs() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// Checks one `campaign_status_update` body: exactly the plan's keys, its values and types.
fn assert_status_body(
    hook: &Value,
    campaign_id: &str,
    old_status: &str,
    new_status: &str,
    assets: &[(String, String, String, Option<String>)],
) {
    assert_eq!(
        hook["headers"]["authorization"],
        format!("Bearer {TOKEN}"),
        "the configured Authorization header: {hook}"
    );
    assert!(
        hook["headers"]["idempotency-key"]
            .as_str()
            .is_some_and(|key| !key.is_empty()),
        "Idempotency-Key kept: {hook}"
    );
    assert_eq!(hook["headers"]["content-type"], "application/json");
    let body = &hook["body"];
    let expected_keys: BTreeSet<String> = [
        "campaign_id",
        "campaign_number",
        "campaign_name",
        "old_status",
        "new_status",
        "asset_count",
        "timestamp",
        "processed_assets",
    ]
    .into_iter()
    .map(str::to_string)
    .collect();
    assert_eq!(keys(body), expected_keys, "exactly the plan's keys: {body}");
    let timestamp = body["timestamp"].as_i64().expect("timestamp is a number");
    assert!(
        (now_secs() - timestamp).abs() < 600,
        "timestamp is seconds since the epoch: {timestamp}"
    );
    let mut received: Vec<Value> = body["processed_assets"]
        .as_array()
        .expect("processed_assets is an array")
        .clone();
    received.sort_by_key(|asset| {
        asset["tracking_id"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    });
    let mut expected: Vec<Value> = assets
        .iter()
        .map(|(asset_id, asset_name, tracking_id, box_file_id)| {
            json!({"asset_id": asset_id, "asset_name": asset_name, "tracking_id": tracking_id, "box_file_id": box_file_id})
        })
        .collect();
    expected.sort_by_key(|asset| {
        asset["tracking_id"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    });
    assert_eq!(
        body,
        &json!({
            "campaign_id": campaign_id,
            "campaign_number": "C-2026-0142",
            "campaign_name": "Nutella Breakfast Moments",
            "old_status": old_status,
            "new_status": new_status,
            "asset_count": assets.len(),
            "timestamp": timestamp,
            "processed_assets": body["processed_assets"].clone(),
        })
    );
    assert_eq!(received, expected);
}

#[test]
fn plan_webhooks_and_templates_through_a1_a2_a3() {
    let world = World::new(Some(DEMO));
    let config = plan_config(world.temp.path(), WEBHOOKS);
    let env = env_for(&world, &config);

    // --- A1 -> A2.
    assert_eq!(run(&world, &env, "a1-to-a2"), Some(0));
    let state = world.sandbox.state();
    let campaign_id = world.sandbox.ready["campaigns"][0]["folder_id"]
        .as_str()
        .expect("campaign id")
        .to_string();
    assert_eq!(campaign_status(&state, &campaign_id), "A2");
    let root = world.sandbox.str("box_root_folder_id");
    let box_folder_id = box_folder(&state, &root, "C-2026-0142 Nutella Breakfast Moments")
        .expect("campaign folder in Box")["id"]
        .as_str()
        .expect("id")
        .to_string();
    // (DAM asset id, master name, tracking ID, Box file id) of each master.
    let masters: Vec<(String, String, String, Option<String>)> =
        box_files_in(&state, &box_folder_id)
            .iter()
            .map(|file| {
                let name = file["name"].as_str().expect("name");
                let (tracking_id, original) = name.split_at(6);
                let original = original.trim_start_matches('_').to_string();
                let dam_id = state["dam"]["assets"]
                    .as_array()
                    .expect("assets")
                    .iter()
                    .find(|asset| asset["name"] == original.as_str())
                    .and_then(|asset| asset["id"].as_str())
                    .expect("master in the DAM")
                    .to_string();
                (
                    dam_id,
                    original,
                    tracking_id.to_string(),
                    file["id"].as_str().map(str::to_string),
                )
            })
            .collect();
    assert_eq!(masters.len(), 3);

    let status_hooks = hooks_named(&state, "campaign_status_update");
    assert_eq!(
        status_hooks.len(),
        1,
        "one A1 -> A2 webhook: {status_hooks:?}"
    );
    assert_status_body(&status_hooks[0], &campaign_id, "A1", "A2", &masters);
    assert!(hooks_named(&state, "asset_upload_complete").is_empty());

    let emails = state["emails"].as_array().cloned().unwrap_or_default();
    assert_eq!(emails.len(), 1, "one A2 email: {emails:?}");
    let email = &emails[0];
    assert_eq!(
        email["subject"],
        "Campaign Nutella Breakfast Moments (C-2026-0142) ready in Box"
    );
    assert_eq!(
        email["to"],
        json!(["team@ferrero.com", "agency@example.com"])
    );
    assert_eq!(
        email["from"],
        format!(
            "Ferrero Automation <noreply@{}>",
            world.sandbox.str("mailgun_domain")
        )
    );
    let html = email["html"].as_str().expect("html body");
    assert!(
        html.contains(&format!(
            "3 assets of Nutella Breakfast Moments ({campaign_id})"
        )),
        "{html}"
    );
    // Escaped as Jinja2 does: the URL as it is.
    assert!(
        html.contains(&format!(
            "href=\"https://app.box.com/folder/{box_folder_id}\""
        )),
        "{html}"
    );
    for (dam_id, name, tracking_id, box_file_id) in &masters {
        let line = format!(
            "{tracking_id} {name} {dam_id} {}",
            box_file_id.as_deref().unwrap_or_default()
        );
        assert!(html.contains(&line), "{line} in {html}");
    }

    // --- one derivative per master, then A2 -> A3.
    let watched = world.sandbox.watched_folder_id();
    let mut delivered = BTreeSet::new();
    for (_, master, tracking_id, _) in &masters {
        let (source, ext, kind) = derivative_media(master);
        let name = format!("{tracking_id}_Breakfast-Moments_{kind}_IT_9x16-15s_v01.{ext}");
        world.sandbox.agency_upload(&watched, &name, &source);
        delivered.insert(tracking_id.clone());
    }
    assert_eq!(run(&world, &env, "box-poll"), Some(0));
    let state = world.sandbox.state();
    assert_eq!(campaign_status(&state, &campaign_id), "A3");

    let asset_hooks = hooks_named(&state, "asset_upload_complete");
    assert_eq!(asset_hooks.len(), 3, "one per derivative: {asset_hooks:?}");
    let dam_assets = state["dam"]["assets"].as_array().expect("assets").clone();
    let mut derivatives = Vec::new();
    let mut seen = BTreeSet::new();
    for hook in &asset_hooks {
        let body = &hook["body"];
        assert_eq!(
            keys(body),
            ["dam_asset_id", "filename", "timestamp", "tracking_id"]
                .into_iter()
                .map(str::to_string)
                .collect(),
            "exactly the plan's keys: {body}"
        );
        assert!(body["timestamp"].is_i64(), "{body}");
        let dam_asset = dam_assets
            .iter()
            .find(|asset| asset["id"] == body["dam_asset_id"])
            .unwrap_or_else(|| panic!("dam_asset_id names a DAM asset: {body}"));
        assert_eq!(
            dam_asset["name"], body["filename"],
            "filename = its DAM name"
        );
        let tracking_id = body["tracking_id"]
            .as_str()
            .expect("tracking_id")
            .to_string();
        seen.insert(tracking_id.clone());
        let box_file = state["box"]["files"]
            .as_array()
            .expect("files")
            .iter()
            .find(|file| {
                file["name"].as_str().is_some_and(|name| {
                    name.starts_with(&tracking_id) && name.contains("Breakfast-Moments")
                })
            })
            .and_then(|file| file["id"].as_str().map(str::to_string));
        derivatives.push((
            body["dam_asset_id"].as_str().expect("id").to_string(),
            body["filename"].as_str().expect("filename").to_string(),
            tracking_id,
            box_file,
        ));
    }
    assert_eq!(seen, delivered, "each derivative told once");

    let status_hooks = hooks_named(&state, "campaign_status_update");
    assert_eq!(
        status_hooks.len(),
        2,
        "A1 -> A2 and A2 -> A3: {status_hooks:?}"
    );
    assert_status_body(&status_hooks[1], &campaign_id, "A2", "A3", &derivatives);

    let emails = state["emails"].as_array().cloned().unwrap_or_default();
    assert_eq!(emails.len(), 2, "A2 and A3 emails: {emails:?}");
    assert_eq!(
        emails[1]["subject"],
        "Campaign Nutella Breakfast Moments complete (A3)"
    );
    assert_eq!(
        emails[1]["to"],
        json!(["team@ferrero.com", "agency@example.com"])
    );
    assert!(
        emails[1]["html"]
            .as_str()
            .is_some_and(|html| html.contains(&format!(
                "Nutella Breakfast Moments ({campaign_id}): 3 assets delivered."
            ))),
        "{}",
        emails[1]
    );

    // Nothing more on later passes.
    assert_eq!(run(&world, &env, "box-poll"), Some(0));
    assert_eq!(run(&world, &env, "a1-to-a2"), Some(0));
    let after = world.sandbox.state();
    assert_eq!(after["webhooks"].as_array().map(Vec::len), Some(5));
    assert_eq!(after["emails"].as_array().map(Vec::len), Some(2));
}

fn critical_emails(world: &World) -> Vec<Value> {
    world.sandbox.state()["emails"]
        .as_array()
        .map(|emails| {
            emails
                .iter()
                .filter(|email| email["to"] == json!(["oncall@ferrero.com"]))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn critical_alert_once_per_incident_and_one_recovery_email() {
    let world = World::new(Some(DEMO));
    let config = plan_config(world.temp.path(), WEBHOOKS);
    let env = env_for(&world, &config);
    let search = "/otmmapi/v6/search/";

    // A pass that fails as a whole: one critical email, not one per pass.
    world.sandbox.fault("GET", search, 400, None);
    assert_eq!(run(&world, &env, "a1-to-a2"), Some(1));
    assert_eq!(run(&world, &env, "a1-to-a2"), Some(1));
    let alerts = critical_emails(&world);
    assert_eq!(alerts.len(), 1, "one alert for the incident: {alerts:?}");
    let subject = alerts[0]["subject"].as_str().unwrap_or_default();
    assert!(subject.starts_with("CRITICAL: a1-to-a2"), "{subject}");
    assert!(
        alerts[0]["text"]
            .as_str()
            .is_some_and(|text| text.contains("400")),
        "the error is in the email: {}",
        alerts[0]
    );
    // Another binary's idle passes do not touch it.
    assert_eq!(run(&world, &env, "box-poll"), Some(0));

    // The next successful pass: one recovery email, and no more.
    world.sandbox.clear_faults();
    assert_eq!(run(&world, &env, "a1-to-a2"), Some(0));
    assert_eq!(run(&world, &env, "a1-to-a2"), Some(0));
    let alerts = critical_emails(&world);
    assert_eq!(alerts.len(), 2, "alert and recovery: {alerts:?}");
    let subject = alerts[1]["subject"].as_str().unwrap_or_default();
    assert!(subject.starts_with("RECOVERED: a1-to-a2"), "{subject}");

    // A dependency unreachable: no alert before critical_after_minutes (30) of such passes...
    world.sandbox.fault("GET", search, 503, None);
    assert_eq!(run(&world, &env, "a1-to-a2"), Some(75));
    assert_eq!(critical_emails(&world).len(), 2, "not yet");
    // ...one once the incident is older than that (its start moved back 31 minutes)...
    let mut db = world.db.client();
    let moved = db
        .execute(
            "UPDATE incidents SET started_at = started_at - interval '31 minutes' WHERE binary_name = 'a1-to-a2' AND kind = 'unreachable'",
            &[],
        )
        .expect("age the incident");
    assert_eq!(moved, 1, "the unreachable incident is recorded");
    assert_eq!(run(&world, &env, "a1-to-a2"), Some(75));
    assert_eq!(run(&world, &env, "a1-to-a2"), Some(75));
    let alerts = critical_emails(&world);
    assert_eq!(
        alerts.len(),
        3,
        "one alert for the second incident: {alerts:?}"
    );
    assert!(
        alerts[2]["subject"]
            .as_str()
            .is_some_and(|subject| subject.contains("unreachable")),
        "{}",
        alerts[2]
    );
    // ...and one recovery when the DAM answers again.
    world.sandbox.clear_faults();
    assert_eq!(run(&world, &env, "a1-to-a2"), Some(0));
    assert_eq!(run(&world, &env, "a1-to-a2"), Some(0));
    let alerts = critical_emails(&world);
    assert_eq!(alerts.len(), 4, "{alerts:?}");
    assert!(alerts[3]["subject"]
        .as_str()
        .is_some_and(|subject| subject.starts_with("RECOVERED")));
    let open: i64 = db
        .query_one("SELECT count(*) FROM incidents", &[])
        .expect("count")
        .get(0);
    assert_eq!(open, 0);
}
