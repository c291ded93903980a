//! Tests of the whole loader, against the shipped files in `config/` and variations of them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::*;
use crate::naming::{classify, NameCheck};

fn shipped_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config")
}

fn sandbox_vars() -> BTreeMap<String, String> {
    [
        ("BOX_API_BASE_URL", "http://127.0.0.1:4000"),
        ("BOX_UPLOAD_BASE_URL", "http://127.0.0.1:4000/api"),
        ("BOX_OAUTH2_URL", "http://127.0.0.1:4000/oauth2/token"),
        ("BOX_CONFIG_FILE", "/tmp/state/box_app_config.json"),
        ("BOX_ROOT_FOLDER_ID", "100"),
        ("BOX_WATCHED_FOLDER_ID", "200"),
        ("DAM_BASE_URL", "http://127.0.0.1:4000"),
        ("DAM_USERNAME", "tsuper"),
        ("DAM_PASSWORD", "dam-password-value"),
        ("MAILGUN_BASE_URL", "http://127.0.0.1:4000"),
        ("MAILGUN_DOMAIN", "mg.sandbox.test"),
        ("MAILGUN_API_KEY", "key-mailgun-value"),
        (
            "WEBHOOK_BASE_URL",
            "http://127.0.0.1:4000/_sandbox/webhooks",
        ),
        (
            "DATABASE_URL",
            "postgresql://cs:db-password-value@127.0.0.1:5432/cs_test",
        ),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_string(), value.to_string()))
    .collect()
}

fn load_dir(
    dir: &Path,
    environment: Option<&str>,
    vars: &BTreeMap<String, String>,
) -> Result<Config, ConfigError> {
    let lookup = |name: &str| vars.get(name).cloned();
    load_with_vars(dir, environment, &lookup)
}

/// A copy of the shipped config directory with some files replaced or edited.
struct TempConfig {
    dir: tempfile::TempDir,
}

impl TempConfig {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        std::fs::create_dir_all(config.join("environments")).unwrap();
        for name in [
            "config.yaml",
            "field_mappings.yaml",
            "webhooks.yaml",
            "email_templates.yaml",
        ] {
            std::fs::copy(shipped_dir().join(name), config.join(name)).unwrap();
        }
        for name in ["sandbox.yaml", "staging.yaml", "production.yaml"] {
            std::fs::copy(
                shipped_dir().join("environments").join(name),
                config.join("environments").join(name),
            )
            .unwrap();
        }
        TempConfig { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("config")
    }

    fn write(&self, name: &str, text: &str) -> &Self {
        std::fs::write(self.path().join(name), text).unwrap();
        self
    }

    fn edit(&self, name: &str, from: &str, to: &str) -> &Self {
        let path = self.path().join(name);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{name} does not contain {from:?}");
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
        self
    }

    fn load(
        &self,
        environment: Option<&str>,
        vars: &BTreeMap<String, String>,
    ) -> Result<Config, ConfigError> {
        load_dir(&self.path(), environment, vars)
    }

    fn error(&self, environment: Option<&str>, vars: &BTreeMap<String, String>) -> String {
        match self.load(environment, vars) {
            Ok(_) => panic!("expected a configuration error"),
            Err(error) => error
                .to_string()
                .replace(&self.path().display().to_string(), "config"),
        }
    }
}

