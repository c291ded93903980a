//! Configuration: `config/*.yaml` with `${VAR}` interpolation, an environment overlay and `.env`,
//! validated into plain structs (design §5).
//!
//! Files (all in one config directory, usually `./config`):
//! - `config.yaml`: `environment`, `database`, `box`, `dam`, `polling`, `retry`, `temp`, `email`
//!   (or the plan's spelling `notifications`), `webhooks` (the plan's named webhooks), `media`.
//! - `environments/{env}.yaml`: deep-merged over `config.yaml` (mappings merge key by key; lists and
//!   scalars replace; `key: null` resets a key to its default).
//! - `field_mappings.yaml`: `mvp_fields`, `filename_field_updates`, `forced_field_values`,
//!   `default_field_values`, `validate_domain_values`, and the `naming:` grammar.
//! - `webhooks.yaml`: `endpoints` and/or the plan's named webhooks (optional file).
//! - `email_templates.yaml` (or `email.templates_path`): Jinja2 templates, the project's shape or
//!   the plan's (`templates:`, `str.format` subjects); required when `email.enabled`; each one a
//!   pass uses is rendered with sample data at load (strict: unknown variables are errors).
//!
//! Every string value may use `${VAR}` (an error naming file, key and variable when `VAR` is unset)
//! or `${VAR:-default}` (default when unset or empty); `$${` is a literal `${`. Variables are expanded
//! when a key is read, so keys that do not apply (the OAuth2 keys of a session login, the Mailgun key
//! when email is disabled, a webhook endpoint of another environment) need no variables. Email
//! templates are the one exception: they are Jinja2 text, never interpolated (a price such as
//! `${{ amount }}` must survive).
//!
//! Relative paths (`box.app_config_file`, `temp.dir`) are resolved against the parent of the config
//! directory (the deployment root, where `config/` lives); `.env` is read from there too, and only
//! from there ([`dotenv_path`]).
//!
//! One load finds every problem: the readers record each one (file, line, key, expectation,
//! hint) in a [`problems::Problems`] accumulator and go on with the key's default, so [`load`]
//! reports them all at once ([`ConfigError::Several`]) and [`check`] (`box-setup check-config`)
//! lists them with their lines and hints, offline. Unknown keys are warnings (logged, ignored:
//! ops files may carry extra keys), except in a field mapping entry and a webhook's `events`,
//! where a typo would silently change what is delivered: there they are errors.
//! Errors are [`ConfigError`]s whose `Display` is `{file}: {key}: {message}` and never contains a
//! secret.

mod check;
mod mapping;
mod problems;
mod reader;
mod sections;
mod tree;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::http::RequestWindow;
pub use crate::naming::NamingConfig;
use crate::secret::Secret;
pub use check::{check, check_deployment, env_example, is_secret_key, CheckReport, ShownValue};
pub use mapping::{FieldSource, MediaAttr, Transform};
pub use problems::{Problem, Severity, VariableUse};
pub use sections::DEFAULT_RETRYABLE_HTTP_CODES;

use problems::{Collected, Problems};
use reader::{Ctx, Section};
pub use sections::MIN_CHUNKED_UPLOAD_THRESHOLD;
use tree::{merge, Origins};

/// A configuration problem. `Display` names the file, the key (dotted path) or the position, and
/// what was expected, e.g. `config/config.yaml: box.max_requests_per_second: expected a number > 0,
/// found "ten"`. Messages never contain secret values.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value is missing, malformed or out of range; or a `${VAR}` cannot be expanded.
    #[error("{}: {key}: {message}", file.display())]
    Invalid {
        /// The file that holds (or should hold) the key; for `DATABASE_URL` the text
        /// `environment variable DATABASE_URL`.
        file: PathBuf,
        /// Dotted key path, e.g. `box.watched_folders[0].id`; keys with dots are quoted.
        key: String,
        /// What was expected and what was found.
        message: String,
    },
    /// A file could not be read.
    #[error("{}: cannot read the file: {source}", file.display())]
    Io {
        /// The file.
        file: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A file is not valid YAML (or `.env` syntax). Line and column are 1-based; 0 = unknown.
    #[error("{}: line {line}, column {column}: {message}", file.display())]
    Parse {
        /// The file.
        file: PathBuf,
        /// 1-based line, 0 when unknown.
        line: u64,
        /// 1-based column, 0 when unknown.
        column: u64,
        /// The parser's description.
        message: String,
    },
    /// Several of the above, every problem one load found (in the order found).
    #[error("{} configuration problems:\n  {}", .0.len(), .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  "))]
    Several(Vec<ConfigError>),
}

impl ConfigError {
    /// The file the error is about.
    pub fn file(&self) -> &Path {
        match self {
            ConfigError::Invalid { file, .. }
            | ConfigError::Io { file, .. }
            | ConfigError::Parse { file, .. } => file,
            ConfigError::Several(errors) => errors.first().map_or(Path::new(""), Self::file),
        }
    }

    /// The dotted key path, for [`ConfigError::Invalid`] (the first one's for
    /// [`ConfigError::Several`]).
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { key, .. } => Some(key),
            ConfigError::Several(errors) => errors.first().and_then(Self::key),
            _ => None,
        }
    }
}

/// The whole configuration, as returned by [`load`].
#[derive(Debug, Clone)]
pub struct Config {
    /// The environment in effect (`--env`, else `CS_ENVIRONMENT`, else `environment:`, else
    /// `development`).
    pub environment: String,
    /// The directory the files were read from.
    pub config_dir: PathBuf,
    /// `database`.
    pub database: DatabaseConfig,
    /// `box`.
    pub box_api: BoxConfig,
    /// `dam`.
    pub dam: DamConfig,
    /// `polling`.
    pub polling: PollingConfig,
    /// `retry`.
    pub retry: RetryConfig,
    /// `temp`.
    pub temp: TempConfig,
    /// `email`.
    pub email: EmailConfig,
    /// `media`.
    pub media: MediaConfig,
    /// `webhooks.yaml` (only the endpoints enabled for this environment).
    pub webhooks: WebhooksConfig,
    /// `field_mappings.yaml`.
    pub field_mappings: FieldMappings,
    /// The `naming:` section of `field_mappings.yaml` ([`NamingConfig::default`] = V2 when absent).
    pub naming: NamingConfig,
    /// `profiles:` of `field_mappings.yaml`, by name: what a watched folder with that
    /// `box.watched_folders[].profile` uses instead of the defaults ([`Config::folder_settings`]).
    pub profiles: BTreeMap<String, Profile>,
    /// `email_templates.yaml` (empty when the file is absent and email is disabled).
    pub email_templates: EmailTemplates,
    /// `retention` and `box.archive_retention_days`: what `cleanup` deletes.
    pub retention: RetentionConfig,
    /// `status`: when `reprocess status --check` reports a problem.
    pub status: StatusConfig,
    /// `logging`: log file, level and console (the plan's keys).
    pub logging: LoggingConfig,
}

