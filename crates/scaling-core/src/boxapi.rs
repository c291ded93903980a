//! Box API v2.0 client: JWT service-account auth, folder listing, file info, streamed download with SHA-1
//! verification, simple multipart upload, chunked upload sessions (files of
//! `chunked_upload_threshold_bytes` or more), new file versions, folder creation and move/rename.
//!
//! Facts followed: `/work/shared/api-notes/box.md` and the Box reference
//! (<https://developer.box.com/reference/>). Every call goes through [`crate::http::execute`] (rate limit
//! shared by all clones and threads, retries of idempotent calls with backoff and jitter on 429/5xx,
//! connection errors and 409 `operation_blocked_temporary`, honouring `Retry-After`). The access token is
//! kept in memory and in a private token cache file across passes ([`token_cache`]), renewed 60 s before
//! it expires, or once when an API call answers 401.
//!
//! Content is streamed both ways: downloads go to a private temporary file while hashed, uploads are read
//! from the file (a chunked part is read with `File::take` under an explicit `Content-Length`), so memory
//! does not grow with the file size. Content transfers have idle timeouts only, metadata calls a total.
//!
//! Uploads are not idempotent: after a transport error or a 5xx, the client looks the name up in the
//! target folder and treats a file with the same SHA-1 as the upload having landed; otherwise it sends
//! again (a later 409 `item_name_in_use` with the same SHA-1 is also success). The same holds for the
//! commit of a chunked session, and a part is re-sent only when the session's part list lacks it.

mod auth;
mod chunked;
mod model;
mod token_cache;
#[cfg(test)]
mod wire_tests;

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use jsonwebtoken::EncodingKey;
use serde::Deserialize;
use serde_json::{json, Value};
use ureq::http::{header, Method, Request, Response};
use ureq::{Body, SendBody};

pub use auth::{BoxAppConfig, JWT_AUDIENCE};
pub use model::{BoxEvent, BoxFile, BoxFolder, BoxItem, EventPage, EventSource, EventType};

use crate::config::BoxConfig;
use crate::http::{
    self as transport, encode_path_segment, encode_query_value, header_str, read_error_text,
    read_json, request, request_label, resolve_location, Attempt, CallOptions, CopyError,
    HttpContext, Multipart, Outage, RateLimit, Redirects, RetryPolicy, SendError, Timeouts,
    TransportError, Unauthorized,
};
use crate::secret::Secret;
use auth::{TokenError, TokenReply};
use model::{first_conflict, lenient_u64, next_marker, RawEvents, RawFiles, RawItem, RawPage};
use token_cache::{TokenCache, TokenOwner};

/// `fields` requested for every file/folder item (listing, get file, upload, move).
pub const ITEM_FIELDS: &str = "type,id,name,sha1,file_version,size,parent,modified_at";

/// Page size of folder listings (Box's maximum).
pub const LIST_PAGE_LIMIT: u32 = 1000;

/// Page size of events stream requests (Box's maximum `limit` of `GET /2.0/events`).
pub const EVENTS_PAGE_LIMIT: u32 = 500;

