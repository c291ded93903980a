//! OpenText Media Management (OTMM) REST v6 client: session or OAuth2 login, campaign folder search,
//! folder and asset reads, streamed content download, multipart asset import and job polling, folder
//! metadata update (lock, PATCH, unlock) and lookup domains.
//!
//! The OTMM reference is not public: every endpoint and shape here follows `/work/shared/api-notes/otmm.md`
//! (gathered from OpenText's pyxecm `otmm.py` and other public clients) and the examples in
//! `/work/shared/fixtures/otmm/`; the import-job endpoint `GET /jobs/{id}` is this project's decision
//! (see the contract). Parsing is tolerant (ids as strings or numbers, optional fields).
//!
//! Auth: the session login keeps every cookie it gets (`JSESSIONID`, load-balancer cookies) and sends
//! `otmmauthtoken: <message_digest>`; OAuth2 sends `Authorization: Bearer`. Mutating calls (POST, PUT,
//! PATCH, DELETE) carry `X-Requested-By` (OTMM's CSRF filter). A 401 triggers one new login and one
//! more try. Idempotent calls are retried on 429/5xx/connection errors; imports are sent once.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use ureq::http::{header, Method, Request, Response};
use ureq::{Body, SendBody};

use crate::config::{DamAuth, DamConfig, DomainValidation};
use crate::http::{
    self as transport, encode_path_segment, encode_query_value, is_private, read_error_text,
    read_json, request, request_label, write_private_file, CallOptions, HttpContext, Multipart,
    RateLimit, Redirects, RetryPolicy, SendError, Timeouts,
};
use crate::secret::Secret;

#[cfg(test)]
mod wire_tests;

/// Path of the REST API under `dam.base_url`.
pub const API_PATH: &str = "/otmmapi/v6";

/// Page size of `/search/text` requests.
pub const SEARCH_PAGE_SIZE: usize = 100;

/// Page size of `/folders/{id}/children` requests.
pub const CHILDREN_PAGE_SIZE: usize = 100;

/// Value of `X-Requested-By` on the login request itself (no session id exists yet).
const LOGIN_REQUESTED_BY: &str = "content-scaling";

/// A folder: GET `/folders/{id}` -> `folder_resource.folder`.
#[derive(Debug, Clone, PartialEq)]
pub struct DamFolder {
    /// `asset_id` (40 hex characters).
    pub id: String,
    /// `name`.
    pub name: String,
    /// The whole `folder` object (metadata under `metadata.metadata_element_list`).
    pub json: Value,
}

/// An asset or folder as listed/searched/read: the `asset` object and the fields the pipeline uses.
#[derive(Debug, Clone, PartialEq)]
pub struct DamAsset {
    /// `asset_id`.
    pub id: String,
    /// `name` (empty if absent).
    pub name: String,
    /// `data_type == "CONTAINER"` or a `container_type_id` is present.
    pub is_folder: bool,
    /// `mime_type` (else `master_content_info.mime_type`).
    pub mime_type: Option<String>,
    /// `content_size` in bytes (else `master_content_info.content_size`).
    pub content_size: Option<u64>,
    /// The whole `asset` object.
    pub json: Value,
}

/// One value of a lookup domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainValue {
    /// `field_value.value`: what is stored in a field.
    pub value: String,
    /// `display_value`, trimmed (OTMM data carries stray spaces).
    pub display: String,
}

/// State of an import job (GET `/jobs/{id}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    /// Any status other than completed or failed (`IN_PROGRESS`, `QUEUED`, ...).
    InProgress,
    /// `COMPLETED`, with the new assets' ids (`asset_id_list`).
    Completed {
        /// Ids of the imported assets.
        asset_ids: Vec<String>,
    },
    /// `FAILED` / `ERROR` / `CANCELLED` / `ABORTED`, with OTMM's message.
    Failed {
        /// The job's `message`.
        message: String,
    },
}

/// Errors of the OTMM client. Messages never contain the password, client secret, session token or cookies.
#[derive(Debug, thiserror::Error)]
pub enum DamError {
    /// OTMM answered with an error status; `message` from `exception_body.message` (or a body excerpt),
    /// `endpoint` is `"METHOD /otmmapi/v6/..."` without the query. 404 also means "no permission".
    #[error("OTMM API {status} on {endpoint}: {message}")]
    Api {
        /// HTTP status (or `exception_body.http_response_code`).
        status: u16,
        /// Error message.
        message: String,
        /// `"GET /otmmapi/v6/folders/abc"`.
        endpoint: String,
    },
    /// Login refused (bad credentials, OAuth2 client refused), or still 401 after a new login.
    #[error("OTMM authentication failed: {0}")]
    Auth(String),
    /// Connection, timeout or protocol error (after retries for idempotent calls).
    #[error("OTMM transport error: {0}")]
    Transport(String),
    /// Local file error (import source, download destination).
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// 2xx reply we cannot understand, or a request that cannot be built (invalid base URL).
    #[error("unexpected OTMM response: {0}")]
    Decode(String),
}

impl DamError {
    /// Worth retrying later: HTTP 429 or 5xx (OTMM search failures are 500s), or a transport error.
    pub fn is_transient(&self) -> bool {
        match self {
            DamError::Api { status, .. } => *status == 429 || *status >= 500,
            DamError::Transport(_) => true,
            _ => false,
        }
    }

