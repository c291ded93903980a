//! OpenText Media Management (OTMM) REST v6 client: session or OAuth2 login, campaign folder search,
//! folder and asset reads, streamed content download, multipart asset import and job polling, folder
//! metadata update (lock, PATCH, unlock) and lookup domains.
//!
//! The OTMM reference is not public: every endpoint and shape here follows `/work/shared/api-notes/otmm.md`
//! (gathered from OpenText's pyxecm `otmm.py` and other public clients) and the examples in
//! `/work/shared/fixtures/otmm/`; the import-job endpoint `GET /jobs/{id}` is this project's decision
//! (see the contract). Parsing is tolerant (ids as strings or numbers, optional fields).
//!
//! Auth (`session.rs`): the session login sends `otmmauthtoken: <message_digest>` and the cookies it got
//! (`JSESSIONID`, load-balancer cookies), kept by ureq's cookie store; OAuth2 sends
//! `Authorization: Bearer`. Mutating calls (POST, PUT, PATCH, DELETE) carry `X-Requested-By` (OTMM's
//! CSRF filter). A 401 triggers one new login and one more try, for idempotent calls only.
//!
//! Every request goes through the HTTP core ([`crate::http::execute`]), which retries idempotent
//! calls on 429/5xx/connection errors; an import (not idempotent) is sent once, and neither a doubtful
//! reply nor a 401 makes this client send it again: the caller first asks the DAM whether it landed.
//!
//! Layout: `model.rs` (resource shapes, request bodies), `error.rs` ([`DamError`]), `session.rs` (login,
//! credentials), `cache.rs` (the lookup-domain file cache), this module (the client).

