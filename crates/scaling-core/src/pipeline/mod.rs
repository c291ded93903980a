//! The passes: one invocation of a binary runs one pass and returns a [`PassReport`].
//!
//! - [`a1_to_a2`]: DAM campaigns at A1 -> masters into Box with tracking IDs -> A2.
//! - [`box_poll`]: derivatives in the watched Box folders -> DAM Final Assets -> archive; A2 -> A3.
//! - [`outbox`]: delivery of queued emails and webhooks (run at the end of every pass).
//!
//! The passes talk to the outside only through [`Services`] (Box, DAM, PostgreSQL, notifications),
//! and take every decision that must survive a crash from the database (design.md §3): a step is
//! recorded before its effect, and every effect is looked up before it is repeated.

/// A crash point at a step boundary: with the `failpoints` feature and
/// `FAILPOINTS="<name>=return"` in the environment, the process aborts right there (SIGABRT:
/// no destructors, no cleanup, like `kill -9`), so tests can prove that a rerun converges.
/// Without the feature it compiles to nothing. Tests enumerate the names from the source.
macro_rules! crash_point {
    ($name:literal) => {
        #[cfg(feature = "failpoints")]
        {
            if fail::eval($name, |_| ()).is_some() {
                eprintln!("crash point {} reached: aborting", $name);
                std::process::abort();
            }
        }
    };
}

pub mod a1_to_a2;
mod alerts;
pub mod box_poll;
pub mod check_config;
pub mod cleanup;
pub mod dam_check;
pub mod operator;
pub mod outbox;
pub mod reprocess;
pub mod setup;
pub mod status;
pub mod status_page;
mod transition;

use std::time::Duration;

use serde::Serialize;

use crate::boxapi::{BoxAppConfig, BoxClient, BoxError};
use crate::config::{Config, ConfigError};
use crate::dam::{DamClient, DamError};
use crate::entry::Exit;
use crate::http::RetryPolicy;
use crate::notify::{Mailer, WebhookSender};
use crate::store::{self, PassProbe, RunOutcome, Store, StoreError};

/// Why a pass (or an operator command) could not complete. [`PassError::exit`] maps it to the
/// exit policy of [`crate::entry`].
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    /// A dependency (database, Box, DAM, ffprobe) is unreachable or unusable right now; nothing
    /// was lost, the next pass retries (exit code 75, EX_TEMPFAIL).
    #[error("{what} unreachable: {message}")]
    Unreachable {
        /// `database`, `Box`, `DAM`, `ffprobe`.
        what: &'static str,
        /// The cause.
        message: String,
    },
    /// The configuration cannot be loaded (exit code 2).
    #[error("configuration error: {0}")]
    Config(#[from] ConfigError),
    /// Configuration, usage or credentials problem that a rerun will not fix: Box app config
    /// missing or unreadable, wrong key passphrase, credentials refused, temp dir not private,
    /// an argument naming something that is not configured (exit code 2).
    #[error("{message}")]
    Setup {
        /// What is wrong.
        message: String,
        /// The fix, when one is known (printed as `hint: ...`).
        hint: Option<String>,
    },
    /// The pass itself failed (exit code 1).
    #[error("{0}")]
    Failed(String),
}

impl From<StoreError> for PassError {
    fn from(error: StoreError) -> Self {
        if error.is_configuration() {
            // The store's message may end with its own `hint:` line: keep it as the hint.
            let text = error.to_string();
            match text.split_once("\nhint: ") {
                Some((message, hint)) => PassError::setup_with_hint(message, hint),
                None => PassError::setup(text),
            }
        } else if error.is_unreachable() {
            PassError::Unreachable {
                what: "database",
                message: error.detail(),
            }
        } else {
            PassError::Failed(error.to_string())
        }
    }
}

impl PassError {
    /// A [`PassError::Setup`] without a hint.
    pub fn setup(message: impl Into<String>) -> Self {
        PassError::Setup {
            message: message.into(),
            hint: None,
        }
    }

