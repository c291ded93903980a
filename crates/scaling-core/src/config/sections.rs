//! One function per section: read keys with defaults, validate, build the public structs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::Value;

use super::reader::{check_url, shown, Ctx, Section};
use super::tree::{kind_of, read_yaml, Origins};
use super::{
    BoxConfig, CampaignModel, ConfigError, DamAuth, DamConfig, DatabaseConfig, DomainValidation,
    EmailConfig, EmailTemplate, EmailTemplates, FieldMappings, FieldSource, FieldUpdate,
    MediaConfig, PollingConfig, RetentionConfig, RetryConfig, StatusConfig, SubjectFormat,
    TempConfig, Transform, WatchedFolder, WebhookEndpoint, WebhooksConfig, ALERT_TEMPLATES,
    KNOWN_EVENTS, REQUIRED_TEMPLATES,
};
use crate::http::RequestWindow;
use crate::naming::{IgnoredNames, NamingConfig, SegmentRule};
use crate::secret::Secret;

/// Characters escaped in URL user info and database name: all but RFC 3986 unreserved ones.
const URL_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `database`. `root` is the deployment root (relative `sslrootcert` paths).
pub(super) fn database(section: &Section<'_>, root: &Path) -> Result<DatabaseConfig, ConfigError> {
    let keys = [
        "url",
        "host",
        "port",
        "name",
        "user",
        "password",
        "sslmode",
        "sslrootcert",
    ];
    // TLS settings apply to every URL source; an sslmode/sslrootcert inside the URL wins.
    let sslmode = section.text_or("sslmode", "prefer")?;
    let sslmode: crate::store::SslMode = sslmode.parse().map_err(|_| {
        section.error(
            "sslmode",
            format!(
                "expected {}, found {}",
                crate::store::tls::SSLMODE_VALUES,
                shown(&sslmode)
            ),
        )
    })?;
    let sslrootcert = section.text("sslrootcert")?.map(|text| {
        let path = PathBuf::from(text);
        if path.is_relative() && path != Path::new("system") {
            root.join(path)
        } else {
            path
        }
    });
    let from_env = (section.ctx().vars)("DATABASE_URL")
        .map(|url| url.trim().to_string())
        .filter(|url| !url.is_empty());
    if let Some(url) = from_env {
        section.mark_used(&keys);
        if !looks_like_postgres_url(&url) {
            return Err(ConfigError::Invalid {
                file: PathBuf::from("environment variable DATABASE_URL"),
                key: "database.url".to_string(),
                message: postgres_url_expectation(),
            });
        }
        return Ok(DatabaseConfig {
            url: Secret::new(url),
            sslmode: Some(sslmode),
            sslrootcert,
        });
    }
    if let Some(url) = section.text("url")? {
        section.mark_used(&keys);
        if !looks_like_postgres_url(&url) {
            return Err(section.error("url", postgres_url_expectation()));
        }
        return Ok(DatabaseConfig {
            url: Secret::new(url),
            sslmode: Some(sslmode),
            sslrootcert,
        });
    }
    let host = section.text_or("host", "localhost")?;
    let port = section.u64_or("port", 5432, 1)?;
    if port > u64::from(u16::MAX) {
        return Err(section.error(
            "port",
            format!("expected a TCP port (1-65535), found {port}"),
        ));
    }
    let name = section.text_or("name", "content_scaling")?;
    let user = section.text_or("user", "content_scaling")?;
    let password = section.secret("password")?;
    let host_part = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host
    };
    let credentials = match &password {
        Some(password) => format!(
            "{}:{}",
            utf8_percent_encode(&user, URL_COMPONENT),
            utf8_percent_encode(password.expose(), URL_COMPONENT)
        ),
        None => utf8_percent_encode(&user, URL_COMPONENT).to_string(),
    };
    let url = format!(
        "postgresql://{credentials}@{host_part}:{port}/{}?sslmode={sslmode}",
        utf8_percent_encode(&name, URL_COMPONENT)
    );
    Ok(DatabaseConfig {
        url: Secret::new(url),
        sslmode: Some(sslmode),
        sslrootcert,
    })
}

fn looks_like_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://")
        || url.starts_with("postgresql://")
        || url.contains("host=")
        || url.contains("dbname=")
}

fn postgres_url_expectation() -> String {
    "expected a PostgreSQL URL such as postgresql://user:password@host:5432/content_scaling (the value is not shown: it may hold a password)".to_string()
}

/// Box's smallest file size for a chunked upload session (20 MB; taken as 20 MiB so that both readings
/// of "MB" are satisfied). Source: <https://developer.box.com/guides/uploads/chunked/>.
pub const MIN_CHUNKED_UPLOAD_THRESHOLD: u64 = 20 * 1024 * 1024;

/// `box`. `temp_dir` is `temp.dir` (the default place of the token cache).
pub(super) fn box_config(
    section: &Section<'_>,
    root: &Path,
    temp_dir: &Path,
) -> Result<BoxConfig, ConfigError> {
    let base_url = strip_suffix_warn(
        section,
        "base_url",
        section.url(
            "base_url",
            Some("https://api.box.com"),
            "the Box API root without /2.0",
        )?,
        &["/2.0"],
    );
    let upload_url = strip_suffix_warn(
        section,
        "upload_url",
        section.url(
            "upload_url",
            Some("https://upload.box.com/api"),
            "the Box upload API root without /2.0",
        )?,
        &["/2.0"],
    );
    let oauth2_url = section.url(
        "oauth2_url",
        Some("https://api.box.com/oauth2/token"),
        "the Box token URL",
    )?;
    let default_app_config = (section.ctx().vars)("BOX_CONFIG_FILE")
        .filter(|path| !path.trim().is_empty())
        .unwrap_or_else(|| "config/box_app_config.json".to_string());
    let app_config_path = section.path_or("app_config_file", &default_app_config, root)?;
    let root_folder_id = section.required(
        "root_folder_id",
        "the ID of the Box folder where campaign folders are created (e.g. \"123456789\")",
    )?;
    let mut watched_folders: Vec<WatchedFolder> = Vec::new();
    for (path, item) in section.list("watched_folders")? {
        let folder = watched_folder(section.ctx(), &path, item)?;
        if watched_folders.iter().any(|known| known.id == folder.id) {
            return Err(section.ctx().error(
                &format!("{path}.id"),
                format!(
                    "expected each watched folder once, found folder {} twice",
                    shown(&folder.id)
                ),
            ));
        }
        watched_folders.push(folder);
    }
    if watched_folders.is_empty() {
        tracing::warn!(
            key = %section.path("watched_folders"),
            "no watched folders configured: box-poll has nothing to do"
        );
    }
    let processed_folder_name = folder_name(section, "processed_folder_name", "_PROCESSED")?;
    let errors_folder_name = folder_name(section, "errors_folder_name", "_errors")?;
    if processed_folder_name == errors_folder_name {
        return Err(section.error(
            "errors_folder_name",
            format!(
                "expected a name different from box.processed_folder_name, found {}",
                shown(&errors_folder_name)
            ),
        ));
    }
    let chunked_upload_threshold_bytes =
        section.u64_or("chunked_upload_threshold_bytes", 50_000_000, 1)?;
    if chunked_upload_threshold_bytes < MIN_CHUNKED_UPLOAD_THRESHOLD {
        return Err(section.error(
            "chunked_upload_threshold_bytes",
            format!(
                "expected a whole number >= {MIN_CHUNKED_UPLOAD_THRESHOLD} (Box accepts chunked upload sessions only from 20 MB), found {chunked_upload_threshold_bytes}"
            ),
        ));
    }
    let token_cache_file = match section.text("token_cache_file")? {
        None => Some(temp_dir.join("box-token.json")),
        Some(text) if text.eq_ignore_ascii_case("off") => None,
        Some(text) => {
            let path = PathBuf::from(text);
            Some(if path.is_relative() {
                root.join(path)
            } else {
                path
            })
        }
    };
    Ok(BoxConfig {
        base_url,
        upload_url,
        oauth2_url,
        app_config_path,
        root_folder_id,
        watched_folders,
        processed_folder_name,
        errors_folder_name,
        rate_limit: box_rate_limit(section)?,
        connect_timeout_secs: section.u64_or("connect_timeout_secs", 10, 1)?,
        read_timeout_secs: section.u64_or("read_timeout_secs", 60, 1)?,
        chunked_upload_threshold_bytes,
        upload_parallel_parts: box_upload_parallel_parts(section)?,
        max_retries: section.u32_or("max_retries", 5, 0)?,
        token_cache_file,
    })
}