/// `database`: where the PostgreSQL store lives.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    /// Connection URL (`postgresql://user:password@host:port/name?sslmode=...`): the environment
    /// variable `DATABASE_URL` when set, else `database.url`, else built from `database.host`,
    /// `port`, `name`, `user`, `password`, `sslmode`.
    pub url: Secret<String>,
    /// `database.sslmode` (default `prefer`): disable | prefer | require | verify-ca |
    /// verify-full. An `sslmode` in the URL wins.
    pub sslmode: Option<crate::store::SslMode>,
    /// `database.sslrootcert` (relative to the deployment root; `system` = the system roots):
    /// the CA file that signed the server certificate. `None` = the system roots. An
    /// `sslrootcert` in the URL wins.
    pub sslrootcert: Option<PathBuf>,
}

/// `box`: the Box API (<https://developer.box.com/reference/>).
#[derive(Debug, Clone)]
pub struct BoxConfig {
    /// API root without `/2.0`; default `https://api.box.com`.
    pub base_url: String,
    /// Upload API root without `/2.0`; default `https://upload.box.com/api`.
    pub upload_url: String,
    /// Full token URL; default `https://api.box.com/oauth2/token`.
    pub oauth2_url: String,
    /// The JWT app's credentials: the Developer Console's app config JSON (`box.app_config_file`,
    /// default env `BOX_CONFIG_FILE`, else `config/box_app_config.json`; relative to the
    /// deployment root), or the plan's six separate keys (see [`BoxCredentials`]).
    pub credentials: BoxCredentials,
    /// Folder where campaign folders are created (required).
    pub root_folder_id: String,
    /// Folders agencies upload derivatives into.
    pub watched_folders: Vec<WatchedFolder>,
    /// Subfolder of a watched folder for handled files; default `_PROCESSED`.
    pub processed_folder_name: String,
    /// Subfolder of a watched folder for rejected files; default `_errors`.
    pub errors_folder_name: String,
    /// Client-side rate limit (one bucket per client, shared by its clones and threads):
    /// `box.max_requests_per_minute` (> 0; or `box.max_requests_per_second` x 60, both only when
    /// equal; default 600) and `box.burst` (>= 1; default 10). Box documents about 1000 requests per
    /// minute per user.
    pub rate_limit: RequestWindow,
    /// Seconds; default 10.
    pub connect_timeout_secs: u64,
    /// Seconds; default 60.
    pub read_timeout_secs: u64,
    /// Parts of one chunked upload session sent at once (`box.upload_parallel_parts`, 1..=16;
    /// default 4), each through the rate limit.
    pub upload_parallel_parts: usize,
    /// Files of this many bytes or more use a chunked upload session; default 50_000_000, at least
    /// [`MIN_CHUNKED_UPLOAD_THRESHOLD`] (Box's 20 MB minimum for sessions).
    pub chunked_upload_threshold_bytes: u64,
    /// Retries of a transient failure per request; default 5.
    pub max_retries: u32,
    /// (new) `box.token_cache_file`: private file (mode 0600) keeping the access token across passes;
    /// default `{temp.dir}/box-token.json`, relative paths from the deployment root, `off` = `None` (a new
    /// token every pass).
    pub token_cache_file: Option<PathBuf>,
}

/// How the Box JWT app's credentials are given (read when a Box client is made, by
/// [`crate::boxapi::BoxAppConfig::load`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BoxCredentials {
    /// `box.app_config_file`: the JSON file the Box Developer Console generates
    /// (`{"boxAppSettings": {...}, "enterpriseID"}`), holding the (encrypted) private key.
    AppConfigFile(PathBuf),
    /// The plan's form: the same values as separate keys.
    Keys(BoxJwtKeys),
}

impl BoxCredentials {
    /// The file the credentials are read from: the app config JSON or the PEM private key
    /// (for messages).
    pub fn file(&self) -> &Path {
        match self {
            BoxCredentials::AppConfigFile(path) => path,
            BoxCredentials::Keys(keys) => &keys.private_key_path,
        }
    }
}

/// The plan's Box JWT keys: `box.{enterprise_id, client_id, client_secret, jwt_key_id,
/// rsa_private_key_path, passphrase}`, the same values as the app config JSON. `Debug` hides the
/// secret and the passphrase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoxJwtKeys {
    /// `box.enterprise_id` (the JWT `sub`).
    pub enterprise_id: String,
    /// `box.client_id` (the JWT `iss`).
    pub client_id: String,
    /// `box.client_secret`.
    pub client_secret: Secret<String>,
    /// `box.jwt_key_id`: the public key ID (the JWT header `kid`).
    pub public_key_id: String,
    /// `box.rsa_private_key_path`: PEM file (`ENCRYPTED PRIVATE KEY`, `PRIVATE KEY` or
    /// `RSA PRIVATE KEY`), relative to the deployment root.
    pub private_key_path: PathBuf,
    /// `box.passphrase`: unlocks an encrypted key; empty for a plain one.
    pub passphrase: Secret<String>,
}

/// One entry of `box.watched_folders`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchedFolder {
    /// Box folder ID (required, unique).
    pub id: String,
    /// Name for logs and messages; default the ID.
    pub name: String,
    /// Optional profile name (per market/agency/client settings).
    pub profile: Option<String>,
}

/// `dam`: OpenText Media Management (OTMM REST API v6).
#[derive(Debug, Clone)]
pub struct DamConfig {
    /// Server root (required); the client appends `/otmmapi/v6`.
    pub base_url: String,
    /// How to log in.
    pub auth: DamAuth,
    /// The campaign folder model.
    pub campaign: CampaignModel,
    /// Model of imported derivatives; default `FERRERO.MODEL.MARKETING ASSET`.
    pub metadata_model_id: String,
    /// Security policies of imported derivatives; default `[2]`.
    pub security_policy_ids: Vec<i64>,
    /// Field written on derivatives with `{tracking_id}:{clean name}:v{version}`; default
    /// `FERRERO.FIELD.CS TRACKING`.
    pub tracking_field_id: String,
    /// Seconds; default 10.
    pub connect_timeout_secs: u64,
    /// Seconds for metadata calls (`dam.read_timeout_secs`, or the plan's `dam.timeout_seconds`);
    /// default 60.
    pub read_timeout_secs: u64,
    /// Seconds for content downloads/uploads; default 600.
    pub content_timeout_secs: u64,
    /// Seconds a pass follows an import job before leaving it for a later pass (a running job
    /// costs the file no attempt); default 120.
    pub import_job_timeout_secs: u64,
    /// Milliseconds a pass waits after an import request before its first look at the job (a
    /// job is never complete the instant it is accepted, so asking at once costs a poll for
    /// nothing); then pauses start at 100 ms and double. Default 100 (the first pause of the old
    /// schedule, so a job taking 100 ms or more is seen as early as before, with one poll less);
    /// 0 asks at once.
    pub first_job_poll_delay_ms: u64,
    /// Seconds after an import request during which its asset may not be visible yet: when the
    /// reply was lost, a lookup by marker that finds nothing within this time means "wait", after
    /// it "did not land, send again"; default 120.
    pub import_landing_secs: u64,
    /// Retries of a transient failure per request; default 5.
    pub max_retries: u32,
    /// Requests per second (> 0), shared by every clone and thread of the client, evenly
    /// spaced; default 25.
    pub max_requests_per_second: f64,
    /// `dam.api`: the server's dialect where public evidence is silent.
    pub api: DamApi,
}