    /// A [`PassError::Setup`] with the fix.
    pub fn setup_with_hint(message: impl Into<String>, hint: impl Into<String>) -> Self {
        PassError::Setup {
            message: message.into(),
            hint: Some(hint.into()),
        }
    }

    /// Where this error falls in the exit policy (design.md §6).
    pub fn exit(&self) -> Exit {
        match self {
            PassError::Unreachable { .. } => Exit::Unavailable,
            PassError::Config(_) | PassError::Setup { .. } => Exit::Configuration,
            PassError::Failed(_) => Exit::Failure,
        }
    }

    /// This error with the service's address (scheme, host and port; never user info, path or
    /// query) in front of its message when Box or the DAM was unreachable, so the one summary line
    /// of an outage names where the pass tried: `DAM unreachable: https://dam.example.com: ...`.
    #[must_use]
    pub fn naming_url(self, config: &Config) -> Self {
        match self {
            PassError::Unreachable { what, message } => {
                let base = match what {
                    "DAM" => Some(config.dam.base_url.as_str()),
                    "Box" => Some(config.box_api.base_url.as_str()),
                    _ => None,
                };
                let message = match base.map(crate::http::redacted_origin) {
                    Some(origin) if !message.contains(&origin) => format!("{origin}: {message}"),
                    _ => message,
                };
                PassError::Unreachable { what, message }
            }
            other => other,
        }
    }

    /// The known fix, if any, for a `hint:` line.
    pub fn hint(&self) -> Option<String> {
        match self {
            PassError::Setup { hint, .. } => hint.clone(),
            PassError::Config(error) => Some(
                if error.to_string().contains("environment variable") {
                    "set the variable named above in the environment or in the .env next to the config directory"
                } else {
                    "correct the key named above (config/config.yaml documents every key); `box-setup doctor` checks the whole installation"
                }
                .to_string(),
            ),
            PassError::Unreachable { .. } | PassError::Failed(_) => None,
        }
    }

    fn from_box(error: BoxError) -> Self {
        if error.is_transient() {
            PassError::Unreachable {
                what: "Box",
                message: error.to_string(),
            }
        } else if matches!(error, BoxError::Auth { .. }) {
            PassError::setup_with_hint(format!("Box: {error}"), BOX_CREDENTIALS_HINT)
        } else {
            PassError::Failed(format!("Box: {error}"))
        }
    }

    fn from_dam(error: DamError) -> Self {
        if error.is_transient() {
            PassError::Unreachable {
                what: "DAM",
                message: error.to_string(),
            }
        } else if let DamError::Dialect { message, fix } = &error {
            PassError::setup_with_hint(
                format!("DAM: {message}"),
                format!(
                    "{fix}; `box-setup dam-check` tells which dam.api settings this server needs"
                ),
            )
        } else if matches!(error, DamError::Auth(_)) {
            PassError::setup_with_hint(
                format!("DAM: {error}"),
                "check DAM_USERNAME / DAM_PASSWORD (dam.auth), then run `box-setup doctor`",
            )
        } else {
            PassError::Failed(format!("DAM: {error}"))
        }
    }
}

/// The fix for a Box app config that cannot be read, a key that cannot be decrypted or a token
/// request Box refuses.
pub(crate) const BOX_CREDENTIALS_HINT: &str = "point BOX_CONFIG_FILE (box.app_config_file) at the app's JSON from the Box Developer Console, readable by this user, with its passphrase (or give box.client_id, client_secret, jwt_key_id, rsa_private_key_path, passphrase and enterprise_id instead); check that the app is authorized in the Box Admin Console";

