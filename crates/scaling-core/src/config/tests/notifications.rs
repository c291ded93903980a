//! The plan's spellings of the notification settings: `notifications:`, named webhooks with
//! `payload_template`, `templates:` with `str.format` subjects, and the load-time template check.

use super::*;

/// The plan's `config/webhooks.yaml`, unchanged.
const PLAN_WEBHOOKS_YAML: &str =
    include_str!("../../../../../tests/fixtures/plan/config/webhooks.yaml");

/// The plan's `webhooks:` block of `config.yaml`, unchanged.
const PLAN_CONFIG_WEBHOOKS: &str = r"
# Webhooks to Call (Outgoing)
webhooks:
  campaign_status_update:
    enabled: true
    url: ${CAMPAIGN_STATUS_WEBHOOK_URL}
    timeout_seconds: 10
    retry_on_failure: true
    auth:
      type: bearer  # bearer, basic, none
      token: ${WEBHOOK_AUTH_TOKEN}
";

/// The plan's `notifications:` block (with the sandbox's Mailgun root and a templates file).
const PLAN_NOTIFICATIONS: &str =
    include_str!("../../../../../tests/fixtures/plan/notifications.yaml");

/// Email templates in the plan's shape: `templates:`, `str.format` subjects, Jinja2 HTML.
const PLAN_TEMPLATES_YAML: &str =
    include_str!("../../../../../tests/fixtures/plan/config/email_templates.yaml");

fn plan_vars() -> BTreeMap<String, String> {
    let mut vars = sandbox_vars();
    vars.insert(
        "CAMPAIGN_STATUS_WEBHOOK_URL".to_string(),
        "http://127.0.0.1:4000/_sandbox/webhooks/campaign_status_update".to_string(),
    );
    vars.insert(
        "WEBHOOK_AUTH_TOKEN".to_string(),
        "plan-token-value".to_string(),
    );
    vars
}

/// The shipped files with the sandbox overlay's `email:` replaced by the plan's
/// `notifications:` (and `extra` appended to the overlay).
fn plan_spelling(extra: &str) -> TempConfig {
    let temp = TempConfig::new();
    temp.edit(
        "environments/sandbox.yaml",
        "email:\n  enabled: true\n",
        "email: null\nemail_as_before:\n  enabled: true\n",
    );
    let overlay = temp.path().join("environments/sandbox.yaml");
    let mut text = std::fs::read_to_string(&overlay).unwrap();
    text.push('\n');
    text.push_str(PLAN_NOTIFICATIONS);
    text.push_str("  critical_after_minutes: 45\n");
    text.push_str(extra);
    std::fs::write(&overlay, text).unwrap();
    temp.write("plan_email_templates.yaml", PLAN_TEMPLATES_YAML);
    temp
}

#[test]
fn the_plans_notifications_section_is_read() {
    let temp = plan_spelling("");
    let config = temp.load(Some("sandbox"), &plan_vars()).unwrap();
    let email = &config.email;
    assert!(email.enabled);
    assert_eq!(email.domain, "mg.sandbox.test");
    assert_eq!(email.api_key.expose(), "key-mailgun-value");
    assert_eq!(email.mailgun_base_url, "http://127.0.0.1:4000");
    assert_eq!(email.from, "Ferrero Automation <noreply@mg.sandbox.test>");
    assert_eq!(
        email.success_recipients,
        ["team@ferrero.com", "agency@example.com"]
    );
    // One text split on `;` (and `,`).
    assert_eq!(
        email.error_recipients,
        ["admin@ferrero.com", "it-support@ferrero.com"]
    );
    assert_eq!(email.critical_recipients, ["oncall@ferrero.com"]);
    assert_eq!(email.critical_after_minutes, 45);
    assert_eq!(
        email.templates_path.as_deref(),
        Some(
            temp.dir
                .path()
                .join("config/plan_email_templates.yaml")
                .as_path()
        )
    );
    let complete = &config.email_templates.templates["a1_to_a2_complete"];
    assert_eq!(complete.subject_format, SubjectFormat::StrFormat);
    assert!(complete.text.is_empty());
    // The alert templates are built in.
    for name in ALERT_TEMPLATES {
        assert!(
            config.email_templates.templates.contains_key(*name),
            "{name}"
        );
    }
}

