//! Startup and routing: prepares the state directory, credentials and scenario, binds the main
//! port and the download port (loopback only), assembles the routers with the request-observing
//! middleware (fault injection, see [`crate::faults`], + statistics) and serves them with
//! [`crate::conn::serve`] (Title-Case headers; `drop` faults can cut connections).

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde::Serialize;
use serde_json::json;

use crate::conn::ConnHandle;
use crate::faults::{FaultKind, FaultRule, FaultState};
use crate::http_util::{drain_body, json_response};
use crate::scenario::SeededCampaign;
use crate::state::{App, AppConfig, Settings, World};

/// Options of `sandbox serve`.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Main address; must be loopback (`127.0.0.1:0` picks a free port).
    pub listen: SocketAddr,
    /// Directory for the generated app config, credentials and stored contents.
    pub state_dir: PathBuf,
    /// Scenario file (`None` = default scenario).
    pub scenario: Option<PathBuf>,
    /// Lifetime of issued tokens and sessions, in seconds.
    pub token_lifetime_secs: u64,
    /// Import delay in milliseconds (overrides the scenario; default 300).
    pub import_delay_ms: Option<u64>,
    /// Box API request bucket per access token (`None` = unlimited); changeable at run time
    /// through `POST /_sandbox/config`.
    pub rate_limit: Option<crate::state::RateLimit>,
    /// Seed of the fault generator (`None` = random, reported by `GET /_sandbox/faults`).
    pub fault_seed: Option<u64>,
    /// `part_size` of chunked upload sessions (default 8 MiB).
    pub part_size: u64,
    /// 202 replies a valid upload-session commit gets before it succeeds (default 1).
    pub commit_accepted_responses: u32,
    /// The OTMM server variant (default [`crate::dialect::OtmmDialect::Strict`]).
    pub otmm_dialect: crate::dialect::OtmmDialect,
}

impl ServeOptions {
    /// Defaults: `127.0.0.1:0`, default scenario, 3600 s tokens, no rate limit, random fault
    /// seed, 8 MiB parts, one 202 per commit.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        let defaults = Settings::default();
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            state_dir: state_dir.into(),
            scenario: None,
            token_lifetime_secs: 3600,
            import_delay_ms: None,
            rate_limit: None,
            fault_seed: None,
            part_size: defaults.part_size,
            commit_accepted_responses: defaults.commit_accepted_responses,
            otmm_dialect: crate::dialect::OtmmDialect::default(),
        }
    }
}

/// A Box watched folder in the ready line.
#[derive(Debug, Clone, Serialize)]
pub struct WatchedFolderInfo {
    /// Box folder ID.
    pub id: String,
    /// Folder name.
    pub name: String,
}

/// The JSON line printed on stdout when the sandbox is ready (keys of the internal contract plus
/// a few extras).
#[derive(Debug, Clone, Serialize)]
pub struct ReadyInfo {
    /// Box API root without `/2.0` (`http://127.0.0.1:P`).
    pub base_url: String,
    /// Box upload root without `/2.0` (`http://127.0.0.1:P/api`).
    pub upload_url: String,
    /// Box token URL (`http://127.0.0.1:P/oauth2/token`).
    pub oauth2_url: String,
    /// DAM server root; clients append `/otmmapi/v6`.
    pub dam_url: String,
    /// DAM OAuth2 client-credentials token URL.
    pub dam_oauth2_url: String,
    /// Mailgun API root; clients append `/v3/{domain}/messages`.
    pub mailgun_url: String,
    /// Control API root (`.../_sandbox`).
    pub control_url: String,
    /// Webhook receivers root (`.../_sandbox/webhooks`); POST to `{webhook_url}/{name}`.
    pub webhook_url: String,
    /// Root of the download host (second port).
    pub download_url: String,
    /// Absolute path of the generated Box app config JSON.
    pub box_app_config: String,
    /// Box folder where campaign folders are created.
    pub box_root_folder_id: String,
    /// Box watched folder IDs (first = `incoming` in the default scenario).
    pub watched_folder_ids: Vec<String>,
    /// Box watched folders with names.
    pub watched_folders: Vec<WatchedFolderInfo>,
    /// DAM folder holding the campaign folders.
    pub dam_root_folder_id: String,
    /// DAM session login.
    pub dam_username: String,
    /// DAM session password.
    pub dam_password: String,
    /// DAM OAuth2 client ID.
    pub dam_client_id: String,
    /// DAM OAuth2 client secret.
    pub dam_client_secret: String,
    /// Mailgun sending domain.
    pub mailgun_domain: String,
    /// Mailgun API key.
    pub mailgun_api_key: String,
    /// Campaigns of the scenario.
    pub campaigns: Vec<SeededCampaign>,
    /// Token and session lifetime in seconds.
    pub token_lifetime_secs: u64,
    /// Import delay in milliseconds.
    pub import_delay_ms: u64,
    /// Seed of the fault generator.
    pub fault_seed: u64,
    /// The OTMM server variant played (`strict`, `jobs`, `locking`).
    pub otmm_dialect: crate::dialect::OtmmDialect,
}

