//! One function per section: read keys with defaults, validate, build the public structs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::Value;

use super::problems::Problems;
use super::reader::{check_url, resolve_path, shown, Ctx, Section};
use super::tree::{kind_of, Origins};
use super::{
    BoxConfig, BoxCredentials, BoxJwtKeys, CampaignModel, ConfigError, DamApi, DamAuth, DamConfig,
    DatabaseConfig, DomainValidation, EmailConfig, EmailTemplate, EmailTemplates, Fallback,
    FieldMappings, FieldSource, FieldUpdate, FolderLoad, FolderLocking, ImportCompletion,
    LogFileConfig, LoggingConfig, MediaConfig, MultipartFilename, OAuthGrant, PollingConfig,
    Profile, RetentionConfig, RetryConfig, StatusConfig, SubjectFormat, TempConfig, Transform,
    ValueShape, WatchedFolder, WebhookEndpoint, WebhooksConfig, ALERT_TEMPLATES, KNOWN_EVENTS,
    REQUIRED_TEMPLATES,
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
        "database",
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
    // `database` is the plan's name of the key.
    let name = section
        .either("name", "database", Section::text)?
        .unwrap_or_else(|| "content_scaling".to_string());
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
    let credentials = box_credentials(section, root)?;
    // Incoming webhooks have no role in a polling design (their `${VAR}`s are not needed).
    if section.has("webhook_signature_keys") {
        section.mark_used(&["webhook_signature_keys"]);
        tracing::debug!(
            key = %section.path("webhook_signature_keys"),
            "keys of incoming Box webhooks: not used (changes are found by polling)"
        );
    }
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
        Some(text) => Some(resolve_path(root, text)),
    };
    Ok(BoxConfig {
        base_url,
        upload_url,
        oauth2_url,
        credentials,
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

/// The plan's keys for the Box JWT app, in the order of the Developer Console's app config.
const BOX_JWT_KEYS: [&str; 6] = [
    "client_id",
    "client_secret",
    "jwt_key_id",
    "rsa_private_key_path",
    "passphrase",
    "enterprise_id",
];

/// `box.app_config_file` or the plan's six keys ([`BOX_JWT_KEYS`]), never both.
fn box_credentials(section: &Section<'_>, root: &Path) -> Result<BoxCredentials, ConfigError> {
    let given: Vec<&str> = BOX_JWT_KEYS
        .iter()
        .copied()
        .filter(|key| section.has(key))
        .collect();
    if given.is_empty() {
        let default_app_config = (section.ctx().vars)("BOX_CONFIG_FILE")
            .filter(|path| !path.trim().is_empty())
            .unwrap_or_else(|| "config/box_app_config.json".to_string());
        return Ok(BoxCredentials::AppConfigFile(section.path_or(
            "app_config_file",
            &default_app_config,
            root,
        )?));
    }
    if section.text("app_config_file")?.is_some() {
        let keys: Vec<String> = given.iter().map(|key| section.path(key)).collect();
        return Err(section.error(
            "app_config_file",
            format!(
                "expected either {} (the Developer Console's app config JSON) or the separate keys {}, not both; found both ({} set)",
                section.path("app_config_file"),
                BOX_JWT_KEYS.map(|key| section.path(key)).join(", "),
                keys.join(", ")
            ),
        ));
    }
    let keys = BoxJwtKeys {
        client_id: section.required(
            "client_id",
            "the Box app's client ID (e.g. ${BOX_CLIENT_ID})",
        )?,
        client_secret: section.required_secret(
            "client_secret",
            "the Box app's client secret (e.g. ${BOX_CLIENT_SECRET})",
        )?,
        public_key_id: section.required(
            "jwt_key_id",
            "the ID of the app's public key (e.g. ${BOX_JWT_KEY_ID})",
        )?,
        private_key_path: resolve_path(
            root,
            section.required(
                "rsa_private_key_path",
                "the PEM file of the app's private key (e.g. ${BOX_PRIVATE_KEY_PATH})",
            )?,
        ),
        passphrase: Secret::new(section.text_untrimmed("passphrase")?.unwrap_or_default()),
        enterprise_id: section.required(
            "enterprise_id",
            "the Box enterprise ID of the app (e.g. 43984435)",
        )?,
    };
    section.mark_used(&["app_config_file"]);
    Ok(BoxCredentials::Keys(keys))
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
        let value = dam_auth(&auth, &base_url)?;
        auth.finish();
        value
    } else {
        // Seed-style flat keys: dam.username / dam.password.
        dam_auth(section, &base_url)?
    };
    let api = if section.has("api") {
        let api_section = section.section("api")?;
        let value = dam_api(&api_section)?;
        api_section.finish();
        value
    } else {
        DamApi::default()
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
        // `timeout_seconds` is the plan's name of the request timeout.
        read_timeout_secs: section
            .either("read_timeout_secs", "timeout_seconds", |section, key| {
                section.u64(key, 1)
            })?
            .unwrap_or(d.read_timeout_secs),
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
        api,
        ..d
    })
}