#[test]
fn shipped_files_load_for_the_sandbox() {
    let config = load_dir(&shipped_dir(), Some("sandbox"), &sandbox_vars()).unwrap();
    assert_eq!(config.environment, "sandbox");
    assert_eq!(
        config.database.url.expose(),
        "postgresql://cs:db-password-value@127.0.0.1:5432/cs_test"
    );
    let box_api = &config.box_api;
    assert_eq!(box_api.base_url, "http://127.0.0.1:4000");
    assert_eq!(box_api.upload_url, "http://127.0.0.1:4000/api");
    assert_eq!(box_api.oauth2_url, "http://127.0.0.1:4000/oauth2/token");
    assert_eq!(
        box_api.app_config_path,
        PathBuf::from("/tmp/state/box_app_config.json")
    );
    assert_eq!(box_api.root_folder_id, "100");
    assert_eq!(
        box_api.watched_folders,
        vec![WatchedFolder {
            id: "200".into(),
            name: "incoming".into(),
            profile: Some("default".into())
        }]
    );
    assert_eq!(box_api.processed_folder_name, "_PROCESSED");
    assert_eq!(box_api.errors_folder_name, "_errors");
    assert!((box_api.rate_limit.per_minute - 12_000.0).abs() < f64::EPSILON);
    assert_eq!(box_api.chunked_upload_threshold_bytes, 50_000_000);
    assert_eq!(box_api.max_retries, 5);

    let dam = &config.dam;
    assert_eq!(dam.base_url, "http://127.0.0.1:4000");
    match &dam.auth {
        DamAuth::Session { username, password } => {
            assert_eq!(username, "tsuper");
            assert_eq!(password.expose(), "dam-password-value");
        }
        other @ DamAuth::OAuth2 { .. } => panic!("{other:?}"),
    }
    assert_eq!(
        dam.campaign.status_field_id,
        "FERRERO.FIELD.CAMPAIGN STATUS"
    );
    assert_eq!(
        dam.campaign.number_field_id,
        "FERRERO.FIELD.CAMPAIGN NUMBER"
    );
    assert_eq!(dam.campaign.name_field_id, "FERRERO.FIELD.CAMPAIGN NAME");
    assert_eq!(dam.campaign.masters_folder_name, "Master Assets");
    assert_eq!(dam.campaign.final_assets_folder_name, "Final Assets");
    assert_eq!(
        (
            dam.campaign.status_a1.as_str(),
            dam.campaign.status_a2.as_str(),
            dam.campaign.status_a3.as_str()
        ),
        ("A1", "A2", "A3")
    );
    assert_eq!(dam.metadata_model_id, "FERRERO.MODEL.MARKETING ASSET");
    assert_eq!(dam.security_policy_ids, vec![2]);
    assert_eq!(dam.tracking_field_id, "FERRERO.FIELD.CS TRACKING");
    assert_eq!(dam.import_job_timeout_secs, 30);
    assert!(
        (dam.max_requests_per_second - 1000.0).abs() < f64::EPSILON,
        "sandbox overlay: {}",
        dam.max_requests_per_second
    );

    assert_eq!(config.polling.max_campaigns_per_run, 10);
    assert_eq!(config.polling.max_files_per_run, 200);
    assert_eq!(config.polling.workers, 4);
    assert_eq!(
        (
            config.retry.max_attempts,
            config.retry.backoff_base_secs,
            config.retry.backoff_max_secs
        ),
        (5, 0, 0)
    );
    assert_eq!(
        config.temp.dir,
        std::env::temp_dir().join("content-scaling")
    );
    assert!(config.email.enabled);
    assert_eq!(config.email.mailgun_base_url, "http://127.0.0.1:4000");
    assert_eq!(config.email.domain, "mg.sandbox.test");
    assert_eq!(config.email.api_key.expose(), "key-mailgun-value");
    assert_eq!(
        config.email.from,
        "Content Scaling <noreply@mg.sandbox.test>"
    );
    assert_eq!(
        config.email.error_recipients,
        vec!["dam-support@example.com"]
    );
    assert_eq!(config.media.ffprobe_path, "ffprobe");

    assert_eq!(config.webhooks.endpoints.len(), 1);
    let endpoint = &config.webhooks.endpoints[0];
    assert_eq!(endpoint.name, "campaigns");
    assert_eq!(
        endpoint.url,
        "http://127.0.0.1:4000/_sandbox/webhooks/campaigns"
    );
    assert_eq!(endpoint.events, vec!["campaign.a2", "campaign.a3"]);
    assert_eq!(
        endpoint.bearer_token.as_ref().map(|t| t.expose().as_str()),
        Some("sandbox-webhook-token")
    );
    assert_eq!(
        endpoint
            .signing_secret
            .as_ref()
            .map(|t| t.expose().as_str()),
        Some("sandbox-signing-secret")
    );

    let mappings = &config.field_mappings;
    assert_eq!(mappings.mvp_fields.len(), 28);
    assert_eq!(mappings.mvp_fields[0], "ARTESIA.FIELD.ASSET NAME");
    let update = |id: &str| {
        mappings
            .filename_field_updates
            .iter()
            .find(|u| u.field_id == id)
            .unwrap()
    };
    assert_eq!(
        update("ARTESIA.FIELD.ASSET NAME").source,
        FieldSource::CleanFilename
    );
    assert!(update("ARTESIA.FIELD.ASSET NAME").required);
    assert_eq!(
        update("ARTESIA.FIELD.ASSET DESCRIPTION").transform,
        [Transform::DashToSpace]
    );
    assert_eq!(
        update("MAIN_LANGUAGES").validate_domain.as_deref(),
        Some("FERRERO.DOMAIN.LANGUAGES")
    );
    assert_eq!(
        update("FERRERO.FIELD.MKTG.ASSET TYPE")
            .validate_domain
            .as_deref(),
        Some("FERRERO.DOMAIN.MKTG ASSET TYPE")
    );
    assert_eq!(
        update("FERRERO.MARKETING.FIELD.DURATION_SECONDS").source,
        FieldSource::Media(MediaAttr::DurationSeconds)
    );
    assert_eq!(
        update("FERRERO.MARKETING.FIELD.SPOT_VERSION")
            .fallback
            .as_deref(),
        Some("master")
    );
    assert_eq!(
        mappings.forced_field_values["FERRERO.FIELD.ASSET STATUS"],
        "Final"
    );
    assert_eq!(
        mappings.forced_field_values["FERRERO.FIELD.SOURCE SYSTEM"],
        "content-scaling"
    );
    assert_eq!(
        mappings.default_field_values["FERRERO.FIELD.ASSETCOMPLIANCE"],
        "-"
    );
    assert_eq!(
        mappings.default_field_values["FERRERO.FIELD.USAGE RIGHTS"],
        "Standard"
    );
    assert_eq!(
        mappings.validate_domain_values,
        DomainValidation {
            enabled: true,
            cache_ttl_hours: 24,
            strict_mode: true
        }
    );

    for name in REQUIRED_TEMPLATES {
        let template = &config.email_templates.templates[*name];
        assert!(
            !template.subject.is_empty() && !template.text.is_empty() && template.html.is_some(),
            "{name}"
        );
    }
}