/// Errors of the Box client. Messages never contain the client secret, the private key, the passphrase
/// or a token.
#[derive(Debug, thiserror::Error)]
pub enum BoxError {
    /// Box answered with an error status. `code` is Box's error `code` (`not_found`, `item_name_in_use`,
    /// ...; for an empty body a code derived from the status or `WWW-Authenticate`), `endpoint` is
    /// `"METHOD /path"` without the query. Shape: <https://developer.box.com/reference/resources/client-error/>.
    #[error("Box API {status} {code} on {endpoint}: {message}{}", request_id_suffix(.request_id.as_deref()))]
    Api {
        /// HTTP status (202 for a download that stayed "not ready" through every retry).
        status: u16,
        /// Box error code.
        code: String,
        /// Box error message (or an excerpt of the body).
        message: String,
        /// Box `request_id` (or `box-request-id` header), for Box support.
        request_id: Option<String>,
        /// `"GET /2.0/folders/123/items"`.
        endpoint: String,
    },
    /// Authentication failed for good: undecryptable or unusable key, token endpoint refused
    /// (`invalid_grant`, `invalid_client`, `unauthorized_client`). `message` says what (and repeats
    /// the source's text, when there is one: the key decoder's or signer's error).
    #[error("Box authentication failed: {message}")]
    Auth {
        /// What failed, without key material.
        message: String,
        /// The underlying error (PEM/PKCS#8 decoding, decryption, signing), if any.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// Connection, timeout or protocol error after the retries (the ureq error is the source).
    #[error("Box transport error: {0}")]
    Transport(#[source] TransportError),
    /// The downloaded bytes do not have the SHA-1 Box announced (lowercase hex `actual`).
    #[error("Box download integrity check failed: expected sha1 {expected}, got {actual}")]
    Integrity {
        /// SHA-1 expected (as given by the caller).
        expected: String,
        /// SHA-1 of the bytes received.
        actual: String,
    },
    /// Something this client does not do: a text upload at or above the chunked-upload threshold.
    #[error("not supported by the Box client: {0}")]
    Unsupported(String),
    /// A request that cannot even be built (invalid URL in the configuration or from a reply, bad
    /// header value).
    #[error("cannot build request {request}: {source}")]
    Request {
        /// `"GET /2.0/folders/123/items"`, or what was being built.
        request: String,
        /// The URL parser's or request builder's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A 2xx reply whose body is not the JSON expected.
    #[error("cannot decode Box data: {request}: unexpected JSON: {source}")]
    Json {
        /// `"GET /2.0/folders/123/items"`.
        request: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// Local file error (reading an upload, writing a download, reading the app config).
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// A reply (2xx) or the app config file that we cannot understand (a field missing, of the
    /// wrong type, or out of place); the message says where.
    #[error("cannot decode Box data: {0}")]
    Decode(String),
}

fn request_id_suffix(request_id: Option<&str>) -> String {
    request_id
        .map(|id| format!(" (request id {id})"))
        .unwrap_or_default()
}

impl BoxError {
    /// Worth retrying later: HTTP 429, 5xx, 409 `operation_blocked_temporary` / `name_temporarily_reserved`,
    /// a download still "not ready" (202), or a transport error.
    pub fn is_transient(&self) -> bool {
        match self {
            BoxError::Api { status, code, .. } => {
                *status == 429
                    || *status >= 500
                    || *status == 202
                    || transient_conflict(*status, code)
            }
            BoxError::Transport(_) => true,
            _ => false,
        }
    }

    /// A 409 `item_name_in_use`: the name is taken in the target folder (an upload, a folder
    /// creation or a move).
    pub fn is_name_in_use(&self) -> bool {
        matches!(self, BoxError::Api { status: 409, code, .. } if code == "item_name_in_use")
    }

    /// The HTTP status of an [`BoxError::Api`] error.
    pub fn status(&self) -> Option<u16> {
        match self {
            BoxError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A non-2xx reply, with what the callers inspect (`context_info`, `Retry-After`).
#[derive(Debug)]
struct ApiFailure {
    status: u16,
    code: String,
    message: String,
    request_id: Option<String>,
    context_info: Option<Value>,
    retry_after: Option<Duration>,
    endpoint: String,
}

impl From<ApiFailure> for BoxError {
    fn from(failure: ApiFailure) -> Self {
        BoxError::Api {
            status: failure.status,
            code: failure.code,
            message: failure.message,
            request_id: failure.request_id,
            endpoint: failure.endpoint,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct RawError {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    request_id: Option<String>,
    #[serde(default)]
    context_info: Option<Value>,
}

/// Decodes an error reply (`{type:"error", status, code, message, context_info, help_url, request_id}`,
/// or an empty body with `WWW-Authenticate` for 401).
fn api_failure(endpoint: &str, mut response: Response<Body>) -> ApiFailure {
    let status = response.status().as_u16();
    let retry_after = transport::retry_after(response.headers());
    let header_request_id = header_str(response.headers(), "box-request-id").map(str::to_string);
    let authenticate_error =
        header_str(response.headers(), "www-authenticate").and_then(www_authenticate_error);
    let text = read_error_text(&mut response);
    parse_api_failure(
        status,
        endpoint,
        &text,
        retry_after,
        header_request_id,
        authenticate_error,
    )
}

fn parse_api_failure(
    status: u16,
    endpoint: &str,
    text: &str,
    retry_after: Option<Duration>,
    header_request_id: Option<String>,
    authenticate_error: Option<String>,
) -> ApiFailure {
    let raw: RawError = serde_json::from_str(text).unwrap_or_default();
    let code = raw
        .code
        .filter(|code| !code.is_empty())
        .or(authenticate_error)
        .unwrap_or_else(|| default_code(status).to_string());
    let message = raw
        .message
        .filter(|message| !message.is_empty())
        .or_else(|| Some(transport::excerpt(text)).filter(|excerpt| !excerpt.is_empty()))
        .map(|message| transport::redact_credentials(&message, &[]))
        .unwrap_or_else(|| reason_phrase(status).to_string());
    ApiFailure {
        status,
        code,
        message,
        request_id: raw
            .request_id
            .filter(|id| !id.is_empty())
            .or(header_request_id),
        context_info: raw.context_info,
        retry_after,
        endpoint: endpoint.to_string(),
    }
}

/// `error="invalid_token"` from `WWW-Authenticate: Bearer realm="Service", error="invalid_token", ...`.
fn www_authenticate_error(value: &str) -> Option<String> {
    let start = value.find("error=\"")? + "error=\"".len();
    let rest = &value[start..];
    let end = rest.find('"')?;
    Some(rest[..end].to_string()).filter(|code| !code.is_empty())
}

fn default_code(status: u16) -> &'static str {
    match status {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        409 => "conflict",
        412 => "precondition_failed",
        429 => "rate_limit_exceeded",
        500 => "internal_server_error",
        502 => "bad_gateway",
        503 => "unavailable",
        504 => "gateway_timeout",
        _ => "http_error",
    }
}

fn reason_phrase(status: u16) -> &'static str {
    ureq::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|code| code.canonical_reason())
        .unwrap_or("HTTP error")
}

fn invalid_request(label: &str, error: impl std::error::Error + Send + Sync + 'static) -> BoxError {
    BoxError::Request {
        request: label.to_string(),
        source: Box::new(error),
    }
}

/// The [`BoxError`] of a request `label` that got no reply: the factory's own error, a
/// [`BoxError::Transport`] when the failure is transient, else a request that cannot be built.
fn send_failure(label: &str, error: SendError<BoxError>) -> BoxError {
    match error {
        SendError::Build(error) => error,
        SendError::Transport { error, attempts } => {
            if transport::is_retryable_transport(&error) {
                BoxError::Transport(TransportError {
                    label: label.to_string(),
                    attempts,
                    source: error,
                })
            } else {
                invalid_request(label, error)
            }
        }
    }
}

/// The [`BoxError`] of a [`read_json`] failure on the request `label`: a body that could not be
/// read is a transport error (transient when [`transport::transport_class`] says so), a body that
/// is not the JSON expected is [`BoxError::Json`].
fn json_error(label: &str, error: transport::ReadJsonError) -> BoxError {
    match error {
        transport::ReadJsonError::Body(source) => BoxError::Transport(TransportError {
            label: label.to_string(),
            attempts: 1,
            source,
        }),
        transport::ReadJsonError::Json(source) => BoxError::Json {
            request: label.to_string(),
            source,
        },
    }
}

fn io_error(context: &str, path: &Path, error: io::Error) -> BoxError {
    BoxError::Io(io::Error::new(
        error.kind(),
        format!("{context} {}: {error}", path.display()),
    ))
}

/// An access token and when to stop using it.
struct CachedToken {
    value: Secret<String>,
    refresh_after: Instant,
}

/// Unix seconds now.
fn unix_now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// Box replies worth retrying beyond 429/5xx: 409 `operation_blocked_temporary` (and
/// `name_temporarily_reserved`, a concurrent upload of the same name). Judged from the error body.
/// Source: <https://developer.box.com/guides/api-calls/permissions-and-errors/common-errors/>.
fn transient_box_reply(status: u16, body: &str) -> bool {
    status == 409
        && serde_json::from_str::<RawError>(body)
            .ok()
            .and_then(|error| error.code)
            .is_some_and(|code| transient_conflict(status, &code))
}

/// A 409 that clears by itself: `operation_blocked_temporary`, `name_temporarily_reserved`. The one
/// list of Box's transient error codes ([`BoxError::is_transient`], retries of replies).
fn transient_conflict(status: u16, code: &str) -> bool {
    status == 409
        && matches!(
            code,
            "operation_blocked_temporary" | "name_temporarily_reserved"
        )
}

/// What to upload.
#[derive(Clone, Copy)]
enum UploadSource<'a> {
    File(&'a Path),
    Bytes(&'a [u8]),
}

/// Why an upload did not return a file.
enum UploadError {
    /// 409 `item_name_in_use`.
    Conflict(Box<UploadConflict>),
    Other(BoxError),
}

impl fmt::Display for UploadError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UploadError::Conflict(conflict) => write!(
                formatter,
                "{} {} on {}",
                conflict.failure.status, conflict.failure.code, conflict.failure.endpoint
            ),
            UploadError::Other(error) => error.fmt(formatter),
        }
    }
}

/// A 409 `item_name_in_use`: the conflicting file (if Box described it) and the error.
struct UploadConflict {
    existing: Option<BoxFile>,
    failure: ApiFailure,
}

/// Why one download attempt failed.
enum DownloadFailure {
    /// Worth another attempt (transport error, not ready yet, download URL refused).
    Retry {
        error: BoxError,
        retry_after: Option<Duration>,
    },
    /// Bytes received but the SHA-1 differs.
    Integrity(BoxError),
    /// Give up (local I/O, 4xx from the API).
    Fatal(BoxError),
}

impl DownloadFailure {
    /// A request that got no usable reply: retried when the error is transient.
    fn of_request(error: BoxError) -> Self {
        if error.is_transient() {
            DownloadFailure::Retry {
                error,
                retry_after: None,
            }
        } else {
            DownloadFailure::Fatal(error)
        }
    }
}

/// Box API client. Cheap to clone; clones share the token, the rate limit and the connection pool, and the
/// client is `Send + Sync` for use from several threads.
#[derive(Clone)]
pub struct BoxClient {
    http: HttpContext,
    /// Like `http` without the rate limit: for the download host (`dl.boxcloud.com`), which
    /// the API's rate limit does not cover.
    download_http: HttpContext,
    api_base: String,
    upload_base: String,
    oauth2_url: String,
    app: Arc<BoxAppConfig>,
    key: Arc<EncodingKey>,
    token: Arc<Mutex<Option<CachedToken>>>,
    token_cache: Option<Arc<TokenCache>>,
    timeouts: Timeouts,
    content_timeouts: Timeouts,
    chunked_threshold: u64,
    /// Parts of a chunked upload session in flight at once (at least 1).
    upload_parallel_parts: usize,
}

impl fmt::Debug for BoxClient {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("BoxClient")
            .field("api_base", &self.api_base)
            .field("upload_base", &self.upload_base)
            .field("oauth2_url", &self.oauth2_url)
            .field("app", &self.app)
            .field("policy", &self.http.policy)
            .field("timeouts", &self.timeouts)
            .field(
                "token_cache",
                &self
                    .token_cache
                    .as_ref()
                    .map(|cache| cache.path().to_path_buf()),
            )
            .finish_non_exhaustive()
    }
}

const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<BoxClient>();
};

impl BoxClient {
    /// A client for the configured hosts (`base_url` and `upload_url` without `/2.0`, full `oauth2_url`),
    /// `rate_limit` (one bucket per client, shared by its clones and threads, see [`RateLimit::window`]),
    /// `max_retries` (base delay 500 ms), `connect_timeout_secs`, `read_timeout_secs` (per socket
    /// read/write; also the budget of a whole metadata call, not of a content transfer),
    /// `chunked_upload_threshold_bytes`, `upload_parallel_parts` and `token_cache_file` (the access token kept across passes,
    /// see [`token_cache`]). `agent` is the process's shared ureq agent; the client applies its own
    /// per-request settings (`http_status_as_error(false)`, timeouts, redirects without `Authorization`).
    ///
    /// Errors: [`BoxError::Auth`] when the app's private key cannot be decrypted. No request is made.
    pub fn new(cfg: &BoxConfig, app: BoxAppConfig, agent: ureq::Agent) -> Result<Self, BoxError> {
        let key = app.encoding_key()?;
        let token_cache = cfg.token_cache_file.as_ref().map(|path| {
            Arc::new(TokenCache::new(
                path.clone(),
                TokenOwner {
                    client_id: app.client_id.clone(),
                    enterprise_id: app.enterprise_id.clone(),
                    token_url: cfg.oauth2_url.clone(),
                },
            ))
        });
        let timeouts = Timeouts::from_secs(cfg.connect_timeout_secs, cfg.read_timeout_secs);
        let download_http = HttpContext {
            agent: agent.clone(),
            limit: RateLimit::unlimited(),
            policy: RetryPolicy::new(cfg.max_retries),
            outage: Outage::default(),
        };
        Ok(Self {
            http: HttpContext {
                agent,
                limit: RateLimit::window(cfg.rate_limit),
                policy: RetryPolicy::new(cfg.max_retries),
                outage: Outage::default(),
            },
            download_http,
            api_base: cfg.base_url.trim_end_matches('/').to_string(),
            upload_base: cfg.upload_url.trim_end_matches('/').to_string(),
            oauth2_url: cfg.oauth2_url.clone(),
            app: Arc::new(app),
            key: Arc::new(key),
            token: Arc::new(Mutex::new(None)),
            token_cache,
            timeouts,
            content_timeouts: timeouts.for_content(),
            chunked_threshold: cfg.chunked_upload_threshold_bytes,
            upload_parallel_parts: cfg.upload_parallel_parts.max(1),
        })
    }

    /// Replaces the retry policy (tests use [`RetryPolicy::fast`]).
    #[must_use]
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.download_http.policy = policy.clone();
        self.http.policy = policy;
        self
    }

    /// The retry policy in use.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.http.policy
    }

    // ----- token -----

    /// The access token: the one in memory while it is fresh, else the one of the token cache file (an
    /// earlier pass's) while it is fresh, else a new one ([`BoxClient::request_token`]), written to the
    /// file. One token request at a time across threads (the lock is held meanwhile).
    fn access_token(&self) -> Result<Secret<String>, BoxError> {
        let mut cached = self.token.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(token) = cached.as_ref() {
            if Instant::now() < token.refresh_after {
                return Ok(token.value.clone());
            }
        }
        *cached = None;
        let now = unix_now();
        if let Some(stored) = self.token_cache.as_ref().and_then(|cache| cache.load(now)) {
            let remaining = u64::try_from(stored.refresh_after - now).unwrap_or(0);
            tracing::debug!(
                valid_for_secs = remaining,
                "reusing the Box access token of the token cache"
            );
            let value = stored.value.clone();
            *cached = Some(CachedToken {
                value: stored.value,
                refresh_after: Instant::now() + Duration::from_secs(remaining),
            });
            return Ok(value);
        }
        let (fresh, lifetime, margin) = self.request_token()?;
        if let Some(cache) = &self.token_cache {
            let lifetime = i64::try_from(lifetime).unwrap_or(i64::MAX / 4);
            let margin = i64::try_from(margin).unwrap_or(0);
            cache.store(&fresh.value, now + lifetime, now + lifetime - margin);
        }
        let value = fresh.value.clone();
        *cached = Some(fresh);
        Ok(value)
    }

    /// Drops the token if it is still `used` (another thread may have renewed it already), in memory and
    /// in the token cache file.
    fn forget_token(&self, used: &Secret<String>) {
        let mut cached = self.token.lock().unwrap_or_else(PoisonError::into_inner);
        if cached
            .as_ref()
            .is_some_and(|token| token.value.expose() == used.expose())
        {
            *cached = None;
        }
        if let Some(cache) = &self.token_cache {
            cache.forget(used);
        }
    }

    /// POST `oauth2_url` (form `grant_type` = JWT bearer, `assertion`, `client_id`, `client_secret`); a new
    /// assertion (fresh `jti`) for every attempt, also for retries of 429/5xx/connection errors. On 400
    /// `invalid_grant` about `exp`, once more with the clock of the server's `Date` header. Returns the
    /// token, its lifetime and the renewal margin (seconds).
    /// Source: <https://developer.box.com/reference/post-oauth2-token/>,
    /// <https://developer.box.com/guides/authentication/jwt/without-sdk/>.
    fn request_token(&self) -> Result<(CachedToken, u64, u64), BoxError> {
        let label = request_label(&Method::POST, &self.oauth2_url);
        let options = CallOptions {
            label: &label,
            retry: true,
            timeouts: self.timeouts,
            redirects: Redirects::Manual,
            retry_reply: None,
        };
        let mut clock_offset: i64 = 0;
        let mut clock_corrected = false;
        loop {
            let mut make = || -> Result<Request<SendBody<'static>>, BoxError> {
                let now = jiff::Timestamp::now().as_second() + clock_offset;
                let assertion = auth::sign_assertion(&self.app, &self.key, now)?;
                transport::form(
                    request(Method::POST, &self.oauth2_url)
                        .header(header::ACCEPT, "application/json"),
                    &[
                        ("grant_type", auth::JWT_GRANT_TYPE),
                        ("assertion", &assertion),
                        ("client_id", &self.app.client_id),
                        ("client_secret", self.app.client_secret.expose()),
                    ],
                )
                .map_err(|error| invalid_request(&label, error))
            };
            let mut response = self.send(&options, &mut make)?;
            let status = response.status().as_u16();
            if response.status().is_success() {
                let reply: TokenReply =
                    read_json(&mut response).map_err(|error| json_error(&label, error))?;
                let lifetime = reply
                    .expires_in
                    .as_ref()
                    .and_then(lenient_u64)
                    .unwrap_or(3600);
                let margin = 60.min(lifetime / 2);
                tracing::debug!(expires_in_secs = lifetime, "obtained a Box access token");
                return Ok((
                    CachedToken {
                        value: Secret::new(reply.access_token),
                        refresh_after: Instant::now() + Duration::from_secs(lifetime - margin),
                    },
                    lifetime,
                    margin,
                ));
            }
            let server_now = transport::server_date(response.headers());
            let text = read_error_text(&mut response);
            let error: TokenError = serde_json::from_str(&text).unwrap_or_default();
            if status == 400 && error.is_exp_claim_problem() && !clock_corrected {
                if let Some(server_now) = server_now {
                    clock_offset = server_now.as_second() - jiff::Timestamp::now().as_second();
                    clock_corrected = true;
                    tracing::warn!(
                        clock_offset_secs = clock_offset,
                        "Box refused the JWT 'exp' claim; retrying with the server's clock"
                    );
                    continue;
                }
            }
            let code = error
                .error
                .clone()
                .unwrap_or_else(|| default_code(status).to_string());
            let description = transport::redact_credentials(
                &error
                    .error_description
                    .clone()
                    .unwrap_or_else(|| transport::excerpt(&text)),
                &[],
            );
            if self.http.policy.retries_status(status) {
                return Err(BoxError::Api {
                    status,
                    code,
                    message: description,
                    request_id: None,
                    endpoint: label,
                });
            }
            return Err(BoxError::Auth {
                message: format!("{label} returned {status} {code}: {description}"),
                source: None,
            });
        }
    }