/// Default `box.max_requests_per_minute` (10 requests per second).
const DEFAULT_BOX_REQUESTS_PER_MINUTE: f64 = 600.0;
/// Default `box.burst`.
const DEFAULT_BOX_BURST: u32 = 10;
/// Most parts of one chunked upload in flight (`box.upload_parallel_parts`).
const MAX_UPLOAD_PARALLEL_PARTS: u32 = 16;

/// `box.max_requests_per_minute` or `box.max_requests_per_second` (x 60; both only when they
/// agree) and `box.burst`.
fn box_rate_limit(section: &Section<'_>) -> Result<RequestWindow, ConfigError> {
    let per_second = section.positive_f64("max_requests_per_second")?;
    let per_minute = section.positive_f64("max_requests_per_minute")?;
    let per_minute = match (per_minute, per_second) {
        (Some(per_minute), Some(per_second)) if (per_minute - per_second * 60.0).abs() > 1e-9 => {
            return Err(section.error(
                "max_requests_per_minute",
                format!(
                    "expected the same limit as {} ({per_second}/s = {}/min), or only one of the two keys; found {per_minute}",
                    section.path("max_requests_per_second"),
                    per_second * 60.0
                ),
            ));
        }
        (Some(per_minute), _) => per_minute,
        (None, Some(per_second)) => per_second * 60.0,
        (None, None) => DEFAULT_BOX_REQUESTS_PER_MINUTE,
    };
    Ok(RequestWindow {
        per_minute,
        burst: section.u32_or("burst", DEFAULT_BOX_BURST, 1)?,
    })
}

/// `box.upload_parallel_parts`: 1..=16, default 4.
fn box_upload_parallel_parts(section: &Section<'_>) -> Result<usize, ConfigError> {
    let parts = section.u32_or("upload_parallel_parts", 4, 1)?;
    if parts > MAX_UPLOAD_PARALLEL_PARTS {
        return Err(section.error(
            "upload_parallel_parts",
            format!("expected a whole number from 1 to {MAX_UPLOAD_PARALLEL_PARTS}, found {parts}"),
        ));
    }
    Ok(usize::try_from(parts).unwrap_or(1))
}

/// One watched folder: a mapping `{id, name, profile}` or just the ID.
fn watched_folder(ctx: &Ctx<'_>, path: &str, item: &Value) -> Result<WatchedFolder, ConfigError> {
    let expectation = "a Box folder ID (e.g. \"123456789\")";
    match item {
        Value::String(_) | Value::Number(_) => {
            let holder = serde_json::json!({ "id": item });
            let section = Section::new(ctx, path, Some(&holder))?;
            let id = section
                .required("id", expectation)
                .map_err(|_| ctx.error(path, format!("expected {expectation}, found nothing")))?;
            Ok(WatchedFolder {
                name: id.clone(),
                id,
                profile: None,
            })
        }
        Value::Object(_) => {
            let section = Section::new(ctx, path, Some(item))?;
            let id = section.required("id", expectation)?;
            let name = section.text_or("name", &id)?;
            let profile = section.text("profile")?;
            section.finish();
            Ok(WatchedFolder { id, name, profile })
        }
        other => Err(ctx.error(
            path,
            format!(
                "expected a mapping with id, name and profile, found {}",
                kind_of(other)
            ),
        )),
    }
}

/// A Box folder name at `key` (no `/` or `\`, not empty).
fn folder_name(section: &Section<'_>, key: &str, default: &str) -> Result<String, ConfigError> {
    let name = section.text_or(key, default)?;
    if name.contains(['/', '\\'])
        || name == "."
        || name == ".."
        || name.chars().any(char::is_control)
    {
        return Err(section.error(
            key,
            format!(
                "expected a folder name without \"/\" or \"\\\" (e.g. {default}), found {}",
                shown(&name)
            ),
        ));
    }
    Ok(name)
}

/// Removes any of `suffixes` from `url` with a warning (users often paste `.../2.0`).
fn strip_suffix_warn(section: &Section<'_>, key: &str, url: String, suffixes: &[&str]) -> String {
    for suffix in suffixes {
        if let Some(stripped) = url.strip_suffix(suffix) {
            if check_url(stripped).is_ok() {
                tracing::warn!(key = %section.path(key), "the URL should not end with {suffix}; using it without");
                return stripped.to_string();
            }
        }
    }
    url
}