impl DamConfig {
    /// The configuration of the DAM at `base_url` reached with `auth`, every other setting at its
    /// documented default (the config reader starts from these).
    pub fn new(base_url: String, auth: DamAuth) -> Self {
        DamConfig {
            base_url,
            auth,
            campaign: CampaignModel::default(),
            metadata_model_id: "FERRERO.MODEL.MARKETING ASSET".into(),
            security_policy_ids: vec![2],
            tracking_field_id: "FERRERO.FIELD.CS TRACKING".into(),
            connect_timeout_secs: 10,
            read_timeout_secs: 60,
            content_timeout_secs: 600,
            import_job_timeout_secs: 120,
            first_job_poll_delay_ms: 100,
            import_landing_secs: 120,
            max_retries: 5,
            max_requests_per_second: 25.0,
            api: DamApi::default(),
        }
    }
}

/// `dam.auth`: `method: session` (default) or `method: oauth2`.
#[derive(Debug, Clone)]
pub enum DamAuth {
    /// POST /otmmapi/v6/sessions with `username`/`password`.
    Session {
        /// `dam.auth.username` (required).
        username: String,
        /// `dam.auth.password` (required).
        password: Secret<String>,
    },
    /// OAuth2: a token from `auth_url` with the grant in `grant`.
    OAuth2 {
        /// The token URL: `dam.auth.auth_url`; for the password grant its default is
        /// `{base_url}/otmmapi/v6/sessions/oauth2/token` (OpenText's own client, `opentext/pyxecm`
        /// `packages/pyxecm/src/pyxecm/otmm.py`, `tokenUrl`).
        auth_url: String,
        /// `dam.auth.client_id` (required).
        client_id: String,
        /// `dam.auth.client_secret` (required).
        client_secret: Secret<String>,
        /// `dam.auth.grant`: `password` (default when `username` is set: what OpenText's client
        /// sends) or `client_credentials` (an OTDS-style token URL; unconfirmed for OTMM).
        grant: OAuthGrant,
    },
}

/// The OAuth2 grant of [`DamAuth::OAuth2`].
#[derive(Debug, Clone)]
pub enum OAuthGrant {
    /// `grant_type=password` with the user's name and password (pyxecm `OTMM.authenticate`).
    Password {
        /// `dam.auth.username`.
        username: String,
        /// `dam.auth.password`.
        password: Secret<String>,
    },
    /// `grant_type=client_credentials` (client ID and secret only).
    ClientCredentials,
}

/// `dam.api`: how the client talks to this OTMM server wherever no public source settles the
/// point (see `shared/api-notes/otmm.md` and the README's "OTMM calls and their evidence").
/// `box-setup dam-check` tells, against the real server, which value each key needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DamApi {
    /// `import_completion`: how a pass learns that an import landed; default
    /// [`ImportCompletion::Search`].
    pub import_completion: ImportCompletion,
    /// `lock_folders`: whether the campaign folder is locked (PUT `/assets/{id}/state`
    /// `action=lock`) around the status PATCH; default [`FolderLocking::WhenAllowed`].
    pub lock_folders: FolderLocking,
    /// `status_value_shape`: how the status value is written in the PATCH; default
    /// [`ValueShape::Plain`].
    pub status_value_shape: ValueShape,
    /// `folder_load`: the load parameters of GET `/folders/{id}`; default [`FolderLoad::Custom`].
    pub folder_load: FolderLoad,
    /// `exclude_deleted`: send OTMM's `asset_filter_request` with `exclude_deleted_assets` on
    /// folder listings and searches (deleted assets are also dropped from every reply whatever
    /// this says); default true.
    pub exclude_deleted: bool,
    /// `search_sort`: the `sort` parameter of `/search/text` and of folder listings, in OTMM's
    /// `<asc|desc>_<field id>` form (empty: not sent); default `asc_ARTESIA.FIELD.ASSET ID`, a
    /// unique key, so that pages do not shift between requests.
    pub search_sort: String,
    /// `marker_search_operator_id`: the operator of the search for our tracking marker; default
    /// `ARTESIA.OPERATOR.CHAR.CONTAINS` (the one operator public clients use).
    pub marker_search_operator_id: String,
    /// `search_page_size`: hits asked per `/search/text` page (1..=1000); default 100.
    pub search_page_size: usize,
    /// `children_page_size`: items asked per `/folders/{id}/children` page (1..=1000); default 100.
    pub children_page_size: usize,
    /// `multipart_filename`: the `filename` of the import's `files` part; default
    /// [`MultipartFilename::Utf8`].
    pub multipart_filename: MultipartFilename,
}

impl Default for DamApi {
    /// The documented defaults: the strongest public evidence, and where there is none, the
    /// choice that works on every server variant the sandbox models.
    fn default() -> Self {
        DamApi {
            import_completion: ImportCompletion::Search,
            lock_folders: FolderLocking::WhenAllowed,
            status_value_shape: ValueShape::Plain,
            folder_load: FolderLoad::Custom,
            exclude_deleted: true,
            search_sort: "asc_ARTESIA.FIELD.ASSET ID".into(),
            marker_search_operator_id: "ARTESIA.OPERATOR.CHAR.CONTAINS".into(),
            search_page_size: 100,
            children_page_size: 100,
            multipart_filename: MultipartFilename::Utf8,
        }
    }
}

/// `dam.api.import_completion`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportCompletion {
    /// `search`: `/search/text` for an asset whose tracking field holds our marker (search is
    /// confirmed by several public clients).
    Search,
    /// `jobs`: GET `/jobs/{id}/assets` (one public client, `bpra9266/sysco-otmm-publisher`
    /// `src/app.js`), then the search.
    Jobs,
    /// `folder_listing`: the Final Assets folder's children with their metadata.
    FolderListing,
}

/// `dam.api.lock_folders`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FolderLocking {
    /// `when_allowed`: lock; a refusal (403/409/400) means "this server does not lock
    /// containers" and the PATCH goes ahead without a lock.
    WhenAllowed,
    /// `always`: lock, and fail when the lock is refused.
    Always,
    /// `never`: PATCH without locking.
    Never,
}

/// `dam.api.status_value_shape`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueShape {
    /// `plain`: `{"value":{"type":"string","value":"A2"}}` (api-notes/otmm.md and the public
    /// `edited_asset` example).
    Plain,
    /// `domain_value`: `{"value":{"type":"com.artesia.metadata.DomainValue","field_value":{...}}}`.
    DomainValue,
}

/// `dam.api.folder_load`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FolderLoad {
    /// `metadata`: `load_type=metadata&level_of_detail=full` (what pyxecm's searches send).
    Metadata,
    /// `custom`: `load_type=custom&level_of_detail=full&data_load_request={"data_load_request":
    /// {"load_metadata":true,"load_inherited_metadata":true}}` (pyxecm `get_asset_details`; a
    /// public folder client sends `load_type=custom` with a `data_load_request` to
    /// `/folders/{id}`).
    Custom,
}