    // ----- plumbing -----

    fn send(
        &self,
        options: &CallOptions<'_>,
        make: &mut dyn FnMut() -> Result<Request<SendBody<'static>>, BoxError>,
    ) -> Result<Response<Body>, BoxError> {
        Self::send_via(&self.http, options, make)
    }

    fn send_via(
        context: &HttpContext,
        options: &CallOptions<'_>,
        make: &mut dyn FnMut() -> Result<Request<SendBody<'static>>, BoxError>,
    ) -> Result<Response<Body>, BoxError> {
        transport::execute(context, options, make)
            .map_err(|error| send_failure(options.label, error))
    }

    /// An authenticated metadata call: `Authorization: Bearer`, `Accept: application/json`, `finish` adds
    /// the body. On 401, one new token and one more try.
    fn call(
        &self,
        method: &Method,
        url: &str,
        retry: bool,
        redirects: Redirects,
        finish: transport::Finish<'_, BoxError>,
    ) -> Result<Response<Body>, BoxError> {
        self.call_with(method, url, retry, redirects, self.timeouts, finish)
    }

    /// [`BoxClient::call`] with the given timeouts (content transfers use `content_timeouts`). With
    /// `retry`, 429/5xx, connection errors and 409 `operation_blocked_temporary` are retried.
    fn call_with(
        &self,
        method: &Method,
        url: &str,
        retry: bool,
        redirects: Redirects,
        timeouts: Timeouts,
        finish: transport::Finish<'_, BoxError>,
    ) -> Result<Response<Body>, BoxError> {
        let label = request_label(method, url);
        let options = CallOptions {
            label: &label,
            retry,
            timeouts,
            redirects,
            retry_reply: Some(transient_box_reply),
        };
        transport::execute_authenticated(
            &self.http,
            &options,
            &|| self.access_token(),
            &|token| {
                finish(
                    request(method.clone(), url)
                        .header(header::AUTHORIZATION, format!("Bearer {}", token.expose()))
                        .header(header::ACCEPT, "application/json"),
                )
            },
            &|error| send_failure(&label, error),
            &|token, response, renewed| {
                if renewed {
                    return Unauthorized::Return(response);
                }
                tracing::info!(request = %label, "Box answered 401; getting a new token and trying once more");
                self.forget_token(token);
                Unauthorized::Renew
            },
        )
    }