/// `dam`.
pub(super) fn dam(section: &Section<'_>) -> Result<DamConfig, ConfigError> {
    let base_url = section.url(
        "base_url",
        None,
        "the OTMM server root, e.g. https://dam.example.com",
    )?;
    let base_url = strip_suffix_warn(section, "base_url", base_url, &["/otmmapi/v6", "/otmmapi"]);
    let auth = if section.has("auth") {
        let auth = section.section("auth")?;
        let value = dam_auth(&auth)?;
        auth.finish();
        value
    } else {
        // Seed-style flat keys: dam.username / dam.password.
        dam_auth(section)?
    };
    let campaign_section = section.section("campaign")?;
    let campaign = campaign_model(&campaign_section)?;
    campaign_section.finish();
    let mut security_policy_ids = Vec::new();
    for (path, item) in section.list("security_policy_ids")? {
        let id = match item {
            Value::Number(number) => number.as_i64(),
            Value::String(text) => section
                .ctx()
                .expand(&path, text)?
                .trim()
                .parse::<i64>()
                .ok(),
            _ => None,
        };
        match id {
            Some(id) => security_policy_ids.push(id),
            None => {
                return Err(section.ctx().error(
                    &path,
                    "expected a security policy ID (a whole number, e.g. 2)".to_string(),
                ))
            }
        }
    }
    let d = DamConfig::new(base_url, auth);
    if security_policy_ids.is_empty() {
        security_policy_ids.clone_from(&d.security_policy_ids);
    }
    Ok(DamConfig {
        campaign,
        metadata_model_id: section.text_or("metadata_model_id", &d.metadata_model_id)?,
        security_policy_ids,
        tracking_field_id: section.text_or("tracking_field_id", &d.tracking_field_id)?,
        connect_timeout_secs: section.u64_or("connect_timeout_secs", d.connect_timeout_secs, 1)?,
        read_timeout_secs: section.u64_or("read_timeout_secs", d.read_timeout_secs, 1)?,
        content_timeout_secs: section.u64_or("content_timeout_secs", d.content_timeout_secs, 1)?,
        import_job_timeout_secs: section.u64_or(
            "import_job_timeout_secs",
            d.import_job_timeout_secs,
            1,
        )?,
        first_job_poll_delay_ms: section.u64_or(
            "first_job_poll_delay_ms",
            d.first_job_poll_delay_ms,
            0,
        )?,
        import_landing_secs: section.u64_or("import_landing_secs", d.import_landing_secs, 0)?,
        max_retries: section.u32_or("max_retries", d.max_retries, 0)?,
        max_requests_per_second: section
            .positive_f64_or("max_requests_per_second", d.max_requests_per_second)?,
        ..d
    })
}

/// `dam.auth` (or the flat seed keys in `dam`).
fn dam_auth(section: &Section<'_>) -> Result<DamAuth, ConfigError> {
    let method = section.text_or("method", "session")?.to_ascii_lowercase();
    match method.as_str() {
        "session" => {
            section.mark_used(&["auth_url", "client_id", "client_secret"]);
            Ok(DamAuth::Session {
                username: section
                    .required("username", "the OTMM user name (e.g. ${DAM_USERNAME})")?,
                password: section
                    .required_secret("password", "the OTMM password (e.g. ${DAM_PASSWORD})")?,
            })
        }
        "oauth2" => {
            section.mark_used(&["username", "password"]);
            Ok(DamAuth::OAuth2 {
                auth_url: section.url("auth_url", None, "the OAuth2 token URL")?,
                client_id: section.required("client_id", "the OAuth2 client ID")?,
                client_secret: section.required_secret(
                    "client_secret",
                    "the OAuth2 client secret (e.g. ${DAM_CLIENT_SECRET})",
                )?,
            })
        }
        other => Err(section.error(
            "method",
            format!("expected session or oauth2, found {}", shown(other)),
        )),
    }
}

/// `dam.campaign`.
fn campaign_model(section: &Section<'_>) -> Result<CampaignModel, ConfigError> {
    let d = CampaignModel::default();
    let model = CampaignModel {
        status_field_id: section.text_or("status_field_id", &d.status_field_id)?,
        number_field_id: section.text_or("number_field_id", &d.number_field_id)?,
        name_field_id: section.text_or("name_field_id", &d.name_field_id)?,
        masters_folder_name: section.text_or("masters_folder_name", &d.masters_folder_name)?,
        final_assets_folder_name: section
            .text_or("final_assets_folder_name", &d.final_assets_folder_name)?,
        status_a1: section.text_or("status_a1", &d.status_a1)?,
        status_a2: section.text_or("status_a2", &d.status_a2)?,
        status_a3: section.text_or("status_a3", &d.status_a3)?,
        search_operator_id: section.text_or("search_operator_id", &d.search_operator_id)?,
    };
    let statuses = [&model.status_a1, &model.status_a2, &model.status_a3];
    if statuses[0] == statuses[1] || statuses[1] == statuses[2] || statuses[0] == statuses[2] {
        return Err(section.error(
            "status_a3",
            "expected three different status values for status_a1, status_a2 and status_a3"
                .to_string(),
        ));
    }
    if model.masters_folder_name == model.final_assets_folder_name {
        return Err(section.error(
            "final_assets_folder_name",
            "expected a folder name different from masters_folder_name".to_string(),
        ));
    }
    Ok(model)
}

/// Most worker threads a pass may run (each holds a database connection).
const MAX_WORKERS: u32 = 32;

/// `polling`.
pub(super) fn polling(section: &Section<'_>) -> Result<PollingConfig, ConfigError> {
    let config = PollingConfig {
        max_campaigns_per_run: section.u32_or("max_campaigns_per_run", 10, 1)?,
        max_files_per_run: section.u32_or("max_files_per_run", 200, 1)?,
        workers: section.u32_or("workers", 4, 1)?,
        lease_secs: section.u64_or("lease_secs", 900, 3)?,
        events_stream: section.bool_or("events_stream", true)?,
        full_listing_interval_secs: section.u64_or("full_listing_interval_secs", 900, 0)?,
    };
    if config.workers > MAX_WORKERS {
        return Err(section.error(
            "workers",
            format!(
                "expected a whole number from 1 to {MAX_WORKERS}, found {}",
                config.workers
            ),
        ));
    }
    Ok(config)
}

/// `retry`.
pub(super) fn retry(section: &Section<'_>) -> Result<RetryConfig, ConfigError> {
    let max_attempts = section.u32_or("max_attempts", 5, 1)?;
    let backoff_base_secs = section.u64_or("backoff_base_secs", 60, 0)?;
    let backoff_max_secs = section.u64_or("backoff_max_secs", 3600, 0)?;
    if backoff_max_secs < backoff_base_secs {
        return Err(section.error(
            "backoff_max_secs",
            format!("expected a number >= retry.backoff_base_secs ({backoff_base_secs}), found {backoff_max_secs}"),
        ));
    }
    Ok(RetryConfig {
        max_attempts,
        backoff_base_secs,
        backoff_max_secs,
    })
}

/// `temp`.
pub(super) fn temp(section: &Section<'_>, root: &Path) -> Result<TempConfig, ConfigError> {
    let dir = match section.text("dir")? {
        Some(dir) => {
            let path = PathBuf::from(dir);
            if path.is_relative() {
                root.join(path)
            } else {
                path
            }
        }
        None => std::env::temp_dir().join("content-scaling"),
    };
    Ok(TempConfig {
        dir,
        cleanup_after_hours: section.u64_or("cleanup_after_hours", 24, 1)?,
        max_size_mb: section.u64_or("max_size_mb", 10_240, 1)?,
    })
}

/// `retention`; `archive_retention_days` is `box.archive_retention_days` (0 = off).
pub(super) fn retention(
    section: &Section<'_>,
    archive_retention_days: u64,
) -> Result<RetentionConfig, ConfigError> {
    Ok(RetentionConfig {
        history_days: section.u64_or("history_days", 90, 1)?,
        box_archive_days: (archive_retention_days > 0).then_some(archive_retention_days),
    })
}