/// `dam.api.multipart_filename`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MultipartFilename {
    /// `utf8`: the name as UTF-8 in `filename="..."` (RFC 7578 §4.2; what browsers send).
    Utf8,
    /// `ascii`: non-ASCII characters replaced by `_` (the asset keeps its real name in its
    /// metadata and manifest).
    Ascii,
}

/// `dam.campaign`: how campaign folders look (defaults follow `shared/fixtures/otmm/`).
#[derive(Debug, Clone)]
pub struct CampaignModel {
    /// Default `FERRERO.FIELD.CAMPAIGN STATUS`.
    pub status_field_id: String,
    /// Default `FERRERO.FIELD.CAMPAIGN NUMBER`.
    pub number_field_id: String,
    /// Default `FERRERO.FIELD.CAMPAIGN NAME`.
    pub name_field_id: String,
    /// Default `Master Assets`.
    pub masters_folder_name: String,
    /// Default `Final Assets`.
    pub final_assets_folder_name: String,
    /// Default `A1`.
    pub status_a1: String,
    /// Default `A2`.
    pub status_a2: String,
    /// Default `A3`.
    pub status_a3: String,
    /// Search operator for the status condition; default `ARTESIA.OPERATOR.CHAR.CONTAINS`.
    pub search_operator_id: String,
}

impl Default for CampaignModel {
    /// The documented defaults (those of `shared/fixtures/otmm/`).
    fn default() -> Self {
        CampaignModel {
            status_field_id: "FERRERO.FIELD.CAMPAIGN STATUS".into(),
            number_field_id: "FERRERO.FIELD.CAMPAIGN NUMBER".into(),
            name_field_id: "FERRERO.FIELD.CAMPAIGN NAME".into(),
            masters_folder_name: "Master Assets".into(),
            final_assets_folder_name: "Final Assets".into(),
            status_a1: "A1".into(),
            status_a2: "A2".into(),
            status_a3: "A3".into(),
            search_operator_id: "ARTESIA.OPERATOR.CHAR.CONTAINS".into(),
        }
    }
}

/// `polling`: work per pass.
#[derive(Debug, Clone)]
pub struct PollingConfig {
    /// Campaigns handled per a1-to-a2 pass (> 0); default 10.
    pub max_campaigns_per_run: u32,
    /// Files handled per box-poll pass (> 0); default 200.
    pub max_files_per_run: u32,
    /// Files (box-poll) or master assets (a1-to-a2) handled at once in a pass, each worker on
    /// its own thread and database connection, all sharing the Box and DAM rate limiters
    /// (1..=32); default 4.
    pub workers: u32,
    /// Lease on a claimed Box file, seconds (>= 3); a live pass renews it every third of it, so
    /// only a dead or frozen pass loses its files to another; default 900.
    pub lease_secs: u64,
    /// Find changed watched folders through Box's events stream (one request per idle pass)
    /// instead of listing every watched folder every pass; default true.
    pub events_stream: bool,
    /// With the events stream: seconds between full listings of every watched folder (a missed
    /// event delays a file by at most this); 0 = every pass; default 900.
    pub full_listing_interval_secs: u64,
    /// The plan's `polling.enabled`: false = the a1-to-a2 pass does nothing (the cron line may
    /// stay); default true.
    pub enabled: bool,
    /// The plan's `polling.interval_seconds`: how often cron runs the passes, seconds
    /// (informational: cron decides; `None` when not given).
    pub interval_secs: Option<u64>,
}

/// `retry`: transient failures across passes.
#[derive(Debug, Clone)]
pub struct RetryConfig {
    /// Passes before a transient failure goes to `_errors` (> 0); default 5.
    pub max_attempts: u32,
    /// Seconds before the first retry; default 60.
    pub backoff_base_secs: u64,
    /// Upper bound of the backoff, seconds (>= base); default 3600.
    pub backoff_max_secs: u64,
    /// The plan's `retry.retryable_http_codes`: HTTP statuses (400..=599) a Box or OTMM request
    /// is retried on within a pass (with `box.max_retries` / `dam.max_retries`, exponential
    /// backoff); default `[429, 500, 502, 503, 504]`.
    pub retryable_http_codes: Vec<u16>,
}

/// `logging`: where log lines go besides stderr (the plan's Python `logging` layout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggingConfig {
    /// `logging.level`: `DEBUG`, `INFO`, `WARNING` (or `WARN`), `ERROR`, `CRITICAL` (= error),
    /// `TRACE`, any case; `None` = info. `-v`/`-vv` and `RUST_LOG` win over it.
    pub level: Option<tracing::Level>,
    /// `logging.handlers.file`: a log file rotated by size; `None` = no file.
    pub file: Option<LogFileConfig>,
    /// `logging.handlers.console.enabled`: also log on stderr; default true. Errors that end a
    /// command are printed on stderr whatever this says.
    pub console: bool,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig {
            level: None,
            file: None,
            console: true,
        }
    }
}

/// `logging.handlers.file`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFileConfig {
    /// `filename`: relative to the deployment root; its directory is created (mode 0750) when
    /// missing.
    pub path: PathBuf,
    /// `max_bytes`: the file is rotated (to `{filename}.1`, older ones shifted up) once it has
    /// grown past this many bytes (> 0); default 10485760.
    pub max_bytes: u64,
    /// `backup_count`: rotated files kept (`{filename}.1` ..`.N`); default 5.
    pub backup_count: u64,
}

/// `temp`: private working files.
#[derive(Debug, Clone)]
pub struct TempConfig {
    /// Directory; default `{system temp}/content-scaling` (env `CS_TEMP_DIR` in the shipped files).
    /// Must be owned by the running user and not writable by group or others (see
    /// [`crate::tempdir`]); downloads go to its `downloads/` subdirectory.
    pub dir: PathBuf,
    /// Files older than this are removed by cleanup, hours (> 0); default 24.
    pub cleanup_after_hours: u64,
    /// Size cap, MiB (> 0); default 10240.
    pub max_size_mb: u64,
}

impl TempConfig {
    /// `{dir}/downloads`: where agency and DAM files are downloaded, apart from the caches.
    pub fn downloads_dir(&self) -> PathBuf {
        crate::tempdir::downloads_dir(&self.dir)
    }
}

/// `retention`: how long `cleanup` keeps history (new keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionConfig {
    /// `retention.history_days`: finished `runs` rows, sent `outbox` rows and ledger rows in a
    /// final state (`archived`, `rejected`, `ignored`) older than this many days are deleted
    /// (> 0); default 90.
    pub history_days: u64,
    /// `box.archive_retention_days`: `_PROCESSED/{YYYY-MM-DD}/` folders older than this many days
    /// are moved to the Box trash; `None` (key absent or 0, the default) = never.
    pub box_archive_days: Option<u64>,
}

/// `status`: thresholds of `reprocess status` (new keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusConfig {
    /// `status.max_pass_age_minutes`: binary name -> how old its last successful pass may be,
    /// minutes; 0 = not monitored. Defaults: `a1-to-a2` 15, `box-poll` 5, `cleanup` 1500
    /// (daily, with an hour of slack); keys given in the file are added or replace these.
    pub max_pass_age_minutes: BTreeMap<String, u64>,
    /// `status.max_outbox_age_minutes`: an undelivered notification older than this needs
    /// attention, minutes (> 0); default 60.
    pub max_outbox_age_minutes: u64,
}