    /// The HTTP status of an [`DamError::Api`] error.
    pub fn status(&self) -> Option<u16> {
        match self {
            DamError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Decodes an OTMM error reply `{"exception_body":{"http_response_code","error_code","message","debug_message"}}`.
fn parse_failure(status: u16, endpoint: &str, text: &str) -> DamError {
    let body: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let exception = body.get("exception_body");
    let message = exception
        .and_then(|exception| exception.get("message"))
        .and_then(value_text)
        .filter(|message| !message.is_empty())
        .or_else(|| Some(transport::excerpt(text)).filter(|excerpt| !excerpt.is_empty()))
        .unwrap_or_else(|| {
            ureq::http::StatusCode::from_u16(status)
                .ok()
                .and_then(|code| code.canonical_reason())
                .unwrap_or("HTTP error")
                .to_string()
        });
    DamError::Api {
        status,
        message,
        endpoint: endpoint.to_string(),
    }
}

fn failure(endpoint: &str, mut response: Response<Body>) -> DamError {
    let status = response.status().as_u16();
    let text = read_error_text(&mut response);
    parse_failure(status, endpoint, &text)
}

/// Text of a JSON string or number.
fn value_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

fn value_u64(value: &Value) -> Option<u64> {
    match value {
        Value::Number(number) => number.as_u64().or_else(|| {
            let float = number.as_f64()?;
            (float.is_finite() && (0.0..1.8e19).contains(&float)).then(|| float.round() as u64)
        }),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

impl DamAsset {
    /// Reads an `asset` object (search results, folder children, GET /assets/{id}).
    pub fn from_json(asset: &Value) -> Result<Self, DamError> {
        let id = asset
            .get("asset_id")
            .and_then(value_text)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| DamError::Decode("asset without asset_id".to_string()))?;
        let master = asset.get("master_content_info");
        let is_folder = asset.get("data_type").and_then(Value::as_str) == Some("CONTAINER")
            || asset
                .get("container_type_id")
                .and_then(Value::as_str)
                .is_some_and(|kind| !kind.is_empty());
        Ok(Self {
            id,
            name: asset.get("name").and_then(value_text).unwrap_or_default(),
            is_folder,
            mime_type: asset
                .get("mime_type")
                .and_then(Value::as_str)
                .or_else(|| {
                    master
                        .and_then(|master| master.get("mime_type"))
                        .and_then(Value::as_str)
                })
                .map(str::to_string),
            content_size: asset.get("content_size").and_then(value_u64).or_else(|| {
                master
                    .and_then(|master| master.get("content_size"))
                    .and_then(value_u64)
            }),
            json: asset.clone(),
        })
    }
}

impl DamFolder {
    /// Reads a `folder` object.
    pub fn from_json(folder: &Value) -> Result<Self, DamError> {
        let id = folder
            .get("asset_id")
            .and_then(value_text)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| DamError::Decode("folder without asset_id".to_string()))?;
        Ok(Self {
            id,
            name: folder.get("name").and_then(value_text).unwrap_or_default(),
            json: folder.clone(),
        })
    }
}

/// The body of `PATCH /folders/{id}` setting one field to a lookup-domain value:
/// `{"edited_folder":{"data":{"metadata":[{"id":F,"type":"com.artesia.metadata.MetadataField",
/// "value":{"value":{"type":"com.artesia.metadata.DomainValue","field_value":{"type":"string","value":V}}}}]}}}`.
pub fn folder_field_patch(field_id: &str, value: &str) -> Value {
    json!({
        "edited_folder": {"data": {"metadata": [{
            "id": field_id,
            "type": "com.artesia.metadata.MetadataField",
            "value": {"value": {
                "type": "com.artesia.metadata.DomainValue",
                "field_value": {"type": "string", "value": value}
            }}
        }]}}
    })
}

/// The import `manifest` part: `{"upload_manifest":{"master_files":[{"file":{"file_name","file_type"}}]}}`.
pub fn import_manifest(file_name: &str, mime_type: &str) -> Value {
    json!({"upload_manifest": {"master_files": [{"file": {"file_name": file_name, "file_type": mime_type}}]}})
}

/// The `search_condition_list` of a scalar condition on one metadata field.
pub fn field_condition(field_id: &str, operator_id: &str, value: &str) -> Value {
    json!({"search_condition_list": {"search_condition": [{
        "type": "com.artesia.search.SearchScalarCondition",
        "metadata_field_id": field_id,
        "relational_operator_id": operator_id,
        "value": value
    }]}})
}

/// Reads `job_resource.job` into a [`JobState`].
pub fn parse_job(body: &Value) -> Result<JobState, DamError> {
    let job = body
        .pointer("/job_resource/job")
        .or_else(|| body.get("job"))
        .ok_or_else(|| DamError::Decode("job reply without job_resource.job".to_string()))?;
    let status = job
        .get("status")
        .and_then(Value::as_str)
        .unwrap_or("")
        .trim()
        .to_ascii_uppercase();
    Ok(match status.as_str() {
        "COMPLETED" | "COMPLETE" | "SUCCESS" | "SUCCEEDED" => JobState::Completed {
            asset_ids: job
                .get("asset_id_list")
                .and_then(Value::as_array)
                .map(|ids| ids.iter().filter_map(value_text).collect())
                .unwrap_or_default(),
        },
        "FAILED" | "ERROR" | "CANCELLED" | "CANCELED" | "ABORTED" => JobState::Failed {
            message: job
                .get("message")
                .and_then(value_text)
                .filter(|text| !text.is_empty())
                .unwrap_or_else(|| status.clone()),
        },
        _ => JobState::InProgress,
    })
}

/// Reads `lookup_domain_resource.lookup_domain.domainValues` (camelCase; snake_case accepted too).
pub fn parse_lookup_domain(body: &Value) -> Result<Vec<DomainValue>, DamError> {
    let domain = body
        .pointer("/lookup_domain_resource/lookup_domain")
        .ok_or_else(|| {
            DamError::Decode(
                "lookup domain reply without lookup_domain_resource.lookup_domain".to_string(),
            )
        })?;
    let values = domain
        .get("domainValues")
        .or_else(|| domain.get("domain_values"))
        .and_then(Value::as_array);
    Ok(values
        .map(|values| {
            values
                .iter()
                .filter_map(|entry| {
                    let value = entry.pointer("/field_value/value").and_then(value_text)?;
                    let display = entry
                        .get("display_value")
                        .and_then(value_text)
                        .map(|display| display.trim().to_string())
                        .filter(|display| !display.is_empty())
                        .unwrap_or_else(|| value.trim().to_string());
                    Some(DomainValue { value, display })
                })
                .collect()
        })
        .unwrap_or_default())
}

/// `name=value` pairs of `Set-Cookie` headers, joined for a `Cookie` header (a later cookie of the same
/// name replaces an earlier one).
fn cookie_header<'a>(set_cookies: impl Iterator<Item = &'a str>) -> String {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for set_cookie in set_cookies {
        let Some(pair) = set_cookie.split(';').next() else {
            continue;
        };
        let Some((name, value)) = pair.trim().split_once('=') else {
            continue;
        };
        let name = name.trim();
        if name.is_empty() {
            continue;
        }
        pairs.retain(|(existing, _)| existing != name);
        pairs.push((name.to_string(), value.trim().to_string()));
    }
    pairs
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// What authenticates our calls.
#[derive(Clone)]
enum Credentials {
    /// Session login: `otmmauthtoken` + cookies; `X-Requested-By: <session id>`.
    Session {
        session_id: String,
        token: Secret<String>,
        cookies: Secret<String>,
    },
    /// OAuth2: `Authorization: Bearer`; `X-Requested-By: <client id>`.
    Bearer {
        token: Secret<String>,
        requested_by: String,
        refresh_after: Option<Instant>,
    },
}

impl Credentials {
    fn apply(
        &self,
        mut builder: ureq::http::request::Builder,
        mutating: bool,
    ) -> ureq::http::request::Builder {
        match self {
            Credentials::Session {
                session_id,
                token,
                cookies,
            } => {
                if !token.expose().is_empty() {
                    builder = builder.header("otmmauthtoken", token.expose().as_str());
                }
                if !cookies.expose().is_empty() {
                    builder = builder.header(header::COOKIE, cookies.expose().as_str());
                }
                if mutating {
                    builder = builder.header("X-Requested-By", session_id.as_str());
                }
            }
            Credentials::Bearer {
                token,
                requested_by,
                ..
            } => {
                builder =
                    builder.header(header::AUTHORIZATION, format!("Bearer {}", token.expose()));
                if mutating {
                    builder = builder.header("X-Requested-By", requested_by.as_str());
                }
            }
        }
        builder
    }

    fn secret(&self) -> &str {
        match self {
            Credentials::Session { token, cookies, .. } => {
                if token.expose().is_empty() {
                    cookies.expose()
                } else {
                    token.expose()
                }
            }
            Credentials::Bearer { token, .. } => token.expose(),
        }
    }

    fn still_valid(&self) -> bool {
        match self {
            Credentials::Session { .. } => true,
            Credentials::Bearer { refresh_after, .. } => {
                refresh_after.is_none_or(|at| Instant::now() < at)
            }
        }
    }
}

/// Name of the lookup-domain cache file in the directory given to [`DamClient::with_lookup_cache`].
pub const LOOKUP_CACHE_FILE: &str = "dam-lookup-domains.json";

/// Lookup-domain values kept across passes (see [`DamClient::with_lookup_cache`]).
#[derive(Debug)]
struct LookupCache {
    /// The JSON file, or `None` for a cache in memory only.
    path: Option<PathBuf>,
    /// How long fetched values are used without asking OTMM again.
    ttl: Duration,
    /// `validate_domain_values.strict_mode`: never fall back to expired values.
    strict: bool,
    /// What this process knows (loaded from the file on first use).
    memory: Mutex<Option<LookupFile>>,
}

/// The cache file: `{format, api_base, domains: {id: {fetched_at, values: [{value, display}]}}}`.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct LookupFile {
    format: u32,
    api_base: String,
    domains: BTreeMap<String, CachedDomain>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct CachedDomain {
    /// Unix seconds.
    fetched_at: i64,
    values: Vec<CachedValue>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct CachedValue {
    value: String,
    display: String,
}

const LOOKUP_FORMAT: u32 = 1;

impl LookupCache {
    /// The cached entry of `domain_id` (fresh or not), loading the file on first use.
    fn entry(&self, api_base: &str, domain_id: &str) -> Option<CachedDomain> {
        let mut memory = self.memory.lock().unwrap_or_else(PoisonError::into_inner);
        let file = memory.get_or_insert_with(|| self.read(api_base));
        file.domains.get(domain_id).cloned()
    }

    fn read(&self, api_base: &str) -> LookupFile {
        let empty = LookupFile {
            format: LOOKUP_FORMAT,
            api_base: api_base.to_string(),
            domains: BTreeMap::new(),
        };
        let Some(path) = &self.path else {
            return empty;
        };
        let Ok(metadata) = std::fs::metadata(path) else {
            return empty;
        };
        if !is_private(&metadata) {
            tracing::warn!(path = %path.display(), "the lookup-domain cache is readable by group or others; ignoring it");
            return empty;
        }
        match std::fs::read(path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<LookupFile>(&bytes).ok())
        {
            Some(file) if file.format == LOOKUP_FORMAT && file.api_base == api_base => file,
            Some(_) => {
                tracing::debug!(path = %path.display(), "lookup-domain cache of another DAM; not used");
                empty
            }
            None => {
                tracing::warn!(path = %path.display(), "the lookup-domain cache is unreadable; ignoring it");
                empty
            }
        }
    }

    /// Records fresh values: in memory, and in the file (re-read first so that entries another pass
    /// wrote meanwhile are kept). Best effort: a write failure is logged.
    fn put(&self, api_base: &str, domain_id: &str, entry: CachedDomain) {
        let mut memory = self.memory.lock().unwrap_or_else(PoisonError::into_inner);
        let mut file = self.read(api_base);
        if let Some(known) = memory.take() {
            for (id, domain) in known.domains {
                file.domains.entry(id).or_insert(domain);
            }
        }
        file.domains.insert(domain_id.to_string(), entry);
        if let Some(path) = &self.path {
            let written = serde_json::to_vec(&file)
                .map_err(io::Error::other)
                .and_then(|bytes| write_private_file(path, &bytes));
            if let Err(error) = written {
                tracing::warn!(path = %path.display(), %error, "cannot write the lookup-domain cache");
            }
        }
        *memory = Some(file);
    }
}

/// OTMM client. Cheap to clone; clones share the login and the lookup-domain cache; `Send + Sync`.
#[derive(Clone)]
pub struct DamClient {
    http: HttpContext,
    api_base: String,
    auth: Arc<DamAuth>,
    credentials: Arc<Mutex<Option<Credentials>>>,
    timeouts: Timeouts,
    content_timeouts: Timeouts,
    import_job_timeout: Duration,
    lookup_cache: Option<Arc<LookupCache>>,
}

impl fmt::Debug for DamClient {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("DamClient")
            .field("api_base", &self.api_base)
            .field("auth", &self.auth)
            .field("policy", &self.http.policy)
            .field("timeouts", &self.timeouts)
            .field("content_timeouts", &self.content_timeouts)
            .finish_non_exhaustive()
    }
}

const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<DamClient>();
};

fn mutating(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

impl DamClient {
    /// A client for `{dam.base_url}/otmmapi/v6` with the configured auth, `max_retries` (base delay 500 ms),
    /// `connect_timeout_secs`/`read_timeout_secs` for metadata calls and `content_timeout_secs` (per socket
    /// read/write) for downloads and imports, and `max_requests_per_second` (OTMM documents no
    /// limit; ours keeps several workers from flooding it: one limiter per client, shared by its
    /// clones and threads). Logs in lazily, on the first call.
    pub fn new(cfg: &DamConfig, agent: ureq::Agent) -> Self {
        Self {
            http: HttpContext {
                agent,
                limit: RateLimit::per_second(cfg.max_requests_per_second),
                policy: RetryPolicy::new(cfg.max_retries),
            },
            api_base: format!("{}{API_PATH}", cfg.base_url.trim_end_matches('/')),
            auth: Arc::new(cfg.auth.clone()),
            credentials: Arc::new(Mutex::new(None)),
            timeouts: Timeouts::from_secs(cfg.connect_timeout_secs, cfg.read_timeout_secs),
            content_timeouts: Timeouts::from_secs(
                cfg.connect_timeout_secs,
                cfg.content_timeout_secs,
            )
            .for_content(),
            import_job_timeout: Duration::from_secs(cfg.import_job_timeout_secs),
            lookup_cache: None,
        }
    }

    /// Keeps lookup-domain values across passes in `{dir}/`[`LOOKUP_CACHE_FILE`] (private JSON, written
    /// atomically; keyed by the DAM's URL), reused for `validation.cache_ttl_hours` (0 = always ask OTMM).
    /// When a refresh fails for a passing reason (DAM down) and `validation.strict_mode` is false, the
    /// expired values are used with a warning (a stale list can at worst cause a warning then); in strict
    /// mode the error is returned (the file is retried later rather than rejected against a stale list).
    /// Without this call [`DamClient::lookup_domain`] always asks OTMM.
    pub fn with_lookup_cache(mut self, dir: &Path, validation: &DomainValidation) -> Self {
        self.lookup_cache = Some(Arc::new(LookupCache {
            path: Some(dir.join(LOOKUP_CACHE_FILE)),
            ttl: Duration::from_secs(validation.cache_ttl_hours.saturating_mul(3600)),
            strict: validation.strict_mode,
            memory: Mutex::new(None),
        }));
        self
    }

    /// Replaces the retry policy (tests use [`RetryPolicy::fast`]).
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.http.policy = policy;
        self
    }

    // ----- auth -----

    fn credentials(&self) -> Result<Credentials, DamError> {
        let mut cached = self
            .credentials
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(credentials) = cached.as_ref() {
            if credentials.still_valid() {
                return Ok(credentials.clone());
            }
        }
        *cached = None;
        let fresh = self.login()?;
        *cached = Some(fresh.clone());
        Ok(fresh)
    }

    fn forget_credentials(&self, used: &Credentials) {
        let mut cached = self
            .credentials
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if cached
            .as_ref()
            .is_some_and(|credentials| credentials.secret() == used.secret())
        {
            *cached = None;
        }
    }

    /// Session: POST `/sessions` form `username`, `password`, reply `session_resource.session.{id,message_digest}`
    /// and cookies. OAuth2: POST `auth_url` form `grant_type=client_credentials`, `client_id`, `client_secret`,
    /// reply `{access_token, expires_in}`. Source: api-notes/otmm.md "Auth".
    fn login(&self) -> Result<Credentials, DamError> {
        match &*self.auth {
            DamAuth::Session { username, password } => {
                let url = format!("{}/sessions", self.api_base);
                let label = request_label(&Method::POST, &url);
                let mut response = self.send_form(
                    &url,
                    &label,
                    &[
                        ("username", username.as_str()),
                        ("password", password.expose().as_str()),
                    ],
                )?;
                if !response.status().is_success() {
                    return Err(login_failure(&label, &format!("as {username}"), response));
                }
                let cookies = cookie_header(
                    response
                        .headers()
                        .get_all(header::SET_COOKIE)
                        .iter()
                        .filter_map(|value| value.to_str().ok()),
                );
                let body: Value = read_json(&mut response)
                    .map_err(|message| DamError::Decode(format!("{label}: {message}")))?;
                let session = body.pointer("/session_resource/session");
                let session_id = session
                    .and_then(|session| session.get("id"))
                    .and_then(value_text)
                    .unwrap_or_default();
                let token = session
                    .and_then(|session| session.get("message_digest"))
                    .and_then(value_text)
                    .unwrap_or_default();
                if token.is_empty() && cookies.is_empty() {
                    return Err(DamError::Auth(format!(
                        "{label}: the reply has neither session_resource.session.message_digest nor a cookie"
                    )));
                }
                tracing::debug!(session_id = %session_id, "logged in to OTMM");
                Ok(Credentials::Session {
                    session_id,
                    token: Secret::new(token),
                    cookies: Secret::new(cookies),
                })
            }
            DamAuth::OAuth2 {
                auth_url,
                client_id,
                client_secret,
            } => {
                let label = request_label(&Method::POST, auth_url);
                let mut response = self.send_form(
                    auth_url,
                    &label,
                    &[
                        ("grant_type", "client_credentials"),
                        ("client_id", client_id.as_str()),
                        ("client_secret", client_secret.expose().as_str()),
                    ],
                )?;
                if !response.status().is_success() {
                    return Err(login_failure(
                        &label,
                        &format!("for client {client_id}"),
                        response,
                    ));
                }
                let body: Value = read_json(&mut response)
                    .map_err(|message| DamError::Decode(format!("{label}: {message}")))?;
                let token = body
                    .get("access_token")
                    .or_else(|| body.pointer("/token_info/oauth_token/accessToken"))
                    .and_then(value_text)
                    .filter(|token| !token.is_empty())
                    .ok_or_else(|| {
                        DamError::Auth(format!("{label}: the reply has no access_token"))
                    })?;
                let lifetime = body
                    .get("expires_in")
                    .or_else(|| body.pointer("/token_info/oauth_token/expires_in"))
                    .and_then(value_u64);
                let refresh_after = lifetime.map(|lifetime| {
                    Instant::now() + Duration::from_secs(lifetime - 60.min(lifetime / 2))
                });
                tracing::debug!(expires_in_secs = ?lifetime, "obtained an OTMM OAuth2 token");
                Ok(Credentials::Bearer {
                    token: Secret::new(token),
                    requested_by: client_id.clone(),
                    refresh_after,
                })
            }
        }
    }

    /// An unauthenticated form POST (login), retried on transient failures.
    fn send_form(
        &self,
        url: &str,
        label: &str,
        pairs: &[(&str, &str)],
    ) -> Result<Response<Body>, DamError> {
        let options = CallOptions {
            label,
            retry: true,
            timeouts: self.timeouts,
            redirects: Redirects::Manual,
            retry_reply: None,
        };
        let mut make = || {
            transport::form(
                request(Method::POST, url)
                    .header(header::ACCEPT, "application/json")
                    .header("X-Requested-By", LOGIN_REQUESTED_BY),
                pairs,
            )
            .map_err(|error| invalid_request(label, error))
        };
        self.send(&options, &mut make)
    }

    // ----- plumbing -----

    fn send(
        &self,
        options: &CallOptions<'_>,
        make: &mut dyn FnMut() -> Result<Request<SendBody<'static>>, DamError>,
    ) -> Result<Response<Body>, DamError> {
        transport::execute(&self.http, options, make).map_err(|error| match error {
            SendError::Build(error) => error,
            SendError::Transport { error, attempts } => {
                if transport::is_retryable_transport(&error) {
                    DamError::Transport(format!(
                        "{}: {error} (after {attempts} attempt(s))",
                        options.label
                    ))
                } else {
                    invalid_request(options.label, error)
                }
            }
        })
    }

    /// An authenticated call (`Accept: application/json`, credentials, `X-Requested-By` when mutating);
    /// on 401 one new login and one more try — only when `retry` (the call is idempotent); a
    /// non-idempotent call answered 401 forgets the session and returns [`DamError::Auth`].
    fn call(
        &self,
        method: &Method,
        url: &str,
        retry: bool,
        timeouts: Timeouts,
        finish: &dyn Fn(
            ureq::http::request::Builder,
        ) -> Result<Request<SendBody<'static>>, DamError>,
    ) -> Result<Response<Body>, DamError> {
        let label = request_label(method, url);
        let options = CallOptions {
            label: &label,
            retry,
            timeouts,
            redirects: Redirects::FollowWithoutAuth,
            retry_reply: None,
        };
        let mutating = mutating(method);
        let mut relogged = false;
        loop {
            let credentials = self.credentials()?;
            let mut make = || {
                finish(credentials.apply(
                    request(method.clone(), url).header(header::ACCEPT, "application/json"),
                    mutating,
                ))
            };
            let response = self.send(&options, &mut make)?;
            if response.status().as_u16() == 401 {
                if !retry {
                    // A request that is not idempotent (an import) is never sent twice here: a
                    // 401 may follow a write that took effect. The next attempt logs in again and
                    // first looks the asset up by its marker.
                    self.forget_credentials(&credentials);
                    let error = failure(&label, response);
                    return Err(DamError::Auth(format!(
                        "refused; not re-sent, the next attempt logs in again: {error}"
                    )));
                }
                if relogged {
                    let error = failure(&label, response);
                    return Err(DamError::Auth(format!(
                        "still refused after a new login: {error}"
                    )));
                }
                tracing::info!(request = %label, "OTMM answered 401; logging in again and trying once more");
                self.forget_credentials(&credentials);
                relogged = true;
                continue;
            }
            return Ok(response);
        }
    }

    fn get_json(&self, url: &str) -> Result<Value, DamError> {
        let label = request_label(&Method::GET, url);
        let mut response = self.call(&Method::GET, url, true, self.timeouts, &|builder| {
            transport::empty_body(builder).map_err(|error| invalid_request(&label, error))
        })?;
        if !response.status().is_success() {
            return Err(failure(&label, response));
        }
        read_json(&mut response).map_err(|message| DamError::Decode(format!("{label}: {message}")))
    }

    /// An idempotent mutating call with a form or JSON body, expecting 2xx; returns the body text.
    fn mutate(
        &self,
        method: &Method,
        url: &str,
        body: MutationBody<'_>,
    ) -> Result<String, DamError> {
        let label = request_label(method, url);
        let mut response = self.call(method, url, true, self.timeouts, &|builder| {
            match body {
                MutationBody::Form(pairs) => transport::form(builder, pairs),
                MutationBody::Json(value) => transport::json_body(builder, value),
            }
            .map_err(|error| invalid_request(&label, error))
        })?;
        if !response.status().is_success() {
            return Err(failure(&label, response));
        }
        Ok(read_error_text(&mut response))
    }

    // ----- search, folders, assets -----

    /// Folders whose field `field_id` matches `value` under `operator_id` (e.g. campaign status "A1" with
    /// `ARTESIA.OPERATOR.CHAR.CONTAINS`), at most `limit`.
    ///
    /// GET `/search/text?keyword_query=*&load_type=metadata&level_of_detail=full&after=N&limit=M&search_condition_list=<JSON>`
    /// (JSON fully percent-encoded), paged with `after += hit_count` until `total_hit_count` or `limit`.
    /// Reads `search_result_resource.asset_list` (falls back to GET `/folders/{id}` for each id of
    /// `search_result.asset_id_list` when the list is absent). Source: api-notes/otmm.md "Search".
    pub fn search_folders_by_field(
        &self,
        field_id: &str,
        operator_id: &str,
        value: &str,
        limit: usize,
    ) -> Result<Vec<DamAsset>, DamError> {
        let condition = field_condition(field_id, operator_id, value).to_string();
        let mut results: Vec<DamAsset> = Vec::new();
        let mut after: u64 = 0;
        while results.len() < limit {
            let page_size = (limit - results.len()).min(SEARCH_PAGE_SIZE);
            let url = format!(
                "{}/search/text?keyword_query={}&load_type=metadata&level_of_detail=full&after={after}&limit={page_size}&search_condition_list={}",
                self.api_base,
                encode_query_value("*"),
                encode_query_value(&condition)
            );
            let body = self.get_json(&url)?;
            let resource = body.get("search_result_resource");
            let result = resource.and_then(|resource| resource.get("search_result"));
            let listed: Vec<Value> = resource
                .and_then(|resource| resource.get("asset_list"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let ids: Vec<String> = result
                .and_then(|result| result.get("asset_id_list"))
                .and_then(Value::as_array)
                .map(|ids| ids.iter().filter_map(value_text).collect())
                .unwrap_or_default();
            let received = if !listed.is_empty() {
                for asset in &listed {
                    results.push(DamAsset::from_json(asset)?);
                }
                listed.len() as u64
            } else {
                for id in &ids {
                    let folder = self.get_folder(id)?;
                    results.push(DamAsset::from_json(&folder.json)?);
                }
                ids.len() as u64
            };
            let hit_count = result
                .and_then(|result| result.get("hit_count"))
                .and_then(value_u64)
                .unwrap_or(received);
            let total = result
                .and_then(|result| result.get("total_hit_count"))
                .and_then(value_u64);
            if hit_count == 0 || received == 0 {
                break;
            }
            after += hit_count;
            if total.is_some_and(|total| after >= total) {
                break;
            }
        }
        results.truncate(limit);
        Ok(results)
    }

    /// GET `/folders/{id}` -> `folder_resource.folder`. Source: api-notes/otmm.md "Folders",
    /// fixtures/otmm/campaign_folder.json.
    pub fn get_folder(&self, id: &str) -> Result<DamFolder, DamError> {
        let url = format!("{}/folders/{}", self.api_base, encode_path_segment(id));
        let body = self.get_json(&url)?;
        let folder = body.pointer("/folder_resource/folder").ok_or_else(|| {
            DamError::Decode(format!(
                "GET {API_PATH}/folders/{id}: no folder_resource.folder"
            ))
        })?;
        DamFolder::from_json(folder)
    }

    /// Every child (assets and folders) of a folder: GET `/folders/{id}/children?load_type=metadata&after=N&limit=100`
    /// -> `folder_children.asset_list`, paged until a short page (or `collection_summary.total_number_of_items`).
    /// Source: api-notes/otmm.md "Folders".
    pub fn list_children(&self, folder_id: &str) -> Result<Vec<DamAsset>, DamError> {
        let mut children: Vec<DamAsset> = Vec::new();
        let mut after: usize = 0;
        loop {
            let url = format!(
                "{}/folders/{}/children?load_type=metadata&after={after}&limit={CHILDREN_PAGE_SIZE}",
                self.api_base,
                encode_path_segment(folder_id)
            );
            let body = self.get_json(&url)?;
            let page = body
                .pointer("/folder_children/asset_list")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let total = body
                .pointer("/folder_children/collection_summary/total_number_of_items")
                .and_then(value_u64);
            let received = page.len();
            let mut new = 0;
            for asset in &page {
                let asset = DamAsset::from_json(asset)?;
                if !children.iter().any(|child| child.id == asset.id) {
                    children.push(asset);
                    new += 1;
                }
            }
            if received < CHILDREN_PAGE_SIZE || new == 0 {
                break;
            }
            after += received;
            if total.is_some_and(|total| after as u64 >= total) {
                break;
            }
        }
        Ok(children)
    }

    /// GET `/assets/{id}?load_type=metadata&level_of_detail=full` -> `asset_resource.asset` (fields nested in
    /// categories). Source: api-notes/otmm.md "Assets", fixtures/otmm/master_asset.json.
    pub fn get_asset(&self, id: &str) -> Result<DamAsset, DamError> {
        let url = format!(
            "{}/assets/{}?load_type=metadata&level_of_detail=full",
            self.api_base,
            encode_path_segment(id)
        );
        let body = self.get_json(&url)?;
        let asset = body.pointer("/asset_resource/asset").ok_or_else(|| {
            DamError::Decode(format!(
                "GET {API_PATH}/assets/{id}: no asset_resource.asset"
            ))
        })?;
        DamAsset::from_json(asset)
    }

    /// The first child of `folder_id` named exactly `name` (via [`DamClient::list_children`]).
    pub fn find_asset_in_folder(
        &self,
        folder_id: &str,
        name: &str,
    ) -> Result<Option<DamAsset>, DamError> {
        Ok(self
            .list_children(folder_id)?
            .into_iter()
            .find(|asset| asset.name == name))
    }

    /// Downloads an asset's master content to `dest` and returns the size in bytes: GET `/assets/{id}/contents`,
    /// streamed into a private temporary file next to `dest` (content timeout), renamed when complete.
    /// Transport errors, also mid-body, restart the download (up to `max_retries`).
    /// Source: api-notes/otmm.md "Assets".
    pub fn download_to(&self, asset_id: &str, dest: &Path) -> Result<u64, DamError> {
        let url = format!(
            "{}/assets/{}/contents",
            self.api_base,
            encode_path_segment(asset_id)
        );
        let label = request_label(&Method::GET, &url);
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let outcome = self
                .call(
                    &Method::GET,
                    &url,
                    true,
                    self.content_timeouts,
                    &|builder| {
                        transport::empty_body(builder.header(header::ACCEPT, "*/*"))
                            .map_err(|error| invalid_request(&label, error))
                    },
                )
                .and_then(|response| {
                    if response.status().is_success() {
                        stream_to_file(response, &label, dest)
                    } else {
                        Err(failure(&label, response))
                    }
                });
            match outcome {
                Ok(bytes) => return Ok(bytes),
                Err(error @ DamError::Transport(_)) if attempt <= self.http.policy.max_retries => {
                    let delay = self.http.policy.delay(attempt, None);
                    tracing::warn!(request = %label, attempt, error = %error,
                        delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX), "download attempt failed, retrying");
                    thread::sleep(delay);
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Imports a file as a new asset in `folder_id` and returns the import job id.
    ///
    /// POST `/assets` multipart (UTF-8): `asset_representation` (application/json, the caller's
    /// `{"asset_resource":{"asset":{...}}}`), `parent_folder_id`, `manifest` (application/json,
    /// [`import_manifest`]), `files` (the file streamed from `path`, filename `file_name`, type `mime_type`).
    /// Reply 202/200/201 `{"job_handle":{"job_id":"1125"}}`. Not retried (not idempotent): on a transport
    /// error the caller must look for the asset ([`DamClient::find_asset_in_folder`]) before importing again.
    /// Source: api-notes/otmm.md "Import".
    pub fn import_asset(
        &self,
        folder_id: &str,
        path: &Path,
        file_name: &str,
        mime_type: &str,
        asset_representation: &Value,
    ) -> Result<String, DamError> {
        let url = format!("{}/assets", self.api_base);
        let label = request_label(&Method::POST, &url);
        let form = Multipart::new()
            .json("asset_representation", asset_representation)
            .text("parent_folder_id", folder_id)
            .json("manifest", &import_manifest(file_name, mime_type))
            .file("files", file_name, mime_type, path)
            .map_err(|error| {
                DamError::Io(io::Error::new(
                    error.kind(),
                    format!("import source {}: {error}", path.display()),
                ))
            })?;
        let mut response = self.call(
            &Method::POST,
            &url,
            false,
            self.content_timeouts,
            &|builder| form.into_request(builder).map_err(DamError::Io),
        )?;
        if !response.status().is_success() {
            return Err(failure(&label, response));
        }
        let body: Value = read_json(&mut response)
            .map_err(|message| DamError::Decode(format!("{label}: {message}")))?;
        body.pointer("/job_handle/job_id")
            .or_else(|| body.pointer("/import_job_handle/job_id"))
            .or_else(|| body.get("job_id"))
            .and_then(value_text)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| DamError::Decode(format!("{label}: no job_handle.job_id in the reply")))
    }

    /// State of an import job: GET `/jobs/{id}` -> `{"job_resource":{"job":{"job_id","status","asset_id_list","message"}}}`
    /// (this project's contract; the OTMM job path is unconfirmed).
    pub fn job_state(&self, job_id: &str) -> Result<JobState, DamError> {
        let url = format!("{}/jobs/{}", self.api_base, encode_path_segment(job_id));
        parse_job(&self.get_json(&url)?)
    }

    /// Polls [`DamClient::job_state`] (every 250 ms, doubling up to 5 s) until the job is no longer in
    /// progress or `timeout` (default `dam.import_job_timeout_secs`) has passed; returns the last state
    /// (`InProgress` on timeout: the job stays in flight, not failed).
    pub fn wait_for_job(
        &self,
        job_id: &str,
        timeout: Option<Duration>,
    ) -> Result<JobState, DamError> {
        let deadline = Instant::now() + timeout.unwrap_or(self.import_job_timeout);
        let mut pause = Duration::from_millis(250);
        loop {
            let state = self.job_state(job_id)?;
            let now = Instant::now();
            if state != JobState::InProgress || now >= deadline {
                return Ok(state);
            }
            thread::sleep(pause.min(deadline - now));
            pause = (pause * 2).min(Duration::from_secs(5));
        }
    }

    /// Sets a folder field (the campaign status) to `value`: PUT `/assets/{id}/state` form `action=lock`,
    /// PATCH `/folders/{id}` with [`folder_field_patch`] (the value is always sent in the lookup-domain
    /// `DomainValue` shape, as the campaign status field is a domain field), then PUT `/assets/{id}/state`
    /// `action=unlock`, also when the PATCH failed (the PATCH error wins; an unlock failure after a
    /// successful PATCH is returned). Source: api-notes/otmm.md "Folders".
    pub fn set_folder_field(
        &self,
        folder_id: &str,
        field_id: &str,
        value: &str,
    ) -> Result<(), DamError> {
        let state_url = format!(
            "{}/assets/{}/state",
            self.api_base,
            encode_path_segment(folder_id)
        );
        let folder_url = format!(
            "{}/folders/{}",
            self.api_base,
            encode_path_segment(folder_id)
        );
        self.mutate(
            &Method::PUT,
            &state_url,
            MutationBody::Form(&[("action", "lock")]),
        )?;
        let patched = self.mutate(
            &Method::PATCH,
            &folder_url,
            MutationBody::Json(&folder_field_patch(field_id, value)),
        );
        let unlocked = self.mutate(
            &Method::PUT,
            &state_url,
            MutationBody::Form(&[("action", "unlock")]),
        );
        match (patched, unlocked) {
            (Ok(_), Ok(_)) => Ok(()),
            (Err(error), Ok(_)) => Err(error),
            (Err(error), Err(unlock_error)) => {
                tracing::warn!(folder_id, error = %unlock_error, "could not unlock the folder after a failed update");
                Err(error)
            }
            (Ok(_), Err(unlock_error)) => Err(unlock_error),
        }
    }

    /// Values of a lookup domain: GET `/lookupdomains/{id}` -> `lookup_domain_resource.lookup_domain.domainValues[]`
    /// (`field_value.value`, trimmed `display_value`), through the cache of
    /// [`DamClient::with_lookup_cache`] when set. Source: api-notes/otmm.md "Lookup domains",
    /// fixtures/otmm/lookup_domain_asset_type.json.
    pub fn lookup_domain(&self, domain_id: &str) -> Result<Vec<DomainValue>, DamError> {
        let Some(cache) = &self.lookup_cache else {
            return self.fetch_lookup_domain(domain_id);
        };
        let now = jiff::Timestamp::now().as_second();
        let ttl = i64::try_from(cache.ttl.as_secs()).unwrap_or(i64::MAX);
        let known = cache.entry(&self.api_base, domain_id);
        let to_values = |entry: &CachedDomain| -> Vec<DomainValue> {
            entry
                .values
                .iter()
                .map(|value| DomainValue {
                    value: value.value.clone(),
                    display: value.display.clone(),
                })
                .collect()
        };
        if let Some(entry) = &known {
            let age = now.saturating_sub(entry.fetched_at);
            if (0..ttl).contains(&age) {
                tracing::debug!(domain_id, age_secs = age, "lookup domain from the cache");
                return Ok(to_values(entry));
            }
        }
        match self.fetch_lookup_domain(domain_id) {
            Ok(values) => {
                if ttl > 0 {
                    let entry = CachedDomain {
                        fetched_at: now,
                        values: values
                            .iter()
                            .map(|value| CachedValue {
                                value: value.value.clone(),
                                display: value.display.clone(),
                            })
                            .collect(),
                    };
                    cache.put(&self.api_base, domain_id, entry);
                }
                Ok(values)
            }
            Err(error) if error.is_transient() && !cache.strict => match &known {
                Some(entry) => {
                    tracing::warn!(domain_id, error = %error,
                        "lookup domain could not be refreshed; using the expired cached values (strict_mode is off)");
                    Ok(to_values(entry))
                }
                None => Err(error),
            },
            Err(error) => Err(error),
        }
    }

    /// GET `/lookupdomains/{id}` without the cache.
    fn fetch_lookup_domain(&self, domain_id: &str) -> Result<Vec<DomainValue>, DamError> {
        let url = format!(
            "{}/lookupdomains/{}",
            self.api_base,
            encode_path_segment(domain_id)
        );
        parse_lookup_domain(&self.get_json(&url)?)
    }
}

#[derive(Clone, Copy)]
enum MutationBody<'a> {
    Form(&'a [(&'a str, &'a str)]),
    Json(&'a Value),
}

fn invalid_request(label: &str, error: impl fmt::Display) -> DamError {
    DamError::Decode(format!("cannot build request {label}: {error}"))
}

fn login_failure(label: &str, who: &str, response: Response<Body>) -> DamError {
    let status = response.status().as_u16();
    let error = failure(label, response);
    if status == 429 || status >= 500 {
        return error;
    }
    DamError::Auth(format!("login {who} refused: {error}"))
}

/// Streams a body into a temporary file next to `dest` and renames it.
fn stream_to_file(response: Response<Body>, label: &str, dest: &Path) -> Result<u64, DamError> {
    let directory = match dest.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let io_error = |context: &str, error: io::Error| {
        DamError::Io(io::Error::new(
            error.kind(),
            format!("{context} {}: {error}", dest.display()),
        ))
    };
    let mut temporary = tempfile::Builder::new()
        .prefix(".dam-download-")
        .suffix(".part")
        .tempfile_in(directory)
        .map_err(|error| io_error("cannot create a temporary file for", error))?;
    let mut reader = response.into_body().into_reader();
    let mut buffer = vec![0u8; 128 * 1024];
    let mut total: u64 = 0;
    loop {
        let read = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => {
                return Err(DamError::Transport(format!(
                    "{label}: body interrupted after {total} bytes: {error}"
                )))
            }
        };
        temporary
            .write_all(&buffer[..read])
            .map_err(|error| io_error("cannot write", error))?;
        total += read as u64;
    }
    temporary
        .flush()
        .map_err(|error| io_error("cannot write", error))?;
    temporary
        .as_file()
        .sync_all()
        .map_err(|error| io_error("cannot write", error))?;
    temporary
        .persist(dest)
        .map_err(|error| io_error("cannot move the download to", error.error))?;
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Value {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/fixtures/otmm")
            .join(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).unwrap(),
            Err(_) => Value::Null,
        }
    }

    #[test]
    fn exception_body_becomes_api_error() {
        let body = r#"{"exception_body":{"http_response_code":404,"error_code":"ASSET_NOT_FOUND",
            "message":"The asset could not be found.","debug_message":"com.artesia..."}}"#;
        let error = parse_failure(404, "GET /otmmapi/v6/assets/abc", body);
        assert_eq!(
            error.to_string(),
            "OTMM API 404 on GET /otmmapi/v6/assets/abc: The asset could not be found."
        );
        assert!(!error.is_transient());
        let error = parse_failure(500, "GET /otmmapi/v6/search/text", "");
        assert_eq!(
            error.to_string(),
            "OTMM API 500 on GET /otmmapi/v6/search/text: Internal Server Error"
        );
        assert!(error.is_transient());
        assert!(DamError::Transport("reset".into()).is_transient());
        assert!(!DamError::Auth("no".into()).is_transient());
    }

    #[test]
    fn folder_and_asset_from_fixtures() {
        let folder = fixture("campaign_folder.json");
        if folder.is_null() {
            return; // fixtures live outside the repository
        }
        let folder =
            DamFolder::from_json(folder.pointer("/folder_resource/folder").unwrap()).unwrap();
        assert_eq!(folder.id, "9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b");
        assert_eq!(folder.name, "C-2026-0142 Nutella Breakfast Moments");
        let as_asset = DamAsset::from_json(&folder.json).unwrap();
        assert!(as_asset.is_folder);

        let asset = fixture("master_asset.json");
        let asset = DamAsset::from_json(asset.pointer("/asset_resource/asset").unwrap()).unwrap();
        assert_eq!(asset.id, "3f1c2a9d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a39");
        assert!(!asset.is_folder);
        assert_eq!(asset.mime_type.as_deref(), Some("video/mp4"));
        assert_eq!(asset.content_size, Some(1_055_736));

        let domain = parse_lookup_domain(&fixture("lookup_domain_asset_type.json")).unwrap();
        assert_eq!(domain.len(), 6);
        assert_eq!(
            domain[2],
            DomainValue {
                value: "banner".into(),
                display: "Banner".into()
            }
        );
    }

    #[test]
    fn lookup_domain_tolerates_snake_case_and_numbers() {
        let body = json!({"lookup_domain_resource": {"lookup_domain": {"domain_id": "X", "domain_values": [
            {"field_value": {"type": "string", "value": 213}, "display_value": " Active Access "},
            {"field_value": {"type": "string", "value": "EN"}},
            {"display_value": "broken"}
        ]}}});
        assert_eq!(
            parse_lookup_domain(&body).unwrap(),
            vec![
                DomainValue {
                    value: "213".into(),
                    display: "Active Access".into()
                },
                DomainValue {
                    value: "EN".into(),
                    display: "EN".into()
                }
            ]
        );
        assert!(parse_lookup_domain(&json!({})).is_err());
    }

    #[test]
    fn jobs() {
        let done = json!({"job_resource": {"job": {"job_id": "1125", "status": "COMPLETED", "asset_id_list": ["a1"], "message": ""}}});
        assert_eq!(
            parse_job(&done).unwrap(),
            JobState::Completed {
                asset_ids: vec!["a1".into()]
            }
        );
        let running = json!({"job_resource": {"job": {"job_id": 1125, "status": "IN_PROGRESS"}}});
        assert_eq!(parse_job(&running).unwrap(), JobState::InProgress);
        let failed =
            json!({"job_resource": {"job": {"status": "FAILED", "message": "bad metadata"}}});
        assert_eq!(
            parse_job(&failed).unwrap(),
            JobState::Failed {
                message: "bad metadata".into()
            }
        );
        assert!(parse_job(&json!({"nope": 1})).is_err());
    }

    #[test]
    fn request_bodies() {
        assert_eq!(
            folder_field_patch("FERRERO.FIELD.CAMPAIGN STATUS", "A2"),
            json!({"edited_folder": {"data": {"metadata": [{"id": "FERRERO.FIELD.CAMPAIGN STATUS",
                "type": "com.artesia.metadata.MetadataField", "value": {"value": {"type": "com.artesia.metadata.DomainValue",
                "field_value": {"type": "string", "value": "A2"}}}}]}}})
        );
        assert_eq!(
            import_manifest("x.mp4", "video/mp4"),
            json!({"upload_manifest": {"master_files": [{"file": {"file_name": "x.mp4", "file_type": "video/mp4"}}]}})
        );
        let condition = field_condition("F", "ARTESIA.OPERATOR.CHAR.CONTAINS", "A1").to_string();
        let encoded = encode_query_value(&condition);
        assert!(
            encoded.starts_with("%7B%22search%5Fcondition%5Flist%22")
                && !encoded.contains(['{', '[', '"', ' ']),
            "{encoded}"
        );
    }

    #[test]
    fn cookies_are_collected() {
        let header = cookie_header(
            [
                "JSESSIONID=ABC123; Path=/otmmapi; HttpOnly",
                "LB=node2; Path=/",
                "JSESSIONID=DEF456; Path=/",
                "junk",
            ]
            .into_iter(),
        );
        assert_eq!(header, "LB=node2; JSESSIONID=DEF456");
    }

    #[test]
    fn assets_tolerate_shapes() {
        let asset = DamAsset::from_json(&json!({"asset_id": "x", "content_size": "12", "master_content_info": {"mime_type": "image/png"}})).unwrap();
        assert_eq!(
            (
                asset.name.as_str(),
                asset.content_size,
                asset.mime_type.as_deref()
            ),
            ("", Some(12), Some("image/png"))
        );
        assert!(DamAsset::from_json(&json!({"name": "no id"})).is_err());
        let folder = DamAsset::from_json(
            &json!({"asset_id": "f", "container_type_id": "ARTESIA.BASIC.FOLDER"}),
        )
        .unwrap();
        assert!(folder.is_folder);
    }
}