/// `dam.api` (every key optional; defaults in [`DamApi::default`]).
fn dam_api(section: &Section<'_>) -> Result<DamApi, ConfigError> {
    let d = DamApi::default();
    let page_size = |key: &str, default: usize| -> Result<usize, ConfigError> {
        let value = section.u64_or(key, default as u64, 1)?;
        if value > 1000 {
            return Err(section.error(
                key,
                format!("expected a page size from 1 to 1000, found {value}"),
            ));
        }
        Ok(usize::try_from(value).unwrap_or(default))
    };
    Ok(DamApi {
        import_completion: section.choice_or(
            "import_completion",
            d.import_completion,
            &[
                ("search", ImportCompletion::Search),
                ("jobs", ImportCompletion::Jobs),
                ("folder_listing", ImportCompletion::FolderListing),
            ],
        )?,
        lock_folders: section.choice_or(
            "lock_folders",
            d.lock_folders,
            &[
                ("when_allowed", FolderLocking::WhenAllowed),
                ("always", FolderLocking::Always),
                ("never", FolderLocking::Never),
            ],
        )?,
        status_value_shape: section.choice_or(
            "status_value_shape",
            d.status_value_shape,
            &[
                ("plain", ValueShape::Plain),
                ("domain_value", ValueShape::DomainValue),
            ],
        )?,
        folder_load: section.choice_or(
            "folder_load",
            d.folder_load,
            &[
                ("metadata", FolderLoad::Metadata),
                ("custom", FolderLoad::Custom),
            ],
        )?,
        exclude_deleted: section.bool_or("exclude_deleted", d.exclude_deleted)?,
        search_sort: match section.text_untrimmed("search_sort")? {
            Some(text) => text.trim().to_string(),
            None => d.search_sort.clone(),
        },
        marker_search_operator_id: section
            .text_or("marker_search_operator_id", &d.marker_search_operator_id)?,
        search_page_size: page_size("search_page_size", d.search_page_size)?,
        children_page_size: page_size("children_page_size", d.children_page_size)?,
        multipart_filename: section.choice_or(
            "multipart_filename",
            d.multipart_filename,
            &[
                ("utf8", MultipartFilename::Utf8),
                ("ascii", MultipartFilename::Ascii),
            ],
        )?,
    })
}