#[test]
fn both_spellings_must_agree() {
    // The same value twice is fine.
    let temp = plan_spelling("");
    temp.edit(
        "environments/sandbox.yaml",
        "email: null\n",
        "email:\n  domain: ${MAILGUN_DOMAIN}\n  success_recipients: team@ferrero.com, agency@example.com\n",
    );
    let config = temp.load(Some("sandbox"), &plan_vars()).unwrap();
    assert_eq!(config.email.domain, "mg.sandbox.test");
    // Both spellings in use: the project's sender default.
    assert_eq!(
        config.email.from,
        "Content Scaling <noreply@mg.sandbox.test>"
    );

    let temp = plan_spelling("");
    temp.edit(
        "environments/sandbox.yaml",
        "email: null\n",
        "email:\n  domain: other.example.com\n",
    );
    let error = temp.error(Some("sandbox"), &plan_vars());
    assert!(
        error.contains("email.domain")
            && error.contains("notifications.mailgun.domain")
            && error.contains("to agree"),
        "{error}"
    );
    assert!(
        !error.contains("other.example.com"),
        "values are not shown: {error}"
    );

    let temp = plan_spelling("");
    temp.edit(
        "environments/sandbox.yaml",
        "email: null\n",
        "email:\n  error_recipients: [admin@ferrero.com]\n",
    );
    let error = temp.error(Some("sandbox"), &plan_vars());
    assert!(
        error.contains("email.error_recipients")
            && error.contains("notifications.recipients.errors"),
        "{error}"
    );
}

#[test]
fn the_plans_webhooks_load_from_both_files_and_merge() {
    let temp = plan_spelling(PLAN_CONFIG_WEBHOOKS);
    temp.write("webhooks.yaml", PLAN_WEBHOOKS_YAML);
    let config = temp.load(Some("sandbox"), &plan_vars()).unwrap();
    let names: Vec<&str> = config
        .webhooks
        .endpoints
        .iter()
        .map(|endpoint| endpoint.name.as_str())
        .collect();
    // asset_upload_complete is disabled (its ${VAR}s would not be needed either).
    assert_eq!(names, ["campaign_status_update"]);
    let hook = &config.webhooks.endpoints[0];
    // config.yaml's url wins over webhooks.yaml's.
    assert_eq!(
        hook.url,
        "http://127.0.0.1:4000/_sandbox/webhooks/campaign_status_update"
    );
    assert_eq!(hook.method, "POST");
    assert_eq!(hook.timeout_secs, 10);
    assert_eq!(hook.events, ["campaign.a2", "campaign.a3"]);
    assert_eq!(
        hook.bearer_token
            .as_ref()
            .map(|token| token.expose().as_str()),
        Some("plan-token-value")
    );
    // Content-Type and Authorization are the sender's own (auth gives the token).
    assert!(hook.headers.is_empty(), "{:?}", hook.headers.len());
    let template = hook.payload_template.as_ref().unwrap();
    assert_eq!(template["processed_assets"], "{processed_assets}");
    assert_eq!(template.as_object().unwrap().len(), 8);

    // Enabled, asset_upload_complete subscribes to the imports.
    let temp = plan_spelling(PLAN_CONFIG_WEBHOOKS);
    temp.write(
        "webhooks.yaml",
        &PLAN_WEBHOOKS_YAML.replace("enabled: false  # Optional webhook", "enabled: true"),
    );
    let config = temp.load(Some("sandbox"), &plan_vars()).unwrap();
    let asset = config
        .webhooks
        .endpoints
        .iter()
        .find(|endpoint| endpoint.name == "asset_upload_complete")
        .unwrap();
    assert_eq!(asset.events, ["asset.imported"]);
    assert!(asset.bearer_token.is_none());

    // The webhook's own variables are needed only when it is enabled.
    let temp = TempConfig::new();
    temp.write("webhooks.yaml", PLAN_WEBHOOKS_YAML);
    let mut vars = sandbox_vars();
    vars.remove("WEBHOOK_AUTH_TOKEN");
    let error = temp.error(Some("sandbox"), &vars);
    assert!(
        error.contains("campaign_status_update.headers") && error.contains("WEBHOOK_AUTH_TOKEN"),
        "{error}"
    );
    let temp = TempConfig::new();
    temp.write(
        "webhooks.yaml",
        &PLAN_WEBHOOKS_YAML.replace(
            "  method: POST\n  headers:",
            "  enabled: false\n  method: POST\n  headers:",
        ),
    );
    let config = temp.load(Some("sandbox"), &vars).unwrap();
    assert!(config.webhooks.endpoints.is_empty());
}