/// A prepared, bound server: call [`Server::run`] (or [`Server::run_until`]) to serve.
pub struct Server {
    /// What to print on the ready line.
    pub ready: ReadyInfo,
    app: Arc<App>,
    main_listener: tokio::net::TcpListener,
    download_listener: tokio::net::TcpListener,
}

/// Prepares everything and binds both ports.
///
/// # Errors
/// A non-loopback address, an unusable state directory, an invalid scenario (for example a
/// missing media file), key generation failures, or ports that cannot be bound.
pub async fn prepare(options: ServeOptions) -> anyhow::Result<Server> {
    if !options.listen.ip().is_loopback() {
        bail!(
            "refusing to listen on {}: the sandbox serves plain HTTP with test credentials and only binds loopback addresses (127.0.0.1 or ::1)",
            options.listen
        );
    }
    std::fs::create_dir_all(&options.state_dir)
        .with_context(|| format!("creating state directory {}", options.state_dir.display()))?;
    let state_dir = std::path::absolute(&options.state_dir).unwrap_or(options.state_dir.clone());
    let blob_dir = state_dir.join("blobs");
    if blob_dir.exists() {
        // Contents of an earlier run: the in-memory state that referenced them is gone.
        std::fs::remove_dir_all(&blob_dir)
            .with_context(|| format!("clearing {}", blob_dir.display()))?;
    }
    std::fs::create_dir_all(blob_dir.join("box"))
        .with_context(|| format!("creating {}", blob_dir.display()))?;
    std::fs::create_dir_all(blob_dir.join("dam"))
        .with_context(|| format!("creating {}", blob_dir.display()))?;

    let key_dir = state_dir.clone();
    let keys = tokio::task::spawn_blocking(move || crate::keys::load_or_create_box_app(&key_dir))
        .await
        .context("key generation task failed")??;
    let credentials = crate::keys::load_or_create_credentials(&state_dir)?;
    let scenario_path = options.scenario.clone();
    let fault_seed = options.fault_seed.unwrap_or_else(rand::random);
    if options.part_size == 0 {
        bail!("--part-size must be at least 1 byte");
    }
    let settings = Settings {
        rate_limit: options
            .rate_limit
            .filter(|limit| limit.per_minute > 0 && limit.burst > 0),
        part_size: options.part_size,
        commit_accepted_responses: options.commit_accepted_responses,
        ..Settings::default()
    };
    let (world, seeded) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let loaded = crate::scenario::load(scenario_path.as_deref())?;
        let mut world = World {
            faults: FaultState::with_seed(fault_seed),
            settings,
            ..World::default()
        };
        let seeded = crate::scenario::seed(&mut world, &loaded)?;
        Ok((world, seeded))
    })
    .await
    .context("scenario task failed")??;

    let main_listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .with_context(|| format!("binding {}", options.listen))?;
    let download_listener = tokio::net::TcpListener::bind(SocketAddr::new(options.listen.ip(), 0))
        .await
        .context("binding the download port")?;
    let main_addr = main_listener.local_addr()?;
    let download_addr = download_listener.local_addr()?;
    let main_base = format!("http://{main_addr}");
    let download_base = format!("http://{download_addr}");
    let import_delay_ms = options
        .import_delay_ms
        .or(seeded.import_delay_ms)
        .unwrap_or(300);

    let ready = ReadyInfo {
        base_url: main_base.clone(),
        upload_url: format!("{main_base}/api"),
        oauth2_url: format!("{main_base}/oauth2/token"),
        dam_url: main_base.clone(),
        dam_oauth2_url: format!("{main_base}/otmmapi/otds/token"),
        mailgun_url: main_base.clone(),
        control_url: format!("{main_base}/_sandbox"),
        webhook_url: format!("{main_base}/_sandbox/webhooks"),
        download_url: download_base.clone(),
        box_app_config: keys.config_path.display().to_string(),
        box_root_folder_id: seeded.box_root_folder_id.clone(),
        watched_folder_ids: seeded.watched_folder_ids.clone(),
        watched_folders: seeded
            .watched_folder_ids
            .iter()
            .zip(&seeded.watched_folder_names)
            .map(|(id, name)| WatchedFolderInfo {
                id: id.clone(),
                name: name.clone(),
            })
            .collect(),
        dam_root_folder_id: seeded.dam_root_folder_id.clone(),
        dam_username: credentials.dam_username.clone(),
        dam_password: credentials.dam_password.clone(),
        dam_client_id: credentials.dam_client_id.clone(),
        dam_client_secret: credentials.dam_client_secret.clone(),
        mailgun_domain: seeded.mailgun_domain.clone(),
        mailgun_api_key: credentials.mailgun_api_key.clone(),
        campaigns: seeded.campaigns.clone(),
        token_lifetime_secs: options.token_lifetime_secs,
        import_delay_ms,
        fault_seed,
        otmm_dialect: options.otmm_dialect,
    };
    let app = Arc::new(App {
        world: Mutex::new(world),
        config: AppConfig {
            keys,
            credentials,
            token_lifetime: Duration::from_secs(options.token_lifetime_secs),
            import_delay: Duration::from_millis(import_delay_ms),
            download_base_url: download_base,
            main_base_url: main_base,
            blob_dir,
            campaign_model: seeded.model.clone(),
            mailgun_domain: seeded.mailgun_domain.clone(),
            otmm_dialect: options.otmm_dialect,
        },
    });
    Ok(Server {
        ready,
        app,
        main_listener,
        download_listener,
    })
}