/// The Box client of the configuration: reads the app config and decrypts its key (no request
/// is made).
///
/// # Errors
/// [`PassError::Setup`] (exit 2) when the app config is missing or unreadable or the key cannot
/// be decrypted (wrong passphrase).
pub fn box_client(config: &Config) -> Result<BoxClient, PassError> {
    let app = BoxAppConfig::load(&config.box_api.credentials).map_err(|error| {
        PassError::setup_with_hint(
            format!(
                "Box credentials {}: {error}",
                config.box_api.credentials.file().display()
            ),
            BOX_CREDENTIALS_HINT,
        )
    })?;
    let box_agent = agent(
        config.box_api.connect_timeout_secs,
        config.box_api.read_timeout_secs,
    );
    let client = BoxClient::new(&config.box_api, app, box_agent).map_err(|error| {
        PassError::setup_with_hint(format!("Box client: {error}"), BOX_CREDENTIALS_HINT)
    })?;
    Ok(client.with_retry_policy(
        RetryPolicy::new(config.box_api.max_retries)
            .with_retryable_statuses(&config.retry.retryable_http_codes),
    ))
}

/// Makes the temp dir ready ([`crate::tempdir::prepare`]).
///
/// # Errors
/// [`PassError::Setup`] (exit 2) with the fix.
pub fn prepare_temp_dir(config: &Config) -> Result<(), PassError> {
    crate::tempdir::prepare(&config.temp.dir)
        .map(drop)
        .map_err(|error| PassError::setup_with_hint(error.to_string(), error.hint()))
}

/// What one pass did; stored in `runs.counts` and summarised on stderr.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct PassReport {
    /// Campaigns examined.
    pub campaigns_seen: u32,
    /// Campaigns skipped because another pass holds their lock.
    pub campaigns_locked: u32,
    /// Masters uploaded to Box in this pass.
    pub masters_uploaded: u32,
    /// Masters that failed in this pass.
    pub masters_failed: u32,
    /// Campaigns moved A1 -> A2 or A2 -> A3 in this pass.
    pub campaigns_advanced: u32,
    /// Box files examined in watched folders.
    pub files_seen: u32,
    /// Watched folders listed (box-poll; with the events stream, only the touched ones).
    pub folders_listed: u32,
    /// Derivatives imported into the DAM and archived.
    pub derivatives_delivered: u32,
    /// Files moved to `_errors/`.
    pub files_rejected: u32,
    /// Files left in place after a passing failure (retried later).
    pub files_retry_later: u32,
    /// Notifications delivered.
    pub notifications_sent: u32,
    /// Notifications whose delivery failed (retried later).
    pub notifications_failed: u32,
}

impl PassReport {
    /// Adds the counts of `other` (a worker's share of the pass) to these.
    pub fn merge(&mut self, other: &PassReport) {
        self.campaigns_seen += other.campaigns_seen;
        self.campaigns_locked += other.campaigns_locked;
        self.masters_uploaded += other.masters_uploaded;
        self.masters_failed += other.masters_failed;
        self.campaigns_advanced += other.campaigns_advanced;
        self.files_seen += other.files_seen;
        self.folders_listed += other.folders_listed;
        self.derivatives_delivered += other.derivatives_delivered;
        self.files_rejected += other.files_rejected;
        self.files_retry_later += other.files_retry_later;
        self.notifications_sent += other.notifications_sent;
        self.notifications_failed += other.notifications_failed;
    }

    /// True when the pass did nothing at all (cron output stays quiet then).
    pub fn is_idle(&self) -> bool {
        *self
            == PassReport {
                files_seen: self.files_seen,
                folders_listed: self.folders_listed,
                campaigns_seen: self.campaigns_seen,
                ..PassReport::default()
            }
    }
}