/// `status`.
pub(super) fn status(section: &Section<'_>) -> Result<StatusConfig, ConfigError> {
    let mut max_pass_age_minutes: BTreeMap<String, u64> =
        [("a1-to-a2", 15), ("box-poll", 5), ("cleanup", 1500)]
            .into_iter()
            .map(|(name, minutes)| (name.to_string(), minutes))
            .collect();
    let ages = section.section("max_pass_age_minutes")?;
    for binary in ages.keys() {
        let default = max_pass_age_minutes.get(binary).copied().unwrap_or(0);
        let minutes = ages.u64_or(binary, default, 0)?;
        max_pass_age_minutes.insert(binary.to_string(), minutes);
    }
    ages.finish();
    Ok(StatusConfig {
        max_pass_age_minutes,
        max_outbox_age_minutes: section.u64_or("max_outbox_age_minutes", 60, 1)?,
    })
}

/// One setting of the email block, as the project spells it (`email.{key}`) and as the plan
/// does (`notifications.{...}`).
struct Spellings<'s, 'a> {
    email: &'s Section<'a>,
    plan: &'s Section<'a>,
}

impl<'a> Spellings<'_, 'a> {
    /// The setting read with `read` from whichever spelling holds it: `email.{email_key}` or
    /// `{plan section}.{plan_key}`; `None` when neither does. Both set and different: an error
    /// naming both keys.
    fn pick<T: PartialEq>(
        &self,
        email_key: &str,
        plan: (&Section<'a>, &str),
        read: impl Fn(&Section<'a>, &str) -> Result<T, ConfigError>,
    ) -> Result<Option<T>, ConfigError> {
        let (plan_section, plan_key) = plan;
        let from_email = if is_set(self.email, email_key)? {
            Some(read(self.email, email_key)?)
        } else {
            None
        };
        let from_plan = if is_set(plan_section, plan_key)? {
            Some(read(plan_section, plan_key)?)
        } else {
            None
        };
        match (from_email, from_plan) {
            (Some(first), Some(second)) if first != second => Err(self.email.error(
                email_key,
                format!(
                    "expected {} and {} (the plan's spelling of the same setting) to agree, found different values; set one of them",
                    self.email.path(email_key),
                    plan_section.path(plan_key),
                ),
            )),
            (Some(first), _) => Ok(Some(first)),
            (None, second) => Ok(second),
        }
    }
}

/// Whether `key` holds a value: present, not null, and not a text that expands to nothing
/// (`${EMAIL_FROM:-}` unset = "not set here", so the other spelling may give it). Marks the key
/// read.
fn is_set(section: &Section<'_>, key: &str) -> Result<bool, ConfigError> {
    Ok(match section.raw(key) {
        None => false,
        Some(Value::String(text)) => !section
            .ctx()
            .expand(&section.path(key), text)?
            .trim()
            .is_empty(),
        Some(_) => true,
    })
}

fn read_bool<'a>(default: bool) -> impl Fn(&Section<'a>, &str) -> Result<bool, ConfigError> {
    move |section, key| section.bool_or(key, default)
}

fn read_text(section: &Section<'_>, key: &str) -> Result<String, ConfigError> {
    Ok(section.text(key)?.unwrap_or_default())
}

/// `email`, or the plan's spelling `notifications` (`enabled`, `mailgun.{api_key, domain,
/// base_url}`, `recipients.{success, errors, critical}`, `templates_path`, `from`,
/// `critical_after_minutes`, `confirm_with_events`, `events_settle_secs`). Both may be given;
/// a setting both give differently is an error naming both keys. The sender defaults to
/// `Ferrero Automation <noreply@{domain}>` when only the plan's spelling is used, else to
/// `Content Scaling <noreply@{domain}>`.
pub(super) fn email(
    root: &Section<'_>,
    deployment_root: &Path,
) -> Result<EmailConfig, ConfigError> {
    let plan_spelling = root.has("notifications") && !root.has("email");
    let email = root.section("email")?;
    let plan = root.section("notifications")?;
    let mailgun = plan.section("mailgun")?;
    let plan_recipients = plan.section("recipients")?;
    let both = Spellings {
        email: &email,
        plan: &plan,
    };
    let result = email_settings(
        &both,
        &mailgun,
        &plan_recipients,
        plan_spelling,
        deployment_root,
    );
    email.finish();
    mailgun.finish();
    plan_recipients.finish();
    plan.finish();
    result
}

fn email_settings<'a>(
    both: &Spellings<'_, 'a>,
    mailgun: &Section<'a>,
    plan_recipients: &Section<'a>,
    plan_spelling: bool,
    deployment_root: &Path,
) -> Result<EmailConfig, ConfigError> {
    let plan = both.plan;
    let enabled = both
        .pick("enabled", (plan, "enabled"), read_bool(false))?
        .unwrap_or(false);
    let mailgun_base_url = both
        .pick("mailgun_base_url", (mailgun, "base_url"), |section, key| {
            section.url(key, None, "the Mailgun API root")
        })?
        .unwrap_or_else(|| "https://api.mailgun.net".to_string());
    let templates_path = both
        .pick("templates_path", (plan, "templates_path"), read_text)?
        .filter(|path| !path.is_empty())
        .map(|path| {
            let path = PathBuf::from(path);
            if path.is_relative() {
                deployment_root.join(path)
            } else {
                path
            }
        });
    if !enabled {
        both.email.mark_used(&[
            "domain",
            "api_key",
            "from",
            "success_recipients",
            "error_recipients",
            "critical_recipients",
            "critical_after_minutes",
            "confirm_with_events",
            "events_settle_secs",
        ]);
        plan.mark_used(&[
            "from",
            "critical_after_minutes",
            "confirm_with_events",
            "events_settle_secs",
        ]);
        mailgun.mark_used(&["domain", "api_key"]);
        plan_recipients.mark_used(&["success", "errors", "critical"]);
        return Ok(EmailConfig {
            enabled,
            mailgun_base_url,
            domain: String::new(),
            api_key: Secret::new(String::new()),
            from: String::new(),
            success_recipients: Vec::new(),
            error_recipients: Vec::new(),
            confirm_with_events: false,
            events_settle_secs: 0,
            critical_recipients: Vec::new(),
            critical_after_minutes: 30,
            templates_path,
        });
    }
    let domain = both
        .pick("domain", (mailgun, "domain"), read_text)?
        .filter(|domain| !domain.is_empty())
        .ok_or_else(|| {
            both.email.error(
                "domain",
                format!(
                    "expected the Mailgun sending domain, e.g. mg.example.com (or {}), found nothing",
                    mailgun.path("domain")
                ),
            )
        })?;
    if domain.contains(['/', ' ', '@']) || !domain.contains('.') {
        return Err(both.email.error(
            "domain",
            format!(
                "expected a domain name such as mg.example.com, found {}",
                shown(&domain)
            ),
        ));
    }
    let api_key = both
        .pick("api_key", (mailgun, "api_key"), read_text)?
        .filter(|key| !key.is_empty())
        .ok_or_else(|| {
            both.email.error(
                "api_key",
                format!(
                    "expected the Mailgun API key (e.g. ${{MAILGUN_API_KEY}}, or {}), found nothing",
                    mailgun.path("api_key")
                ),
            )
        })?;
    let sender_name = if plan_spelling {
        "Ferrero Automation"
    } else {
        "Content Scaling"
    };
    let from = both
        .pick("from", (plan, "from"), read_text)?
        .filter(|from| !from.is_empty())
        .unwrap_or_else(|| format!("{sender_name} <noreply@{domain}>"));
    if !looks_like_mailbox(&from) {
        return Err(both.email.error(
            "from",
            format!("expected an email address such as noreply@{domain} or \"Name <noreply@{domain}>\", found {}", shown(&from)),
        ));
    }
    let success_recipients = both
        .pick(
            "success_recipients",
            (plan_recipients, "success"),
            recipients,
        )?
        .unwrap_or_default();
    let error_recipients = both
        .pick("error_recipients", (plan_recipients, "errors"), recipients)?
        .unwrap_or_default();
    let critical_recipients = both
        .pick(
            "critical_recipients",
            (plan_recipients, "critical"),
            recipients,
        )?
        .unwrap_or_default();
    if error_recipients.is_empty() {
        tracing::warn!(key = %both.email.path("error_recipients"), "email is enabled but nobody receives error emails");
    }
    let confirm_with_events = both
        .pick(
            "confirm_with_events",
            (plan, "confirm_with_events"),
            read_bool(true),
        )?
        .unwrap_or(true);
    let events_settle_secs = both
        .pick(
            "events_settle_secs",
            (plan, "events_settle_secs"),
            |section, key| section.u64_or(key, 1800, 0),
        )?
        .unwrap_or(1800);
    let critical_after_minutes = both
        .pick(
            "critical_after_minutes",
            (plan, "critical_after_minutes"),
            |section, key| section.u64_or(key, 30, 1),
        )?
        .unwrap_or(30);
    Ok(EmailConfig {
        enabled,
        mailgun_base_url,
        domain,
        api_key: Secret::new(api_key),
        from,
        success_recipients,
        error_recipients,
        confirm_with_events,
        events_settle_secs,
        critical_recipients,
        critical_after_minutes,
        templates_path,
    })
}