use std::fmt;
use std::io::{self, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use ureq::http::{header, Method, Request, Response};
use ureq::{Body, SendBody};

use crate::config::{DamAuth, DamConfig};
use crate::http::{
    self as transport, encode_path_segment, encode_query_value, read_error_text, request,
    request_label, CallOptions, HttpContext, Multipart, RateLimit, Redirects, RetryPolicy,
    Timeouts, Unauthorized,
};

mod cache;
mod error;
mod model;
mod session;

#[cfg(test)]
mod wire_tests;

pub use cache::LOOKUP_CACHE_FILE;
pub use error::DamError;
pub use model::{
    field_condition, folder_field_patch, import_manifest, parse_job, parse_lookup_domain, DamAsset,
    DamFolder, DomainValue, JobState,
};

use cache::LookupCache;
use error::{failure, invalid_request, read_json, send_error};
use model::{required, value_text, value_u64};
use session::Credentials;

/// Path of the REST API under `dam.base_url`.
pub const API_PATH: &str = "/otmmapi/v6";

/// Page size of `/search/text` requests.
pub const SEARCH_PAGE_SIZE: usize = 100;

/// Page size of `/folders/{id}/children` requests.
pub const CHILDREN_PAGE_SIZE: usize = 100;

/// OTMM client. Cheap to clone; clones share the login and the lookup-domain cache; `Send + Sync`.
#[derive(Clone)]
pub struct DamClient {
    http: HttpContext,
    api_base: String,
    auth: Arc<DamAuth>,
    credentials: Arc<Mutex<Option<Arc<Credentials>>>>,
    timeouts: Timeouts,
    content_timeouts: Timeouts,
    import_job_timeout: Duration,
    first_job_poll_delay: Duration,
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
    ///
    /// `agent` should be the DAM's own: its cookie store holds the OTMM session cookies and is
    /// emptied at each session login (see `session.rs`).
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
            first_job_poll_delay: Duration::from_millis(cfg.first_job_poll_delay_ms),
            lookup_cache: None,
        }
    }

    /// Keeps lookup-domain values across passes in `file` (`validate_domain_values.cache_file`, by
    /// default `{temp.dir}/`[`LOOKUP_CACHE_FILE`]; private JSON, written atomically; keyed by the
    /// DAM's URL), reused for `ttl` (`validation.cache_ttl_hours`; zero =
    /// always ask OTMM). Values whose TTL has passed stay readable through
    /// [`DamClient::expired_lookup_domain`], for callers whose policy allows them when OTMM cannot be
    /// asked. Without this call [`DamClient::lookup_domain`] always asks OTMM.
    #[must_use]
    pub fn with_lookup_cache(mut self, file: &Path, ttl: Duration) -> Self {
        self.lookup_cache = Some(Arc::new(LookupCache::new(file.to_path_buf(), ttl)));
        self
    }

    /// Replaces the retry policy (tests use [`RetryPolicy::fast`]).
    #[must_use]
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.http.policy = policy;
        self
    }

    // ----- plumbing -----

    fn send(
        &self,
        options: &CallOptions<'_>,
        make: &mut dyn FnMut() -> Result<Request<SendBody<'static>>, DamError>,
    ) -> Result<Response<Body>, DamError> {
        transport::execute(&self.http, options, make)
            .map_err(|error| send_error(options.label, error))
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
        finish: transport::Finish<'_, DamError>,
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
        transport::execute_authenticated(
            &self.http,
            &options,
            &|| self.credentials(),
            &|credentials| {
                finish(credentials.apply(
                    request(method.clone(), url).header(header::ACCEPT, "application/json"),
                    mutating,
                ))
            },
            &|error| send_error(&label, error),
            &|credentials, response, relogged| {
                if !retry {
                    // A request that is not idempotent (an import) is never sent twice here: a
                    // 401 may follow a write that took effect. The next attempt logs in again and
                    // first looks the asset up by its marker.
                    self.forget_credentials(credentials);
                    let error = failure(&label, response);
                    return Unauthorized::Fail(DamError::Auth(format!(
                        "refused; not re-sent, the next attempt logs in again: {error}"
                    )));
                }
                if relogged {
                    let error = failure(&label, response);
                    return Unauthorized::Fail(DamError::Auth(format!(
                        "still refused after a new login: {error}"
                    )));
                }
                tracing::info!(request = %label, "OTMM answered 401; logging in again and trying once more");
                self.forget_credentials(credentials);
                Unauthorized::Renew
            },
        )
    }

    fn get_json(&self, url: &str) -> Result<Value, DamError> {
        let label = request_label(&Method::GET, url);
        let mut response = self.call(&Method::GET, url, true, self.timeouts, &|builder| {
            transport::empty_body(builder).map_err(|error| invalid_request(&label, error))
        })?;
        if !response.status().is_success() {
            return Err(failure(&label, response));
        }
        read_json(&label, &mut response)
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
            let received = if listed.is_empty() {
                for id in &ids {
                    let folder = self.get_folder(id)?;
                    results.push(DamAsset::from_json(&folder.json)?);
                }
                ids.len() as u64
            } else {
                for asset in &listed {
                    results.push(DamAsset::from_json(asset)?);
                }
                listed.len() as u64
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
        let label = format!("GET {API_PATH}/folders/{id}");
        DamFolder::from_json(required(&body, "/folder_resource/folder", &label)?)
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
        let label = format!("GET {API_PATH}/assets/{id}");
        DamAsset::from_json(required(&body, "/asset_resource/asset", &label)?)
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
    /// Connection failures and 429/5xx before the body are retried by the HTTP core (`max_retries`); a
    /// body cut off mid-transfer (the partial file removed, `dest` untouched) starts the download
    /// over, up to `max_retries` times, then is [`DamError::Interrupted`]: the DAM is unreachable for
    /// now and the next pass downloads again.
    /// Source: api-notes/otmm.md "Assets".
    pub fn download_to(&self, asset_id: &str, dest: &Path) -> Result<u64, DamError> {
        let url = format!(
            "{}/assets/{}/contents",
            self.api_base,
            encode_path_segment(asset_id)
        );
        let label = request_label(&Method::GET, &url);
        // A body cut off mid-transfer starts over (the core retried failures before the body).
        transport::retry(&self.http.policy, &label, |_| {
            let response = self
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
                .map_err(transport::Attempt::Stop)?;
            if !response.status().is_success() {
                return Err(transport::Attempt::Stop(failure(&label, response)));
            }
            stream_to_file(response, &label, dest).map_err(|error| match error {
                DamError::Interrupted { .. } => transport::Attempt::retry(error),
                other => transport::Attempt::Stop(other),
            })
        })
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
            .map_err(|source| DamError::Io {
                context: format!("cannot read the import source {}", path.display()),
                source,
            })?;
        let mut response = self.call(
            &Method::POST,
            &url,
            false,
            self.content_timeouts,
            &|builder| {
                form.into_request(builder).map_err(|source| DamError::Io {
                    context: format!("cannot read the import source {}", path.display()),
                    source,
                })
            },
        )?;
        if !response.status().is_success() {
            return Err(failure(&label, response));
        }
        let body = read_json(&label, &mut response)?;
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

    /// Polls [`DamClient::job_state`] until the job is no longer in progress or `timeout` (default
    /// `dam.import_job_timeout_secs`; zero asks once, at once) has passed, and returns the last state
    /// (`InProgress` on timeout: the job stays in flight, not failed). With a timeout, the first
    /// poll waits `dam.first_job_poll_delay_ms` (within the timeout). Pauses start at 100 ms and double
    /// up to 2 s, each logged at DEBUG; a timeout is logged at INFO. Errors of a poll are returned as
    /// they are (a transport error after the HTTP core's retries).
    pub fn wait_for_job(
        &self,
        job_id: &str,
        timeout: Option<Duration>,
    ) -> Result<JobState, DamError> {
        let timeout = timeout.unwrap_or(self.import_job_timeout);
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_millis(100);
        if !timeout.is_zero() && !self.first_job_poll_delay.is_zero() {
            thread::sleep(self.first_job_poll_delay.min(timeout));
        }
        loop {
            let state = self.job_state(job_id)?;
            let now = Instant::now();
            if state != JobState::InProgress {
                return Ok(state);
            }
            if now >= deadline {
                if !timeout.is_zero() {
                    tracing::info!(
                        job_id,
                        waited_secs = timeout.as_secs(),
                        "the OTMM import job is still running"
                    );
                }
                return Ok(state);
            }
            let wait = pause.min(deadline - now);
            tracing::debug!(
                job_id,
                wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                "waiting for the OTMM import job"
            );
            thread::sleep(wait);
            pause = (pause * 2).min(Duration::from_secs(2));
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
    ///
    /// # Errors
    /// Those of the GET when the cache has no fresh values (expired ones are not used here: see
    /// [`DamClient::expired_lookup_domain`]).
    pub fn lookup_domain(&self, domain_id: &str) -> Result<Vec<DomainValue>, DamError> {
        match &self.lookup_cache {
            Some(cache) => cache.lookup(&self.api_base, domain_id, || {
                self.fetch_lookup_domain(domain_id)
            }),
            None => self.fetch_lookup_domain(domain_id),
        }
    }

    /// The values of `domain_id` in the lookup cache whatever their age (`None` without a cache or an
    /// entry): what a caller may fall back to when [`DamClient::lookup_domain`] failed for a passing
    /// reason and its policy (`validate_domain_values.strict_mode` off) allows stale values.
    pub fn expired_lookup_domain(&self, domain_id: &str) -> Option<Vec<DomainValue>> {
        self.lookup_cache
            .as_ref()
            .and_then(|cache| cache.cached(&self.api_base, domain_id))
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

/// Streams a body into a temporary file next to `dest` and renames it.
fn stream_to_file(response: Response<Body>, label: &str, dest: &Path) -> Result<u64, DamError> {
    let directory = match dest.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let io_error = |context: &str, source: io::Error| DamError::Io {
        context: format!("{context} {}", dest.display()),
        source,
    };
    let mut temporary = tempfile::Builder::new()
        .prefix(".dam-download-")
        .suffix(".part")
        .tempfile_in(directory)
        .map_err(|error| io_error("cannot create a temporary file for", error))?;
    let mut reader = response.into_body().into_reader();
    let (_, total) =
        transport::copy_hashing(&mut reader, &mut temporary).map_err(|error| match error {
            transport::CopyError::Read { error, copied } => DamError::Interrupted {
                request: label.to_string(),
                bytes: copied,
                source: error,
            },
            transport::CopyError::Write(error) => io_error("cannot write", error),
        })?;
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