/// One readable line: the counts that are not zero, e.g. `2 masters uploaded, 1 campaign
/// advanced, 3 files seen in 1 folder`; `nothing to do` when every count is zero.
impl std::fmt::Display for PassReport {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let plural = |count: u32, one: &str, many: &str| {
            format!("{count} {}", if count == 1 { one } else { many })
        };
        let mut parts: Vec<String> = [
            (self.campaigns_seen, "campaign seen", "campaigns seen"),
            (
                self.campaigns_locked,
                "campaign left to another pass",
                "campaigns left to another pass",
            ),
            (self.masters_uploaded, "master uploaded", "masters uploaded"),
            (self.masters_failed, "master failed", "masters failed"),
            (
                self.campaigns_advanced,
                "campaign advanced",
                "campaigns advanced",
            ),
            (self.folders_listed, "folder listed", "folders listed"),
            (self.files_seen, "file seen", "files seen"),
            (
                self.derivatives_delivered,
                "derivative delivered",
                "derivatives delivered",
            ),
            (self.files_rejected, "file rejected", "files rejected"),
            (
                self.files_retry_later,
                "file to retry later",
                "files to retry later",
            ),
            (
                self.notifications_sent,
                "notification sent",
                "notifications sent",
            ),
            (
                self.notifications_failed,
                "notification failed",
                "notifications failed",
            ),
        ]
        .into_iter()
        .filter(|(count, _, _)| *count > 0)
        .map(|(count, one, many)| plural(count, one, many))
        .collect();
        if parts.is_empty() {
            parts.push("nothing to do".to_string());
        }
        formatter.write_str(&parts.join(", "))
    }
}

/// Everything a pass talks to, built once per pass.
pub struct Services {
    /// The loaded configuration.
    pub config: Config,
    /// Tracking database connection.
    pub store: Store,
    /// Box client (JWT service account).
    pub box_client: BoxClient,
    /// OTMM client.
    pub dam: DamClient,
    /// Email sender (Mailgun).
    pub mailer: Mailer,
    /// Outgoing webhook sender.
    pub webhooks: WebhookSender,
    /// Lease owner name of this pass: `{host}:{pid}:{process start time}`.
    pub owner: String,
    /// Host name (for `runs`).
    pub host: String,
    /// What the pass found to do at its start ([`Store::probe_pass`], asked by
    /// [`run_recorded`]); `None` when not asked: the pass then asks each question itself.
    pub probe: Option<PassProbe>,
}

fn agent(connect_secs: u64, read_secs: u64) -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(connect_secs.max(1))))
        .timeout_recv_response(Some(Duration::from_secs(read_secs.max(1))))
        .timeout_recv_body(Some(Duration::from_secs(read_secs.max(1))))
        .timeout_send_body(Some(Duration::from_secs(read_secs.max(1))))
        .build();
    ureq::Agent::new_with_config(config)
}

fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|name| !name.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|name| name.trim().to_string())
        })
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

impl Services {
    /// Connects the database (and migrates it), reads the Box app config and builds the clients.
    /// Box and the DAM are contacted lazily, by the pass.
    ///
    /// # Errors
    /// [`PassError::Unreachable`] when the database is down; [`PassError::Setup`] (exit 2) when
    /// its settings or credentials are wrong, the Box app config cannot be read, its key cannot
    /// be decrypted, or the temp dir cannot be created or is not private.
    pub fn connect(config: Config) -> Result<Services, PassError> {
        let mut store = Store::connect_database(&config.database)?;
        store.migrate()?;
        Services::with_store(config, store)
    }

    /// [`Services::connect`] for a dry run: the database is read, never written, so it is not
    /// migrated either; a database this build would migrate is refused.
    ///
    /// # Errors
    /// Those of [`Services::connect`]; [`PassError::Setup`] (exit 2) when the database lacks
    /// migrations of this build (a fresh install, or an upgrade not run yet).
    pub fn connect_read_only(config: Config) -> Result<Services, PassError> {
        let mut store = Store::connect_database(&config.database)?;
        let migrations = store.migration_state()?;
        if !migrations.pending.is_empty() {
            return Err(PassError::setup_with_hint(
                format!(
                    "the tracking database lacks migrations of this build ({}); a dry run writes nothing, so it does not migrate",
                    migrations.pending.join(", ")
                ),
                "run the pass once without --dry-run (it migrates the database first), then preview again",
            ));
        }
        Services::with_store(config, store)
    }

