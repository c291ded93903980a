//! OpenText Media Management (OTMM) REST v6 client: session or OAuth2 login, campaign folder search,
//! folder and asset reads, streamed content download, multipart asset import and job polling, folder
//! metadata update (lock, PATCH, unlock) and lookup domains.
//!
//! The OTMM reference is not public: every endpoint and shape here follows `/work/shared/api-notes/otmm.md`
//! (gathered from OpenText's pyxecm `otmm.py` and other public clients) and the examples in
//! `/work/shared/fixtures/otmm/`, read against public clients in `docs/otmm-evidence.md`; where no
//! public source settles a point the behaviour is a `dam.api` setting ([`crate::config::DamApi`]).
//! Parsing is tolerant (ids as strings or numbers, optional fields).
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

use crate::config::{
    DamApi, DamAuth, DamConfig, FolderLoad, FolderLocking, ImportCompletion, MultipartFilename,
};
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
    asset_filter_request, field_condition, folder_field_patch, import_manifest, parse_job,
    parse_lookup_domain, DamAsset, DamFolder, DomainValue, JobState,
};

use cache::LookupCache;
use error::{failure, invalid_request, read_json, send_error};
use model::{required, value_text, value_u64};
use session::Credentials;

/// Path of the REST API under `dam.base_url`.
pub const API_PATH: &str = "/otmmapi/v6";

/// What identifies one import request: see [`DamClient::wait_for_import`].
#[derive(Debug, Clone, Copy)]
pub struct ImportProbe<'a> {
    /// The job id of the import reply, when it was received.
    pub job_id: Option<&'a str>,
    /// The DAM folder the asset was imported into.
    pub folder_id: &'a str,
    /// The asset's name.
    pub name: &'a str,
    /// The tracking field (`dam.tracking_field_id`).
    pub field_id: &'a str,
    /// The marker written into the tracking field.
    pub marker: &'a str,
}

/// Redirects a GET follows (the DAM's own and, without credentials, another host's).
const MAX_REDIRECTS: usize = 5;

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
    api: Arc<DamApi>,
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