impl Server {
    /// Serves both ports until an I/O error (or forever).
    ///
    /// # Errors
    /// Accept-loop failures.
    pub async fn run(self) -> anyhow::Result<()> {
        self.run_until(std::future::pending::<()>()).await
    }

    /// Serves both ports until `shutdown` completes.
    ///
    /// # Errors
    /// Accept-loop failures.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let main_router = main_router(Arc::clone(&self.app));
        let download_router = download_router(Arc::clone(&self.app));
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let main_stop = stop_rx.clone();
        let download_stop = stop_rx;
        let main = crate::conn::serve(self.main_listener, main_router, main_stop);
        let download = crate::conn::serve(self.download_listener, download_router, download_stop);
        let main_task = tokio::spawn(main);
        let download_task = tokio::spawn(download);
        shutdown.await;
        let _ = stop_tx.send(true);
        main_task.await.context("main server task")??;
        download_task.await.context("download server task")??;
        Ok(())
    }
}

/// The main-port router: Box API, uploads, token, OTMM, Mailgun, control and webhooks.
pub fn main_router(app: Arc<App>) -> Router {
    Router::new()
        .merge(crate::box_api::api_routes(Arc::clone(&app)))
        .merge(crate::box_api::token_routes())
        .merge(crate::otmm::api_routes(Arc::clone(&app)))
        .merge(crate::otmm::public_routes())
        .merge(crate::mailgun::routes())
        .merge(crate::control::routes())
        .fallback(fallback)
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&app),
            observe_main,
        ))
        .layer(DefaultBodyLimit::disable())
        .with_state(app)
}

/// The download-port router (`GET /d/{token}`).
pub fn download_router(app: Arc<App>) -> Router {
    Router::new()
        .merge(crate::box_api::download_routes())
        .merge(crate::otmm::cdn_routes())
        .fallback(fallback)
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&app),
            observe_download,
        ))
        .with_state(app)
}

/// Which emulated API a path belongs to (for error shapes and counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    Box,
    BoxToken,
    BoxDownload,
    Dam,
    Mailgun,
    Webhook,
    Control,
    Other,
}

fn api_of(path: &str, download_port: bool) -> Api {
    if download_port {
        Api::BoxDownload
    } else if path.starts_with("/2.0/") || path.starts_with("/api/2.0/") {
        Api::Box
    } else if path.starts_with("/oauth2/") {
        Api::BoxToken
    } else if path.starts_with("/otmmapi/") {
        Api::Dam
    } else if path.starts_with("/v3/") {
        Api::Mailgun
    } else if path.starts_with("/_sandbox/webhooks/") {
        Api::Webhook
    } else if path.starts_with("/_sandbox") {
        Api::Control
    } else {
        Api::Other
    }
}