/// `email`: Mailgun (<https://documentation.mailgun.com/docs/mailgun/api-reference/>).
#[derive(Debug, Clone)]
pub struct EmailConfig {
    /// Send emails at all; default false. When true, `domain`, `api_key` and valid addresses are
    /// required.
    pub enabled: bool,
    /// Default `https://api.mailgun.net` (the client appends `/v3/{domain}/messages`).
    pub mailgun_base_url: String,
    /// Mailgun sending domain.
    pub domain: String,
    /// Mailgun API key.
    pub api_key: Secret<String>,
    /// Sender, `addr@domain` or `Name <addr@domain>`; default `Content Scaling <noreply@{domain}>`.
    pub from: String,
    /// Recipients of success emails (a list, or one comma-separated text).
    pub success_recipients: Vec<String>,
    /// Recipients of error emails.
    pub error_recipients: Vec<String>,
    /// Ask Mailgun's events API whether an email whose earlier send has an unknown outcome was
    /// accepted before re-sending it; default true.
    pub confirm_with_events: bool,
    /// Seconds after a doubtful send before "no accepted event" is trusted and the email
    /// re-sent; default 1800 (Mailgun's event-polling guide: events may appear that late).
    pub events_settle_secs: u64,
    /// Who is told when a whole pass fails, or a dependency stays unreachable longer than
    /// [`EmailConfig::critical_after_minutes`] (the plan's `notifications.recipients.critical`,
    /// or `email.critical_recipients`); empty = the error recipients.
    pub critical_recipients: Vec<String>,
    /// Minutes of consecutive "dependency unreachable" passes (exit 75) of one binary before a
    /// critical alert goes out (`notifications.critical_after_minutes` /
    /// `email.critical_after_minutes`); default 30.
    pub critical_after_minutes: u64,
    /// The email templates file (`notifications.templates_path` / `email.templates_path`,
    /// relative to the deployment root); `None` = `{config dir}/email_templates.yaml`.
    pub templates_path: Option<PathBuf>,
}

/// `media`: ffprobe.
#[derive(Debug, Clone)]
pub struct MediaConfig {
    /// Executable name or path; default `ffprobe`.
    pub ffprobe_path: String,
    /// Seconds per probe (> 0); default 60.
    pub timeout_secs: u64,
}

/// `webhooks.yaml`.
#[derive(Debug, Clone, Default)]
pub struct WebhooksConfig {
    /// Endpoints enabled for the current environment.
    pub endpoints: Vec<WebhookEndpoint>,
}

/// One outgoing webhook endpoint.
///
/// YAML keys: `name`, `url`, `events`, `bearer_token`, `signing_secret`, `timeout_secs`, plus
/// `enabled` (default true) and `environments` (list; default all) which decide at load time
/// whether the endpoint is part of [`WebhooksConfig::endpoints`].
#[derive(Debug, Clone)]
pub struct WebhookEndpoint {
    /// Unique name (the sandbox receiver path uses it).
    pub name: String,
    /// `http(s)://` URL.
    pub url: String,
    /// Subscribed events, e.g. `["campaign.a2", "campaign.a3"]`; empty = all.
    pub events: Vec<String>,
    /// `Authorization: Bearer` token; empty text = none.
    pub bearer_token: Option<Secret<String>>,
    /// HMAC-SHA256 key over the body (`X-CS-Signature`); empty text = none.
    pub signing_secret: Option<Secret<String>>,
    /// Seconds; default 10.
    pub timeout_secs: u64,
    /// HTTP method (the plan's `method`); default `POST`.
    pub method: String,
    /// Extra request headers (the plan's `headers`, values `${VAR}`-expanded; they may hold a
    /// credential, e.g. `Authorization: Bearer ${TOKEN}`, so they are secrets).
    pub headers: Vec<(String, Secret<String>)>,
    /// `auth: {type: basic, username, password}`: HTTP Basic credentials.
    pub basic_auth: Option<(String, Secret<String>)>,
    /// The plan's `payload_template`: when set, the request body is exactly this JSON object
    /// with its `{placeholder}` values filled ([`crate::notify::fill_payload_template`]) instead
    /// of the `{"event","idempotency_key","occurred_at","data"}` envelope.
    pub payload_template: Option<serde_json::Value>,
}

impl WebhookEndpoint {
    /// Every credential this endpoint sends (bearer token, signing secret, Basic password, header
    /// values), for redacting texts a receiver may echo back. Empty values are left out.
    pub fn secrets(&self) -> Vec<&str> {
        [&self.bearer_token, &self.signing_secret]
            .into_iter()
            .flatten()
            .chain(self.basic_auth.iter().map(|(_, password)| password))
            .chain(self.headers.iter().map(|(_, value)| value))
            .map(|secret| secret.expose().as_str())
            .filter(|secret| !secret.is_empty())
            .collect()
    }
}

/// A per-folder profile (`profiles.<name>` in `field_mappings.yaml`; the onboarding runbook's
/// per-client default profile): the default field mappings and naming grammar with the
/// profile's overrides applied, and its error recipients.
#[derive(Debug, Clone)]
pub struct Profile {
    /// The field mappings of its folders' derivatives.
    pub field_mappings: FieldMappings,
    /// The naming grammar of its folders' files.
    pub naming: NamingConfig,
    /// Who is told about its folders' rejected files (`None`: `email.error_recipients`).
    pub error_recipients: Option<Vec<String>>,
}

/// The settings that apply to one watched folder: its profile's, else the defaults.
#[derive(Debug, Clone, Copy)]
pub struct FolderSettings<'a> {
    /// Field mappings of derivatives delivered there.
    pub field_mappings: &'a FieldMappings,
    /// Naming grammar of files delivered there.
    pub naming: &'a NamingConfig,
    /// Recipients of rejection emails for files delivered there.
    pub error_recipients: &'a [String],
}

impl Config {
    /// The settings of watched folder `folder_id` (a Box folder ID): those of its `profile` when
    /// it names one in `profiles:`, else the defaults (also for a folder that is not watched).
    pub fn folder_settings(&self, folder_id: &str) -> FolderSettings<'_> {
        let profile = self
            .box_api
            .watched_folders
            .iter()
            .find(|folder| folder.id == folder_id)
            .and_then(|folder| folder.profile.as_deref())
            .and_then(|name| self.profiles.get(name));
        match profile {
            Some(profile) => FolderSettings {
                field_mappings: &profile.field_mappings,
                naming: &profile.naming,
                error_recipients: profile
                    .error_recipients
                    .as_deref()
                    .unwrap_or(&self.email.error_recipients),
            },
            None => FolderSettings {
                field_mappings: &self.field_mappings,
                naming: &self.naming,
                error_recipients: &self.email.error_recipients,
            },
        }
    }
}