/// `dam.auth` (or the flat seed keys in `dam`).
fn dam_auth(section: &Section<'_>, base_url: &str) -> Result<DamAuth, ConfigError> {
    // The plan's flat block (`auth_url`, `client_id`, `client_secret`, no user) is OAuth2.
    let default_method = if section.has("client_id") && !section.has("username") {
        "oauth2"
    } else {
        "session"
    };
    let method = section
        .text_or("method", default_method)?
        .to_ascii_lowercase();
    match method.as_str() {
        "session" => {
            section.mark_used(&["auth_url", "client_id", "client_secret", "grant"]);
            Ok(DamAuth::Session {
                username: section
                    .required("username", "the OTMM user name (e.g. ${DAM_USERNAME})")?,
                password: section
                    .required_secret("password", "the OTMM password (e.g. ${DAM_PASSWORD})")?,
            })
        }
        "oauth2" => {
            let default_grant = if section.text("username")?.is_some() {
                "password"
            } else {
                "client_credentials"
            };
            let grant = match section
                .text_or("grant", default_grant)?
                .to_ascii_lowercase()
                .as_str()
            {
                "password" => OAuthGrant::Password {
                    username: section
                        .required("username", "the OTMM user name of the password grant")?,
                    password: section.required_secret(
                        "password",
                        "the OTMM password of the password grant (e.g. ${DAM_PASSWORD})",
                    )?,
                },
                "client_credentials" => {
                    section.mark_used(&["username", "password"]);
                    OAuthGrant::ClientCredentials
                }
                other => {
                    return Err(section.error(
                        "grant",
                        format!(
                            "expected password or client_credentials, found {}",
                            shown(other)
                        ),
                    ))
                }
            };
            let auth_url = match grant {
                OAuthGrant::Password { .. } => {
                    let documented = format!(
                        "{}{}/sessions/oauth2/token",
                        base_url.trim_end_matches('/'),
                        crate::dam::API_PATH
                    );
                    section.url("auth_url", Some(&documented), "the OAuth2 token URL")?
                }
                OAuthGrant::ClientCredentials => section.url(
                    "auth_url",
                    None,
                    "the OAuth2 token URL of the client_credentials grant",
                )?,
            };
            Ok(DamAuth::OAuth2 {
                auth_url,
                client_id: section.required("client_id", "the OAuth2 client ID")?,
                client_secret: section.required_secret(
                    "client_secret",
                    "the OAuth2 client secret (e.g. ${DAM_CLIENT_SECRET})",
                )?,
                grant,
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
        enabled: section.bool_or("enabled", true)?,
        interval_secs: section.u64("interval_seconds", 1)?,
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
    // The plan's names: initial_delay_seconds, max_delay_seconds.
    let backoff_base_secs = section
        .either(
            "backoff_base_secs",
            "initial_delay_seconds",
            |section, key| section.u64(key, 0),
        )?
        .unwrap_or(60);
    let backoff_max_secs = section
        .either("backoff_max_secs", "max_delay_seconds", |section, key| {
            section.u64(key, 0)
        })?
        .unwrap_or(3600);
    if backoff_max_secs < backoff_base_secs {
        let key = if section.has("max_delay_seconds") {
            "max_delay_seconds"
        } else {
            "backoff_max_secs"
        };
        return Err(section.error(
            key,
            format!("expected a number >= the first delay (retry.backoff_base_secs / retry.initial_delay_seconds: {backoff_base_secs}), found {backoff_max_secs}"),
        ));
    }
    if let Some(backoff) = section.text("backoff")? {
        if !backoff.eq_ignore_ascii_case("exponential") {
            return Err(section.error(
                "backoff",
                format!(
                    "expected exponential (the delay doubles per attempt), found {}",
                    shown(&backoff)
                ),
            ));
        }
    }
    let mut retryable_http_codes = Vec::new();
    for (path, item) in section.list("retryable_http_codes")? {
        let code = match item {
            Value::Number(number) => number.as_u64(),
            Value::String(text) => section.ctx().expand(&path, text)?.trim().parse().ok(),
            _ => None,
        };
        match code.and_then(|code| u16::try_from(code).ok()) {
            Some(code @ 400..=599) => {
                if !retryable_http_codes.contains(&code) {
                    retryable_http_codes.push(code);
                }
            }
            _ => {
                return Err(section.ctx().error(
                    &path,
                    "expected an HTTP error status from 400 to 599 (e.g. 503)".to_string(),
                ))
            }
        }
    }
    if !section.has("retryable_http_codes") {
        retryable_http_codes = DEFAULT_RETRYABLE_HTTP_CODES.to_vec();
    }
    Ok(RetryConfig {
        max_attempts,
        backoff_base_secs,
        backoff_max_secs,
        retryable_http_codes,
    })
}

/// Default `retry.retryable_http_codes`: rate limited and the server errors that pass
/// (the statuses [`crate::http::is_retryable_status`] names).
pub const DEFAULT_RETRYABLE_HTTP_CODES: [u16; 5] = [429, 500, 502, 503, 504];

/// `logging`: the plan's Python-style section. `root` is the deployment root.
pub(super) fn logging(section: &Section<'_>, root: &Path) -> Result<LoggingConfig, ConfigError> {
    let level = match section.text("level")? {
        None => None,
        Some(text) => Some(match text.to_ascii_uppercase().as_str() {
            "TRACE" => tracing::Level::TRACE,
            "DEBUG" => tracing::Level::DEBUG,
            "INFO" => tracing::Level::INFO,
            "WARNING" | "WARN" => tracing::Level::WARN,
            "ERROR" | "CRITICAL" | "FATAL" => tracing::Level::ERROR,
            _ => {
                return Err(section.error(
                    "level",
                    format!(
                        "expected DEBUG, INFO, WARNING, ERROR or CRITICAL, found {}",
                        shown(&text)
                    ),
                ))
            }
        }),
    };
    if section.has("format") {
        section.mark_used(&["format"]);
        tracing::debug!(
            key = %section.path("format"),
            "a Python logging format: not used (lines carry time, level and message)"
        );
    }
    let handlers = section.section("handlers")?;
    let file_section = handlers.section("file")?;
    let file = match file_section.text("filename")? {
        None => None,
        Some(name) => Some(LogFileConfig {
            path: resolve_path(root, name),
            max_bytes: file_section.u64_or("max_bytes", 10_485_760, 1)?,
            backup_count: file_section.u64_or("backup_count", 5, 0)?,
        }),
    };
    file_section.mark_used(&["max_bytes", "backup_count"]);
    file_section.finish();
    let console_section = handlers.section("console")?;
    let console = console_section.bool_or("enabled", true)?;
    console_section.finish();
    handlers.finish();
    Ok(LoggingConfig {
        level,
        file,
        console,
    })
}

/// `temp`.
pub(super) fn temp(section: &Section<'_>, root: &Path) -> Result<TempConfig, ConfigError> {
    // `directory` is the plan's name of the key.
    let dir = match section.either("dir", "directory", Section::text)? {
        Some(dir) => resolve_path(root, dir),
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
    // Keys after a stop were not read: not "unknown".
    if result.is_ok() {
        email.finish();
        mailgun.finish();
        plan_recipients.finish();
        plan.finish();
    }
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
    // Problems are recorded and the reading goes on, so that the recipients and the templates
    // are checked too.
    let domain = both
        .pick("domain", (mailgun, "domain"), read_text)?
        .filter(|domain| !domain.is_empty())
        .unwrap_or_else(|| {
            both.email.report(
                "domain",
                format!(
                    "expected the Mailgun sending domain, e.g. mg.example.com (or {}), found nothing",
                    mailgun.path("domain")
                ),
            );
            "unset.invalid".to_string()
        });
    if domain.contains(['/', ' ', '@']) || !domain.contains('.') {
        both.email.report(
            "domain",
            format!(
                "expected a domain name such as mg.example.com, found {}",
                shown(&domain)
            ),
        );
    }
    both.email
        .ctx()
        .problems
        .secret_key(&both.email.path("api_key"));
    both.email
        .ctx()
        .problems
        .secret_key(&mailgun.path("api_key"));
    let api_key = both
        .pick("api_key", (mailgun, "api_key"), read_text)?
        .filter(|key| !key.is_empty())
        .unwrap_or_else(|| {
            both.email.report(
                "api_key",
                format!(
                    "expected the Mailgun API key (e.g. ${{MAILGUN_API_KEY}}, or {}), found nothing",
                    mailgun.path("api_key")
                ),
            );
            String::new()
        });
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
        both.email.report(
            "from",
            format!("expected an email address such as noreply@{domain} or \"Name <noreply@{domain}>\", found {}", shown(&from)),
        );
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
        both.email.ctx().problems.warning(
            both.email.error(
                "error_recipients",
                "email is enabled but nobody receives error emails",
            ),
            "set email.error_recipients (EMAIL_ERROR_RECIPIENTS: addresses separated by \",\" or \";\")",
        );
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
            section.ctx().report(
                &format!("{}[{index}]", section.path(key)),
                format!(
                    "expected an email address such as ops@example.com, found {}",
                    shown(address)
                ),
            );
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
    problems: &Problems,
) -> Result<WebhooksConfig, ConfigError> {
    let mut tree = if file.is_file() {
        problems.read(file)?
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
    problems.keep_tree((
        "webhooks.yaml: ".to_string(),
        file.to_path_buf(),
        tree.clone(),
        origins.clone(),
    ));
    let ctx = Ctx {
        vars,
        file: file.to_path_buf(),
        origins,
        problems,
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
    // An endpoint subscribed to an event no pass emits would never be called: an error.
    for (index, event) in events.iter().enumerate() {
        if !KNOWN_EVENTS.contains(&event.as_str()) {
            let path = format!("{}[{index}]", section.path("events"));
            let error = section.ctx().error(
                &path,
                format!(
                    "expected one of {}, found {}",
                    KNOWN_EVENTS.join(", "),
                    shown(event)
                ),
            );
            let hint = match super::problems::closest(
                &event.to_ascii_lowercase(),
                KNOWN_EVENTS.iter().copied(),
            ) {
                Some(meant) => format!("did you mean {meant}? Event names are lower case"),
                None => format!("the passes emit only {}", KNOWN_EVENTS.join(", ")),
            };
            section.ctx().problems.error_with_hint(error, hint);
        }
    }
    events.retain(|event| KNOWN_EVENTS.contains(&event.as_str()));
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
    problems: &Problems,
) -> Result<EmailTemplates, ConfigError> {
    if !file.is_file() && !email_enabled {
        return Ok(EmailTemplates::default());
    }
    let tree = problems.read(file)?;
    let no_vars = |_: &str| None;
    let ctx = Ctx {
        vars: &no_vars,
        file: file.to_path_buf(),
        origins: Origins::default(),
        problems,
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
        match email_template(&ctx, &path, value) {
            Ok(template) => {
                templates.insert(name.clone(), template);
            }
            Err(error) => problems.error(error),
        }
    }
    if email_enabled {
        // A template that is there but broken has its problem already.
        for missing in REQUIRED_TEMPLATES
            .iter()
            .filter(|name| !map.contains_key(**name))
        {
            ctx.report(
                &super::tree::join_key(&prefix, missing),
                format!(
                    "expected template {missing} (required: {}), found nothing",
                    REQUIRED_TEMPLATES.join(", ")
                ),
            );
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
                let keys = sample
                    .as_object()
                    .map(|map| map.keys().cloned().collect::<Vec<_>>().join(", "))
                    .unwrap_or_default();
                problems.error_with_hint(
                    ctx.error(
                        &super::tree::join_key(&prefix, name),
                        format!("expected a template using only the data {name} gets ({keys}): {error}"),
                    ),
                    format!("use only {keys} (and their fields, as the shipped email_templates.yaml does); a typo is only found here, or when the email is due"),
                );
                break;
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
            ctx.problems.warning(
                ctx.error(
                    &format!("{path}.{key}"),
                    "unknown configuration key, ignored",
                ),
                "a template has subject, text and html only",
            );
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
    deployment_root: &Path,
    problems: &Problems,
) -> Result<(FieldMappings, NamingConfig, BTreeMap<String, Profile>), ConfigError> {
    let tree = problems.read(file)?;
    problems.keep_tree((
        "field_mappings.yaml: ".to_string(),
        file.to_path_buf(),
        tree.clone(),
        Origins::default(),
    ));
    let ctx = Ctx {
        vars,
        file: file.to_path_buf(),
        origins: Origins::default(),
        problems,
    };
    let root = Section::new(&ctx, "", Some(&tree))?;
    let naming_section = root.section("naming")?;
    let naming = naming(&naming_section)?;
    naming_section.finish();
    let lookup_domains = lookup_domains(&root)?;

    let mut mvp_fields: Vec<String> = Vec::new();
    for field in root.text_list("mvp_fields")? {
        if mvp_fields.contains(&field) {
            tracing::warn!(file = %file.display(), field = %field, "mvp_fields lists a field twice");
        } else {
            mvp_fields.push(field);
        }
    }

    let filename_field_updates = field_updates(&ctx, &root, &naming, &lookup_domains)?;

    let forced_field_values = field_values(&root, "forced_field_values")?;
    let default_field_values = field_values(&root, "default_field_values")?;
    let validation = root.section("validate_domain_values")?;
    let validate_domain_values = DomainValidation {
        enabled: validation.bool_or("enabled", true)?,
        cache_ttl_hours: validation.u64_or("cache_ttl_hours", 24, 0)?,
        strict_mode: validation.bool_or("strict_mode", true)?,
        cache_file: validation
            .text("cache_file")?
            .map(|text| resolve_path(deployment_root, text)),
    };
    validation.finish();
    let defaults = FieldMappings {
        mvp_fields,
        filename_field_updates,
        forced_field_values,
        default_field_values,
        validate_domain_values,
    };
    let profiles_section = root.section("profiles")?;
    let mut profiles = BTreeMap::new();
    for name in profiles_section.keys() {
        let section = profiles_section.section(name)?;
        let profile = profile(&ctx, &section, &defaults, &naming, &lookup_domains)?;
        section.finish();
        profiles.insert(name.to_string(), profile);
    }
    root.finish();
    Ok((defaults, naming, profiles))
}

/// One entry of `profiles:`: the defaults with this profile's overrides. `naming` replaces the
/// grammar; `filename_field_updates` replace the defaults' update of the same field (others are
/// added); `forced_field_values` / `default_field_values` are merged over the defaults' (the
/// profile wins per field); `error_recipients` replaces `email.error_recipients` for its
/// folders.
fn profile(
    ctx: &Ctx<'_>,
    section: &Section<'_>,
    defaults: &FieldMappings,
    default_naming: &NamingConfig,
    lookup_domains: &BTreeMap<String, String>,
) -> Result<Profile, ConfigError> {
    let naming = if section.has("naming") {
        let naming_section = section.section("naming")?;
        let value = naming(&naming_section)?;
        naming_section.finish();
        value
    } else {
        default_naming.clone()
    };
    let mut field_mappings = defaults.clone();
    for update in field_updates(ctx, section, &naming, lookup_domains)? {
        field_mappings
            .filename_field_updates
            .retain(|existing| existing.field_id != update.field_id);
        field_mappings.filename_field_updates.push(update);
    }
    field_mappings
        .forced_field_values
        .extend(field_values(section, "forced_field_values")?);
    field_mappings
        .default_field_values
        .extend(field_values(section, "default_field_values")?);
    let error_recipients = if section.has("error_recipients") {
        Some(recipients(section, "error_recipients")?)
    } else {
        None
    };
    Ok(Profile {
        field_mappings,
        naming,
        error_recipients,
    })
}

/// `filename_field_updates` of `section` (a mapping of field ID -> update, or a list of
/// updates with `field_id`), each field once.
fn field_updates(
    ctx: &Ctx<'_>,
    section: &Section<'_>,
    naming: &NamingConfig,
    lookup_domains: &BTreeMap<String, String>,
) -> Result<Vec<FieldUpdate>, ConfigError> {
    let mut filename_field_updates = Vec::new();
    let updates_path = section.path("filename_field_updates");
    match section.raw("filename_field_updates") {
        None => {}
        Some(Value::Object(map)) => {
            for (field_id, value) in map {
                let path = super::tree::join_key(&updates_path, field_id);
                filename_field_updates.push(field_update(
                    ctx,
                    &path,
                    field_id,
                    value,
                    naming,
                    lookup_domains,
                )?);
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
                filename_field_updates.push(field_update(
                    ctx,
                    &path,
                    field_id,
                    item,
                    naming,
                    lookup_domains,
                )?);
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

    Ok(filename_field_updates)
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

/// Lookup domains of fields known without configuration (those of `shared/fixtures/otmm/`):
/// what `validate_domain: true` means for them unless `lookup_domains` says otherwise.
const KNOWN_LOOKUP_DOMAINS: [(&str, &str); 2] = [
    (
        "FERRERO.FIELD.MKTG.ASSET TYPE",
        "FERRERO.DOMAIN.MKTG ASSET TYPE",
    ),
    ("MAIN_LANGUAGES", "FERRERO.DOMAIN.LANGUAGES"),
];

/// `lookup_domains` (new): field ID -> lookup domain ID, over [`KNOWN_LOOKUP_DOMAINS`].
fn lookup_domains(root: &Section<'_>) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut domains: BTreeMap<String, String> = KNOWN_LOOKUP_DOMAINS
        .iter()
        .map(|(field, domain)| ((*field).to_string(), (*domain).to_string()))
        .collect();
    for (field, domain) in root.text_map("lookup_domains")? {
        if domain.is_empty() {
            return Err(root.ctx().error(
                &super::tree::join_key(&root.path("lookup_domains"), &field),
                "expected a lookup domain ID (e.g. FERRERO.DOMAIN.LANGUAGES), found nothing",
            ));
        }
        domains.insert(field, domain);
    }
    Ok(domains)
}

/// `validate_domain` of a field mapping: a lookup domain ID, or the plan's `true` (= the field's
/// own domain, from `lookup_domains`); `false` or absent = none.
fn validate_domain(
    section: &Section<'_>,
    field_id: &str,
    lookup_domains: &BTreeMap<String, String>,
) -> Result<Option<String>, ConfigError> {
    let text = match section.raw("validate_domain") {
        Some(Value::Bool(flag)) => Some(flag.to_string()),
        _ => section.text("validate_domain")?,
    };
    match text.as_deref() {
        None | Some("false") => Ok(None),
        Some("true") => match lookup_domains.get(field_id) {
            Some(domain) => Ok(Some(domain.clone())),
            None => Err(section.error(
                "validate_domain",
                format!(
                    "true means the lookup domain of field {}, but none is known: add it to lookup_domains in field_mappings.yaml (lookup_domains: {{{}: DOMAIN_ID}}) or write the domain ID here",
                    shown(field_id),
                    shown(field_id)
                ),
            )),
        },
        Some(domain) => Ok(Some(domain.to_string())),
    }
}

/// The keys of one `filename_field_updates` entry.
const FIELD_UPDATE_KEYS: &[&str] = &[
    "field_id",
    "source",
    "transform",
    "required",
    "fallback",
    "default",
    "validate_domain",
];

/// One `filename_field_updates` entry: a mapping or a bare source name.
fn field_update(
    ctx: &Ctx<'_>,
    path: &str,
    field_id: &str,
    value: &Value,
    naming: &NamingConfig,
    lookup_domains: &BTreeMap<String, String>,
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
    let source = FieldSource::parse(&source, &naming.segment_names()).unwrap_or_else(|expected| {
        section.report("source", format!("{expected}, found {}", shown(&source)));
        FieldSource::CleanFilename
    });
    let transform = match section.text("transform")? {
        None => Vec::new(),
        Some(text) => Transform::parse_steps(&text).unwrap_or_else(|(step, expected)| {
            section.report("transform", format!("{expected}, found {}", shown(&step)));
            Vec::new()
        }),
    };
    // `master`, `none`, or a value (the plan's `fallback: ""`): not trimmed away to nothing.
    let fallback = match section.text_untrimmed("fallback")? {
        None => None,
        Some(text) => match text.trim() {
            "none" => None,
            "master" => Some(Fallback::Master),
            value => Some(Fallback::Value(value.to_string())),
        },
    };
    let update = FieldUpdate {
        field_id: field_id.trim().to_string(),
        source,
        transform,
        required: section.bool_or("required", false)?,
        fallback,
        default: section.text("default")?,
        validate_domain: validate_domain(&section, field_id.trim(), lookup_domains)?,
    };
    // A misspelt key here silently changes what is delivered (`transfrom: upper` leaves the
    // language code as typed): an error, not a warning.
    section.finish_strict(FIELD_UPDATE_KEYS);
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
                        section.ctx().problems.warning(
                            section.ctx().error(&format!("{path}.{key}"), "unknown configuration key, ignored"),
                            "a segment rule has name, kind, pattern, label, description, example, normalize and in_clean_name",
                        );
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
