//! Tests of the whole loader, against the shipped files in `config/` and variations of them.

use std::collections::{BTreeMap, BTreeSet};
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
        box_api.credentials,
        BoxCredentials::AppConfigFile(PathBuf::from("/tmp/state/box_app_config.json"))
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
        update("FERRERO.MARKETING.FIELD.SPOT_VERSION").fallback,
        Some(Fallback::Master)
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
            strict_mode: true,
            cache_file: None,
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
        "legacy_section:\n  level: info\npolling:\n  legacy_interval: 5\n",
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
    assert_eq!(message, "expected an overlay file for environment \"prodution\" (available: development, production, sandbox, staging)");

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
        "    method: ${DAM_AUTH_METHOD:-session}\n",
        "    method: oauth2\n",
    );
    let mut vars = sandbox_vars();
    vars.remove("DAM_PASSWORD");
    vars.insert("DAM_OAUTH2_GRANT".into(), "client_credentials".into());
    let error = temp.error(Some("sandbox"), &vars);
    assert!(
        error.contains(
            "config/config.yaml: dam.auth.auth_url: expected the OAuth2 token URL of the client_credentials grant"
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
    assert!(
        matches!(config.dam.auth, DamAuth::OAuth2 { ref client_id, grant: OAuthGrant::ClientCredentials, .. } if client_id == "cs")
    );

    // The password grant (the default when a user name is set) needs the password, and its
    // token URL defaults to the one OpenText's client uses.
    vars.remove("DAM_OAUTH2_GRANT");
    vars.remove("DAM_OAUTH2_URL");
    let error = temp.error(Some("sandbox"), &vars);
    assert!(
        error.starts_with("config/environments/sandbox.yaml: dam.auth.password: expected environment variable DAM_PASSWORD"),
        "{error}"
    );
    vars.insert("DAM_PASSWORD".into(), "pw".into());
    let config = temp.load(Some("sandbox"), &vars).unwrap();
    let DamAuth::OAuth2 {
        auth_url,
        grant: OAuthGrant::Password { username, .. },
        ..
    } = &config.dam.auth
    else {
        panic!("{:?}", config.dam.auth)
    };
    assert_eq!(
        auth_url,
        &format!("{}/otmmapi/v6/sessions/oauth2/token", config.dam.base_url)
    );
    assert!(!username.is_empty());
}

#[test]
fn dam_api_settings_have_documented_defaults_and_named_choices() {
    let temp = TempConfig::new();
    let config = temp.load(Some("sandbox"), &sandbox_vars()).unwrap();
    assert_eq!(config.dam.api, DamApi::default());
    temp.edit(
        "environments/sandbox.yaml",
        "    import_completion: ${DAM_API_IMPORT_COMPLETION:-}\n    lock_folders: ${DAM_API_LOCK_FOLDERS:-}\n    status_value_shape: ${DAM_API_STATUS_VALUE_SHAPE:-}\n    folder_load: ${DAM_API_FOLDER_LOAD:-}\n",
        "    import_completion: JOBS\n    lock_folders: never\n    status_value_shape: domain_value\n    folder_load: metadata\n    exclude_deleted: false\n    search_sort: \"\"\n    search_page_size: 50\n",
    );
    let config = temp.load(Some("sandbox"), &sandbox_vars()).unwrap();
    assert_eq!(
        config.dam.api,
        DamApi {
            import_completion: ImportCompletion::Jobs,
            lock_folders: FolderLocking::Never,
            status_value_shape: ValueShape::DomainValue,
            folder_load: FolderLoad::Metadata,
            exclude_deleted: false,
            search_sort: String::new(),
            search_page_size: 50,
            ..DamApi::default()
        }
    );
    temp.edit(
        "environments/sandbox.yaml",
        "    lock_folders: never\n",
        "    lock_folders: sometimes\n",
    );
    let error = temp.error(Some("sandbox"), &sandbox_vars());
    assert_eq!(
        error,
        "config/environments/sandbox.yaml: dam.api.lock_folders: expected one of when_allowed, always, never, found \"sometimes\""
    );
}

#[test]
fn relative_paths_resolve_against_the_deployment_root() {
    let temp = TempConfig::new();
    let mut vars = sandbox_vars();
    vars.insert("BOX_CONFIG_FILE".into(), "secrets/box.json".into());
    vars.insert("CS_TEMP_DIR".into(), "var/tmp".into());
    let config = temp.load(Some("sandbox"), &vars).unwrap();
    assert_eq!(
        config.box_api.credentials,
        BoxCredentials::AppConfigFile(temp.dir.path().join("secrets/box.json"))
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
        "legacy_section:\n  level: info\npolling:\n  legacy_interval: 5\n",
    );
    temp.edit(
        "webhooks.yaml",
        "    timeout_secs: 10\n",
        "    timeout_secs: 10\n    retries: 3\n",
    );
    let warnings = capture_warnings(|| {
        temp.load(Some("sandbox"), &sandbox_vars()).unwrap();
    });
    assert!(warnings.contains("key=legacy_section"), "{warnings}");
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

// ----- The plan's keys (shared/plan-contracts.md) beside the project's -----

/// A configuration directory holding `config.yaml` = `yaml` (plus minimal `box` and `dam`
/// sections when `yaml` has none) and `field_mappings.yaml` = `mappings`.
struct MiniConfig {
    dir: tempfile::TempDir,
}

impl MiniConfig {
    fn new(yaml: &str, mappings: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        std::fs::create_dir_all(config.join("environments")).unwrap();
        let mut text = yaml.to_string();
        if !yaml.contains("box:\n") {
            text.push_str("\nbox:\n  root_folder_id: \"1\"\n  app_config_file: box.json\n");
        }
        if !yaml.contains("dam:\n") {
            text.push_str(
                "\ndam:\n  base_url: https://dam.example.com\n  username: u\n  password: p\n",
            );
        }
        std::fs::write(config.join("config.yaml"), text).unwrap();
        std::fs::write(config.join("field_mappings.yaml"), mappings).unwrap();
        MiniConfig { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("config")
    }

    fn load(&self) -> Result<Config, ConfigError> {
        load_dir(&self.path(), None, &BTreeMap::new())
    }

    fn error(&self) -> String {
        match self.load() {
            Ok(_) => panic!("expected a configuration error"),
            Err(error) => error
                .to_string()
                .replace(&self.path().display().to_string(), "config"),
        }
    }
}

fn mini(yaml: &str) -> MiniConfig {
    MiniConfig::new(yaml, "mvp_fields: []\n")
}

/// One setting spelt the plan's way (`plan`) and the project's (`project`) inside `section`
/// (whose other lines are `extra`): either spelling gives `expected` for `a`, both with the same
/// value are fine, both with different values are an error naming both keys.
fn check_alias(
    section: &str,
    extra: &str,
    plan: &str,
    project: &str,
    (a, b): (&str, &str),
    read: impl Fn(&Config) -> String,
    expected: &str,
) {
    let yaml = |lines: &[(&str, &str)]| {
        let mut text = format!("{section}:\n{extra}");
        for (key, value) in lines {
            text.push_str(&format!("  {key}: {value}\n"));
        }
        text
    };
    for lines in [
        vec![(plan, a)],
        vec![(project, a)],
        vec![(plan, a), (project, a)],
    ] {
        let config = mini(&yaml(&lines)).load().unwrap_or_else(|error| {
            panic!("{section}: {lines:?}: {error}");
        });
        assert_eq!(read(&config), expected, "{section}: {lines:?}");
    }
    let error = mini(&yaml(&[(plan, a), (project, b)])).error();
    assert!(
        error.contains(&format!("{section}.{plan}"))
            && error.contains(&format!("{section}.{project}")),
        "{error}"
    );
    assert!(error.contains("expected the same value as"), "{error}");
}

#[test]
fn the_plans_spellings_and_the_projects_name_one_setting() {
    check_alias(
        "database",
        "",
        "database",
        "name",
        ("ferrero_tracking", "content_scaling"),
        |config| {
            let url = config.database.url.expose();
            url.rsplit('/')
                .next()
                .unwrap()
                .split('?')
                .next()
                .unwrap()
                .to_string()
        },
        "ferrero_tracking",
    );
    check_alias(
        "temp",
        "",
        "directory",
        "dir",
        ("/srv/plan/temp/downloads", "/tmp/other"),
        |config| config.temp.dir.display().to_string(),
        "/srv/plan/temp/downloads",
    );
    check_alias(
        "dam",
        "  base_url: https://dam.example.com\n  username: u\n  password: p\n",
        "timeout_seconds",
        "read_timeout_secs",
        ("120", "60"),
        |config| config.dam.read_timeout_secs.to_string(),
        "120",
    );
    check_alias(
        "retry",
        "",
        "initial_delay_seconds",
        "backoff_base_secs",
        ("5", "7"),
        |config| config.retry.backoff_base_secs.to_string(),
        "5",
    );
    check_alias(
        "retry",
        "",
        "max_delay_seconds",
        "backoff_max_secs",
        ("90", "80"),
        |config| config.retry.backoff_max_secs.to_string(),
        "90",
    );
    // A relative plan `temp.directory` is taken from the deployment root.
    let config = mini("temp:\n  directory: temp/downloads\n").load().unwrap();
    assert!(config.temp.dir.ends_with("temp/downloads") && config.temp.dir.is_absolute());
}

#[test]
fn the_plans_flat_dam_block_is_oauth2() {
    let flat = "dam:\n  base_url: https://dam.example.com\n  auth_url: https://dam.example.com/otmmapi/v6/auth/oauth/token\n  client_id: cs\n  client_secret: s3cret\n  timeout_seconds: 120\n";
    let config = mini(flat).load().unwrap();
    let DamAuth::OAuth2 {
        auth_url,
        client_id,
        client_secret,
        grant: OAuthGrant::ClientCredentials,
    } = &config.dam.auth
    else {
        panic!("{:?}", config.dam.auth)
    };
    assert_eq!(
        auth_url,
        "https://dam.example.com/otmmapi/v6/auth/oauth/token"
    );
    assert_eq!(client_id, "cs");
    assert_eq!(client_secret.expose(), "s3cret");
    assert_eq!(config.dam.read_timeout_secs, 120);
    // A user name means a session login; an explicit method wins.
    let session = format!("{flat}  username: u\n  password: p\n");
    assert!(matches!(
        mini(&session).load().unwrap().dam.auth,
        DamAuth::Session { .. }
    ));
    let error = mini(&format!("{flat}  method: session\n")).error();
    // Every missing key at once, not the first one only.
    assert_eq!(
        error,
        "2 configuration problems:\n  config/config.yaml: dam.username: expected the OTMM user name (e.g. ${DAM_USERNAME}), found nothing\n  config/config.yaml: dam.password: expected the OTMM password (e.g. ${DAM_PASSWORD}), found nothing"
    );
    // The plan's block without its token URL says which key is missing.
    let error =
        mini("dam:\n  base_url: https://dam.example.com\n  client_id: cs\n  client_secret: s\n")
            .error();
    assert_eq!(
        error,
        "config/config.yaml: dam.auth_url: expected the OAuth2 token URL of the client_credentials grant, found nothing"
    );
}

#[test]
fn box_jwt_from_the_six_keys_or_the_app_config_never_both() {
    let six = "box:\n  root_folder_id: \"1\"\n  enterprise_id: 43984435\n  client_id: cid\n  client_secret: csecret\n  jwt_key_id: kid\n  rsa_private_key_path: secrets/box.pem\n  passphrase: pass phrase \n";
    let temp = mini(six);
    let config = temp.load().unwrap();
    let BoxCredentials::Keys(keys) = &config.box_api.credentials else {
        panic!("{:?}", config.box_api.credentials)
    };
    assert_eq!(keys.enterprise_id, "43984435");
    assert_eq!(keys.client_id, "cid");
    assert_eq!(keys.client_secret.expose(), "csecret");
    assert_eq!(keys.public_key_id, "kid");
    assert_eq!(
        keys.private_key_path,
        temp.dir.path().join("secrets/box.pem"),
        "relative to the deployment root"
    );
    assert_eq!(keys.passphrase.expose(), "pass phrase");
    assert_eq!(config.box_api.credentials.file(), keys.private_key_path);

    let error = mini(&format!(
        "{six}  app_config_file: config/box_app_config.json\n"
    ))
    .error();
    assert!(
        error.starts_with("config/config.yaml: box.app_config_file: expected either box.app_config_file (the Developer Console's app config JSON) or the separate keys box.client_id, box.client_secret, box.jwt_key_id, box.rsa_private_key_path, box.passphrase, box.enterprise_id, not both"),
        "{error}"
    );
    let error = mini(&six.replace("  jwt_key_id: kid\n", "")).error();
    assert_eq!(
        error,
        "config/config.yaml: box.jwt_key_id: expected the ID of the app's public key (e.g. ${BOX_JWT_KEY_ID}), found nothing"
    );
    let debug = format!("{config:?}");
    assert!(
        !debug.contains("csecret") && !debug.contains("pass phrase"),
        "{debug}"
    );
}

#[test]
fn include_names_the_overlay_and_env_still_wins() {
    let temp = mini("environment: ${ENV:-staging}\ninclude: config/environments/${ENV:-staging}.yaml\npolling:\n  max_campaigns_per_run: 10\n");
    std::fs::write(
        temp.path().join("environments/staging.yaml"),
        "polling:\n  max_campaigns_per_run: 3\n",
    )
    .unwrap();
    std::fs::write(
        temp.path().join("environments/production.yaml"),
        "polling:\n  max_campaigns_per_run: 7\n",
    )
    .unwrap();
    let config = temp.load().unwrap();
    assert_eq!(config.environment, "staging");
    assert_eq!(config.polling.max_campaigns_per_run, 3);
    let vars: BTreeMap<String, String> = [("ENV".to_string(), "production".to_string())].into();
    let config = load_dir(&temp.path(), None, &vars).unwrap();
    assert_eq!(
        (
            config.environment.as_str(),
            config.polling.max_campaigns_per_run
        ),
        ("production", 7)
    );
    // --env chooses environments/{name}.yaml whatever include says.
    let config = load_dir(&temp.path(), Some("production"), &BTreeMap::new()).unwrap();
    assert_eq!(config.polling.max_campaigns_per_run, 7);
    // An include that names no file is an error naming the key.
    let vars: BTreeMap<String, String> = [("ENV".to_string(), "qa".to_string())].into();
    let error = load_dir(&temp.path(), None, &vars).unwrap_err();
    assert_eq!(error.key(), Some("include"));
    assert!(
        error.to_string().contains("config/environments/qa.yaml"),
        "{error}"
    );
}

#[test]
fn incoming_webhooks_are_accepted_without_their_variables_or_a_warning() {
    let temp = mini("webhook:\n  enabled: true\n  host: 0.0.0.0\n  port: 5000\n  validate_signatures: true\nbox:\n  root_folder_id: \"1\"\n  app_config_file: box.json\n  webhook_signature_keys:\n    - ${BOX_PRIMARY_KEY}\n    - ${BOX_SECONDARY_KEY}\n");
    let warnings = capture_warnings(|| {
        temp.load().unwrap();
    });
    assert!(!warnings.contains("webhook"), "{warnings}");
}

#[test]
fn the_plans_logging_section() {
    let config = mini("logging:\n  level: WARNING\n  format: \"%(asctime)s - %(name)s - %(levelname)s - %(message)s\"\n  handlers:\n    file:\n      filename: logs/app.log\n      max_bytes: 1024\n      backup_count: 2\n    console:\n      enabled: false\n").load().unwrap();
    let temp_root = config.config_dir.parent().unwrap().to_path_buf();
    assert_eq!(
        config.logging,
        LoggingConfig {
            level: Some(tracing::Level::WARN),
            file: Some(LogFileConfig {
                path: temp_root.join("logs/app.log"),
                max_bytes: 1024,
                backup_count: 2,
            }),
            console: false,
        }
    );
    for (name, level) in [
        ("DEBUG", tracing::Level::DEBUG),
        ("info", tracing::Level::INFO),
        ("ERROR", tracing::Level::ERROR),
        ("CRITICAL", tracing::Level::ERROR),
    ] {
        let config = mini(&format!("logging:\n  level: {name}\n"))
            .load()
            .unwrap();
        assert_eq!(config.logging.level, Some(level), "{name}");
        assert_eq!(config.logging.file, None);
        assert!(config.logging.console);
    }
    assert_eq!(
        mini("logging:\n  level: LOUD\n").error(),
        "config/config.yaml: logging.level: expected DEBUG, INFO, WARNING, ERROR or CRITICAL, found \"LOUD\""
    );
    assert_eq!(
        mini("logging:\n  handlers:\n    file:\n      filename: a.log\n      max_bytes: 0\n")
            .error(),
        "config/config.yaml: logging.handlers.file.max_bytes: expected a whole number > 0, found 0"
    );
    // Defaults of the file handler are Python's example values.
    let config = mini("logging:\n  handlers:\n    file:\n      filename: /var/log/cs/app.log\n")
        .load()
        .unwrap();
    assert_eq!(
        config.logging.file,
        Some(LogFileConfig {
            path: PathBuf::from("/var/log/cs/app.log"),
            max_bytes: 10_485_760,
            backup_count: 5
        })
    );
}

#[test]
fn the_plans_retry_and_polling_keys() {
    let config = mini("retry:\n  max_attempts: 3\n  backoff: exponential\n  initial_delay_seconds: 5\n  max_delay_seconds: 60\n  retryable_http_codes: [429, 500, 503]\npolling:\n  enabled: false\n  interval_seconds: 300\n").load().unwrap();
    assert_eq!(config.retry.max_attempts, 3);
    assert_eq!(
        (
            config.retry.backoff_base_secs,
            config.retry.backoff_max_secs
        ),
        (5, 60)
    );
    assert_eq!(config.retry.retryable_http_codes, vec![429, 500, 503]);
    assert!(!config.polling.enabled);
    assert_eq!(config.polling.interval_secs, Some(300));
    let config = mini("polling:\n  max_campaigns_per_run: 2\n")
        .load()
        .unwrap();
    assert!(config.polling.enabled);
    assert_eq!(config.polling.interval_secs, None);
    assert_eq!(
        config.retry.retryable_http_codes,
        DEFAULT_RETRYABLE_HTTP_CODES.to_vec()
    );
    assert_eq!(
        mini("retry:\n  backoff: linear\n").error(),
        "config/config.yaml: retry.backoff: expected exponential (the delay doubles per attempt), found \"linear\""
    );
    assert_eq!(
        mini("retry:\n  retryable_http_codes: [429, 302]\n").error(),
        "config/config.yaml: retry.retryable_http_codes[1]: expected an HTTP error status from 400 to 599 (e.g. 503)"
    );
    assert_eq!(
        mini("retry:\n  initial_delay_seconds: 90\n  max_delay_seconds: 60\n").error(),
        "config/config.yaml: retry.max_delay_seconds: expected a number >= the first delay (retry.backoff_base_secs / retry.initial_delay_seconds: 90), found 60"
    );
}

#[test]
fn the_plans_field_mapping_forms() {
    let mappings = "filename_field_updates:\n  - field_id: ARTESIA.FIELD.ASSET DESCRIPTION\n    source: subject_title\n    required: false\n    fallback: \"\"\n  - field_id: MAIN_LANGUAGES\n    source: language_code\n    transform: uppercase\n    required: true\n    validate_domain: true\n    default: EN\n  - field_id: FERRERO.FIELD.MKTG.ASSET TYPE\n    source: asset_type\n    transform: lowercase\n    validate_domain: true\n  - field_id: X.MASTERED\n    source: spec\n    fallback: master\n    validate_domain: false\nvalidate_domain_values:\n  enabled: true\n  cache_file: config/domain_values_cache.json\n  cache_ttl_hours: 12\n  strict_mode: false\n";
    let temp = MiniConfig::new("", mappings);
    let config = temp.load().unwrap();
    let updates = &config.field_mappings.filename_field_updates;
    assert_eq!(updates[0].fallback, Some(Fallback::Value(String::new())));
    assert_eq!(updates[1].transform, [Transform::Upper]);
    assert_eq!(
        updates[1].validate_domain.as_deref(),
        Some("FERRERO.DOMAIN.LANGUAGES")
    );
    assert_eq!(updates[1].default.as_deref(), Some("EN"));
    assert_eq!(updates[2].transform, [Transform::Lower]);
    assert_eq!(
        updates[2].validate_domain.as_deref(),
        Some("FERRERO.DOMAIN.MKTG ASSET TYPE")
    );
    assert_eq!(updates[3].fallback, Some(Fallback::Master));
    assert_eq!(updates[3].validate_domain, None);
    assert_eq!(
        config.field_mappings.validate_domain_values,
        DomainValidation {
            enabled: true,
            cache_ttl_hours: 12,
            strict_mode: false,
            cache_file: Some(temp.dir.path().join("config/domain_values_cache.json")),
        }
    );

    // `validate_domain: true` on a field whose domain is not known names the key to add ...
    let unknown = "filename_field_updates:\n  - field_id: X.REGION\n    source: spec\n    validate_domain: true\n";
    assert_eq!(
        MiniConfig::new("", unknown).error(),
        "config/field_mappings.yaml: filename_field_updates[0].validate_domain: true means the lookup domain of field \"X.REGION\", but none is known: add it to lookup_domains in field_mappings.yaml (lookup_domains: {\"X.REGION\": DOMAIN_ID}) or write the domain ID here"
    );
    // ... which then gives it (and may replace a known one).
    let config = MiniConfig::new(
        "",
        &format!("{unknown}lookup_domains:\n  X.REGION: FERRERO.DOMAIN.REGION\n"),
    )
    .load()
    .unwrap();
    assert_eq!(
        config.field_mappings.filename_field_updates[0]
            .validate_domain
            .as_deref(),
        Some("FERRERO.DOMAIN.REGION")
    );
}

#[test]
fn fields_mappings_file_names_the_field_mappings() {
    let temp = mini("fields:\n  mappings_file: config/plan_fields.yaml\n");
    std::fs::write(
        temp.path().join("plan_fields.yaml"),
        "mvp_fields: [A.FIELD]\n",
    )
    .unwrap();
    let config = temp.load().unwrap();
    assert_eq!(config.field_mappings.mvp_fields, vec!["A.FIELD"]);
    let temp = mini("fields:\n  mappings_file: config/missing.yaml\n");
    assert!(
        temp.error()
            .starts_with("config/missing.yaml: cannot read the file"),
        "{}",
        temp.error()
    );
}

/// The plan's directory (`tests/fixtures/plan`): its files copied verbatim from the plan.
fn plan_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/plan/config");
    assert!(
        dir.join("config.yaml").is_file(),
        "missing fixture {}",
        dir.display()
    );
    dir
}

/// The plan's environment variables (the incoming webhooks' BOX_PRIMARY_KEY and
/// BOX_SECONDARY_KEY left unset: they must not be needed), the Box key a generated PEM
/// encrypted with BOX_PASSPHRASE.
fn plan_vars(key_dir: &Path) -> BTreeMap<String, String> {
    let private = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
    let pem = sandbox::keys::encrypt_private_key(&private, "plan passphrase").unwrap();
    let key_path = key_dir.join("box_private_key.pem");
    std::fs::write(&key_path, pem).unwrap();
    [
        ("DAM_BASE_URL", "https://dam.ferrero.example"),
        (
            "DAM_AUTH_URL",
            "https://dam.ferrero.example/otmmapi/v6/auth/oauth/token",
        ),
        ("DAM_CLIENT_ID", "dam-client"),
        ("DAM_CLIENT_SECRET", "dam-client-secret-value"),
        ("BOX_CLIENT_ID", "box-client"),
        ("BOX_CLIENT_SECRET", "box-client-secret-value"),
        ("BOX_JWT_KEY_ID", "kid7"),
        ("BOX_PRIVATE_KEY_PATH", key_path.to_str().unwrap()),
        ("BOX_PASSPHRASE", "plan passphrase"),
        ("DB_USER", "ferrero"),
        ("DB_PASSWORD", "db-password-value"),
        (
            "CAMPAIGN_STATUS_WEBHOOK_URL",
            "https://hooks.example.com/campaign-status",
        ),
        ("WEBHOOK_AUTH_TOKEN", "webhook-token-value"),
        ("MAILGUN_API_KEY", "mailgun-key-value"),
        ("MAILGUN_DOMAIN", "mg.ferrero.example"),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_string(), value.to_string()))
    .collect()
}

#[test]
fn the_plans_files_load_unchanged() {
    let key_dir = tempfile::tempdir().unwrap();
    let vars = plan_vars(key_dir.path());
    let dir = plan_dir();
    let root = dir.parent().unwrap().to_path_buf();
    let mut loaded = None;
    let warnings = capture_warnings(|| {
        loaded = Some(load_dir(&dir, None, &vars).unwrap());
    });
    let config = loaded.unwrap();
    // The one warning left: no watched folders (the plan has none).
    for line in warnings.lines() {
        assert!(line.contains("no watched folders"), "{line}");
    }

    assert_eq!(config.environment, "staging");
    assert_eq!(
        config.database.url.expose(),
        "postgresql://ferrero:db-password-value@localhost:5433/ferrero_tracking?sslmode=prefer"
    );
    assert_eq!(config.dam.base_url, "https://dam.ferrero.example");
    assert!(matches!(
        &config.dam.auth,
        DamAuth::OAuth2 { auth_url, client_id, .. }
            if auth_url == "https://dam.ferrero.example/otmmapi/v6/auth/oauth/token" && client_id == "dam-client"
    ));
    assert_eq!(config.dam.read_timeout_secs, 120);

    assert_eq!(config.box_api.root_folder_id, "348304357505");
    let app = crate::boxapi::BoxAppConfig::load(&config.box_api.credentials).unwrap();
    assert_eq!(
        (
            app.enterprise_id.as_str(),
            app.client_id.as_str(),
            app.public_key_id.as_str()
        ),
        ("43984435", "box-client", "kid7")
    );

    assert!(config.polling.enabled);
    assert_eq!(
        config.polling.interval_secs,
        Some(600),
        "from the included environments/staging.yaml"
    );
    assert_eq!(config.polling.max_campaigns_per_run, 10);
    assert_eq!(
        (
            config.retry.max_attempts,
            config.retry.backoff_base_secs,
            config.retry.backoff_max_secs
        ),
        (3, 5, 60)
    );
    assert_eq!(
        config.retry.retryable_http_codes,
        vec![429, 500, 502, 503, 504]
    );
    assert_eq!(
        config.logging,
        LoggingConfig {
            level: Some(tracing::Level::DEBUG),
            file: Some(LogFileConfig {
                path: root.join("logs/app.log"),
                max_bytes: 10_485_760,
                backup_count: 5,
            }),
            console: true,
        }
    );
    assert_eq!(config.temp.dir, root.join("temp/downloads"));
    assert_eq!(
        (config.temp.cleanup_after_hours, config.temp.max_size_mb),
        (24, 1000)
    );
    // notifications: the plan's Mailgun block, recipients and sender.
    assert!(config.email.enabled);
    assert_eq!(config.email.domain, "mg.ferrero.example");
    assert_eq!(
        config.email.from,
        "Ferrero Automation <noreply@mg.ferrero.example>"
    );
    assert_eq!(
        config.email.success_recipients,
        ["team@ferrero.com", "agency@example.com"]
    );
    assert_eq!(
        config.email.error_recipients,
        ["admin@ferrero.com", "it-support@ferrero.com"]
    );
    assert_eq!(config.email.critical_recipients, ["oncall@ferrero.com"]);
    // webhooks: the plan's named webhooks (config.yaml's URL wins over webhooks.yaml's).
    let status_hook = config
        .webhooks
        .endpoints
        .iter()
        .find(|endpoint| endpoint.name == "campaign_status_update")
        .expect("campaign_status_update");
    assert_eq!(status_hook.url, "https://hooks.example.com/campaign-status");
    assert!(status_hook
        .events
        .iter()
        .any(|event| event == "campaign.a2"));
    assert!(
        !config
            .webhooks
            .endpoints
            .iter()
            .any(|endpoint| endpoint.name == "asset_upload_complete"),
        "disabled in the plan"
    );

    let mappings = &config.field_mappings;
    assert_eq!(mappings.mvp_fields.len(), 12);
    let updates = &mappings.filename_field_updates;
    assert_eq!(updates.len(), 4);
    assert_eq!(updates[0].field_id, "ARTESIA.FIELD.ASSET NAME");
    assert_eq!(updates[0].source, FieldSource::CleanFilename);
    assert!(updates[0].required);
    assert_eq!(updates[1].fallback, Some(Fallback::Value(String::new())));
    assert_eq!(
        (
            updates[2].transform.as_slice(),
            updates[2].validate_domain.as_deref(),
            updates[2].default.as_deref()
        ),
        (
            [Transform::Upper].as_slice(),
            Some("FERRERO.DOMAIN.LANGUAGES"),
            Some("EN")
        )
    );
    assert_eq!(
        updates[3].validate_domain.as_deref(),
        Some("FERRERO.DOMAIN.MKTG ASSET TYPE")
    );
    assert_eq!(mappings.forced_field_values["FERRERO.FIELD.STATE"], "Local");
    assert_eq!(
        mappings.default_field_values["FERRERO.FIELD.FISCAL YEAR"],
        "2025/2026"
    );
    assert_eq!(
        mappings.validate_domain_values,
        DomainValidation {
            enabled: true,
            cache_ttl_hours: 24,
            strict_mode: false,
            cache_file: Some(root.join("config/domain_values_cache.json")),
        }
    );
    let debug = format!("{config:?}");
    for secret in [
        "dam-client-secret-value",
        "box-client-secret-value",
        "plan passphrase",
        "db-password-value",
    ] {
        assert!(!debug.contains(secret), "{secret} leaked");
    }

    // ENV=production includes environments/production.yaml.
    let mut vars = vars;
    vars.insert("ENV".into(), "production".into());
    let config = load_dir(&dir, None, &vars).unwrap();
    assert_eq!(config.environment, "production");
    assert_eq!(config.logging.level, Some(tracing::Level::WARN));
}

/// Every `${VAR}` of the shipped configuration files.
fn shipped_variables() -> BTreeSet<String> {
    let pattern = regex::Regex::new(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}").unwrap();
    let mut names = BTreeSet::new();
    let mut files = vec![shipped_dir().join("config.yaml")];
    for entry in std::fs::read_dir(shipped_dir()).unwrap() {
        files.push(entry.unwrap().path());
    }
    for entry in std::fs::read_dir(shipped_dir().join("environments")).unwrap() {
        files.push(entry.unwrap().path());
    }
    for file in files {
        if file.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        // Comment lines explain the syntax with `${VAR}` examples: values only.
        let text: String = std::fs::read_to_string(&file)
            .unwrap()
            .replace("$${", "")
            .lines()
            .filter(|line| !line.trim_start().starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n");
        for capture in pattern.captures_iter(&text) {
            names.insert(capture[1].to_string());
        }
    }
    names
}

#[test]
fn env_example_is_generated_from_the_shipped_config() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.env.example");
    let committed = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    let generated = super::env_example(&shipped_dir()).expect("the shipped files are readable");
    assert_eq!(
        committed.trim_end(),
        generated.trim_end(),
        "run: box-setup --config-dir config check-config --env-example > .env.example"
    );
    // Every variable of the shipped files is in it, secrets marked.
    for name in shipped_variables() {
        assert!(
            generated.contains(&format!("{name}=")),
            "{name} is missing from .env.example"
        );
    }
    assert!(
        generated.contains("\nDAM_PASSWORD=\n"),
        "no default: must be set"
    );
    assert!(
        generated.contains("# DB_HOST=localhost\n"),
        "a default: commented out"
    );
    let password_block = generated
        .split("\n\n")
        .find(|block| block.contains("DAM_PASSWORD="))
        .unwrap_or_default();
    assert!(password_block.contains("(secret)"), "{password_block}");
}

#[test]
fn the_default_environment_needs_no_overlay_file() {
    // `--env development` names the environment config.yaml declares: config.yaml alone.
    let mut vars = sandbox_vars();
    vars.insert("WEBHOOK_TOKEN".into(), "token".into());
    let config = load_dir(&shipped_dir(), Some("development"), &vars).unwrap();
    assert_eq!(config.environment, "development");
    assert!(!shipped_dir().join("environments/development.yaml").exists());
}

#[test]
fn check_reports_every_problem_of_one_load_with_lines() {
    let temp = TempConfig::new();
    temp.edit(
        "environments/sandbox.yaml",
        "max_requests_per_second: ${BOX_MAX_REQUESTS_PER_SECOND:-200}",
        "max_requests_per_second: ten",
    );
    temp.edit(
        "field_mappings.yaml",
        "transform: upper",
        "transfrom: upper",
    );
    let mut vars = sandbox_vars();
    vars.remove("DAM_USERNAME");
    vars.remove("DAM_PASSWORD");
    let lookup = |name: &str| vars.get(name).cloned();
    let report = super::check(&temp.path(), Some("sandbox"), &lookup);
    let lines: Vec<String> = report
        .problems
        .iter()
        .map(|problem| {
            format!(
                "{} {}:{} {} | {}",
                problem.severity.as_str(),
                problem
                    .error
                    .file()
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy(),
                problem.line.unwrap_or(0),
                problem.key(),
                problem.hint
            )
        })
        .collect();
    let text = lines.join("\n");
    assert!(!report.is_ok());
    assert!(text.contains("error sandbox.yaml:"), "{text}");
    assert!(
        text.contains("box.max_requests_per_second | write the number in digits"),
        "{text}"
    );
    assert!(text.contains("dam.auth.username"), "{text}");
    assert!(text.contains("dam.auth.password"), "{text}");
    assert!(
        text.contains(".transfrom | did you mean transform?"),
        "{text}"
    );
    let missing: Vec<&str> = report.missing_variables().into_keys().collect();
    assert_eq!(missing, ["DAM_PASSWORD", "DAM_USERNAME"]);
    for problem in report.errors() {
        assert!(problem.line.is_some_and(|line| line > 0), "{problem:?}");
    }
}

#[test]
fn a_watched_folders_profile_overrides_mappings_naming_and_recipients() {
    let temp = TempConfig::new();
    let mappings = std::fs::read_to_string(temp.path().join("field_mappings.yaml")).unwrap();
    temp.write(
        "field_mappings.yaml",
        &format!(
            "{mappings}\nprofiles:\n  germany:\n    forced_field_values:\n      FERRERO.FIELD.MARKET: DE\n    filename_field_updates:\n      - field_id: MAIN_LANGUAGES\n        source: language_code\n        transform: lowercase\n    error_recipients: [de@example.com, de2@example.com]\n    naming:\n      allowed_extensions: [mp4]\n"
        ),
    );
    temp.edit(
        "environments/sandbox.yaml",
        "      profile: default\n",
        "      profile: default\n    - id: \"300\"\n      name: incoming-de\n      profile: germany\n",
    );
    let config = temp.load(Some("sandbox"), &sandbox_vars()).unwrap();
    let default = config.folder_settings("200");
    let german = config.folder_settings("300");
    assert_eq!(
        german.error_recipients,
        ["de@example.com", "de2@example.com"]
    );
    assert_eq!(default.error_recipients, config.email.error_recipients);
    assert_eq!(
        german
            .field_mappings
            .forced_field_values
            .get("FERRERO.FIELD.MARKET")
            .map(String::as_str),
        Some("DE")
    );
    assert!(!default
        .field_mappings
        .forced_field_values
        .contains_key("FERRERO.FIELD.MARKET"));
    // Forced values of the defaults stay unless the profile overrides them.
    for (field, value) in &config.field_mappings.forced_field_values {
        assert_eq!(
            german.field_mappings.forced_field_values.get(field),
            Some(value)
        );
    }
    let language = |settings: &FolderSettings<'_>| {
        settings
            .field_mappings
            .filename_field_updates
            .iter()
            .find(|update| update.field_id == "MAIN_LANGUAGES")
            .map(|update| update.transform.clone())
            .unwrap()
    };
    assert_eq!(language(&german), vec![Transform::Lower]);
    assert_ne!(language(&default), vec![Transform::Lower]);
    assert_eq!(
        german.field_mappings.filename_field_updates.len(),
        default.field_mappings.filename_field_updates.len()
    );
    // The profile's naming grammar: a .png is no delivery there, it is in the defaults.
    assert_eq!(german.naming.allowed_extensions, ["mp4"]);
    assert!(default
        .naming
        .allowed_extensions
        .iter()
        .any(|ext| ext == "png"));
    // A folder that is not watched, or has no profile, gets the defaults.
    assert!(std::ptr::eq(
        config.folder_settings("999").naming,
        std::ptr::from_ref(&config.naming)
    ));

    temp.edit(
        "environments/sandbox.yaml",
        "profile: germany",
        "profile: austria",
    );
    let error = temp.error(Some("sandbox"), &sandbox_vars());
    assert!(
        error.starts_with("config/environments/sandbox.yaml: box.watched_folders[1].profile: expected default or a profile of"),
        "{error}"
    );
    assert!(
        error.ends_with("(profiles: germany), found \"austria\""),
        "{error}"
    );
}
mod notifications;