/// `field_mappings.yaml`: how a derivative's DAM metadata is built (see [`crate::metadata`]).
#[derive(Debug, Clone)]
pub struct FieldMappings {
    /// Field IDs copied from the master (in order).
    pub mvp_fields: Vec<String>,
    /// Fields set from the file name or media probe. YAML: a mapping `field_id -> {source,
    /// transform, required, fallback, default, validate_domain}` (or `field_id -> source`), or a list
    /// of such mappings with a `field_id` key.
    pub filename_field_updates: Vec<FieldUpdate>,
    /// Field ID -> value, always set (last).
    pub forced_field_values: BTreeMap<String, String>,
    /// Field ID -> value, set when the field is still empty.
    pub default_field_values: BTreeMap<String, String>,
    /// Lookup-domain validation settings.
    pub validate_domain_values: DomainValidation,
}

/// One entry of `filename_field_updates`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldUpdate {
    /// OTMM field ID, e.g. `ARTESIA.FIELD.ASSET NAME`.
    pub field_id: String,
    /// Where the value comes from: a naming segment, the name itself, the tracking ID, the
    /// extension or a media attribute (YAML `source`, parsed at load time).
    pub source: FieldSource,
    /// Steps applied to the value in order (YAML `transform`: one of [`Transform::NAMES`], or
    /// several separated by `,`); empty = as is.
    pub transform: Vec<Transform>,
    /// When true, an empty result (after fallback and default) rejects the file.
    pub required: bool,
    /// What to use when the source is empty (YAML `fallback`: `master`, or a value such as the
    /// plan's `""`; `none` or absent = nothing).
    pub fallback: Option<Fallback>,
    /// Value when the source (and fallback) is empty.
    pub default: Option<String>,
    /// Lookup domain the value must belong to (see [`DomainValidation`]).
    pub validate_domain: Option<String>,
}

/// `fallback` of a field mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fallback {
    /// `master`: keep the master's value.
    Master,
    /// Any other text: this value (`""` = the field is left empty).
    Value(String),
}

/// `validate_domain_values`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainValidation {
    /// Check `validate_domain` fields at all; default true.
    pub enabled: bool,
    /// How long fetched domain values may be reused, hours; default 24.
    pub cache_ttl_hours: u64,
    /// `cache_file`: where fetched domain values are kept between passes (private JSON,
    /// relative to the deployment root); `None` = `{temp.dir}/`[`crate::dam::LOOKUP_CACHE_FILE`].
    pub cache_file: Option<PathBuf>,
    /// true: a value outside its domain rejects the file; false: a warning; default true.
    pub strict_mode: bool,
}

/// `email_templates.yaml`: template name -> template.
#[derive(Debug, Clone, Default)]
pub struct EmailTemplates {
    /// By name (`a1_to_a2_complete`, `a1_to_a2_partial`, `a2_to_a3_complete`, `upload_failed`,
    /// `campaign_processing_failed`, and any others).
    pub templates: BTreeMap<String, EmailTemplate>,
}

/// One email template (Jinja2 syntax, rendered with minijinja by [`crate::notify`]).
///
/// Two shapes are read: the project's (`name: {subject, text, html}` at the top of the file,
/// every part Jinja2) and the plan's (`templates: {name: {subject, html}}`, the subject in
/// Python `str.format` style such as `"Campaign {campaign_name} ready"`, the body Jinja2 HTML).
#[derive(Debug, Clone)]
pub struct EmailTemplate {
    /// Subject line template.
    pub subject: String,
    /// How [`EmailTemplate::subject`] is filled.
    pub subject_format: SubjectFormat,
    /// Plain-text body template; empty = no text part (the plan's templates have only `html`).
    pub text: String,
    /// HTML body template (auto-escaped), optional.
    pub html: Option<String>,
}

/// The template language of an email subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SubjectFormat {
    /// Jinja2 (`{{ campaign.name }}`), the project's templates.
    #[default]
    Jinja,
    /// Python `str.format` (`{campaign_name}`), the plan's templates (under `templates:`).
    StrFormat,
}

/// Email templates the passes use; required in `email_templates.yaml` when email is enabled.
pub const REQUIRED_TEMPLATES: &[&str] = &[
    "a1_to_a2_complete",
    "a1_to_a2_partial",
    "a2_to_a3_complete",
    "upload_failed",
    "campaign_processing_failed",
];

/// Webhook events the passes emit (any other in `events` is a configuration error naming these):
/// `campaign.a2` (A1 -> A2), `campaign.a3` (A2 -> A3), `asset.imported` (one derivative imported
/// into the DAM).
pub const KNOWN_EVENTS: &[&str] = &["campaign.a2", "campaign.a3", "asset.imported"];

/// Email templates of the critical alerts ([`crate::pipeline`]); built in, a template of the same
/// name in the templates file replaces the built-in one.
pub const ALERT_TEMPLATES: &[&str] = &["critical_error", "critical_recovered"];

/// Loads the configuration from `config_dir` for `environment` (else env `CS_ENVIRONMENT`, else the
/// `environment:` key, else `development`).
///
/// First loads `{deployment root}/.env` ([`dotenv_path`], next to `config_dir`; never the current
/// directory's) with dotenvy when present (variables already set in the process win), warning
/// when it is readable by group or others; then reads
/// `config.yaml`, deep-merges `environments/{env}.yaml` (required when the environment was chosen by
/// argument or `CS_ENVIRONMENT`, optional when it comes from the file), applies `DATABASE_URL`, and
/// reads `field_mappings.yaml`, `webhooks.yaml` and `email_templates.yaml`, expanding `${VAR}` from
/// the process environment.
///
/// Errors: every problem found, as one [`ConfigError`] naming file, key and expectation, or as
/// [`ConfigError::Several`] when there are more. Warnings (unknown keys) are logged.
pub fn load(config_dir: &Path, environment: Option<&str>) -> Result<Config, ConfigError> {
    load_dotenv_files(config_dir)?;
    let vars = |name: &str| std::env::var(name).ok();
    load_with_vars(config_dir, environment, &vars)
}

/// [`load`] for a command that reads only the database and the configuration's plain settings
/// (`reprocess status`, run on a monitoring host that holds no Box, DAM or Mailgun secret): a
/// `${VAR}` whose variable is not set expands to a placeholder of the right shape instead of
/// being an error (`https://unset.invalid/` for a `..._URL`, `0` for a `..._ID`,
/// `unset@unset.invalid` for `..._RECIPIENTS`, `unset.invalid` for a `..._DOMAIN`, else
/// `unset`). The placeholders are never meant to be used to contact anything: a caller must
/// not build clients from this configuration. Returns the configuration and the names of the
/// variables that were not set, sorted.
///
/// Errors: as [`load`] for every other problem (a malformed file, a bad value).
pub fn load_database_only(
    config_dir: &Path,
    environment: Option<&str>,
) -> Result<(Config, Vec<String>), ConfigError> {
    load_dotenv_files(config_dir)?;
    let unset = std::cell::RefCell::new(std::collections::BTreeSet::new());
    let vars = |name: &str| {
        std::env::var(name).ok().or_else(|| {
            // Looked up directly (not through `${...}`): absent means absent.
            if ["CS_ENVIRONMENT", "DATABASE_URL"].contains(&name) {
                return None;
            }
            unset.borrow_mut().insert(name.to_string());
            Some(format!("{}{}", tree::UNSET_MARK, unset_placeholder(name)))
        })
    };
    let config = load_with_vars(config_dir, environment, &vars)?;
    Ok((config, unset.into_inner().into_iter().collect()))
}