#[test]
fn shipped_naming_section_is_the_v2_default() {
    let config = load_dir(&shipped_dir(), Some("sandbox"), &sandbox_vars()).unwrap();
    let default = NamingConfig::default();
    assert_eq!(config.naming.example_name(), default.example_name());
    assert_eq!(config.naming.allowed_extensions, default.allowed_extensions);
    for name in [
        "K7Q2XM_Breakfast-Moments_video_IT_9x16-15s_v01.mp4",
        "K7Q2X_Breakfast Moments_vid3o_ITA_9×16_version1.exe",
        "K7Q2XM_Breakfast_video_IT.mp4",
        ".DS_Store",
    ] {
        assert_eq!(
            classify(name, &config.naming),
            classify(name, &default),
            "{name}"
        );
    }
    assert!(matches!(
        classify(
            "K7Q2XM_Breakfast-Moments_video_IT_9x16-15s_v01.mp4",
            &config.naming
        ),
        NameCheck::Parsed(_)
    ));
}

#[test]
fn secrets_never_show_in_debug() {
    let config = load_dir(&shipped_dir(), Some("sandbox"), &sandbox_vars()).unwrap();
    let debug = format!("{config:?}");
    for secret in [
        "dam-password-value",
        "key-mailgun-value",
        "db-password-value",
        "sandbox-webhook-token",
    ] {
        assert!(!debug.contains(secret), "{secret} leaked");
    }
}