    /// A content transfer sent once ([`BoxClient::call_with`] without retry, content timeouts, no
    /// redirects): uploads, chunked parts and commits, whose callers retry through [`transport::retry`].
    fn send_content(
        &self,
        method: &Method,
        url: &str,
        finish: transport::Finish<'_, BoxError>,
    ) -> Result<Response<Body>, BoxError> {
        self.call_with(
            method,
            url,
            false,
            Redirects::Manual,
            self.content_timeouts,
            finish,
        )
    }

    fn empty(
        builder: ureq::http::request::Builder,
        label: &str,
    ) -> Result<Request<SendBody<'static>>, BoxError> {
        transport::empty_body(builder).map_err(|error| invalid_request(label, error))
    }

    /// GET returning a JSON body; retried.
    fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, BoxError> {
        let label = request_label(&Method::GET, url);
        let mut response = self.call(
            &Method::GET,
            url,
            true,
            Redirects::FollowWithoutAuth,
            &|builder| Self::empty(builder, &label),
        )?;
        if !response.status().is_success() {
            return Err(api_failure(&label, response).into());
        }
        read_json(&mut response).map_err(|error| json_error(&label, error))
    }

    /// Sends JSON (`method` POST or PUT); retried when `retry`. Returns the raw response (any status).
    fn send_json(
        &self,
        method: &Method,
        url: &str,
        body: &Value,
        retry: bool,
    ) -> Result<Response<Body>, BoxError> {
        let label = request_label(method, url);
        self.call(method, url, retry, Redirects::Manual, &|builder| {
            transport::json_body(builder, body).map_err(|error| invalid_request(&label, error))
        })
    }

    // ----- listing and files -----

    /// All items of a folder: GET `{base}/2.0/folders/{id}/items?usemarker=true&limit=1000&fields=`[`ITEM_FIELDS`],
    /// following `next_marker` until it is null, absent or empty. Folders come before files, in Box's order.
    /// Errors: 404 `not_found` (missing folder), 403 (not a collaborator), transient ones after retries.
    /// Source: <https://developer.box.com/reference/get-folders-id-items/>.
    pub fn list_folder(&self, folder_id: &str) -> Result<Vec<BoxItem>, BoxError> {
        let base = format!(
            "{}/2.0/folders/{}/items?usemarker=true&limit={LIST_PAGE_LIMIT}&fields={}",
            self.api_base,
            encode_path_segment(folder_id),
            encode_query_value(ITEM_FIELDS)
        );
        let mut items = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let url = match &marker {
                Some(marker) => format!("{base}&marker={}", encode_query_value(marker)),
                None => base.clone(),
            };
            let page: RawPage = self.get_json(&url)?;
            for (index, entry) in page.entries.into_iter().enumerate() {
                let item: RawItem = serde_json::from_value(entry).map_err(|error| {
                    BoxError::Decode(format!(
                        "GET /2.0/folders/{folder_id}/items: entry {index}: {error}"
                    ))
                })?;
                items.push(item.into_item());
            }
            match next_marker(page.next_marker) {
                Some(next) if marker.as_deref() == Some(next.as_str()) => {
                    return Err(BoxError::Decode(format!(
                        "GET /2.0/folders/{folder_id}/items: next_marker repeats the current marker"
                    )))
                }
                Some(next) => marker = Some(next),
                None => return Ok(items),
            }
        }
    }

    /// One chunk of the service account's changes: GET
    /// `{base}/2.0/events?stream_type=changes&stream_position={position}&limit={limit}`
    /// (`limit` at most [`EVENTS_PAGE_LIMIT`]). `position` is opaque: `now` answers no entries and
    /// the current position (to start from), a position from an earlier page answers the events
    /// after it. Box may send an event twice and out of order, and fewer than `limit` entries
    /// even when more are waiting. Errors: any non-2xx (an expired or invalid position among them),
    /// transient ones after retries, [`BoxError::Decode`] without a `next_stream_position`.
    /// Source: OpenAPI operation `get_events` (`GET /events`, schema `Events`),
    /// <https://developer.box.com/guides/events/user-events/for-user/>.
    pub fn events(&self, position: &str, limit: u32) -> Result<EventPage, BoxError> {
        let url = format!(
            "{}/2.0/events?stream_type=changes&stream_position={}&limit={}",
            self.api_base,
            encode_query_value(position),
            limit.min(EVENTS_PAGE_LIMIT)
        );
        let raw: RawEvents = self.get_json(&url)?;
        raw.into_page()
            .map_err(|error| BoxError::Decode(format!("GET /2.0/events: {error}")))
    }

    /// The current position of the changes stream (`stream_position=now`), to read from later.
    ///
    /// # Errors
    /// As [`BoxClient::events`].
    pub fn events_position_now(&self) -> Result<String, BoxError> {
        Ok(self.events("now", 1)?.next_stream_position)
    }

    /// One file: GET `{base}/2.0/files/{id}?fields=`[`ITEM_FIELDS`]. Errors: 404 `not_found` / `trashed`.
    /// Source: <https://developer.box.com/reference/get-files-id/>.
    pub fn get_file(&self, file_id: &str) -> Result<BoxFile, BoxError> {
        let url = format!(
            "{}/2.0/files/{}?fields={}",
            self.api_base,
            encode_path_segment(file_id),
            encode_query_value(ITEM_FIELDS)
        );
        let item: RawItem = self.get_json(&url)?;
        Ok(item.into_file())
    }

    /// [`BoxClient::get_file`], `None` when Box no longer has the file (404: deleted or in the
    /// trash).
    pub fn file_if_present(&self, file_id: &str) -> Result<Option<BoxFile>, BoxError> {
        match self.get_file(file_id) {
            Ok(file) => Ok(Some(file)),
            Err(error) if error.status() == Some(404) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// The file named `name` in a folder (exact match first, else case-insensitive as Box names are).
    fn find_file(&self, folder_id: &str, name: &str) -> Result<Option<BoxFile>, BoxError> {
        let files: Vec<BoxFile> = self
            .list_folder(folder_id)?
            .into_iter()
            .filter_map(|item| match item {
                BoxItem::File(file) => Some(file),
                _ => None,
            })
            .collect();
        let exact = files.iter().position(|file| file.name == name);
        let position = exact.or_else(|| {
            files
                .iter()
                .position(|file| file.name.to_lowercase() == name.to_lowercase())
        });
        Ok(position.and_then(|index| files.into_iter().nth(index)))
    }

    // ----- download -----

    /// Downloads a file's current version to `dest` and returns its size in bytes.
    ///
    /// GET `{base}/2.0/files/{id}/content` (with `Authorization`) answers 302 to a short-lived URL on
    /// another host, which is fetched WITHOUT `Authorization`; 202 + `Retry-After` (not ready yet) is
    /// waited out. The body is streamed to a private temporary file next to `dest` while its SHA-1 is
    /// computed, compared case-insensitively with `expected_sha1` (if given), and renamed to `dest` only
    /// when it matches ([`BoxError::Integrity`] otherwise, after one more full attempt). Transport errors,
    /// also in the middle of the body, restart the download (up to `max_retries`).
    /// Source: <https://developer.box.com/reference/get-files-id-content/>.
    pub fn download_to(
        &self,
        file_id: &str,
        expected_sha1: Option<&str>,
        dest: &Path,
    ) -> Result<u64, BoxError> {
        let url = format!(
            "{}/2.0/files/{}/content",
            self.api_base,
            encode_path_segment(file_id)
        );
        let label = request_label(&Method::GET, &url);
        let mut integrity_retried = false;
        transport::retry(&self.http.policy, &label, |_| loop {
            return match self.download_once(&url, &label, expected_sha1, dest) {
                Ok(bytes) => Ok(bytes),
                Err(DownloadFailure::Retry { error, retry_after }) => {
                    Err(Attempt::Retry { error, retry_after })
                }
                // One more full download at once, the first time only.
                Err(DownloadFailure::Integrity(error)) if !integrity_retried => {
                    integrity_retried = true;
                    tracing::warn!(request = %label, error = %error, "downloaded bytes do not match the sha1, downloading once more");
                    continue;
                }
                Err(DownloadFailure::Integrity(error) | DownloadFailure::Fatal(error)) => {
                    Err(Attempt::Stop(error))
                }
            };
        })
    }

    fn download_once(
        &self,
        url: &str,
        label: &str,
        expected_sha1: Option<&str>,
        dest: &Path,
    ) -> Result<u64, DownloadFailure> {
        let response = self
            .call(&Method::GET, url, true, Redirects::Manual, &|builder| {
                Self::empty(builder, label)
            })
            .map_err(DownloadFailure::of_request)?;
        let status = response.status().as_u16();
        let response = match status {
            200 => response,
            202 => {
                let retry_after =
                    transport::retry_after(response.headers()).or(Some(Duration::from_secs(1)));
                return Err(DownloadFailure::Retry {
                    error: BoxError::Api {
                        status,
                        code: "download_not_ready".into(),
                        message: "the file is not ready for download yet".into(),
                        request_id: None,
                        endpoint: label.to_string(),
                    },
                    retry_after,
                });
            }
            301 | 302 | 303 | 307 | 308 => {
                let location = header_str(response.headers(), "location")
                    .map(str::to_string)
                    .ok_or_else(|| {
                        DownloadFailure::Fatal(BoxError::Decode(format!(
                            "{label}: {status} without Location"
                        )))
                    })?;
                let location = resolve_location(url, &location).ok_or_else(|| {
                    DownloadFailure::Fatal(BoxError::Decode(format!(
                        "{label}: unusable Location header"
                    )))
                })?;
                self.fetch_download_url(&location)?
            }
            _ => {
                let failure = api_failure(label, response);
                let error = BoxError::from(failure);
                return Err(if error.is_transient() {
                    DownloadFailure::Retry {
                        error,
                        retry_after: None,
                    }
                } else {
                    DownloadFailure::Fatal(error)
                });
            }
        };
        stream_to_file(response, label, expected_sha1, dest)
    }

    /// GET the redirect target with no `Authorization` (the URL itself is the credential).
    fn fetch_download_url(&self, location: &str) -> Result<Response<Body>, DownloadFailure> {
        let label = format!(
            "GET {} (download redirect)",
            transport::redacted_origin(location)
        );
        let options = CallOptions {
            label: &label,
            retry: true,
            timeouts: self.content_timeouts,
            redirects: Redirects::FollowWithoutAuth,
            retry_reply: None,
        };
        let mut make = || Self::empty(request(Method::GET, location), &label);
        // Not rate limited: Box's limits are on API calls, not on the download host.
        let response = Self::send_via(&self.download_http, &options, &mut make)
            .map_err(DownloadFailure::of_request)?;
        if response.status().is_success() {
            return Ok(response);
        }
        // Expired or refused download URL, or a server error: start again from the API.
        let failure = api_failure(&label, response);
        let retry_after = failure.retry_after;
        Err(DownloadFailure::Retry {
            error: failure.into(),
            retry_after,
        })
    }

    // ----- uploads -----

    /// Uploads a new file `name` into a folder from `path` (streamed, never held in memory) and returns it.
    ///
    /// Below `chunked_upload_threshold_bytes`: simple upload, POST `{upload_url}/2.0/files/content`,
    /// multipart: `attributes` = `{"name","parent":{"id"}}` first, then `file` streamed from `path`; header
    /// `Content-MD5: <sha1 hex>` (computed first by streaming the file). 409 `item_name_in_use` whose
    /// conflicting file has the same SHA-1 = an earlier attempt landed: returns that file; a different
    /// SHA-1 gives the 409 [`BoxError::Api`]. After a transport error or a 5xx the folder is listed: a file
    /// `name` with the same SHA-1 is returned as the success, else the upload is sent again (up to
    /// `max_retries`).
    /// Source: <https://developer.box.com/reference/post-files-content/>.
    ///
    /// At or above the threshold: a chunked upload session, POST `{upload_url}/2.0/files/upload_sessions`,
    /// parts, commit (see [`chunked`]), with the same "409 with the same SHA-1 = success" rule.
    /// Source: <https://developer.box.com/guides/uploads/chunked/>.
    pub fn upload(&self, folder_id: &str, name: &str, path: &Path) -> Result<BoxFile, BoxError> {
        self.upload_file(chunked::Target::NewFile { folder_id }, name, path)
    }

    /// [`BoxClient::upload`] or [`BoxClient::upload_new_version`] by `target`: a chunked session at
    /// or above the threshold, else a simple upload of the file with its SHA-1 computed first.
    fn upload_file(
        &self,
        target: chunked::Target<'_>,
        name: &str,
        path: &Path,
    ) -> Result<BoxFile, BoxError> {
        let size = fs::metadata(path)
            .map_err(|error| io_error("cannot read upload source", path, error))?
            .len();
        if size >= self.chunked_threshold {
            return self.upload_chunked(target, name, path, size);
        }
        let (sha1, _) = transport::sha1_file(path)
            .map_err(|error| io_error("cannot read upload source", path, error))?;
        match target {
            chunked::Target::NewFile { folder_id } => {
                self.upload_simple(folder_id, name, path, &sha1)
            }
            chunked::Target::NewVersion { file_id } => {
                self.upload_version(file_id, name, UploadSource::File(path), &sha1)
            }
        }
    }

    /// The simple-upload half of [`BoxClient::upload`], for a file whose SHA-1 is known.
    fn upload_simple(
        &self,
        folder_id: &str,
        name: &str,
        path: &Path,
        sha1: &str,
    ) -> Result<BoxFile, BoxError> {
        match self.upload_new(folder_id, name, UploadSource::File(path), sha1) {
            Ok(file) => Ok(file),
            Err(UploadError::Conflict(conflict)) => match conflict.existing {
                Some(existing) if same_sha1(existing.sha1.as_deref(), sha1) => {
                    tracing::info!(folder_id, name, box_file = %existing.id, "file already in Box with the same sha1; treating the upload as done");
                    Ok(with_parent(existing, folder_id))
                }
                Some(existing) => Err(conflict_error(conflict.failure, &existing)),
                None => Err(conflict.failure.into()),
            },
            Err(UploadError::Other(error)) => Err(error),
        }
    }

    /// Uploads a new version of file `file_id` from `path` (streamed) and returns the file (same id, new
    /// `file_version_id` and SHA-1). `name` renames the file when it differs.
    ///
    /// Below `chunked_upload_threshold_bytes`: POST `{upload_url}/2.0/files/{id}/content` (multipart
    /// `attributes` `{"name"}` then the file, `Content-MD5`); after a transport error or a 5xx, GET
    /// `/2.0/files/{id}` tells whether the version landed (same SHA-1) before sending again.
    /// Source: <https://developer.box.com/reference/post-files-id-content/>.
    ///
    /// At or above it: an upload session for the existing file, POST
    /// `{upload_url}/2.0/files/{id}/upload_sessions`, then parts and commit as for a new file.
    /// Source: <https://developer.box.com/reference/post-files-id-upload-sessions/>.
    pub fn upload_new_version(
        &self,
        file_id: &str,
        name: &str,
        path: &Path,
    ) -> Result<BoxFile, BoxError> {
        self.upload_file(chunked::Target::NewVersion { file_id }, name, path)
    }

    /// Uploads a small text file (error notes) as a **new** file: POST `{upload_url}/2.0/files/content`
    /// (<https://developer.box.com/reference/post-files-content/>) from memory. When the name is taken
    /// (409 `item_name_in_use`) by a file with the same SHA-1 — our own earlier upload whose reply was
    /// lost — that file is returned; when it is taken by a file with other content, `Ok(None)`: a file
    /// we did not create is never overwritten or given a new version. Text of
    /// `chunked_upload_threshold_bytes` or more gives [`BoxError::Unsupported`].
    pub fn upload_text(
        &self,
        folder_id: &str,
        name: &str,
        text: &str,
    ) -> Result<Option<BoxFile>, BoxError> {
        let bytes = text.as_bytes();
        self.check_simple_upload_size(bytes.len() as u64, name)?;
        let sha1 = transport::sha1_bytes(bytes);
        match self.upload_new(folder_id, name, UploadSource::Bytes(bytes), &sha1) {
            Ok(file) => Ok(Some(file)),
            Err(UploadError::Conflict(conflict)) => match conflict.existing {
                Some(existing) if same_sha1(existing.sha1.as_deref(), &sha1) => {
                    Ok(Some(with_parent(existing, folder_id)))
                }
                Some(existing) => {
                    tracing::debug!(folder_id, name, file_id = %existing.id, "name taken by another file; not touching it");
                    Ok(None)
                }
                None => Err(conflict.failure.into()),
            },
            Err(UploadError::Other(error)) => Err(error),
        }
    }

    fn check_simple_upload_size(&self, size: u64, what: &str) -> Result<(), BoxError> {
        if size >= self.chunked_threshold {
            return Err(BoxError::Unsupported(format!(
                "text uploads are simple uploads only: {what} is {size} bytes >= chunked threshold {} bytes",
                self.chunked_threshold
            )));
        }
        Ok(())
    }

    fn upload_form(
        attributes: &Value,
        name: &str,
        source: UploadSource<'_>,
    ) -> Result<Multipart, BoxError> {
        let form = Multipart::new().text("attributes", &attributes.to_string());
        match source {
            UploadSource::File(path) => form
                .file("file", name, "application/octet-stream", path)
                .map_err(|error| io_error("cannot read upload source", path, error)),
            UploadSource::Bytes(bytes) => {
                Ok(form.bytes("file", name, "text/plain; charset=utf-8", bytes.to_vec()))
            }
        }
    }

    fn upload_new(
        &self,
        folder_id: &str,
        name: &str,
        source: UploadSource<'_>,
        sha1: &str,
    ) -> Result<BoxFile, UploadError> {
        self.send_to(chunked::Target::NewFile { folder_id }, name, source, sha1)
            .map(|file| with_parent(file, folder_id))
    }

    fn upload_version(
        &self,
        file_id: &str,
        name: &str,
        source: UploadSource<'_>,
        sha1: &str,
    ) -> Result<BoxFile, BoxError> {
        match self.send_to(chunked::Target::NewVersion { file_id }, name, source, sha1) {
            Ok(file) => Ok(file),
            Err(UploadError::Conflict(conflict)) => Err(conflict.failure.into()),
            Err(UploadError::Other(error)) => Err(error),
        }
    }

    /// One multipart upload (`POST /2.0/files/content` for a new file, `POST
    /// /2.0/files/{id}/content` for a new version:
    /// <https://developer.box.com/reference/post-files-content/>,
    /// <https://developer.box.com/reference/post-files-id-content/>), retried through
    /// [`BoxClient::send_upload`]; an attempt in doubt has landed when the target then holds a
    /// file with the same SHA-1.
    fn send_to(
        &self,
        target: chunked::Target<'_>,
        name: &str,
        source: UploadSource<'_>,
        sha1: &str,
    ) -> Result<BoxFile, UploadError> {
        let (path, attributes) = match target {
            chunked::Target::NewFile { folder_id } => (
                "files/content".to_string(),
                json!({"name": name, "parent": {"id": folder_id}}),
            ),
            chunked::Target::NewVersion { file_id } => (
                format!("files/{}/content", encode_path_segment(file_id)),
                json!({"name": name}),
            ),
        };
        let url = format!(
            "{}/2.0/{path}?fields={}",
            self.upload_base,
            encode_query_value(ITEM_FIELDS)
        );
        let form = Self::upload_form(&attributes, name, source).map_err(UploadError::Other)?;
        let landed = || -> Result<Option<BoxFile>, BoxError> {
            let file = match target {
                chunked::Target::NewFile { folder_id } => self.find_file(folder_id, name)?,
                chunked::Target::NewVersion { file_id } => Some(self.get_file(file_id)?),
            };
            Ok(file.filter(|file| same_sha1(file.sha1.as_deref(), sha1)))
        };
        self.send_upload(&url, &form, sha1, &landed)
    }

    /// Sends a multipart upload, at most `max_retries + 1` times; before resending after a transport
    /// error or a 5xx, asks `landed` whether the previous attempt arrived after all.
    fn send_upload(
        &self,
        url: &str,
        form: &Multipart,
        sha1: &str,
        landed: &dyn Fn() -> Result<Option<BoxFile>, BoxError>,
    ) -> Result<BoxFile, UploadError> {
        let label = request_label(&Method::POST, url);
        let mut check_landed = false;
        transport::retry(&self.http.policy, &label, |attempt| {
            if check_landed {
                if let Some(file) =
                    landed().map_err(|error| Attempt::Stop(UploadError::Other(error)))?
                {
                    tracing::info!(request = %label, box_file = %file.id, attempt,
                        "an earlier upload attempt failed but the file arrived with the same sha1; done");
                    return Ok(file);
                }
            }
            let outcome = self.send_content(&Method::POST, url, &|builder| {
                form.into_request(builder.header("content-md5", sha1))
                    .map_err(BoxError::Io)
            });
            let stop = |error: BoxError| Attempt::Stop(UploadError::Other(error));
            let (error, retry_after, may_have_landed) = match outcome {
                Ok(response) if response.status().is_success() => {
                    return first_entry(response, &label).map_err(stop);
                }
                Ok(response) => {
                    let failure = api_failure(&label, response);
                    match (failure.status, failure.code.as_str()) {
                        (409, "item_name_in_use") => {
                            let existing = first_conflict(failure.context_info.as_ref())
                                .map(RawItem::into_file);
                            return Err(Attempt::Stop(UploadError::Conflict(Box::new(
                                UploadConflict { existing, failure },
                            ))));
                        }
                        (409, "operation_blocked_temporary" | "name_temporarily_reserved") => {
                            let retry_after = failure.retry_after;
                            (BoxError::from(failure), retry_after, true)
                        }
                        (status, _) if self.http.policy.retries_status(status) => {
                            let retry_after = failure.retry_after;
                            (BoxError::from(failure), retry_after, status != 429)
                        }
                        _ => return Err(stop(failure.into())),
                    }
                }
                Err(error @ BoxError::Transport(_)) => (error, None, true),
                Err(error) => return Err(stop(error)),
            };
            // Before sending again, the next attempt asks whether this one landed after all.
            check_landed = may_have_landed;
            Err(Attempt::Retry {
                error: UploadError::Other(error),
                retry_after,
            })
        })
    }

    // ----- folders and moves -----

    /// Creates folder `name` in `parent_id`: POST `{base}/2.0/folders` `{"name","parent":{"id"}}` -> 201.
    /// When the name exists (409 `item_name_in_use`), returns the existing folder from
    /// `context_info.conflicts` (an array; an object is accepted too). Retried on transient errors (a
    /// retry after a create that landed meets the 409 and returns the folder).
    /// Source: <https://developer.box.com/reference/post-folders/>.
    pub fn create_folder(&self, parent_id: &str, name: &str) -> Result<BoxFolder, BoxError> {
        let url = format!(
            "{}/2.0/folders?fields={}",
            self.api_base,
            encode_query_value("type,id,name,parent")
        );
        let label = request_label(&Method::POST, &url);
        let mut response = self.send_json(
            &Method::POST,
            &url,
            &json!({"name": name, "parent": {"id": parent_id}}),
            true,
        )?;
        if response.status().is_success() {
            let item: RawItem =
                read_json(&mut response).map_err(|error| json_error(&label, error))?;
            return Ok(BoxFolder {
                id: item.id,
                name: item.name.unwrap_or_else(|| name.to_string()),
            });
        }
        let failure = api_failure(&label, response);
        if failure.status == 409 && failure.code == "item_name_in_use" {
            if let Some(existing) = first_conflict(failure.context_info.as_ref()) {
                if existing.kind.as_deref().is_none_or(|kind| kind == "folder") {
                    tracing::debug!(parent_id, name, folder_id = %existing.id, "folder exists; using it");
                    return Ok(BoxFolder {
                        id: existing.id,
                        name: existing.name.unwrap_or_else(|| name.to_string()),
                    });
                }
            }
        }
        Err(failure.into())
    }

    /// Moves a folder and everything in it to the Box trash: DELETE
    /// `{base}/2.0/folders/{id}?recursive=true` -> 204 (restorable from the trash for the
    /// enterprise's trash retention period). Retried on transient errors, including 409
    /// `operation_blocked_temporary`; a 404 (already trashed, e.g. by an earlier attempt whose
    /// reply was lost) counts as done. Errors: 403 when the service account may not delete it.
    /// Source: <https://developer.box.com/reference/delete-folders-id/>.
    pub fn trash_folder(&self, folder_id: &str) -> Result<(), BoxError> {
        let url = format!(
            "{}/2.0/folders/{}?recursive=true",
            self.api_base,
            encode_path_segment(folder_id)
        );
        let label = request_label(&Method::DELETE, &url);
        let response = self.call(&Method::DELETE, &url, true, Redirects::Manual, &|builder| {
            Self::empty(builder, &label)
        })?;
        let status = response.status().as_u16();
        if response.status().is_success() {
            return Ok(());
        }
        if status == 404 {
            tracing::debug!(folder_id, "folder already gone from Box; nothing to trash");
            return Ok(());
        }
        Err(api_failure(&label, response).into())
    }

    /// Moves (and renames) a file: PUT `{base}/2.0/files/{id}` `{"parent":{"id"},"name"}` -> 200 File.
    /// When the name is taken in the target, the 409 `item_name_in_use` [`BoxError::Api`] is returned
    /// ([`BoxError::is_name_in_use`]): which other name to use is the caller's decision
    /// (`pipeline::box_poll::move_under_free_name`). A 404 (e.g. the file already moved by an earlier
    /// attempt that timed out) is returned as is.
    /// Source: <https://developer.box.com/reference/put-files-id/>.
    pub fn move_file(
        &self,
        file_id: &str,
        parent_id: &str,
        name: &str,
    ) -> Result<BoxFile, BoxError> {
        self.put_file(file_id, parent_id, name)?
            .map_err(BoxError::from)
    }

    fn put_file(
        &self,
        file_id: &str,
        parent_id: &str,
        name: &str,
    ) -> Result<Result<BoxFile, ApiFailure>, BoxError> {
        let url = format!(
            "{}/2.0/files/{}?fields={}",
            self.api_base,
            encode_path_segment(file_id),
            encode_query_value(ITEM_FIELDS)
        );
        let label = request_label(&Method::PUT, &url);
        let mut response = self.send_json(
            &Method::PUT,
            &url,
            &json!({"parent": {"id": parent_id}, "name": name}),
            true,
        )?;
        if response.status().is_success() {
            let item: RawItem =
                read_json(&mut response).map_err(|error| json_error(&label, error))?;
            return Ok(Ok(with_parent(item.into_file(), parent_id)));
        }
        Ok(Err(api_failure(&label, response)))
    }
}

/// The file of an upload or commit reply (`{"entries":[File]}`, 201).
fn first_entry(mut response: Response<Body>, label: &str) -> Result<BoxFile, BoxError> {
    let files: RawFiles = read_json(&mut response).map_err(|error| json_error(label, error))?;
    files
        .entries
        .into_iter()
        .next()
        .map(RawItem::into_file)
        .ok_or_else(|| BoxError::Decode(format!("{label}: no entry in the reply")))
}

fn same_sha1(actual: Option<&str>, expected: &str) -> bool {
    actual.is_some_and(|actual| actual.eq_ignore_ascii_case(expected))
}

fn with_parent(mut file: BoxFile, folder_id: &str) -> BoxFile {
    if file.parent_id.is_none() {
        file.parent_id = Some(folder_id.to_string());
    }
    file
}

fn conflict_error(failure: ApiFailure, existing: &BoxFile) -> BoxError {
    let mut error = BoxError::from(failure);
    if let BoxError::Api { message, .. } = &mut error {
        message.push_str(&format!(
            " (existing file {} has sha1 {})",
            existing.id,
            existing.sha1.as_deref().unwrap_or("unknown")
        ));
    }
    error
}

/// Streams a download body into a temporary file next to `dest`, hashing; checks the SHA-1; renames.
fn stream_to_file(
    response: Response<Body>,
    label: &str,
    expected_sha1: Option<&str>,
    dest: &Path,
) -> Result<u64, DownloadFailure> {
    let directory = match dest.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let fatal_io =
        |context: &str, error: io::Error| DownloadFailure::Fatal(io_error(context, dest, error));
    let mut temporary = tempfile::Builder::new()
        .prefix(".box-download-")
        .suffix(".part")
        .tempfile_in(directory)
        .map_err(|error| fatal_io("cannot create a temporary file for", error))?;
    let mut reader = response.into_body().into_reader();
    let (actual, total) =
        transport::copy_hashing(&mut reader, &mut temporary).map_err(|error| match error {
            CopyError::Read { error, copied } => DownloadFailure::Retry {
                error: BoxError::Transport(TransportError {
                    label: format!("{label} (body interrupted after {copied} bytes)"),
                    attempts: 1,
                    source: ureq::Error::Io(error),
                }),
                retry_after: None,
            },
            CopyError::Write(error) => fatal_io("cannot write", error),
        })?;
    temporary
        .flush()
        .map_err(|error| fatal_io("cannot write", error))?;
    if let Some(expected) = expected_sha1 {
        if !expected.eq_ignore_ascii_case(&actual) {
            return Err(DownloadFailure::Integrity(BoxError::Integrity {
                expected: expected.to_string(),
                actual,
            }));
        }
    }
    temporary
        .as_file()
        .sync_all()
        .map_err(|error| fatal_io("cannot write", error))?;
    temporary
        .persist(dest)
        .map_err(|error| fatal_io("cannot move the download to", error.error))?;
    tracing::debug!(request = %label, bytes = total, sha1 = %actual, "download complete");
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_error_from_real_box_shape() {
        let body = r#"{"type":"error","status":404,"code":"not_found","help_url":"http://developers.box.com/docs/#errors",
            "message":"Not Found","request_id":"abc","context_info":{"errors":[{"reason":"invalid_parameter"}]}}"#;
        let failure = parse_api_failure(404, "GET /2.0/folders/123", body, None, None, None);
        let error = BoxError::from(failure);
        assert_eq!(
            error.to_string(),
            "Box API 404 not_found on GET /2.0/folders/123: Not Found (request id abc)"
        );
        assert!(!error.is_transient());
        assert_eq!(error.status(), Some(404));
    }

    #[test]
    fn conflict_error_keeps_context_info() {
        let body = r#"{"type":"error","status":409,"code":"item_name_in_use","message":"Item with the same name already exists",
            "request_id":"r1","context_info":{"conflicts":{"type":"file","id":"42","name":"a.mp4","sha1":"AB",
            "file_version":{"type":"file_version","id":"43","sha1":"ab"}}}}"#;
        let failure = parse_api_failure(409, "POST /api/2.0/files/content", body, None, None, None);
        let existing = first_conflict(failure.context_info.as_ref())
            .unwrap()
            .into_file();
        assert_eq!(existing.id, "42");
        assert!(same_sha1(existing.sha1.as_deref(), "ab"));
        let error = conflict_error(failure, &existing);
        assert!(
            error.to_string().contains("existing file 42 has sha1 AB"),
            "{error}"
        );
    }

    #[test]
    fn empty_401_uses_www_authenticate_and_rate_limit_is_transient() {
        let failure = parse_api_failure(
            401,
            "GET /2.0/files/1",
            "",
            None,
            Some("hdr-req".into()),
            www_authenticate_error(
                r#"Bearer realm="Service", error="invalid_token", error_description="The access token provided is invalid.""#,
            ),
        );
        let error = BoxError::from(failure);
        assert_eq!(
            error.to_string(),
            "Box API 401 invalid_token on GET /2.0/files/1: Unauthorized (request id hdr-req)"
        );
        let failure = parse_api_failure(
            429,
            "GET /2.0/folders/0/items",
            "<html>Too many</html>",
            Some(Duration::from_secs(3)),
            None,
            None,
        );
        assert_eq!(failure.retry_after, Some(Duration::from_secs(3)));
        let error = BoxError::from(failure);
        assert!(error.is_transient());
        assert!(
            error.to_string().contains("rate_limit_exceeded")
                && error.to_string().contains("<html>Too many</html>")
        );
        let blocked = BoxError::Api {
            status: 409,
            code: "operation_blocked_temporary".into(),
            message: String::new(),
            request_id: None,
            endpoint: String::new(),
        };
        assert!(blocked.is_transient());
        let dropped = BoxError::Transport(TransportError {
            label: "GET /2.0/files/1".into(),
            attempts: 3,
            source: ureq::Error::ConnectionFailed,
        });
        assert!(dropped.is_transient());
        assert_eq!(
            dropped.to_string(),
            "Box transport error: GET /2.0/files/1: connection failed error after 3 attempt(s): connection failed"
        );
        assert!(matches!(
            std::error::Error::source(&dropped)
                .and_then(|source| source.downcast_ref::<TransportError>())
                .map(|inner| &inner.source),
            Some(ureq::Error::ConnectionFailed)
        ));
        assert!(!BoxError::Integrity {
            expected: "a".into(),
            actual: "b".into()
        }
        .is_transient());
    }

    #[test]
    fn error_bodies_echoing_credentials_are_redacted() {
        let failure = parse_api_failure(
            401,
            "GET /2.0/files/1",
            "proxy says: Authorization: Bearer abcdefghijkl refused",
            None,
            None,
            None,
        );
        let text = BoxError::from(failure).to_string();
        assert!(!text.contains("abcdefghijkl"), "{text}");
        assert!(text.contains("Authorization: ****"), "{text}");
    }

    #[test]
    fn locations_and_hosts() {
        assert_eq!(
            resolve_location("http://127.0.0.1:5/2.0/files/1/content", "/d/1").as_deref(),
            Some("http://127.0.0.1:5/d/1")
        );
        assert_eq!(
            resolve_location("https://api.box.com/x", "https://dl.boxcloud.com/d/1?t=s").as_deref(),
            Some("https://dl.boxcloud.com/d/1?t=s")
        );
        assert_eq!(resolve_location("https://api.box.com/x", "relative"), None);
        assert_eq!(
            transport::redacted_origin("https://dl.boxcloud.com/d/1/secret/download"),
            "https://dl.boxcloud.com"
        );
    }
}