/// The value [`load_database_only`] gives an unset variable, by the shape its name suggests.
fn unset_placeholder(name: &str) -> &'static str {
    if name.ends_with("_URL") {
        "https://unset.invalid/"
    } else if name.ends_with("_ID") {
        "0"
    } else if name.ends_with("_RECIPIENTS") {
        "unset@unset.invalid"
    } else if name.ends_with("_DOMAIN") {
        "unset.invalid"
    } else {
        "unset"
    }
}

/// [`load`] without `.env` files and with `vars` as the environment (for tests and embedding):
/// `${VAR}`, `CS_ENVIRONMENT`, `DATABASE_URL` and `BOX_CONFIG_FILE` are looked up with `vars`.
///
/// Errors: as [`load`].
pub fn load_with_vars(
    config_dir: &Path,
    environment: Option<&str>,
    vars: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let (config, collected) = load_collecting(config_dir, environment, vars);
    let mut errors = Vec::new();
    for problem in collected.problems {
        match problem.severity {
            Severity::Error => errors.push(problem.error),
            Severity::Warning => tracing::warn!(
                file = %problem.error.file().display(),
                key = %problem.key(),
                hint = %problem.hint,
                "{}",
                problem.message()
            ),
        }
    }
    match (config, errors.len()) {
        (Some(config), 0) => Ok(config),
        (_, 1) => Err(errors.remove(0)),
        (_, _) => Err(ConfigError::Several(errors)),
    }
}

/// The one loader: reads every file with the readers recording into one [`Problems`]; the
/// configuration when no error was recorded, and everything collected.
pub(crate) fn load_collecting(
    config_dir: &Path,
    environment: Option<&str>,
    vars: &dyn Fn(&str) -> Option<String>,
) -> (Option<Config>, Collected) {
    let problems = Problems::default();
    let config = read_all(config_dir, environment, vars, &problems);
    let config = config.filter(|_| !problems.has_errors());
    (config, problems.into_collected())
}

/// The environment in effect and the overlay file to merge (`None`: none). Problems are recorded.
fn choose_overlay(
    root: &Section<'_>,
    config_dir: &Path,
    environment: Option<&str>,
    vars: &dyn Fn(&str) -> Option<String>,
) -> Result<(String, Option<PathBuf>), ConfigError> {
    let base_file = config_dir.join("config.yaml");
    let explicit = environment
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(str::to_string)
        .or_else(|| {
            vars("CS_ENVIRONMENT")
                .map(|name| name.trim().to_string())
                .filter(|name| !name.is_empty())
        });
    let declared = root.text_or("environment", "development")?;
    let environment_name = explicit.clone().unwrap_or_else(|| declared.clone());
    // The plan's `include:`: the overlay file, relative to the deployment root.
    let include = root.text("include")?;
    let valid_name = environment_name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid_name {
        return Err(root.error(
            "environment",
            format!(
                "expected an environment name made of letters, digits, \"-\" and \"_\" (e.g. staging), found {}",
                reader::shown(&environment_name)
            ),
        ));
    }
    let environments_dir = config_dir.join("environments");
    let named_overlay = environments_dir.join(format!("{environment_name}.yaml"));
    let deployment_root = deployment_root(config_dir);
    let overlay_file = match include {
        // `--env` / CS_ENVIRONMENT choose `environments/{name}.yaml` whatever `include:` says.
        Some(include) if explicit.is_none() => {
            let included = deployment_root.join(include);
            if !included.is_file() {
                return Err(ConfigError::Invalid {
                    file: base_file,
                    key: "include".to_string(),
                    message: format!(
                        "expected an overlay file (relative to the deployment root {}), found no file {}",
                        deployment_root.display(),
                        included.display()
                    ),
                });
            }
            included
        }
        _ => named_overlay,
    };
    if overlay_file.is_file() {
        return Ok((environment_name, Some(overlay_file)));
    }
    // An environment named by --env / CS_ENVIRONMENT needs its overlay (a typo must not run
    // production on the base file alone), except the one config.yaml itself declares
    // (`development` by default): that one is config.yaml alone.
    if explicit.is_some() && environment_name != declared {
        let mut available = available_environments(&environments_dir);
        if !available.contains(&declared) {
            available.push(declared);
            available.sort();
        }
        return Err(ConfigError::Invalid {
            file: overlay_file,
            key: "environment".to_string(),
            message: format!(
                "expected an overlay file for environment {environment_name:?} (available: {})",
                available.join(", ")
            ),
        });
    }
    tracing::debug!(environment = %environment_name, "no environment overlay file, using config.yaml alone");
    Ok((environment_name, None))
}