#[test]
fn production_overlay_and_webhook_selection() {
    let mut vars = sandbox_vars();
    vars.remove("DATABASE_URL");
    vars.extend(
        [
            ("DAM_BASE_URL", "https://dam.example.com/otmmapi/v6/"),
            (
                "CAMPAIGN_WEBHOOK_URL",
                "https://hooks.example.com/cs/campaigns",
            ),
            ("WEBHOOK_TOKEN", "prod-token"),
            ("WEBHOOK_SIGNING_SECRET", "prod-signing"),
            (
                "EMAIL_SUCCESS_RECIPIENTS",
                "marketing@example.com, brand@example.com",
            ),
            ("EMAIL_ERROR_RECIPIENTS", "dam-support@example.com"),
            ("DB_HOST", "db.internal"),
            ("DB_PASSWORD", "p@ss word/1"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let config = load_dir(&shipped_dir(), Some("production"), &vars).unwrap();
    assert_eq!(config.environment, "production");
    assert_eq!(config.dam.base_url, "https://dam.example.com");
    assert_eq!(config.dam.content_timeout_secs, 1800);
    assert_eq!(
        config.box_api.base_url, "http://127.0.0.1:4000",
        "BOX_API_BASE_URL applies through config.yaml"
    );
    assert_eq!(config.database.url.expose(), "postgresql://content_scaling:p%40ss%20word%2F1@db.internal:5432/content_scaling?sslmode=require");
    assert_eq!(
        config.email.success_recipients,
        vec!["marketing@example.com", "brand@example.com"]
    );
    assert_eq!(
        config.email.from,
        "Content Scaling <noreply@mg.sandbox.test>"
    );
    assert_eq!(config.temp.max_size_mb, 51200);
    assert_eq!(config.webhooks.endpoints.len(), 1);
    let endpoint = &config.webhooks.endpoints[0];
    assert_eq!(endpoint.url, "https://hooks.example.com/cs/campaigns");
    assert_eq!(
        endpoint
            .signing_secret
            .as_ref()
            .map(|s| s.expose().as_str()),
        Some("prod-signing")
    );
    assert_eq!(endpoint.timeout_secs, 15);

    // CS_ENVIRONMENT selects the overlay when no argument is given.
    vars.insert("CS_ENVIRONMENT".into(), "production".into());
    assert_eq!(
        load_dir(&shipped_dir(), None, &vars).unwrap().environment,
        "production"
    );
}

#[test]
fn missing_variable_names_file_key_and_variable() {
    let mut vars = sandbox_vars();
    vars.remove("BOX_ROOT_FOLDER_ID");
    let error = load_dir(&shipped_dir(), Some("sandbox"), &vars).unwrap_err();
    let ConfigError::Invalid { file, key, message } = &error else {
        panic!("{error:?}")
    };
    assert!(file.ends_with("environments/sandbox.yaml"), "{file:?}");
    assert_eq!(key, "box.root_folder_id");
    assert!(
        message.starts_with("expected environment variable BOX_ROOT_FOLDER_ID to be set"),
        "{message}"
    );

    // A key from config.yaml names config.yaml.
    let mut vars = sandbox_vars();
    vars.remove("DAM_PASSWORD");
    let temp = TempConfig::new();
    temp.write(
        "environments/sandbox.yaml",
        "box:\n  base_url: ${BOX_API_BASE_URL}\n",
    );
    assert_eq!(
        temp.error(Some("sandbox"), &vars),
        "config/config.yaml: dam.auth.password: expected environment variable DAM_PASSWORD to be set (the value is ${DAM_PASSWORD}); set it in the environment or in .env, or give a default with ${DAM_PASSWORD:-default}"
    );
}

#[test]
fn workers_must_be_between_1_and_32() {
    let vars = sandbox_vars();
    for (value, expected) in [
        ("33", "expected a whole number from 1 to 32, found 33"),
        ("0", "expected a whole number > 0, found 0"),
    ] {
        let temp = TempConfig::new();
        temp.edit(
            "config.yaml",
            "workers: ${POLLING_WORKERS:-4}",
            &format!("workers: {value}"),
        );
        assert_eq!(
            temp.error(Some("sandbox"), &vars),
            format!("config/config.yaml: polling.workers: {expected}")
        );
    }
    let temp = TempConfig::new();
    let mut with_env = vars.clone();
    with_env.insert("POLLING_WORKERS".into(), "8".into());
    assert_eq!(
        temp.load(Some("sandbox"), &with_env)
            .unwrap()
            .polling
            .workers,
        8
    );
}

#[test]
fn the_box_rate_limit_is_per_minute_or_per_second_never_two_different_limits() {
    let vars = sandbox_vars();
    let temp = TempConfig::new();
    temp.edit(
        "environments/sandbox.yaml",
        "max_requests_per_second: ${BOX_MAX_REQUESTS_PER_SECOND:-200}",
        "max_requests_per_second: 10\n  max_requests_per_minute: 300",
    );
    let error = temp.error(Some("sandbox"), &vars);
    assert!(
        error.contains("box.max_requests_per_minute")
            && error.contains("box.max_requests_per_second"),
        "{error}"
    );
    let temp = TempConfig::new();
    temp.edit(
        "environments/sandbox.yaml",
        "max_requests_per_second: ${BOX_MAX_REQUESTS_PER_SECOND:-200}",
        "max_requests_per_second: 10\n  max_requests_per_minute: 600",
    );
    temp.edit("environments/sandbox.yaml", "${BOX_BURST:-10}", "20");
    temp.edit(
        "environments/sandbox.yaml",
        "${BOX_UPLOAD_PARALLEL_PARTS:-4}",
        "8",
    );
    let config = temp.load(Some("sandbox"), &vars).unwrap();
    assert_eq!(
        config.box_api.rate_limit,
        crate::http::RequestWindow {
            per_minute: 600.0,
            burst: 20
        }
    );
    assert_eq!(config.box_api.upload_parallel_parts, 8);
    let temp = TempConfig::new();
    temp.edit(
        "environments/sandbox.yaml",
        "upload_parallel_parts: ${BOX_UPLOAD_PARALLEL_PARTS:-4}",
        "upload_parallel_parts: 17",
    );
    assert!(temp
        .error(Some("sandbox"), &vars)
        .contains("box.upload_parallel_parts: expected a whole number from 1 to 16, found 17"));
}

#[test]
fn invalid_numbers_and_urls_are_explained() {
    let vars = sandbox_vars();
    let temp = TempConfig::new();
    temp.edit(
        "environments/sandbox.yaml",
        "max_requests_per_second: ${BOX_MAX_REQUESTS_PER_SECOND:-200}",
        "max_requests_per_second: ten",
    );
    assert_eq!(
        temp.error(Some("sandbox"), &vars),
        "config/environments/sandbox.yaml: box.max_requests_per_second: expected a number > 0, found \"ten\""
    );

    let temp = TempConfig::new();
    temp.edit(
        "config.yaml",
        "max_requests_per_second: 10",
        "max_requests_per_second: 0",
    );
    temp.write("environments/sandbox.yaml", "{}\n");
    let mut vars = sandbox_vars();
    vars.insert("WEBHOOK_TOKEN".into(), "t".into());
    assert_eq!(
        temp.error(Some("sandbox"), &vars),
        "config/config.yaml: box.max_requests_per_second: expected a number > 0, found 0"
    );

    let temp = TempConfig::new();
    let mut vars = sandbox_vars();
    vars.insert(
        "BOX_API_BASE_URL".into(),
        "ftp://user:secret@box.example.com/x?token=1".into(),
    );
    let error = temp.error(Some("sandbox"), &vars);
    assert_eq!(
        error,
        "config/environments/sandbox.yaml: box.base_url: expected a URL starting with http:// or https:// (the Box API root without /2.0), found \"ftp://****@box.example.com/x\""
    );

    let temp = TempConfig::new();
    temp.edit(
        "config.yaml",
        "max_attempts: ${RETRY_MAX_ATTEMPTS:-5}",
        "max_attempts: -2",
    );
    assert_eq!(
        temp.error(Some("sandbox"), &sandbox_vars()),
        "config/config.yaml: retry.max_attempts: expected a whole number > 0, found -2"
    );
}

#[test]
fn watched_folders_need_ids() {
    let mut vars = sandbox_vars();
    vars.insert("BOX_WATCHED_FOLDER_ID".into(), String::new());
    let error = load_dir(&shipped_dir(), Some("sandbox"), &vars)
        .unwrap_err()
        .to_string();
    assert!(error.ends_with("environments/sandbox.yaml: box.watched_folders[0].id: expected a Box folder ID (e.g. \"123456789\"), found nothing"), "{error}");

    let temp = TempConfig::new();
    temp.edit(
        "environments/sandbox.yaml",
        "      profile: default\n",
        "      profile: default\n    - \"300\"\n    - id: \"200\"\n",
    );
    assert_eq!(
        temp.error(Some("sandbox"), &sandbox_vars()),
        "config/environments/sandbox.yaml: box.watched_folders[2].id: expected each watched folder once, found folder \"200\" twice"
    );
}

#[test]
fn email_rules() {
    let temp = TempConfig::new();
    temp.edit(
        "environments/sandbox.yaml",
        "error_recipients: [dam-support@example.com]",
        "error_recipients: [dam-support@example.com, not-an-address]",
    );
    assert_eq!(
        temp.error(Some("sandbox"), &sandbox_vars()),
        "config/environments/sandbox.yaml: email.error_recipients[1]: expected an email address such as ops@example.com, found \"not-an-address\""
    );

    // Disabled email needs no Mailgun variables and no templates file.
    let temp = TempConfig::new();
    temp.edit(
        "environments/sandbox.yaml",
        "  enabled: true\n",
        "  enabled: false\n",
    );
    std::fs::remove_file(temp.path().join("email_templates.yaml")).unwrap();
    let mut vars = sandbox_vars();
    vars.remove("MAILGUN_DOMAIN");
    vars.remove("MAILGUN_API_KEY");
    let config = temp.load(Some("sandbox"), &vars).unwrap();
    assert!(!config.email.enabled);
    assert!(config.email_templates.templates.is_empty());

    // Enabled email needs every template.
    let temp = TempConfig::new();
    temp.edit(
        "email_templates.yaml",
        "upload_failed:",
        "upload_failed_old:",
    );
    let error = temp.error(Some("sandbox"), &sandbox_vars());
    assert!(error.starts_with("config/email_templates.yaml: upload_failed: expected template upload_failed (required: "), "{error}");

    let temp = TempConfig::new();
    temp.edit(
        "email_templates.yaml",
        "{% for master in masters %}",
        "{% for master in masters",
    );
    let error = temp.error(Some("sandbox"), &sandbox_vars());
    assert!(error.starts_with("config/email_templates.yaml: a1_to_a2_complete.text: expected a valid Jinja2 template: "), "{error}");
}

#[test]
fn field_mapping_rules() {
    let temp = TempConfig::new();
    temp.edit(
        "field_mappings.yaml",
        "source: language_code",
        "source: langauge_code",
    );
    let error = temp.error(Some("sandbox"), &sandbox_vars());
    assert!(
        error.starts_with("config/field_mappings.yaml: filename_field_updates.MAIN_LANGUAGES.source: expected one of tracking_id, subject_title, asset_type, language_code, spec, version, extension, clean_filename, original_filename or media.<attr> with attr one of duration_seconds,"),
        "{error}"
    );
    assert!(error.ends_with("found \"langauge_code\""), "{error}");

    let temp = TempConfig::new();
    temp.edit(
        "field_mappings.yaml",
        "transform: upper",
        "transform: shout",
    );
    assert_eq!(
        temp.error(Some("sandbox"), &sandbox_vars()),
        "config/field_mappings.yaml: filename_field_updates.MAIN_LANGUAGES.transform: expected one of none, upper, lower, title, dash_to_space (several separated by \",\"), found \"shout\""
    );

    let temp = TempConfig::new();
    temp.edit(
        "field_mappings.yaml",
        "  FERRERO.FIELD.ASSET STATUS: Final",
        "  FERRERO.FIELD.ASSET STATUS: [Final]",
    );
    assert_eq!(
        temp.error(Some("sandbox"), &sandbox_vars()),
        "config/field_mappings.yaml: forced_field_values.\"FERRERO.FIELD.ASSET STATUS\": expected text, found a list"
    );

    let temp = TempConfig::new();
    temp.edit(
        "field_mappings.yaml",
        "    - name: version\n      kind: version",
        "    - name: version\n      kind: versions",
    );
    let error = temp.error(Some("sandbox"), &sandbox_vars());
    assert!(error.starts_with("config/field_mappings.yaml: naming.segments[5]: expected a segment rule {name, kind, ...}: expected a segment kind (one of tracking_id,"), "{error}");

    let temp = TempConfig::new();
    temp.edit(
        "field_mappings.yaml",
        "    - name: spec\n",
        "    - name: subject_title\n",
    );
    assert_eq!(
        temp.error(Some("sandbox"), &sandbox_vars()),
        "config/field_mappings.yaml: naming.segments[4].name: duplicate segment name \"subject_title\""
    );

    // A grammar change flows to the sources field mappings may use.
    let temp = TempConfig::new();
    temp.edit(
        "field_mappings.yaml",
        "    - name: spec\n",
        "    - name: market\n      kind: pattern\n      pattern: \"[A-Z]{2,3}\"\n      example: ITA\n    - name: spec\n",
    );
    temp.edit(
        "field_mappings.yaml",
        "  FERRERO.MARKETING.FIELD.WIDTH:\n",
        "  FERRERO.FIELD.MARKET:\n    source: market\n  FERRERO.MARKETING.FIELD.WIDTH:\n",
    );
    let config = temp.load(Some("sandbox"), &sandbox_vars()).unwrap();
    assert_eq!(
        config.naming.example_name(),
        "K7Q2XM_Breakfast-Moments_video_IT_ITA_9x16-15s_v01.mp4"
    );
}

#[test]
fn unknown_keys_are_not_errors() {
    let temp = TempConfig::new();
    temp.edit(
        "config.yaml",
        "polling:\n",
        "logging:\n  level: info\npolling:\n  legacy_interval: 5\n",
    );
    temp.edit(
        "field_mappings.yaml",
        "validate_domain_values:\n",
        "validate_domain_values:\n  legacy: 1\n",
    );
    assert!(temp.load(Some("sandbox"), &sandbox_vars()).is_ok());
}

#[test]
fn environment_selection_errors() {
    let error = load_dir(&shipped_dir(), Some("prodution"), &sandbox_vars()).unwrap_err();
    let ConfigError::Invalid { file, key, message } = &error else {
        panic!("{error:?}")
    };
    assert!(file.ends_with("environments/prodution.yaml"));
    assert_eq!(key, "environment");
    assert_eq!(message, "expected an overlay file for environment \"prodution\" (available: production, sandbox, staging)");

    let error = load_dir(&shipped_dir(), Some("../etc"), &sandbox_vars())
        .unwrap_err()
        .to_string();
    assert!(error.ends_with("config.yaml: environment: expected an environment name made of letters, digits, \"-\" and \"_\" (e.g. staging), found \"../etc\""), "{error}");

    // Default environment (development) has no overlay: config.yaml alone, which needs its variables.
    let mut vars = sandbox_vars();
    vars.insert("WEBHOOK_TOKEN".into(), "dev-token".into());
    let config = load_dir(&shipped_dir(), None, &vars).unwrap();
    assert_eq!(config.environment, "development");
    assert!((config.box_api.rate_limit.per_minute - 600.0).abs() < f64::EPSILON);
    assert_eq!(
        config.webhooks.endpoints[0]
            .bearer_token
            .as_ref()
            .map(|t| t.expose().as_str()),
        Some("dev-token")
    );
}

#[test]
fn yaml_errors_have_line_and_column() {
    let temp = TempConfig::new();
    temp.edit(
        "config.yaml",
        "max_campaigns_per_run: 10",
        "max_campaigns_per_run: [10",
    );
    let error = temp.error(Some("sandbox"), &sandbox_vars());
    assert!(error.starts_with("config/config.yaml: line "), "{error}");
    assert!(
        matches!(temp.load(Some("sandbox"), &sandbox_vars()), Err(ConfigError::Parse { line, .. }) if line > 1)
    );

    let temp = TempConfig::new();
    std::fs::remove_file(temp.path().join("field_mappings.yaml")).unwrap();
    let error = temp.error(Some("sandbox"), &sandbox_vars());
    assert!(
        error.starts_with("config/field_mappings.yaml: cannot read the file: "),
        "{error}"
    );
}

#[test]
fn database_url_sources() {
    let temp = TempConfig::new();
    let mut vars = sandbox_vars();
    vars.insert("DATABASE_URL".into(), "mysql://nope".into());
    let error = temp.error(Some("sandbox"), &vars);
    assert_eq!(
        error,
        "environment variable DATABASE_URL: database.url: expected a PostgreSQL URL such as postgresql://user:password@host:5432/content_scaling (the value is not shown: it may hold a password)"
    );
    assert!(!error.contains("nope"));

    // DATABASE_URL wins over the file.
    let temp = TempConfig::new();
    temp.edit(
        "environments/sandbox.yaml",
        "url: ${DATABASE_URL}",
        "url: postgresql://file@localhost/file",
    );
    let config = temp.load(Some("sandbox"), &sandbox_vars()).unwrap();
    assert_eq!(
        config.database.url.expose(),
        "postgresql://cs:db-password-value@127.0.0.1:5432/cs_test"
    );
    let mut vars = sandbox_vars();
    vars.remove("DATABASE_URL");
    let config = temp.load(Some("sandbox"), &vars).unwrap();
    assert_eq!(
        config.database.url.expose(),
        "postgresql://file@localhost/file"
    );
}

#[test]
fn dam_oauth2_reads_only_its_keys() {
    let temp = TempConfig::new();
    temp.edit(
        "environments/sandbox.yaml",
        "    method: session\n",
        "    method: oauth2\n",
    );
    let mut vars = sandbox_vars();
    vars.remove("DAM_PASSWORD");
    let error = temp.error(Some("sandbox"), &vars);
    assert!(
        error.starts_with(
            "config/config.yaml: dam.auth.auth_url: expected environment variable DAM_OAUTH2_URL"
        ),
        "{error}"
    );
    vars.extend(
        [
            (
                "DAM_OAUTH2_URL",
                "https://dam.example.com/otmmapi/v6/auth/oauth/token",
            ),
            ("DAM_CLIENT_ID", "cs"),
            ("DAM_CLIENT_SECRET", "s"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let config = temp.load(Some("sandbox"), &vars).unwrap();
    assert!(matches!(config.dam.auth, DamAuth::OAuth2 { ref client_id, .. } if client_id == "cs"));
}

#[test]
fn relative_paths_resolve_against_the_deployment_root() {
    let temp = TempConfig::new();
    let mut vars = sandbox_vars();
    vars.insert("BOX_CONFIG_FILE".into(), "secrets/box.json".into());
    vars.insert("CS_TEMP_DIR".into(), "var/tmp".into());
    let config = temp.load(Some("sandbox"), &vars).unwrap();
    assert_eq!(
        config.box_api.app_config_path,
        temp.dir.path().join("secrets/box.json")
    );
    assert_eq!(config.temp.dir, temp.dir.path().join("var/tmp"));
}

#[test]
fn error_accessors() {
    let error = ConfigError::Invalid {
        file: "a.yaml".into(),
        key: "b.c".into(),
        message: "m".into(),
    };
    assert_eq!(error.file(), Path::new("a.yaml"));
    assert_eq!(error.key(), Some("b.c"));
    assert_eq!(error.to_string(), "a.yaml: b.c: m");
}

/// Runs `run` with a subscriber that records WARN and above; returns the formatted lines.
fn capture_warnings(run: impl FnOnce()) -> String {
    use std::sync::{Arc, Mutex};

    #[derive(Clone)]
    struct Capture(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Capture {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    let buffer = Capture(Arc::new(Mutex::new(Vec::new())));
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, run);
    let bytes = buffer.0.lock().unwrap().clone();
    String::from_utf8(bytes).unwrap()
}

#[test]
fn shipped_files_have_no_unknown_keys_and_unknown_keys_warn() {
    let warnings = capture_warnings(|| {
        load_dir(&shipped_dir(), Some("sandbox"), &sandbox_vars()).unwrap();
    });
    assert!(warnings.is_empty(), "{warnings}");

    let temp = TempConfig::new();
    temp.edit(
        "config.yaml",
        "polling:\n",
        "logging:\n  level: info\npolling:\n  legacy_interval: 5\n",
    );
    temp.edit(
        "webhooks.yaml",
        "    timeout_secs: 10\n",
        "    timeout_secs: 10\n    retries: 3\n",
    );
    let warnings = capture_warnings(|| {
        temp.load(Some("sandbox"), &sandbox_vars()).unwrap();
    });
    assert!(warnings.contains("key=logging"), "{warnings}");
    assert!(
        warnings.contains("key=polling.legacy_interval"),
        "{warnings}"
    );
    assert!(warnings.contains("key=endpoints[0].retries"), "{warnings}");
    assert!(
        warnings.contains("unknown configuration key, ignored"),
        "{warnings}"
    );
}

#[cfg(unix)]
#[test]
fn dotenv_permissions_warn_and_parse_errors_hide_the_line() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(".env");
    std::fs::write(&file, "GOOD=1\nMAILGUN_API_KEY=abc def'ghi\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let warnings = capture_warnings(|| warn_if_shared(&file));
    assert!(
        warnings.contains("readable by group or others (mode 644)"),
        "{warnings}"
    );
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(capture_warnings(|| warn_if_shared(&file)).is_empty());

    let error = dotenv_error(
        &file,
        dotenvy::Error::LineParse("MAILGUN_API_KEY=abc def'ghi".into(), 19),
    );
    let text = error.to_string();
    assert!(
        matches!(
            error,
            ConfigError::Parse {
                line: 2,
                column: 20,
                ..
            }
        ),
        "{text}"
    );
    assert!(!text.contains("abc"), "{text}");
}

#[test]
fn box_token_cache_and_chunked_threshold() {
    let mut vars = sandbox_vars();
    vars.insert("CS_TEMP_DIR".into(), "/var/tmp/cs".into());
    let config = load_dir(&shipped_dir(), Some("sandbox"), &vars).unwrap();
    assert_eq!(
        config.box_api.token_cache_file,
        Some(PathBuf::from("/var/tmp/cs/box-token.json")),
        "default: in temp.dir"
    );
    vars.insert("BOX_TOKEN_CACHE_FILE".into(), "off".into());
    let config = load_dir(&shipped_dir(), Some("sandbox"), &vars).unwrap();
    assert_eq!(config.box_api.token_cache_file, None);
    vars.insert("BOX_TOKEN_CACHE_FILE".into(), "run/box-token.json".into());
    let config = load_dir(&shipped_dir(), Some("sandbox"), &vars).unwrap();
    let path = config.box_api.token_cache_file.unwrap();
    assert!(
        path.is_absolute() && path.ends_with("run/box-token.json"),
        "relative to the deployment root: {path:?}"
    );

    let temp = TempConfig::new();
    temp.edit(
        "config.yaml",
        "chunked_upload_threshold_bytes: 50000000",
        "chunked_upload_threshold_bytes: 20000000",
    );
    assert_eq!(
        temp.error(Some("sandbox"), &sandbox_vars()),
        "config/config.yaml: box.chunked_upload_threshold_bytes: expected a whole number >= 20971520 (Box accepts chunked upload sessions only from 20 MB), found 20000000"
    );
    let temp = TempConfig::new();
    temp.edit(
        "config.yaml",
        "chunked_upload_threshold_bytes: 50000000",
        "chunked_upload_threshold_bytes: 20971520",
    );
    let config = temp.load(Some("sandbox"), &sandbox_vars()).unwrap();
    assert_eq!(config.box_api.chunked_upload_threshold_bytes, 20_971_520);
}

#[test]
fn dotenv_is_read_from_the_deployment_root_only() {
    assert_eq!(
        dotenv_path(Path::new("/opt/content-scaling/config")),
        PathBuf::from("/opt/content-scaling/.env")
    );
    // A bare config dir name: the deployment root is the directory it is in.
    assert_eq!(dotenv_path(Path::new("config")), PathBuf::from("./.env"));
    assert_eq!(
        dotenv_path(Path::new("deploy/config")),
        PathBuf::from("deploy/.env")
    );
}

mod notifications;