/// The options of every DAM request: redirects returned to [`DamClient::call`], which follows
/// them itself.
fn call_options(label: &str, retry: bool, timeouts: Timeouts) -> CallOptions<'_> {
    CallOptions {
        label,
        retry,
        timeouts,
        redirects: Redirects::Manual,
        retry_reply: None,
    }
}

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
                outage: crate::http::Outage::default(),
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
            api: Arc::new(cfg.api.clone()),
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

    /// The same client (login, agent, cache shared) speaking with other `dam.api` settings:
    /// `box-setup dam-check` tries the alternatives of a setting this way.
    #[must_use]
    pub fn with_api(&self, api: DamApi) -> Self {
        Self {
            api: Arc::new(api),
            ..self.clone()
        }
    }

    /// The `dam.api` settings this client follows.
    pub fn api(&self) -> &DamApi {
        &self.api
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
    ///
    /// A GET follows up to [`MAX_REDIRECTS`] redirects itself: to the DAM's own origin with the
    /// credentials, to any other host (a CDN serving content) without them — neither the
    /// `otmmauthtoken` header nor the bearer token ever leaves the DAM's origin, and the agent's
    /// cookie store sends a host only its own cookies (RFC 6265). Other methods get the 3xx back.
    fn call(
        &self,
        method: &Method,
        url: &str,
        retry: bool,
        timeouts: Timeouts,
        finish: transport::Finish<'_, DamError>,
    ) -> Result<Response<Body>, DamError> {
        let home = url::Url::parse(url).ok().map(|parsed| parsed.origin());
        let mut target = url.to_string();
        for _ in 0..=MAX_REDIRECTS {
            let here = url::Url::parse(&target).ok();
            let same_origin = here.as_ref().map(url::Url::origin) == home;
            let response = if same_origin {
                self.call_once(method, &target, retry, timeouts, finish)?
            } else {
                self.call_without_credentials(method, &target, timeouts, finish)?
            };
            if *method != Method::GET || !response.status().is_redirection() {
                return Ok(response);
            }
            let next = response
                .headers()
                .get(header::LOCATION)
                .and_then(|location| location.to_str().ok())
                .and_then(|location| here.as_ref()?.join(location).ok());
            match next {
                Some(next) => {
                    tracing::debug!(
                        from = %request_label(method, &target),
                        to_other_host = Some(next.origin()) != home,
                        "OTMM redirected the request"
                    );
                    target = next.to_string();
                }
                None => return Ok(response),
            }
        }
        Err(DamError::Decode(format!(
            "{}: more than {MAX_REDIRECTS} redirects",
            request_label(method, url)
        )))
    }

    /// One request to another host than the DAM's (a redirect target): no credentials, no
    /// `X-Requested-By`, retried like any idempotent call.
    fn call_without_credentials(
        &self,
        method: &Method,
        url: &str,
        timeouts: Timeouts,
        finish: transport::Finish<'_, DamError>,
    ) -> Result<Response<Body>, DamError> {
        let label = request_label(method, url);
        let options = call_options(&label, true, timeouts);
        self.send(&options, &mut || {
            finish(request(method.clone(), url).header(header::ACCEPT, "application/json"))
        })
    }

    /// One authenticated request to the DAM's origin (see [`DamClient::call`]).
    fn call_once(
        &self,
        method: &Method,
        url: &str,
        retry: bool,
        timeouts: Timeouts,
        finish: transport::Finish<'_, DamError>,
    ) -> Result<Response<Body>, DamError> {
        let label = request_label(method, url);
        let options = call_options(&label, retry, timeouts);
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

    /// Campaign folders whose field `field_id` matches `value` under `operator_id` (e.g. status "A1"
    /// with `ARTESIA.OPERATOR.CHAR.CONTAINS`), at most `limit` folders.
    ///
    /// Hits that are not folders (an asset inheriting the folder's status field) or are deleted
    /// are dropped and do not count against `limit`; the same folder on two pages (a page shift)
    /// is kept once. See [`DamClient::search`] for the request.
    pub fn search_folders_by_field(
        &self,
        field_id: &str,
        operator_id: &str,
        value: &str,
        limit: usize,
    ) -> Result<Vec<DamAsset>, DamError> {
        self.search(
            &field_condition(field_id, operator_id, value),
            limit,
            |asset| asset.is_folder,
        )
    }

    /// Up to `limit` hits of a search that `keep` accepts (deleted hits are never kept).
    ///
    /// GET `/search/text?keyword_query=*&load_type=metadata&level_of_detail=full&after=N&limit=M`
    /// `&search_condition_list=<JSON>` (+ `&sort=<dam.api.search_sort>` when set, +
    /// `&asset_filter_request=<JSON>` with `dam.api.exclude_deleted`), JSON fully percent-encoded,
    /// paged with `after += hit_count` until `total_hit_count`. Reads
    /// `search_result_resource.asset_list`; when a page lists only ids
    /// (`search_result.asset_id_list`), each is read with GET `/folders/{id}` and an id that is
    /// not a folder (404) is skipped.
    ///
    /// Source: OpenText's own client, `opentext/pyxecm` `packages/pyxecm/src/pyxecm/otmm.py`
    /// (`get_business_unit_assets`, `search_assets`: the same parameters, POSTed as a form, and
    /// the same paging by `hit_count`/`total_hit_count`); api-notes/otmm.md "Search".
    fn search(
        &self,
        condition: &Value,
        limit: usize,
        keep: impl Fn(&DamAsset) -> bool,
    ) -> Result<Vec<DamAsset>, DamError> {
        let condition = condition.to_string();
        let filter = asset_filter_request().to_string();
        let mut results: Vec<DamAsset> = Vec::new();
        let mut after: u64 = 0;
        while results.len() < limit {
            let page_size = self.api.search_page_size;
            let mut url = format!(
                "{}/search/text?keyword_query={}&load_type=metadata&level_of_detail=full&after={after}&limit={page_size}&search_condition_list={}",
                self.api_base,
                encode_query_value("*"),
                encode_query_value(&condition)
            );
            if !self.api.search_sort.is_empty() {
                url.push_str("&sort=");
                url.push_str(&encode_query_value(&self.api.search_sort));
            }
            if self.api.exclude_deleted {
                url.push_str("&asset_filter_request=");
                url.push_str(&encode_query_value(&filter));
            }
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
            let mut page = Vec::new();
            let received = if listed.is_empty() {
                for id in &ids {
                    match self.get_folder(id) {
                        Ok(folder) => page.push(DamAsset::from_json(&folder.json)?),
                        Err(error) if error.status() == Some(404) => {}
                        Err(error) => return Err(error),
                    }
                }
                ids.len() as u64
            } else {
                for asset in &listed {
                    page.push(DamAsset::from_json(asset)?);
                }
                listed.len() as u64
            };
            for asset in page {
                if !asset.deleted
                    && keep(&asset)
                    && !results.iter().any(|known| known.id == asset.id)
                    && results.len() < limit
                {
                    results.push(asset);
                }
            }
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
        Ok(results)
    }

    /// GET `/folders/{id}` with the metadata asked for explicitly (`dam.api.folder_load`:
    /// `load_type=metadata&level_of_detail=full`, or `load_type=custom` with a
    /// `data_load_request` loading metadata and inherited metadata) -> `folder_resource.folder`.
    /// A bare GET may answer without `metadata` (pyxecm's `get_asset` examples do), so the
    /// campaign status would read as empty.
    ///
    /// Source: `opentext/pyxecm` `packages/pyxecm/src/pyxecm/otmm.py` (`get_asset_details`:
    /// `load_type=custom`, `data_load_request`); api-notes/otmm.md "Folders";
    /// fixtures/otmm/campaign_folder.json.
    pub fn get_folder(&self, id: &str) -> Result<DamFolder, DamError> {
        let load = match self.api.folder_load {
            FolderLoad::Metadata => "load_type=metadata&level_of_detail=full".to_string(),
            FolderLoad::Custom => format!(
                "load_type=custom&level_of_detail=full&data_load_request={}",
                encode_query_value(
                    &serde_json::json!({"data_load_request": {
                        "load_metadata": true,
                        "load_inherited_metadata": true
                    }})
                    .to_string()
                )
            ),
        };
        let url = format!(
            "{}/folders/{}?{load}",
            self.api_base,
            encode_path_segment(id)
        );
        let body = self.get_json(&url)?;
        let label = format!("GET {API_PATH}/folders/{id}");
        DamFolder::from_json(required(&body, "/folder_resource/folder", &label)?)
    }

    /// Every child (assets and folders, deleted ones dropped) of a folder: GET
    /// `/folders/{id}/children?load_type=metadata&level_of_detail=full&after=N&limit=M` (+
    /// `asset_filter_request` with `dam.api.exclude_deleted`) -> `folder_children.asset_list`,
    /// paged until a short page (or `collection_summary.total_number_of_items`).
    /// Source: api-notes/otmm.md "Folders" (the OTMM UI's children request carries the
    /// `asset_filter_request`).
    pub fn list_children(&self, folder_id: &str) -> Result<Vec<DamAsset>, DamError> {
        let page_size = self.api.children_page_size;
        let filter = if self.api.exclude_deleted {
            format!(
                "&asset_filter_request={}",
                encode_query_value(&asset_filter_request().to_string())
            )
        } else {
            String::new()
        };
        let mut children: Vec<DamAsset> = Vec::new();
        let mut seen: Vec<String> = Vec::new();
        let mut after: usize = 0;
        loop {
            let url = format!(
                "{}/folders/{}/children?load_type=metadata&level_of_detail=full&after={after}&limit={page_size}{filter}",
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
                if !seen.contains(&asset.id) {
                    seen.push(asset.id.clone());
                    new += 1;
                    if !asset.deleted {
                        children.push(asset);
                    }
                }
            }
            if received < page_size || new == 0 {
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
    /// categories). Source: `opentext/pyxecm` `packages/pyxecm/src/pyxecm/otmm.py` (`get_asset`,
    /// `get_asset_details`); api-notes/otmm.md "Assets"; fixtures/otmm/master_asset.json.
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
    /// error the caller must look for the asset ([`DamClient::find_imported`]) before importing again.
    /// The `files` part's `filename` follows `dam.api.multipart_filename` (RFC 7578 §4.2: no
    /// `filename*`). Source: api-notes/otmm.md "Import" (joaquinOnSoft's OTMM uploader sends the
    /// same three parts).
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
        let part_name = match self.api.multipart_filename {
            MultipartFilename::Utf8 => file_name.to_string(),
            MultipartFilename::Ascii => file_name
                .chars()
                .map(|character| if character.is_ascii() { character } else { '_' })
                .collect(),
        };
        let form = Multipart::new()
            .json("asset_representation", asset_representation)
            .text("parent_folder_id", folder_id)
            .json("manifest", &import_manifest(file_name, mime_type))
            .file("files", &part_name, mime_type, path)
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

    /// What an import job has created: GET `/jobs/{id}/assets` -> `assets_resource.asset_list[]`
    /// ([`JobState::Completed`] with their ids; an empty list is [`JobState::InProgress`]: no
    /// public source shows how a running or failed job answers, so a job that never shows an
    /// asset is judged by `dam.import_landing_secs`). Used only with
    /// `dam.api.import_completion: jobs`. A 404 or 405 (the server has no such resource) is
    /// [`DamError::Dialect`] naming the setting to change.
    ///
    /// Source: `bpra9266/sysco-otmm-publisher` `src/app.js` (GET `{JOB_STATUS}/{job_id}/assets`,
    /// reads `assets_resource.asset_list[0].asset_id`); docs/otmm-evidence.md §4.
    pub fn job_state(&self, job_id: &str) -> Result<JobState, DamError> {
        let url = format!(
            "{}/jobs/{}/assets",
            self.api_base,
            encode_path_segment(job_id)
        );
        match self.get_json(&url) {
            Ok(body) => parse_job(&body),
            Err(error) if matches!(error.status(), Some(404 | 405)) => Err(DamError::Dialect {
                message: format!(
                    "the DAM has no import job resource (GET {API_PATH}/jobs/{job_id}/assets answered {}) but dam.api.import_completion is jobs",
                    error.status().unwrap_or_default()
                ),
                fix: "set dam.api.import_completion: search".into(),
            }),
            Err(error) => Err(error),
        }
    }

    /// The asset an import of `name` carrying `marker` in the tracking field `field_id` created
    /// in `folder_id`, if the DAM shows it yet (`None`: not visible, e.g. not indexed yet).
    ///
    /// With `dam.api.import_completion: search` or `jobs`: `/search/text` with a condition on
    /// `field_id` under `dam.api.marker_search_operator_id` (see [`DamClient::search`]), then
    /// exact checks of the name and the marker on each hit. With `folder_listing`: the children of
    /// `folder_id` ([`DamClient::list_children`]), same checks.
    pub fn find_imported(
        &self,
        folder_id: &str,
        name: &str,
        field_id: &str,
        marker: &str,
    ) -> Result<Option<DamAsset>, DamError> {
        let candidates = match self.api.import_completion {
            ImportCompletion::Search | ImportCompletion::Jobs => self.search(
                &field_condition(field_id, &self.api.marker_search_operator_id, marker),
                self.api.search_page_size,
                |asset| !asset.is_folder,
            )?,
            ImportCompletion::FolderListing => self.list_children(folder_id)?,
        };
        Ok(candidates.into_iter().find(|asset| {
            !asset.is_folder
                && asset.name == name
                && crate::metadata::field_text(&asset.json, field_id).as_deref() == Some(marker)
        }))
    }

    /// Waits for the asset an import created, asking the way `dam.api.import_completion` says:
    /// `jobs` reads [`DamClient::job_state`] of `import.job_id` (when known) and, while it shows
    /// no asset, [`DamClient::find_imported`]; `search` and `folder_listing` ask
    /// [`DamClient::find_imported`] only. Returns the asset id, or `None` when it is not visible
    /// once `timeout` (default `dam.import_job_timeout_secs`; zero asks once, at once) has passed.
    /// With a timeout, the first look waits `dam.first_job_poll_delay_ms` (within the timeout);
    /// then pauses start at 100 ms and double up to 2 s, each logged at DEBUG; the wait itself
    /// (a timeout of [`crate::http::LONG_WAIT`] or more) and a timeout are logged at INFO. Errors are returned as they are (a transport error after the HTTP core's retries;
    /// [`DamError::Dialect`] when the server has no job resource).
    pub fn wait_for_import(
        &self,
        import: &ImportProbe<'_>,
        timeout: Option<Duration>,
    ) -> Result<Option<String>, DamError> {
        let timeout = timeout.unwrap_or(self.import_job_timeout);
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_millis(100);
        if timeout >= crate::http::LONG_WAIT {
            tracing::info!(
                file = import.name,
                job_id = import.job_id.unwrap_or_default(),
                timeout_secs = timeout.as_secs(),
                "waiting up to {} s for the DAM to finish importing {}",
                timeout.as_secs(),
                import.name
            );
        }
        if !timeout.is_zero() && !self.first_job_poll_delay.is_zero() {
            thread::sleep(self.first_job_poll_delay.min(timeout));
        }
        loop {
            if let Some(asset_id) = self.look_for_import(import)? {
                return Ok(Some(asset_id));
            }
            let now = Instant::now();
            if now >= deadline {
                if !timeout.is_zero() {
                    tracing::info!(
                        file = import.name,
                        waited_secs = timeout.as_secs(),
                        "the imported asset is not visible in the DAM yet"
                    );
                }
                return Ok(None);
            }
            let wait = pause.min(deadline - now);
            tracing::debug!(
                file = import.name,
                wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                "waiting for the imported asset"
            );
            thread::sleep(wait);
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }

    /// One look for an import's asset (see [`DamClient::wait_for_import`]).
    fn look_for_import(&self, import: &ImportProbe<'_>) -> Result<Option<String>, DamError> {
        if self.api.import_completion == ImportCompletion::Jobs {
            if let Some(job_id) = import.job_id {
                if let JobState::Completed { asset_ids } = self.job_state(job_id)? {
                    if let Some(first) = asset_ids.into_iter().next() {
                        return Ok(Some(first));
                    }
                }
            }
        }
        Ok(self
            .find_imported(
                import.folder_id,
                import.name,
                import.field_id,
                import.marker,
            )?
            .map(|asset| asset.id))
    }

    /// Sets a folder field (the campaign status) to `value`: PUT `/assets/{id}/state` form
    /// `action=lock` (per `dam.api.lock_folders`), PATCH `/folders/{id}` with
    /// [`folder_field_patch`] in `dam.api.status_value_shape`, then, when locked, PUT
    /// `/assets/{id}/state` `action=unlock`, also when the PATCH failed (the PATCH error wins; an
    /// unlock failure after a successful PATCH is returned).
    ///
    /// Public evidence covers locking and editing *assets* (PUT `/assets/{id}/state`, PATCH
    /// `/assets/{id}` `edited_asset`: api-notes/otmm.md "Assets"); locking a folder and the
    /// `edited_folder` body are unconfirmed, hence the settings. With `lock_folders:
    /// when_allowed` a lock refused with 400/403/409 is taken as "this server does not lock
    /// containers" and the PATCH goes ahead unlocked; with `always` it is [`DamError::Dialect`].
    /// A PATCH refused with 400 is [`DamError::Dialect`] naming `status_value_shape` (and, when no
    /// lock was taken, `lock_folders`).
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
        let locked = match self.api.lock_folders {
            FolderLocking::Never => false,
            policy => match self.mutate(
                &Method::PUT,
                &state_url,
                MutationBody::Form(&[("action", "lock")]),
            ) {
                Ok(_) => true,
                Err(error) if matches!(error.status(), Some(400 | 403 | 409)) => {
                    if policy == FolderLocking::Always {
                        return Err(DamError::Dialect {
                            message: format!(
                                "the DAM refused to lock the campaign folder {folder_id} ({error}) but dam.api.lock_folders is always"
                            ),
                            fix: "set dam.api.lock_folders: when_allowed (or never)".into(),
                        });
                    }
                    tracing::debug!(folder_id, %error, "the DAM does not lock folders; updating without a lock");
                    false
                }
                Err(error) => return Err(error),
            },
        };
        let patched = self
            .mutate(
                &Method::PATCH,
                &folder_url,
                MutationBody::Json(&folder_field_patch(
                    field_id,
                    value,
                    self.api.status_value_shape,
                )),
            )
            .map_err(|error| match error.status() {
                Some(400 | 409 | 423) => {
                    let other = match self.api.status_value_shape {
                        crate::config::ValueShape::Plain => "domain_value",
                        crate::config::ValueShape::DomainValue => "plain",
                    };
                    let fix = if locked {
                        format!("set dam.api.status_value_shape: {other}")
                    } else {
                        format!("set dam.api.status_value_shape: {other}, or dam.api.lock_folders: always if the server needs a lock before an edit")
                    };
                    DamError::Dialect {
                        message: format!("the DAM refused the status update of folder {folder_id}: {error}"),
                        fix,
                    }
                }
                _ => error,
            });
        if !locked {
            return patched.map(|_| ());
        }
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