/// Reads every file into a [`Config`], recording problems in `problems`; `None` when a problem
/// stopped the reading (the reason is recorded).
fn read_all(
    config_dir: &Path,
    environment: Option<&str>,
    vars: &dyn Fn(&str) -> Option<String>,
    problems: &Problems,
) -> Option<Config> {
    let base_file = config_dir.join("config.yaml");
    let mut tree = match problems.read(&base_file) {
        Ok(tree) => tree,
        Err(error) => {
            problems.error(error);
            return None;
        }
    };
    let base_ctx = Ctx {
        vars,
        file: base_file.clone(),
        origins: Origins::default(),
        problems,
    };
    let chosen = Section::new(&base_ctx, "", Some(&tree))
        .and_then(|root| choose_overlay(&root, config_dir, environment, vars));
    let (environment_name, overlay_file) = match chosen {
        Ok(chosen) => chosen,
        Err(error) => {
            problems.error(error);
            return None;
        }
    };
    let deployment_root = deployment_root(config_dir);
    let mut origins = Origins::default();
    if let Some(overlay_file) = overlay_file {
        match problems.read(&overlay_file) {
            Ok(mut overlay) => {
                if let Some(map) = overlay.as_object_mut() {
                    map.remove("environment");
                    map.remove("include");
                }
                merge(&mut tree, overlay, "", &overlay_file, &mut origins);
            }
            Err(error) => problems.error(error),
        }
    }
    problems.keep_tree((
        String::new(),
        base_file.clone(),
        tree.clone(),
        origins.clone(),
    ));

    let ctx = Ctx {
        vars,
        file: base_file,
        origins,
        problems,
    };
    let root = match Section::new(&ctx, "", Some(&tree)) {
        Ok(root) => root,
        Err(error) => {
            problems.error(error);
            return None;
        }
    };
    root.mark_used(&["environment", "include"]);
    // The plan's incoming webhooks (A2->A3 pushed by Box): no role in a polling design.
    if root.has("webhook") {
        root.mark_used(&["webhook"]);
        tracing::debug!(
            "webhook: incoming webhooks are not used (changes are found by polling); section ignored"
        );
    }
    let logging = read_section(&root, "logging", |section| {
        sections::logging(section, &deployment_root)
    });
    // The plan's `fields.mappings_file`, relative to the deployment root.
    let mappings_file = read_section(&root, "fields", |section| {
        Ok(match section.text("mappings_file")? {
            Some(_) => section.path_or("mappings_file", "", &deployment_root)?,
            None => config_dir.join("field_mappings.yaml"),
        })
    })
    .unwrap_or_else(|| config_dir.join("field_mappings.yaml"));
    let database = read_section(&root, "database", |section| {
        sections::database(section, &deployment_root)
    });
    // `temp` before `box`: it holds the default place of `box.token_cache_file`.
    let temp = read_section(&root, "temp", |section| {
        sections::temp(section, &deployment_root)
    });
    let temp_dir = temp.as_ref().map_or_else(
        || std::env::temp_dir().join("content-scaling"),
        |temp| temp.dir.clone(),
    );
    let mut archive_retention_days = 0;
    let box_api = read_section(&root, "box", |section| {
        archive_retention_days = section.u64_or("archive_retention_days", 0, 0)?;
        sections::box_config(section, &deployment_root, &temp_dir)
    });
    let dam = read_section(&root, "dam", sections::dam);
    let polling = read_section(&root, "polling", sections::polling);
    let retry = read_section(&root, "retry", sections::retry);
    let email = match sections::email(&root, &deployment_root) {
        Ok(email) => Some(email),
        Err(error) => {
            problems.error(error);
            None
        }
    };
    let media = read_section(&root, "media", sections::media);
    let retention = read_section(&root, "retention", |section| {
        sections::retention(section, archive_retention_days)
    });
    let status = read_section(&root, "status", sections::status);
    let inline_webhooks = root.raw("webhooks").cloned();
    root.finish();

    let mappings = sections::field_mappings_file(&mappings_file, vars, &deployment_root, problems);
    let (field_mappings, naming, profiles) = match mappings {
        Ok(mappings) => (Some(mappings.0), Some(mappings.1), mappings.2),
        Err(error) => {
            problems.error(error);
            (None, None, BTreeMap::new())
        }
    };
    // Every profile a watched folder names exists (`default` may stay undefined: the defaults).
    for (index, folder) in box_api
        .iter()
        .flat_map(|box_api| box_api.watched_folders.iter())
        .enumerate()
    {
        if let Some(name) = &folder.profile {
            if name != "default" && !profiles.contains_key(name) && field_mappings.is_some() {
                let known: Vec<&str> = profiles.keys().map(String::as_str).collect();
                ctx.report(
                    &format!("box.watched_folders[{index}].profile"),
                    format!(
                        "expected default or a profile of {} (profiles: {}), found {name:?}",
                        mappings_file.display(),
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                );
            }
        }
    }
    let inline_webhooks_file = ctx.file_for("webhooks");
    let webhooks = sections::webhooks_file(
        &config_dir.join("webhooks.yaml"),
        vars,
        &environment_name,
        inline_webhooks.map(|value| (inline_webhooks_file.as_path(), value)),
        problems,
    );
    let webhooks = match webhooks {
        Ok(webhooks) => Some(webhooks),
        Err(error) => {
            problems.error(error);
            None
        }
    };
    let email_templates = email.as_ref().and_then(|email| {
        let templates_file = email
            .templates_path
            .clone()
            .unwrap_or_else(|| config_dir.join("email_templates.yaml"));
        match sections::email_templates_file(&templates_file, email.enabled, problems) {
            Ok(templates) => Some(templates),
            Err(error) => {
                problems.error(error);
                None
            }
        }
    });

    Some(Config {
        environment: environment_name,
        config_dir: config_dir.to_path_buf(),
        database: database?,
        box_api: box_api?,
        dam: dam?,
        polling: polling?,
        retry: retry?,
        temp: temp?,
        email: email?,
        media: media?,
        webhooks: webhooks?,
        field_mappings: field_mappings?,
        naming: naming?,
        profiles,
        email_templates: email_templates?,
        retention: retention?,
        status: status?,
        logging: logging.unwrap_or_default(),
    })
}

/// Reads the section `key` of `root` with `build`, then records its unknown keys; `None` (the
/// problem recorded) when `build` stopped.
fn read_section<T>(
    root: &Section<'_>,
    key: &str,
    build: impl FnOnce(&Section<'_>) -> Result<T, ConfigError>,
) -> Option<T> {
    let built = root.section(key).and_then(|section| {
        let value = build(&section)?;
        section.finish();
        Ok(value)
    });
    match built {
        Ok(value) => Some(value),
        Err(error) => {
            root.ctx().problems.error(error);
            None
        }
    }
}

/// Names of `environments/*.yaml`, sorted.
fn available_environments(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().to_string();
            name.strip_suffix(".yaml").map(str::to_string)
        })
        .collect();
    names.sort();
    names
}

/// The deployment root: the parent of the config directory (`.` for a config directory given
/// as a bare name such as `config`). Relative paths in the configuration and `.env` are taken
/// from here.
pub fn deployment_root(config_dir: &Path) -> PathBuf {
    config_dir
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// The one `.env` file the binaries read: `{deployment root}/.env`, next to the config
/// directory. A `.env` in the current working directory is not read (unless that directory is
/// the deployment root): a file planted where an operator happens to start a command must not
/// redirect `FFPROBE_PATH`, the Box token URL or any other setting.
pub fn dotenv_path(config_dir: &Path) -> PathBuf {
    deployment_root(config_dir).join(".env")
}

/// Loads [`dotenv_path`] when present (existing variables win), warning when it is readable by
/// group or others.
///
/// Errors: [`ConfigError::Parse`] for a malformed line (the line's text is not shown: it may hold
/// a secret), [`ConfigError::Io`] when a present file cannot be read.
fn load_dotenv_files(config_dir: &Path) -> Result<(), ConfigError> {
    let candidate = dotenv_path(config_dir);
    if !candidate.is_file() {
        return Ok(());
    }
    warn_if_shared(&candidate);
    dotenvy::from_path(&candidate).map_err(|error| dotenv_error(&candidate, error))?;
    tracing::debug!(file = %candidate.display(), "loaded environment variables from .env");
    Ok(())
}

#[cfg(unix)]
fn warn_if_shared(file: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(metadata) = std::fs::metadata(file) {
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                file = %file.display(),
                "{}: readable by group or others (mode {mode:o}) but it holds secrets; run: chmod 600 {}",
                file.display(),
                file.display()
            );
        }
    }
}

#[cfg(not(unix))]
fn warn_if_shared(_file: &Path) {}

/// A dotenvy error as a [`ConfigError`] that does not quote the offending line.
fn dotenv_error(file: &Path, error: dotenvy::Error) -> ConfigError {
    match error {
        dotenvy::Error::LineParse(line, column) => {
            let number = std::fs::read_to_string(file)
                .ok()
                .and_then(|text| text.lines().position(|candidate| candidate == line))
                .map_or(0, |index| index as u64 + 1);
            ConfigError::Parse {
                file: file.to_path_buf(),
                line: number,
                column: column as u64 + 1,
                message: "expected KEY=value (quote values with spaces or #); the line is not shown because it may hold a secret".to_string(),
            }
        }
        dotenvy::Error::Io(source) => ConfigError::Io {
            file: file.to_path_buf(),
            source,
        },
        other => ConfigError::Parse {
            file: file.to_path_buf(),
            line: 0,
            column: 0,
            message: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests;