async fn fallback(request: Request) -> Response {
    let path = request.uri().path().to_owned();
    match api_of(&path, false) {
        Api::Box => {
            crate::box_api::box_error(StatusCode::NOT_FOUND, "not_found", "Not Found", None)
        }
        Api::Dam => {
            crate::otmm::otmm_error(StatusCode::NOT_FOUND, &format!("No resource at {path}"))
        }
        Api::Mailgun => json_response(StatusCode::NOT_FOUND, &json!({"message": "Not Found"})),
        _ => json_response(
            StatusCode::NOT_FOUND,
            &json!({"error": format!("no route for {path}")}),
        ),
    }
}

async fn observe_main(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    observe(app, request, next, false).await
}

async fn observe_download(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    observe(app, request, next, true).await
}

/// Fault injection and statistics for every request except control calls.
async fn observe(app: Arc<App>, request: Request, next: Next, download_port: bool) -> Response {
    let path = request.uri().path().to_owned();
    let api = api_of(&path, download_port);
    if api == Api::Control {
        return next.run(request).await;
    }
    let method = request.method().as_str().to_owned();
    let template = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "<unmatched>".to_owned(), |m| m.as_str().to_owned());
    // In flight from arrival to the response head (a streamed body is not counted).
    let tracked = match api {
        Api::Box | Api::BoxToken | Api::BoxDownload => Some(true),
        Api::Dam => Some(false),
        _ => None,
    };
    let fault = {
        let mut world = app.world();
        if let Some(box_api) = tracked {
            world.stats.in_flight(box_api, true);
        }
        world.faults.pick(&method, &path)
    };
    // Ends the count however the request ends (also when the client goes away mid-request).
    let _in_flight = tracked.map(|box_api| InFlight {
        app: Arc::clone(&app),
        box_api,
    });
    let (response, dropped) = match &fault {
        None => (next.run(request).await, false),
        Some(rule) => inject(api, rule, request, next).await,
    };
    {
        let mut world = app.world();
        let stats = &mut world.stats;

        let outcome = if dropped {
            "dropped".to_owned()
        } else {
            response.status().as_u16().to_string()
        };
        *stats
            .routes
            .entry(format!("{method} {template} {outcome}"))
            .or_insert(0) += 1;
        if let Some(rule) = &fault {
            stats.faults_injected += 1;
            *stats
                .faults_by_kind
                .entry(rule.kind().name().to_owned())
                .or_insert(0) += 1;
        }
        match api {
            Api::Box | Api::BoxToken => stats.box_requests += 1,
            Api::BoxDownload => {
                stats.box_requests += 1;
                stats.box_download_requests += 1;
            }
            Api::Dam => stats.dam_requests += 1,
            Api::Mailgun => stats.mailgun_requests += 1,
            Api::Webhook => stats.webhook_requests += 1,
            Api::Control | Api::Other => {}
        }
    }
    if let Some(rule) = &fault {
        tracing::debug!(%method, %path, kind = rule.kind().name(), "fault injected");
    }
    tracing::debug!(%method, %path, status = response.status().as_u16(), dropped, "request");
    response
}

/// A request being handled: counted in [`crate::state::Stats::in_flight`] until dropped.
struct InFlight {
    app: Arc<App>,
    box_api: bool,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.app.world().stats.in_flight(self.box_api, false);
    }
}