/// A list of addresses at `key`: a YAML list, or one text with items separated by `,` or `;`
/// (`${EMAIL_ERROR_RECIPIENTS}`), each checked with [`looks_like_mailbox`].
fn recipients(section: &Section<'_>, key: &str) -> Result<Vec<String>, ConfigError> {
    let list: Vec<String> = section
        .text_list(key)?
        .iter()
        .flat_map(|item| item.split(';'))
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_string)
        .collect();
    for (index, address) in list.iter().enumerate() {
        if !looks_like_mailbox(address) {
            return Err(section.ctx().error(
                &format!("{}[{index}]", section.path(key)),
                format!(
                    "expected an email address such as ops@example.com, found {}",
                    shown(address)
                ),
            ));
        }
    }
    Ok(list)
}

/// `addr@domain.tld` or `Display Name <addr@domain.tld>`.
pub(super) fn looks_like_mailbox(text: &str) -> bool {
    let address = match (text.rfind('<'), text.strip_suffix('>')) {
        (Some(open), Some(inner)) => inner.get(open + 1..).unwrap_or(""),
        _ => text,
    };
    let Some((local, domain)) = address.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !address
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == ',' || c == '<' || c == '>')
}

/// `media`.
pub(super) fn media(section: &Section<'_>) -> Result<MediaConfig, ConfigError> {
    Ok(MediaConfig {
        ffprobe_path: section.text_or("ffprobe_path", "ffprobe")?,
        timeout_secs: section.u64_or("timeout_secs", 60, 1)?,
    })
}

/// Header names the webhook sender sets itself; a `headers:` entry of one of these is ignored
/// (`Authorization` only when `auth` or `bearer_token` gives one).
const RESERVED_WEBHOOK_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "idempotency-key",
    "x-cs-event",
    "x-cs-signature",
    "host",
];

/// The events a named webhook of the plan gets when it has no `events:` key:
/// `asset_upload_complete` -> `asset.imported`; `campaign_status_update` and any other name ->
/// `campaign.a2`, `campaign.a3`.
fn default_webhook_events(name: &str) -> Vec<String> {
    let events: &[&str] = if name == "asset_upload_complete" {
        &["asset.imported"]
    } else {
        &["campaign.a2", "campaign.a3"]
    };
    events.iter().map(|event| (*event).to_string()).collect()
}

/// Outgoing webhooks: `webhooks.yaml` (absent file = none) and `config.yaml`'s `webhooks:`
/// (`inline`: that file and the value). Two forms, which may be mixed:
///
/// - the project's `endpoints:` list (`name`, `url`, `events`, `bearer_token`,
///   `signing_secret`, `timeout_secs`, `enabled`, `environments`);
/// - the plan's named webhooks: every other top-level key of `webhooks.yaml`, and every key of
///   `config.yaml`'s `webhooks:`, is one webhook of that name (`description`, `url`, `method`,
///   `headers`, `auth: {type: bearer|basic|none, token | username, password}`, `enabled`,
///   `timeout_seconds`, `retry_on_failure`, `max_retries`, `payload_template`, and the
///   project's keys too). A webhook named in both files is merged key by key, `config.yaml`
///   winning.
///
/// Webhooks disabled or limited to other environments are skipped before their values (and
/// their `${VAR}`s) are read. `retry_on_failure` and `max_retries` are accepted: delivery goes
/// through the outbox, which retries until the receiver accepts (at least once).
pub(super) fn webhooks_file(
    file: &Path,
    vars: &dyn Fn(&str) -> Option<String>,
    environment: &str,
    inline: Option<(&Path, Value)>,
) -> Result<WebhooksConfig, ConfigError> {
    let mut tree = if file.is_file() {
        read_yaml(file)?
    } else {
        Value::Null
    };
    if tree.is_null() {
        tree = Value::Object(serde_json::Map::new());
    }
    let mut origins = Origins::default();
    if let Some((config_file, value)) = inline {
        match value {
            Value::Null => {}
            value @ Value::Object(_) => {
                super::tree::merge(&mut tree, value, "", config_file, &mut origins);
            }
            other => {
                return Err(ConfigError::Invalid {
                    file: config_file.to_path_buf(),
                    key: "webhooks".to_string(),
                    message: format!(
                    "expected a mapping of webhook names (e.g. campaign_status_update:), found {}",
                    kind_of(&other)
                ),
                })
            }
        }
    }
    if tree.as_object().is_some_and(serde_json::Map::is_empty) {
        tracing::info!(file = %file.display(), "no outgoing webhooks");
        return Ok(WebhooksConfig::default());
    }
    let ctx = Ctx {
        vars,
        file: file.to_path_buf(),
        origins,
    };
    let root = Section::new(&ctx, "", Some(&tree))?;
    let mut endpoints: Vec<WebhookEndpoint> = Vec::new();
    let mut add = |section: &Section<'_>, endpoint: WebhookEndpoint| {
        if endpoints.iter().any(|known| known.name == endpoint.name) {
            return Err(section.error(
                "name",
                format!(
                    "expected a unique webhook name, found {} twice",
                    shown(&endpoint.name)
                ),
            ));
        }
        endpoints.push(endpoint);
        Ok(())
    };
    for (path, item) in root.list("endpoints")? {
        let section = Section::new(&ctx, &path, Some(item))?;
        if let Some(endpoint) = webhook(&section, None, environment)? {
            add(&section, endpoint)?;
            section.finish();
        }
    }
    for name in root.keys() {
        if name == "endpoints" {
            continue;
        }
        let section = root.section(name)?;
        if let Some(endpoint) = webhook(&section, Some(name), environment)? {
            add(&section, endpoint)?;
            section.finish();
        }
    }
    root.finish();
    Ok(WebhooksConfig { endpoints })
}