#[test]
fn webhook_auth_forms_and_placeholder_check() {
    let temp = TempConfig::new();
    temp.write(
        "webhooks.yaml",
        "hook:\n  url: https://example.com/h\n  auth: {type: basic, username: u, password: p4ss}\n  headers: {X-Tenant: ferrero}\n  method: put\n",
    );
    let config = temp.load(Some("sandbox"), &sandbox_vars()).unwrap();
    let hook = &config.webhooks.endpoints[0];
    assert_eq!(hook.method, "PUT");
    assert_eq!(
        hook.basic_auth
            .as_ref()
            .map(|(user, password)| (user.as_str(), password.expose().as_str())),
        Some(("u", "p4ss"))
    );
    assert_eq!(hook.headers[0].0, "X-Tenant");
    assert_eq!(hook.secrets(), ["p4ss", "ferrero"]);

    temp.write(
        "webhooks.yaml",
        "hook:\n  url: https://example.com/h\n  auth: {type: digest}\n",
    );
    let error = temp.error(Some("sandbox"), &sandbox_vars());
    assert!(
        error.contains("hook.auth.type: expected bearer, basic or none"),
        "{error}"
    );

    // A placeholder the event does not provide is refused at load.
    temp.write(
        "webhooks.yaml",
        "asset_upload_complete:\n  url: https://example.com/h\n  payload_template:\n    id: \"{campaign_number}\"\n",
    );
    let error = temp.error(Some("sandbox"), &sandbox_vars());
    assert!(
        error.contains("asset_upload_complete.payload_template")
            && error.contains("asset.imported")
            && error.contains("{campaign_number}"),
        "{error}"
    );
}

#[test]
fn a_template_using_an_unknown_variable_is_refused_at_load() {
    // The plan's shape: an HTML body naming a key a1_to_a2_complete does not get.
    let temp = plan_spelling("");
    temp.write(
        "plan_email_templates.yaml",
        &PLAN_TEMPLATES_YAML.replace("{{ asset_count }} assets", "{{ asset_total }} assets"),
    );
    let error = temp.error(Some("sandbox"), &plan_vars());
    assert!(
        error.contains("config/plan_email_templates.yaml: templates.a1_to_a2_complete: expected a template using only the data a1_to_a2_complete gets"),
        "{error}"
    );
    assert!(
        error.contains("asset_total") || error.contains("undefined"),
        "{error}"
    );

    // A str.format subject naming an unknown key.
    let temp = plan_spelling("");
    temp.write(
        "plan_email_templates.yaml",
        &PLAN_TEMPLATES_YAML.replace("Upload failed: {filename}", "Upload failed: {file_name}"),
    );
    let error = temp.error(Some("sandbox"), &plan_vars());
    assert!(
        error.contains("templates.upload_failed") && error.contains("{file_name}"),
        "{error}"
    );

    // The project's shape: a variable used only in a branch the samples take.
    let temp = TempConfig::new();
    temp.edit(
        "email_templates.yaml",
        "Box folder: {{ campaign.box_folder_url }}\n    {% endif %}\n    Masters",
        "Box folder: {{ campaign.box_folder_link }}\n    {% endif %}\n    Masters",
    );
    let error = temp.error(Some("sandbox"), &sandbox_vars());
    assert!(
        error.starts_with("config/email_templates.yaml: a1_to_a2_complete: expected a template using only the data"),
        "{error}"
    );
}