/// Applies a fired fault rule; the flag says the connection was dropped.
async fn inject(api: Api, rule: &FaultRule, request: Request, next: Next) -> (Response, bool) {
    let connection = request
        .extensions()
        .get::<axum::extract::ConnectInfo<ConnHandle>>()
        .map(|info| info.0.clone());
    match rule.kind() {
        FaultKind::Delay => {
            let delay = Duration::from_millis(rule.delay_ms.unwrap_or(0));
            if rule.after {
                let response = next.run(request).await;
                tokio::time::sleep(delay).await;
                return (response, false);
            }
            tokio::time::sleep(delay).await;
            (next.run(request).await, false)
        }
        FaultKind::Truncate => {
            let response = next.run(request).await;
            let limit = rule.truncate_after.unwrap_or(0);
            let (parts, body) = response.into_parts();
            let body = axum::body::Body::new(TruncatedBody {
                inner: body,
                remaining: limit,
                cut: false,
            });
            (Response::from_parts(parts, body), false)
        }
        FaultKind::Status | FaultKind::NotReady => {
            if rule.after {
                drop(next.run(request).await);
            } else {
                drain_body(request.into_body()).await;
            }
            (fault_response(api, rule), false)
        }
        FaultKind::Drop => {
            if rule.after {
                drop(next.run(request).await);
            }
            if let Some(ms) = rule.delay_ms {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            if let Some(connection) = connection {
                connection.kill();
                // Never written: the connection fails before hyper writes a byte.
                (StatusCode::SERVICE_UNAVAILABLE.into_response(), true)
            } else {
                tracing::warn!("drop fault without a connection handle: answering 503");
                (
                    fault_response(
                        api,
                        &FaultRule {
                            status: Some(503),
                            kind: Some(FaultKind::Status),
                            ..rule.clone()
                        },
                    ),
                    false,
                )
            }
        }
    }
}

/// A response body cut after `remaining` bytes: the next poll fails, so hyper aborts the
/// connection and the client sees fewer bytes than `Content-Length` announced.
struct TruncatedBody {
    inner: axum::body::Body,
    remaining: u64,
    cut: bool,
}

impl http_body::Body for TruncatedBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        use std::task::Poll;
        let this = self.get_mut();
        if this.cut || this.remaining == 0 {
            this.cut = true;
            return Poll::Ready(Some(Err(axum::Error::new(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "response body truncated by an injected fault",
            )))));
        }
        match std::pin::Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(mut data) => {
                    let length = data.len() as u64;
                    if length > this.remaining {
                        let keep = usize::try_from(this.remaining).unwrap_or(usize::MAX);
                        data.truncate(keep);
                        this.remaining = 0;
                    } else {
                        this.remaining -= length;
                    }
                    Poll::Ready(Some(Ok(http_body::Frame::data(data))))
                }
                Err(frame) => Poll::Ready(Some(Ok(frame))),
            },
            other => other,
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

fn fault_response(api: Api, fault: &FaultRule) -> Response {
    let status = StatusCode::from_u16(fault.status.unwrap_or(500))
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let message = format!(
        "Injected fault ({} {})",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    let mut response = match api {
        _ if status == StatusCode::ACCEPTED => StatusCode::ACCEPTED.into_response(),
        Api::Box | Api::BoxDownload if status == StatusCode::UNAUTHORIZED => {
            crate::box_api::unauthorized("The access token provided is invalid.")
        }
        Api::Box | Api::BoxDownload => crate::box_api::box_error(
            status,
            crate::box_api::code_for_status(status),
            &message,
            None,
        ),
        Api::BoxToken => {
            let error = if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                "temporarily_unavailable"
            } else {
                "invalid_request"
            };
            json_response(
                status,
                &json!({"error": error, "error_description": message}),
            )
        }
        Api::Dam => crate::otmm::otmm_error(status, &message),
        Api::Mailgun => json_response(status, &json!({"message": message})),
        Api::Webhook | Api::Control | Api::Other => {
            if status.is_success() {
                (status, "").into_response()
            } else {
                json_response(status, &json!({"error": message}))
            }
        }
    };
    if let Some(seconds) = fault.retry_after {
        response
            .headers_mut()
            .insert(axum::http::header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// A server running on its own thread and runtime (for tests and embedding); stops when dropped.
pub struct BackgroundServer {
    /// The ready information.
    pub ready: ReadyInfo,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl BackgroundServer {
    /// Prepares and starts a server on a new thread; returns once both ports are bound.
    ///
    /// # Errors
    /// Anything [`prepare`] reports, or a failure to start the runtime.
    pub fn start(options: ServeOptions) -> anyhow::Result<Self> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<anyhow::Result<ReadyInfo>>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => {
                    let _ = ready_tx.send(Err(error.into()));
                    return;
                }
            };
            runtime.block_on(async move {
                match prepare(options).await {
                    Ok(server) => {
                        let _ = ready_tx.send(Ok(server.ready.clone()));
                        let _ = server
                            .run_until(async move {
                                let _ = stop_rx.await;
                            })
                            .await;
                    }
                    Err(error) => {
                        let _ = ready_tx.send(Err(error));
                    }
                }
            });
        });
        let ready = ready_rx
            .recv()
            .context("sandbox thread ended before it was ready")??;
        Ok(Self {
            ready,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }
}

impl Drop for BackgroundServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