/// One webhook (either form, see [`webhooks_file`]); `None` when disabled or not for
/// `environment`. `name`: the plan's webhook name (else the `name` key).
fn webhook(
    section: &Section<'_>,
    name: Option<&str>,
    environment: &str,
) -> Result<Option<WebhookEndpoint>, ConfigError> {
    let environments = section.text_list("environments")?;
    let enabled = section.bool_or("enabled", true)?;
    if !enabled || (!environments.is_empty() && !environments.iter().any(|env| env == environment))
    {
        return Ok(None);
    }
    let name = match name {
        Some(name) => name.to_string(),
        None => section.required("name", "an endpoint name, e.g. campaigns")?,
    };
    let url = section.url("url", None, "the webhook URL")?;
    section.mark_used(&["description", "retry_on_failure", "max_retries"]);
    section.bool_or("retry_on_failure", true)?;
    section.u32_or("max_retries", 3, 0)?;
    let mut events = section.text_list("events")?;
    if events.is_empty() && !section.has("name") {
        events = default_webhook_events(&name);
    }
    for event in &events {
        if !KNOWN_EVENTS.contains(&event.as_str()) {
            tracing::warn!(file = %section.ctx().file_for(&section.path("events")).display(), key = %section.path("events"), event = %event, "unknown webhook event (known: {})", KNOWN_EVENTS.join(", "));
        }
    }
    let method = section.text_or("method", "POST")?.to_ascii_uppercase();
    if !matches!(method.as_str(), "POST" | "PUT" | "PATCH") {
        return Err(section.error(
            "method",
            format!("expected POST, PUT or PATCH, found {}", shown(&method)),
        ));
    }
    let timeout_secs = match (section.has("timeout_secs"), section.has("timeout_seconds")) {
        (true, true) => {
            return Err(section.error(
                "timeout_seconds",
                format!(
                    "expected one of {} and {}, found both",
                    section.path("timeout_secs"),
                    section.path("timeout_seconds")
                ),
            ))
        }
        (false, true) => section.u64_or("timeout_seconds", 10, 1)?,
        _ => section.u64_or("timeout_secs", 10, 1)?,
    };
    let (auth_bearer, basic_auth) = webhook_auth(section.section("auth")?)?;
    let bearer_token = match (section.secret("bearer_token")?, auth_bearer) {
        (Some(first), Some(second)) if first.expose() != second.expose() => {
            return Err(section.error(
                "bearer_token",
                format!(
                    "expected {} and {} to agree, found different tokens; set one of them",
                    section.path("bearer_token"),
                    section.path("auth.token")
                ),
            ))
        }
        (first, second) => first.or(second),
    };
    let has_auth = bearer_token.is_some() || basic_auth.is_some();
    let mut headers = Vec::new();
    for (header, value) in section.text_map("headers")? {
        let lower = header.to_ascii_lowercase();
        if RESERVED_WEBHOOK_HEADERS.contains(&lower.as_str())
            || (lower == "authorization" && has_auth)
        {
            tracing::debug!(key = %section.path("headers"), header = %header, "header set by the sender itself; the configured value is not sent twice");
            continue;
        }
        if ureq::http::HeaderName::from_bytes(header.as_bytes()).is_err()
            || ureq::http::HeaderValue::from_str(&value).is_err()
        {
            return Err(section.error(
                "headers",
                format!(
                    "expected valid HTTP header names and values, found header {}",
                    shown(&header)
                ),
            ));
        }
        headers.push((header, Secret::new(value)));
    }
    let payload_template = match section.raw("payload_template") {
        None => None,
        Some(value @ Value::Object(_)) => {
            let path = section.path("payload_template");
            let template = section.ctx().expand_tree(&path, value)?;
            let checked: &[String] = if events.is_empty() { &[] } else { &events };
            let all: Vec<String> = KNOWN_EVENTS
                .iter()
                .map(|event| (*event).to_string())
                .collect();
            for event in if checked.is_empty() { &all } else { checked } {
                let sample = crate::notify_plan::sample_webhook_values(event);
                if let Err(error) = crate::notify_plan::fill_payload_template(&template, &sample) {
                    return Err(section.error(
                        "payload_template",
                        format!("expected placeholders the {event} event provides: {error}"),
                    ));
                }
            }
            Some(template)
        }
        Some(other) => {
            return Err(section.error(
                "payload_template",
                format!(
                    "expected a mapping (the JSON object sent), found {}",
                    kind_of(other)
                ),
            ))
        }
    };
    let endpoint = WebhookEndpoint {
        name,
        url,
        events,
        bearer_token,
        signing_secret: section.secret("signing_secret")?,
        timeout_secs,
        method,
        headers,
        basic_auth,
        payload_template,
    };
    Ok(Some(endpoint))
}

/// A webhook's `auth: {type: bearer|basic|none, token | username, password}` (absent = none):
/// the bearer token, or the Basic credentials.
#[expect(
    clippy::type_complexity,
    reason = "a private pair of the two credential kinds"
)]
fn webhook_auth(
    auth: Section<'_>,
) -> Result<(Option<Secret<String>>, Option<(String, Secret<String>)>), ConfigError> {
    let credentials = webhook_credentials(&auth);
    auth.finish();
    credentials
}

#[expect(
    clippy::type_complexity,
    reason = "a private pair of the two credential kinds"
)]
fn webhook_credentials(
    auth: &Section<'_>,
) -> Result<(Option<Secret<String>>, Option<(String, Secret<String>)>), ConfigError> {
    let kind = auth.text_or("type", "none")?.to_ascii_lowercase();
    match kind.as_str() {
        "none" => {
            auth.mark_used(&["token", "username", "password"]);
            Ok((None, None))
        }
        "bearer" => {
            auth.mark_used(&["username", "password"]);
            let token =
                auth.required_secret("token", "the bearer token (e.g. ${WEBHOOK_AUTH_TOKEN})")?;
            Ok((Some(token), None))
        }
        "basic" => {
            auth.mark_used(&["token"]);
            let username = auth.required("username", "the Basic auth user name")?;
            let password = auth.required_secret("password", "the Basic auth password")?;
            Ok((None, Some((username, password))))
        }
        _ => Err(auth.error(
            "type",
            format!("expected bearer, basic or none, found {}", shown(&kind)),
        )),
    }
}