    /// The services around a connected `store`: temp dir ready, clients built.
    fn with_store(config: Config, store: Store) -> Result<Services, PassError> {
        prepare_temp_dir(&config)?;
        let box_client = box_client(&config)?;
        let dam_agent = agent(
            config.dam.connect_timeout_secs,
            config.dam.content_timeout_secs,
        );
        let lookup_ttl = Duration::from_secs(
            config
                .field_mappings
                .validate_domain_values
                .cache_ttl_hours
                .saturating_mul(3600),
        );
        let lookup_cache_file = config
            .field_mappings
            .validate_domain_values
            .cache_file
            .clone()
            .unwrap_or_else(|| config.temp.dir.join(crate::dam::LOOKUP_CACHE_FILE));
        let dam = DamClient::new(&config.dam, dam_agent)
            .with_lookup_cache(&lookup_cache_file, lookup_ttl)
            .with_retry_policy(
                RetryPolicy::new(config.dam.max_retries)
                    .with_retryable_statuses(&config.retry.retryable_http_codes),
            );
        let notify_agent = agent(10, 30);
        let mailer = Mailer::new(&config.email, notify_agent.clone());
        let webhooks = WebhookSender::new(notify_agent);
        let host = host_name();
        let owner = lease_owner_name(&host, std::process::id());
        Ok(Services {
            config,
            store,
            box_client,
            dam,
            mailer,
            webhooks,
            owner,
            host,
            probe: None,
        })
    }

    /// Another set of services for a worker thread of this pass: its own database connection
    /// (not migrated again), the same configuration, and clones of the clients, which share this
    /// pass's access tokens, DAM session and rate limiters. Same lease owner: the worker's leases
    /// are this pass's.
    ///
    /// # Errors
    /// [`PassError::Unreachable`] when the database refuses another connection.
    pub fn for_worker(&self) -> Result<Services, PassError> {
        Ok(Services {
            config: self.config.clone(),
            store: Store::connect_database(&self.config.database)?,
            box_client: self.box_client.clone(),
            dam: self.dam.clone(),
            mailer: self.mailer.clone(),
            webhooks: self.webhooks.clone(),
            owner: self.owner.clone(),
            host: self.host.clone(),
            probe: None,
        })
    }

    /// What this pass has to do besides its folders and campaigns ([`Store::probe_pass`]): asked
    /// once, on first use (at the start of every [`run_recorded`] pass), then kept.
    ///
    /// # Errors
    /// Database errors.
    pub fn probe(&mut self) -> Result<&mut PassProbe, PassError> {
        let probe = if let Some(probe) = self.probe.take() {
            probe
        } else {
            let campaign = &self.config.dam.campaign;
            self.store.probe_pass(
                &format!("{}:", self.host),
                &campaign.status_a3,
                &campaign.status_a2,
            )?
        };
        Ok(self.probe.insert(probe))
    }

    /// A private temp file (mode 0600) in the temp dir's `downloads/` subdirectory (apart from
    /// the caches, see [`crate::tempdir`]), removed when dropped.
    fn temp_file(&self) -> Result<tempfile::NamedTempFile, PassError> {
        let directory = self.config.temp.downloads_dir();
        tempfile::Builder::new()
            .prefix("cs-")
            .tempfile_in(&directory)
            .map_err(|error| {
                PassError::Failed(format!("temp file in {}: {error}", directory.display()))
            })
    }
}

/// `{host}:{pid}:{start}` where `start` is the process start time in clock ticks since boot
/// (`/proc/{pid}/stat` field 22; `0` where unavailable), so a reused pid is not mistaken for
/// the process that took a lease.
fn lease_owner_name(host: &str, pid: u32) -> String {
    format!("{host}:{pid}:{}", process_start_ticks(pid).unwrap_or(0))
}