/// `email_templates.yaml`: `name: {subject, text, html}` at the top level (the project's shape)
/// or under `templates:` (the plan's shape, usually `{subject, html}`). A subject holding `{{`
/// or `{%` is Jinja2, any other subject Python `str.format` ([`SubjectFormat`]). Absent file is
/// allowed when email is disabled. The built-in alert templates ([`ALERT_TEMPLATES`]) are added
/// unless the file has its own. Templates are not `${VAR}`-interpolated.
///
/// Every template a pass uses is rendered here with sample data of exactly the keys the pass
/// gives it ([`crate::notify_plan::sample_contexts`]), in strict mode: a template using a
/// variable its context lacks is refused at load (naming the file, the template and the part),
/// not when a campaign reaches A2.
pub(super) fn email_templates_file(
    file: &Path,
    email_enabled: bool,
) -> Result<EmailTemplates, ConfigError> {
    if !file.is_file() && !email_enabled {
        return Ok(EmailTemplates::default());
    }
    let tree = read_yaml(file)?;
    let no_vars = |_: &str| None;
    let ctx = Ctx {
        vars: &no_vars,
        file: file.to_path_buf(),
        origins: Origins::default(),
    };
    let mut root_value = &tree;
    let mut prefix = String::new();
    if let Some(inner @ Value::Object(_)) = tree.get("templates") {
        root_value = inner;
        prefix = "templates".to_string();
    }
    let Value::Object(map) = root_value else {
        return Err(ctx.error(
            "(top level)",
            "expected a mapping of template names".to_string(),
        ));
    };
    let mut templates = BTreeMap::new();
    for (name, value) in map {
        let path = super::tree::join_key(&prefix, name);
        templates.insert(name.clone(), email_template(&ctx, &path, value)?);
    }
    if email_enabled {
        if let Some(missing) = REQUIRED_TEMPLATES
            .iter()
            .find(|name| !templates.contains_key(**name))
        {
            return Err(ctx.error(
                &super::tree::join_key(&prefix, missing),
                format!(
                    "expected template {missing} (required: {}), found nothing",
                    REQUIRED_TEMPLATES.join(", ")
                ),
            ));
        }
    }
    let mut templates = EmailTemplates { templates };
    for (name, value) in builtin_alert_templates() {
        if !templates.templates.contains_key(name) {
            let path = format!("(built-in template {name})");
            let template = email_template(&ctx, &path, &value)?;
            templates.templates.insert(name.to_string(), template);
        }
    }
    for name in REQUIRED_TEMPLATES.iter().chain(ALERT_TEMPLATES) {
        if !templates.templates.contains_key(*name) {
            continue;
        }
        for sample in crate::notify_plan::sample_contexts(name) {
            if let Err(error) = crate::notify::render_email(&templates, name, &sample) {
                return Err(ctx.error(
                    &super::tree::join_key(&prefix, name),
                    format!(
                        "expected a template using only the data {name} gets ({}): {error}",
                        sample
                            .as_object()
                            .map(|map| map.keys().cloned().collect::<Vec<_>>().join(", "))
                            .unwrap_or_default()
                    ),
                ));
            }
        }
    }
    Ok(templates)
}

/// One template `{subject, text, html}` at `path`: a subject and at least one body, each part
/// valid Jinja2 (a `str.format` subject: balanced braces).
fn email_template(ctx: &Ctx<'_>, path: &str, value: &Value) -> Result<EmailTemplate, ConfigError> {
    let Value::Object(parts) = value else {
        return Err(ctx.error(
            path,
            format!(
                "expected a mapping with subject, text and/or html, found {}",
                kind_of(value)
            ),
        ));
    };
    let raw = |part: &str| -> Result<Option<String>, ConfigError> {
        match parts.get(part) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(other) => Err(ctx.error(
                &format!("{path}.{part}"),
                format!("expected text, found {}", kind_of(other)),
            )),
        }
    };
    let subject = raw("subject")?
        .filter(|text| !text.trim().is_empty())
        .ok_or_else(|| {
            ctx.error(
                &format!("{path}.subject"),
                "expected a subject line template, found nothing",
            )
        })?;
    let text = raw("text")?
        .filter(|text| !text.trim().is_empty())
        .unwrap_or_default();
    let html = raw("html")?.filter(|html| !html.trim().is_empty());
    if text.is_empty() && html.is_none() {
        return Err(ctx.error(
            &format!("{path}.text"),
            "expected a body: a plain-text template (text) or an HTML one (html), found nothing",
        ));
    }
    let subject_format = if subject.contains("{{") || subject.contains("{%") {
        SubjectFormat::Jinja
    } else {
        SubjectFormat::StrFormat
    };
    let jinja_parts = [
        (
            "subject",
            (subject_format == SubjectFormat::Jinja).then_some(&subject),
        ),
        ("text", Some(&text)),
        ("html", html.as_ref()),
    ];
    for (part, source) in jinja_parts {
        if let Some(source) = source {
            let environment = minijinja::Environment::new();
            if let Err(error) = environment.template_from_str(source) {
                return Err(ctx.error(
                    &format!("{path}.{part}"),
                    format!("expected a valid Jinja2 template: {error}"),
                ));
            }
        }
    }
    for key in parts.keys() {
        if !matches!(key.as_str(), "subject" | "text" | "html") {
            tracing::warn!(file = %ctx.file.display(), key = %format!("{path}.{key}"), "unknown configuration key, ignored");
        }
    }
    Ok(EmailTemplate {
        subject,
        subject_format,
        text,
        html,
    })
}

/// The built-in `critical_error` and `critical_recovered` templates (context:
/// [`crate::notify_plan::incident`]).
fn builtin_alert_templates() -> [(&'static str, Value); 2] {
    [
        (
            "critical_error",
            serde_json::json!({
                "subject": "CRITICAL: {{ binary }} on {{ host }} ({{ environment }}): {{ 'passes fail' if kind == 'failed' else 'a dependency is unreachable' }}",
                "text": "{{ binary }} on {{ host }} ({{ environment }}) {{ 'failed as a whole' if kind == 'failed' else 'cannot reach a dependency' }} since {{ since }}:\n\n  {{ error }}\n\nThe next passes keep trying; one more email follows when a pass succeeds again.\n\n-- content-scaling\n",
            }),
        ),
        (
            "critical_recovered",
            serde_json::json!({
                "subject": "RECOVERED: {{ binary }} on {{ host }} ({{ environment }}) works again",
                "text": "{{ binary }} on {{ host }} ({{ environment }}) completed a pass again. The problem reported since {{ since }} was:\n\n  {{ error }}\n\n-- content-scaling\n",
            }),
        ),
    ]
}

/// `field_mappings.yaml` with its `naming:` section.
pub(super) fn field_mappings_file(
    file: &Path,
    vars: &dyn Fn(&str) -> Option<String>,
) -> Result<(FieldMappings, NamingConfig), ConfigError> {
    let tree = read_yaml(file)?;
    let ctx = Ctx {
        vars,
        file: file.to_path_buf(),
        origins: Origins::default(),
    };
    let root = Section::new(&ctx, "", Some(&tree))?;
    let naming_section = root.section("naming")?;
    let naming = naming(&naming_section)?;
    naming_section.finish();

    let mut mvp_fields: Vec<String> = Vec::new();
    for field in root.text_list("mvp_fields")? {
        if mvp_fields.contains(&field) {
            tracing::warn!(file = %file.display(), field = %field, "mvp_fields lists a field twice");
        } else {
            mvp_fields.push(field);
        }
    }

    let mut filename_field_updates = Vec::new();
    let updates_path = root.path("filename_field_updates");
    match root.raw("filename_field_updates") {
        None => {}
        Some(Value::Object(map)) => {
            for (field_id, value) in map {
                let path = super::tree::join_key(&updates_path, field_id);
                filename_field_updates.push(field_update(&ctx, &path, field_id, value, &naming)?);
            }
        }
        Some(Value::Array(items)) => {
            for (index, item) in items.iter().enumerate() {
                let path = format!("{updates_path}[{index}]");
                let field_id = item
                    .get("field_id")
                    .and_then(Value::as_str)
                    .map(str::trim)
                    .filter(|id| !id.is_empty())
                    .ok_or_else(|| {
                        ctx.error(
                            &format!("{path}.field_id"),
                            "expected an OTMM field ID, found nothing",
                        )
                    })?;
                filename_field_updates.push(field_update(&ctx, &path, field_id, item, &naming)?);
            }
        }
        Some(other) => {
            return Err(ctx.error(
                &updates_path,
                format!(
                    "expected a mapping of field ID -> {{source, transform, ...}}, found {}",
                    kind_of(other)
                ),
            ))
        }
    }
    let mut seen = BTreeSet::new();
    for update in &filename_field_updates {
        if !seen.insert(update.field_id.clone()) {
            return Err(ctx.error(
                &updates_path,
                format!(
                    "expected each field once, found {} twice",
                    shown(&update.field_id)
                ),
            ));
        }
    }

    let forced_field_values = field_values(&root, "forced_field_values")?;
    let default_field_values = field_values(&root, "default_field_values")?;
    let validation = root.section("validate_domain_values")?;
    let validate_domain_values = DomainValidation {
        enabled: validation.bool_or("enabled", true)?,
        cache_ttl_hours: validation.u64_or("cache_ttl_hours", 24, 0)?,
        strict_mode: validation.bool_or("strict_mode", true)?,
    };
    validation.finish();
    root.finish();
    Ok((
        FieldMappings {
            mvp_fields,
            filename_field_updates,
            forced_field_values,
            default_field_values,
            validate_domain_values,
        },
        naming,
    ))
}

fn field_values(root: &Section<'_>, key: &str) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut out = BTreeMap::new();
    for (field_id, value) in root.text_map(key)? {
        if field_id.trim().is_empty() {
            return Err(root.error(key, "expected OTMM field IDs as keys, found an empty key"));
        }
        out.insert(field_id, value);
    }
    Ok(out)
}

/// One `filename_field_updates` entry: a mapping or a bare source name.
fn field_update(
    ctx: &Ctx<'_>,
    path: &str,
    field_id: &str,
    value: &Value,
    naming: &NamingConfig,
) -> Result<FieldUpdate, ConfigError> {
    let holder;
    let value = match value {
        Value::String(_) => {
            holder = serde_json::json!({ "source": value });
            &holder
        }
        other => other,
    };
    let section = Section::new(ctx, path, Some(value))?;
    section.mark_used(&["field_id"]);
    let source = section.required(
        "source",
        "a source such as clean_filename, subject_title or media.duration_seconds",
    )?;
    let source = FieldSource::parse(&source, &naming.segment_names()).map_err(|expected| {
        section.error("source", format!("{expected}, found {}", shown(&source)))
    })?;
    let transform = match section.text("transform")? {
        None => Vec::new(),
        Some(text) => Transform::parse_steps(&text).map_err(|(step, expected)| {
            section.error("transform", format!("{expected}, found {}", shown(&step)))
        })?,
    };
    let fallback = section.text("fallback")?;
    match fallback.as_deref() {
        None | Some("master" | "none") => {}
        Some(other) => {
            return Err(section.error(
                "fallback",
                format!("expected master or none, found {}", shown(other)),
            ))
        }
    }
    let update = FieldUpdate {
        field_id: field_id.trim().to_string(),
        source,
        transform,
        required: section.bool_or("required", false)?,
        fallback: fallback.filter(|fallback| fallback == "master"),
        default: section.text("default")?,
        validate_domain: section.text("validate_domain")?,
    };
    section.finish();
    Ok(update)
}

/// The `naming:` section (absent keys keep the V2 defaults).
fn naming(section: &Section<'_>) -> Result<NamingConfig, ConfigError> {
    let mut config = NamingConfig::default();
    if let Some(separator) = section.text_untrimmed("separator")? {
        let mut chars = separator.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => config.separator = c,
            _ => {
                return Err(section.error(
                    "separator",
                    format!(
                        "expected exactly one character, e.g. \"_\", found {}",
                        shown(&separator)
                    ),
                ))
            }
        }
    }
    if section.has("segments") {
        let mut segments = Vec::new();
        for (path, item) in section.list("segments")? {
            let expanded = section.ctx().expand_tree(&path, item)?;
            if let Value::Object(map) = &expanded {
                for key in map.keys() {
                    if !matches!(
                        key.as_str(),
                        "name"
                            | "kind"
                            | "pattern"
                            | "label"
                            | "description"
                            | "example"
                            | "normalize"
                            | "in_clean_name"
                    ) {
                        tracing::warn!(key = %format!("{path}.{key}"), "unknown configuration key, ignored");
                    }
                }
            }
            let rule: SegmentRule = serde_json::from_value(expanded).map_err(|error| {
                section.ctx().error(
                    &path,
                    format!("expected a segment rule {{name, kind, ...}}: {error}"),
                )
            })?;
            segments.push(rule);
        }
        config.segments = segments;
    }
    if section.has("allowed_extensions") {
        config.allowed_extensions = section
            .text_list("allowed_extensions")?
            .into_iter()
            .map(|extension| extension.trim_start_matches('.').to_lowercase())
            .collect();
    }
    if section.has("ignored_names") {
        let path = section.path("ignored_names");
        let raw = section.raw("ignored_names").cloned().unwrap_or(Value::Null);
        let expanded = section.ctx().expand_tree(&path, &raw)?;
        config.ignored_names =
            serde_json::from_value::<IgnoredNames>(expanded).map_err(|error| {
                section.ctx().error(
                    &path,
                    format!("expected {{exact: [...], prefixes: [...], suffixes: [...]}}: {error}"),
                )
            })?;
    }
    let max_bytes = section.u64_or("max_name_bytes", config.max_name_bytes as u64, 1)?;
    config.max_name_bytes = usize::try_from(max_bytes).unwrap_or(usize::MAX);
    if let Some(hint) = section.text("tracking_id_hint")? {
        config.tracking_id_hint = hint;
    }
    if let Some((key, message)) = config.validate().into_iter().next() {
        return Err(section
            .ctx()
            .error(&format!("{}.{key}", section.base_path()), message));
    }
    Ok(config)
}