fn process_start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces: split after it.
    let after_name = stat.rsplit_once(')')?.1;
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// True when `owner` names a process on this host that no longer runs (crashed or killed).
/// Owners on other hosts are never judged: their leases expire by time.
fn is_dead_local_owner(owner: &str, host: &str) -> bool {
    let mut parts = owner.rsplitn(3, ':');
    let (Some(start), Some(pid), Some(owner_host)) = (parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    if owner_host != host {
        return false;
    }
    let (Ok(pid), Ok(start)) = (pid.parse::<u32>(), start.parse::<u64>()) else {
        return false;
    };
    match process_start_ticks(pid) {
        None => true,
        Some(current) => start != 0 && current != start,
    }
}

/// Releases the leases held by passes on this host that died (kill -9, crash, reboot), so
/// their work is taken up at once instead of after the lease expires.
fn release_dead_local_leases(services: &mut Services) -> Result<(), PassError> {
    let owners = services.probe()?.lease_owners.clone();
    for owner in owners {
        if owner != services.owner && is_dead_local_owner(&owner, &services.host) {
            let released = services.store.release_leases_of(&owner)?;
            // What the dead pass held is free now: the probe, asked before, did not count it.
            if let Some(probe) = services.probe.as_mut() {
                probe.unfinished_moves = true;
                probe.notifications_due = true;
            }
            tracing::info!(%owner, released, "released the leases of a pass that is no longer running");
        }
    }
    Ok(())
}

/// The heartbeat of a live pass: a thread that extends every Box-file lease the pass holds to
/// `lease_secs` from now, every third of it, on its own database connection (opened only when
/// the first renewal is due, so a short pass costs nothing). Stopped and joined on drop. A
/// renewal that fails is logged and tried again at the next tick; if the pass cannot renew for
/// a whole lease, another pass may claim its files, and the claim generation then fences this
/// one out of every write that matters (see `store::derivatives::claim_delivery`).
struct LeaseKeeper {
    stop: Option<std::sync::mpsc::Sender<()>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl LeaseKeeper {
    fn start(
        database: crate::config::DatabaseConfig,
        owner: String,
        lease_secs: u64,
    ) -> LeaseKeeper {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let every = Duration::from_secs((lease_secs / 3).max(1));
        let lease = i64::try_from(lease_secs).unwrap_or(i64::MAX);
        let handle = std::thread::Builder::new()
            .name("lease-keeper".into())
            .spawn(move || {
                let mut store: Option<Store> = None;
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(every)
                {
                    if store.is_none() {
                        match Store::connect_database(&database) {
                            Ok(connected) => store = Some(connected),
                            Err(error) => {
                                tracing::warn!(%error, "cannot renew this pass's leases now");
                                continue;
                            }
                        }
                    }
                    if let Some(connected) = store.as_mut() {
                        match connected.renew_leases(&owner, lease) {
                            Ok(renewed) => tracing::debug!(renewed, "leases renewed"),
                            Err(error) => {
                                tracing::warn!(%error, "cannot renew this pass's leases now");
                                store = None;
                            }
                        }
                    }
                }
            })
            .ok();
        LeaseKeeper {
            stop: Some(stop),
            handle,
        }
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

/// Runs `pass` as binary `binary_name`: writes the `runs` row, runs the pass, delivers the
/// outbox, and records the outcome. A pass error is recorded before it is returned.
///
/// # Errors
/// The pass's own error, or a database error writing `runs`.
pub fn run_recorded(
    services: &mut Services,
    binary_name: &str,
    pass: impl FnOnce(&mut Services, &mut PassReport) -> Result<(), PassError>,
) -> Result<PassReport, PassError> {
    let host = services.host.clone();
    let run_id = services.store.start_run(binary_name, &host)?;
    let queued_before = store::queued_by_this_process();
    // Asked afresh at the start of every recorded pass.
    services.probe = None;
    services.probe()?;
    let mut report = PassReport::default();
    // Renews this pass's leases while it runs: only a pass that died or froze loses its files.
    let keeper = LeaseKeeper::start(
        services.config.database.clone(),
        services.owner.clone(),
        services.config.polling.lease_secs,
    );
    let result = release_dead_local_leases(services)
        .and_then(|()| pass(services, &mut report))
        .map_err(|error| error.naming_url(&services.config));
    drop(keeper);
    // One OTMM session per pass, closed when the pass is done with the DAM.
    services.dam.logout();
    // Critical alerts: a failed pass opens (or feeds) its binary's incident, the first success
    // after one closes it; the emails are queued here and delivered just below.
    let open_incident = services.probe.as_ref().is_none_or(|probe| {
        probe
            .open_incidents
            .iter()
            .any(|binary| binary == binary_name)
    });
    alerts::record_outcome(services, binary_name, &result, open_incident);
    // Deliver what this pass (or an earlier, interrupted one) queued, even when the pass failed
    // half-way: a queued notification belongs to a state change that already happened.
    let due = services
        .probe
        .as_ref()
        .is_none_or(|probe| probe.notifications_due);
    if due || store::queued_by_this_process() != queued_before {
        outbox::deliver(services, &mut report);
    }
    let counts = serde_json::to_value(&report).unwrap_or_default();
    match &result {
        Ok(()) => services
            .store
            .finish_run(run_id, RunOutcome::Completed, &counts, None)?,
        Err(error) => {
            let outcome = if error.exit() == Exit::Unavailable {
                RunOutcome::DependencyUnreachable
            } else {
                RunOutcome::Failed
            };
            // Best effort: the database may be the thing that failed.
            if let Err(store_error) =
                services
                    .store
                    .finish_run(run_id, outcome, &counts, Some(&error.to_string()))
            {
                tracing::warn!(error = %store_error, "could not record the failed pass in runs");
            }
        }
    }
    result.map(|()| report)
}

/// Runs `work` on every item with up to `polling.workers` threads and returns the results in
/// the items' order (`None` for items not started because the pass stopped). Worker 0 uses
/// `services`; the others get their own [`Services::for_worker`]. Each worker counts into its
/// own report, merged into `report` at the end. Workers take the next item from a shared queue,
/// so a slow file never holds up the others; the first error stops new items from starting
/// (items under way finish) and is returned.
///
/// With one worker (or one item) everything runs on the calling thread, with no extra
/// connection: an idle or small pass costs nothing more.
///
/// # Errors
/// The first [`PassError`] of `work`, or the database refusing a worker's connection.
pub(crate) fn run_workers<T: Sync, R: Send>(
    services: &mut Services,
    report: &mut PassReport,
    items: &[T],
    work: impl Fn(&mut Services, &mut PassReport, &T) -> Result<R, PassError> + Sync,
) -> Result<Vec<Option<R>>, PassError> {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Mutex;

    let wanted = usize::try_from(services.config.polling.workers)
        .unwrap_or(1)
        .clamp(1, items.len().max(1));
    if wanted == 1 {
        let mut results = Vec::with_capacity(items.len());
        for item in items {
            results.push(Some(work(services, report, item)?));
        }
        return Ok(results);
    }
    let mut extra = Vec::with_capacity(wanted - 1);
    for _ in 1..wanted {
        match services.for_worker() {
            Ok(worker) => extra.push(worker),
            // Fewer workers rather than none: the pass still drains its backlog.
            Err(error) if !extra.is_empty() => {
                tracing::warn!(%error, workers = extra.len() + 1, "fewer workers than configured");
                break;
            }
            Err(error) => return Err(error),
        }
    }
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    let first_error: Mutex<Option<PassError>> = Mutex::new(None);
    let reports: Mutex<Vec<PassReport>> = Mutex::new(Vec::new());
    let run = |worker: &mut Services| {
        let mut own = PassReport::default();
        while !stop.load(Ordering::SeqCst) {
            let index = next.fetch_add(1, Ordering::SeqCst);
            let Some(item) = items.get(index) else { break };
            match work(worker, &mut own, item) {
                Ok(result) => {
                    if let Some(slot) = results
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .get_mut(index)
                    {
                        *slot = Some(result);
                    }
                }
                Err(error) => {
                    stop.store(true, Ordering::SeqCst);
                    first_error
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .get_or_insert(error);
                }
            }
        }
        reports
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(own);
    };
    std::thread::scope(|scope| {
        for worker in &mut extra {
            let run = &run;
            scope.spawn(move || run(worker));
        }
        run(services);
    });
    for own in reports
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
    {
        report.merge(&own);
    }
    if let Some(error) = first_error
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
    {
        return Err(error);
    }
    Ok(results
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner))
}

/// Exponential backoff for pass-level retries: `base * 2^(attempts-1)`, capped, in seconds.
pub(crate) fn backoff_secs(attempts: i32, base_secs: u64, max_secs: u64) -> i64 {
    let exponent = u32::try_from(attempts.saturating_sub(1).clamp(0, 20)).unwrap_or(20);
    let delay = base_secs.saturating_mul(1_u64 << exponent).min(max_secs);
    i64::try_from(delay).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff_secs(1, 60, 3600), 60);
        assert_eq!(backoff_secs(2, 60, 3600), 120);
        assert_eq!(backoff_secs(3, 60, 3600), 240);
        assert_eq!(backoff_secs(10, 60, 3600), 3600);
        assert_eq!(backoff_secs(0, 60, 3600), 60);
        assert_eq!(backoff_secs(i32::MAX, 60, 3600), 3600);
    }

    #[test]
    fn report_reads_as_a_sentence() {
        assert_eq!(PassReport::default().to_string(), "nothing to do");
        let report = PassReport {
            masters_uploaded: 2,
            campaigns_advanced: 1,
            folders_listed: 1,
            files_rejected: 1,
            ..PassReport::default()
        };
        assert_eq!(
            report.to_string(),
            "2 masters uploaded, 1 campaign advanced, 1 folder listed, 1 file rejected"
        );
    }

    #[test]
    fn idle_report_ignores_seen_counts_only() {
        let idle = PassReport {
            files_seen: 3,
            campaigns_seen: 1,
            ..PassReport::default()
        };
        assert!(idle.is_idle());
        let busy = PassReport {
            derivatives_delivered: 1,
            ..PassReport::default()
        };
        assert!(!busy.is_idle());
    }

    #[test]
    fn dead_local_owners_are_recognised() {
        let me = lease_owner_name("host-a", std::process::id());
        assert!(
            !is_dead_local_owner(&me, "host-a"),
            "this process is alive: {me}"
        );
        assert!(
            !is_dead_local_owner(&me, "host-b"),
            "owners on other hosts are never judged"
        );
        // pid 4194304 is above Linux's pid_max: never a live process.
        assert!(is_dead_local_owner("host-a:4194304:123", "host-a"));
        // A live pid with another start time: the pid was reused, the owner is dead.
        let reused = format!("host-a:{}:1", std::process::id());
        assert!(is_dead_local_owner(&reused, "host-a"));
        assert!(!is_dead_local_owner("garbage", "host-a"));
        assert!(!is_dead_local_owner(
            "host:with:colons:notapid:1",
            "host:with:colons"
        ));
    }

    #[test]
    fn exit_codes_follow_design() {
        let code = |error: PassError| error.exit().code();
        assert_eq!(
            code(PassError::Unreachable {
                what: "Box",
                message: String::new()
            }),
            75
        );
        assert_eq!(code(PassError::Failed(String::new())), 1);
        assert_eq!(code(PassError::setup("x")), 2);
        assert_eq!(
            code(PassError::from_box(BoxError::Auth {
                message: "invalid_client".into(),
                source: None,
            })),
            2,
            "credentials refused"
        );
        assert_eq!(
            code(PassError::from_dam(DamError::Auth("401".into()))),
            2,
            "credentials refused"
        );
        assert_eq!(
            code(PassError::from_box(BoxError::Transport(
                crate::http::TransportError {
                    label: "GET /2.0/folders/0".into(),
                    attempts: 1,
                    source: ureq::Error::ConnectionFailed,
                }
            ))),
            75
        );
        assert_eq!(
            code(PassError::from(crate::store::StoreError::Configuration(
                "FATAL: database \"x\" does not exist\nhint: check the database name".into()
            ))),
            2,
            "database settings refused"
        );
    }
}
