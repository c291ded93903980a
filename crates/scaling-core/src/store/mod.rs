//! PostgreSQL tracking database: the single source of truth for what has happened.
//!
//! Tables and rules follow `shared/design.md` §3: seed tables `campaigns`, `master_assets`,
//! `derivative_assets`; the `box_files` ledger (identity = Box file id + file version id) with
//! per-file leases; `campaign_transitions` (a status change is recorded before the DAM is touched
//! and completed together with its notifications in one transaction); the transactional `outbox`;
//! and `runs` (one row per pass). Migrations are embedded ([`refinery`]) and run under a
//! PostgreSQL advisory lock so two binaries starting at once do not race.
//!
//! Every statement is parameterized; no caller-supplied text is ever spliced into SQL.

use postgres::{Client, NoTls, Row};
use serde_json::Value;

use crate::config::DatabaseConfig;
use crate::secret::Secret;

pub mod admin;
pub mod derivatives;
pub mod ledger;
pub mod tls;

pub use derivatives::{DeliveryClaim, DerivativeRow, NewDelivery, UploadStatus};
pub use ledger::{BoxFileRow, Claim, LedgerState};
pub use tls::SslMode;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// Advisory-lock key under which migrations run (an arbitrary constant: "CSMIGR").
const MIGRATION_LOCK_KEY: i64 = 0x43_53_4d_49_47_52;

/// Errors of the tracking database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The server could not be reached or the connection broke (transient for the pass: exit 75).
    /// The text names the server (never the password) and the cause.
    #[error("database unreachable: {0}")]
    Unreachable(String),
    /// The connection settings are wrong in a way a rerun cannot fix (exit 2): a bad URL or
    /// `sslmode`, an unreadable `sslrootcert`, a server certificate that fails verification, a
    /// server without TLS under `sslmode=require`, or a login the server refused (unknown
    /// database or role, wrong password: SQLSTATE 3D000, 28000, 28P01). The text carries the
    /// server's own message (`FATAL: ...`) and a `hint:` line where there is a known fix.
    #[error("database configuration error: {0}")]
    Configuration(String),
    /// A statement failed.
    #[error("database error: {0}")]
    Query(#[from] postgres::Error),
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migration(String),
    /// A tracking ID could not be allocated (collisions every time: practically impossible).
    #[error("could not allocate a unique tracking ID after {0} attempts")]
    TrackingIdExhausted(u32),
}

impl StoreError {
    /// True when the database itself is unreachable (the pass should exit with EX_TEMPFAIL).
    pub fn is_unreachable(&self) -> bool {
        match self {
            StoreError::Unreachable(_) => true,
            StoreError::Query(error) => error.is_closed() || error.as_db_error().is_none(),
            _ => false,
        }
    }

    /// True when the database settings or credentials are wrong: a rerun cannot fix it (exit 2).
    pub fn is_configuration(&self) -> bool {
        matches!(self, StoreError::Configuration(_))
    }

    /// The cause without the `database unreachable: ` / `database configuration error: ` prefix
    /// (for callers that add their own).
    pub fn detail(&self) -> String {
        match self {
            StoreError::Unreachable(text) | StoreError::Configuration(text) => text.clone(),
            StoreError::Query(error) => error_chain(error),
            other => other.to_string(),
        }
    }
}

/// A `postgres::Error` with its causes on one line: the server's own message (`FATAL: ...`,
/// DETAIL, HINT, SQLSTATE) instead of the crate's bare "db error", and the TLS or I/O cause
/// after "error performing TLS handshake" / "error connecting to server".
pub fn error_chain(error: &postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        let mut text = format!("{}: {}", db.severity(), db.message());
        if let Some(detail) = db.detail() {
            text.push_str(&format!(" DETAIL: {detail}"));
        }
        if let Some(hint) = db.hint() {
            text.push_str(&format!(" HINT: {hint}"));
        }
        text.push_str(&format!(" (SQLSTATE {})", db.code().code()));
        return text;
    }
    let mut parts = vec![error.to_string()];
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let text = cause.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

/// True when a failed connect is a settings or credentials problem (see
/// [`StoreError::Configuration`]), false when the server is down or unreachable.
fn connect_error_is_configuration(error: &postgres::Error) -> bool {
    use postgres::error::SqlState;
    if let Some(code) = error.code() {
        return [
            SqlState::INVALID_PASSWORD,
            SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
            SqlState::INVALID_CATALOG_NAME,
            SqlState::INSUFFICIENT_PRIVILEGE,
        ]
        .contains(code)
            || code.code().starts_with("28");
    }
    // The crate's error kinds are private; their texts are stable ("invalid configuration" is
    // e.g. "password missing", "authentication error" a failed SCRAM exchange).
    let top = error.to_string();
    if [
        "invalid configuration",
        "invalid connection string",
        "authentication error",
    ]
    .contains(&top.as_str())
    {
        return true;
    }
    // A TLS failure decided by rustls (certificate not trusted, wrong name, no common protocol)
    // or a server without TLS under sslmode=require; an I/O error during the handshake (reset,
    // closed) is left to "unreachable".
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if cause.is::<rustls::Error>() {
            return true;
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            if io
                .get_ref()
                .is_some_and(|inner| inner.is::<rustls::Error>())
            {
                return true;
            }
        }
        if cause.to_string() == "server does not support TLS" {
            return true;
        }
        source = cause.source();
    }
    false
}

/// What the operator can do about a configuration error, when known.
fn connect_hint(error: &postgres::Error, text: &str, mode: SslMode) -> Option<&'static str> {
    use postgres::error::SqlState;
    match error.code() {
        Some(code) if *code == SqlState::INVALID_CATALOG_NAME => {
            return Some("check the database name (DB_NAME, or the path of DATABASE_URL); create the database if it is new")
        }
        Some(code) if *code == SqlState::INVALID_PASSWORD => {
            return Some("check the password (DB_PASSWORD, or DATABASE_URL) against the role's password on the server")
        }
        Some(code) if *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION => {
            return Some("check the role name (DB_USER, or DATABASE_URL) and that pg_hba.conf lets it in from this host")
        }
        _ => {}
    }
    if text.contains("not valid for name") {
        Some("connect by a name the server certificate holds (the URL's host), or use sslmode=require to check the chain only")
    } else if text.contains("UnknownIssuer") {
        Some("set sslrootcert (database.sslrootcert / DB_SSLROOTCERT, or in the URL) to the CA file that signed the server certificate")
    } else if text.contains("server does not support TLS") {
        Some("turn on ssl in the server's postgresql.conf, or use sslmode=prefer/disable on a trusted network")
    } else if text.contains("password missing") {
        Some("the server asks for a password: set DB_PASSWORD (or put it in DATABASE_URL)")
    } else if mode != SslMode::Disable && text.contains("TLS") {
        Some("check sslmode and sslrootcert against the server's certificate")
    } else {
        None
    }
}

/// `user@host:port/dbname` of a connection (never the password).
fn describe_target(config: &postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|host| match host {
            postgres::config::Host::Tcp(name) => name.clone(),
            postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    let ports: Vec<String> = config.get_ports().iter().map(u16::to_string).collect();
    format!(
        "{}@{}:{}/{}",
        config.get_user().unwrap_or("?"),
        if hosts.is_empty() {
            "localhost".to_string()
        } else {
            hosts.join(",")
        },
        if ports.is_empty() {
            "5432".to_string()
        } else {
            ports.join(",")
        },
        config.get_dbname().or(config.get_user()).unwrap_or("?")
    )
}

/// A campaign as tracked by us (`campaigns` row).
#[derive(Debug, Clone, PartialEq)]
pub struct CampaignRow {
    /// DAM folder id of the campaign folder (40 hex chars in OTMM).
    pub dam_folder_id: String,
    /// Campaign number, e.g. `C-2026-0142`.
    pub number: String,
    /// Campaign name.
    pub name: String,
    /// Status as last seen or set in the DAM (`A1`, `A2`, `A3`).
    pub status: String,
    /// DAM folder holding the masters.
    pub masters_folder_id: Option<String>,
    /// DAM folder where derivatives are imported.
    pub final_assets_folder_id: Option<String>,
    /// Box folder the masters were uploaded to.
    pub box_folder_id: Option<String>,
    /// Number of masters found in the DAM at the last a1-to-a2 pass.
    pub master_count: Option<i32>,
    /// Signature of the last reported partial-failure set (so it is not re-sent every pass).
    pub last_partial_failure: Option<String>,
}

/// A master asset (`master_assets` row).
#[derive(Debug, Clone, PartialEq)]
pub struct MasterRow {
    /// Row id.
    pub id: i64,
    /// Canonical 6-character tracking ID.
    pub tracking_id: String,
    /// OTMM asset id of the master.
    pub opentext_id: String,
    /// DAM folder id of the campaign.
    pub campaign_id: String,
    /// The master's file name in the DAM.
    pub original_filename: String,
    /// The master's full DAM asset JSON (`asset_resource.asset`).
    pub full_metadata: Value,
    /// Box file id once uploaded.
    pub box_file_id: Option<String>,
    /// DAM folder where this master's derivatives go.
    pub final_assets_folder_id: Option<String>,
    /// `pending`, `uploaded` or `failed`.
    pub status: String,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
}

/// A notification to write into the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct NewNotification {
    /// Unique key; the receiver dedupes on it. Re-inserting the same key is a no-op.
    pub idempotency_key: String,
    /// `email` or `webhook`.
    pub channel: &'static str,
    /// Email template name, or webhook endpoint name.
    pub target: String,
    /// Event name, e.g. `campaign.a2`.
    pub event: String,
    /// Template context (email) or webhook `data` (webhook).
    pub payload: Value,
}

/// An outbox row claimed for delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRow {
    /// Row id.
    pub id: i64,
    /// Idempotency key (sent to the receiver).
    pub idempotency_key: String,
    /// `email` or `webhook`.
    pub channel: String,
    /// Template or endpoint name.
    pub target: String,
    /// Event name.
    pub event: String,
    /// Payload.
    pub payload: Value,
    /// Delivery attempts so far.
    pub attempts: i32,
    /// When the row was claimed before, its earlier delivery's outcome is unknown (timeout,
    /// dropped connection, 5xx, or the pass died in flight): Unix seconds of the first such
    /// attempt. `None` when every earlier attempt is known not to have been accepted (or there
    /// was none). Emails ask Mailgun's events API before re-sending such a row.
    pub outcome_unknown_since: Option<i64>,
}

/// State of a campaign transition row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransitionState {
    /// Recorded; the DAM may or may not have been changed yet.
    Pending,
    /// The DAM was changed and notifications queued.
    Done,
}

/// Connection to the tracking database. One per pass (not shared between threads).
pub struct Store {
    client: Client,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

fn advisory_key(name: &str) -> i64 {
    // FNV-1a 64: stable across builds and platforms (std's hasher is not).
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    i64::from_ne_bytes(hash.to_ne_bytes())
}

impl Store {
    /// Connects to PostgreSQL at `url` (libpq URL or key=value string), with the `sslmode` and
    /// `sslrootcert` the URL names (default `prefer`). See [`Store::connect_database`].
    ///
    /// # Errors
    /// As [`Store::connect_database`].
    pub fn connect(url: &Secret<String>) -> Result<Store, StoreError> {
        Store::connect_with(url, None, None)
    }

    /// Connects to the database of the configuration: its URL, where `sslmode` and `sslrootcert`
    /// in the URL win over `database.sslmode` / `database.sslrootcert`.
    ///
    /// TLS (rustls, see [`tls`]): `disable` never; `prefer` when the server offers it, without a
    /// certificate check (as libpq); `require`/`verify-ca` always, the chain verified against
    /// `sslrootcert` or the system roots; `verify-full` also checks the host name.
    ///
    /// # Errors
    /// [`StoreError::Configuration`] when the settings are wrong or the server refuses the login
    /// (the server's message included); [`StoreError::Unreachable`] when the server cannot be
    /// reached. The message never contains the password.
    pub fn connect_database(database: &DatabaseConfig) -> Result<Store, StoreError> {
        Store::connect_with(
            &database.url,
            database.sslmode,
            database.sslrootcert.as_deref(),
        )
    }

    fn connect_with(
        url: &Secret<String>,
        default_mode: Option<SslMode>,
        default_rootcert: Option<&std::path::Path>,
    ) -> Result<Store, StoreError> {
        let params = tls::split_tls_params(url.expose())
            .map_err(|error| StoreError::Configuration(format!("database URL: {error}")))?;
        let mode = match &params.sslmode {
            Some(text) => text
                .parse::<SslMode>()
                .map_err(|error| StoreError::Configuration(format!("database URL: {error}")))?,
            None => default_mode.unwrap_or(SslMode::Prefer),
        };
        let rootcert = params
            .sslrootcert
            .as_deref()
            .map(std::path::PathBuf::from)
            .or_else(|| default_rootcert.map(std::path::Path::to_path_buf));
        let mut config: postgres::Config =
            params.rest.parse().map_err(|error: postgres::Error| {
                StoreError::Configuration(format!("invalid database URL: {}", error_chain(&error)))
            })?;
        config.ssl_mode(match mode {
            SslMode::Disable => postgres::config::SslMode::Disable,
            SslMode::Prefer => postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                postgres::config::SslMode::Require
            }
        });
        let target = describe_target(&config);
        let tls = tls::client_config(mode, rootcert.as_deref()).map_err(|error| {
            StoreError::Configuration(format!("{target} (sslmode={mode}): {error}"))
        })?;
        let result = match tls {
            None => config.connect(NoTls),
            Some(tls) => config.connect(tokio_postgres_rustls::MakeRustlsConnect::new(tls)),
        };
        let client = result.map_err(|error| {
            let text = error_chain(&error);
            if connect_error_is_configuration(&error) {
                let hint = connect_hint(&error, &text, mode)
                    .map(|hint| format!("\nhint: {hint}"))
                    .unwrap_or_default();
                StoreError::Configuration(format!(
                    "cannot connect to {target} (sslmode={mode}): {text}{hint}"
                ))
            } else {
                StoreError::Unreachable(format!("{target} (sslmode={mode}): {text}"))
            }
        })?;
        Ok(Store { client })
    }

    /// Applies the embedded migrations (`crates/scaling-core/migrations`) under an advisory lock.
    ///
    /// # Errors
    /// [`StoreError::Migration`] when a migration fails.
    pub fn migrate(&mut self) -> Result<(), StoreError> {
        if self.schema_is_current() {
            return Ok(());
        }
        self.client
            .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY])?;
        let result = embedded::migrations::runner()
            .run(&mut self.client)
            .map(|_| ())
            .map_err(|error| StoreError::Migration(error.to_string()));
        self.client
            .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY])?;
        result
    }

    /// True when every embedded migration is recorded in `refinery_schema_history` with its
    /// checksum: one round trip, so a pass on a migrated database (every pass but the first after
    /// an upgrade) skips the lock and the runner. Any doubt (no table yet, a read error, a changed
    /// migration) answers false, and the runner decides under the lock.
    fn schema_is_current(&mut self) -> bool {
        let Ok(messages) = self
            .client
            .simple_query("SELECT version::text, checksum::text FROM refinery_schema_history")
        else {
            return false;
        };
        let applied: std::collections::HashSet<(String, String)> = messages
            .iter()
            .filter_map(|message| match message {
                postgres::SimpleQueryMessage::Row(row) => {
                    Some((row.get(0)?.to_string(), row.get(1)?.to_string()))
                }
                _ => None,
            })
            .collect();
        embedded::migrations::runner()
            .get_migrations()
            .iter()
            .all(|migration| {
                applied.contains(&(
                    migration.version().to_string(),
                    migration.checksum().to_string(),
                ))
            })
    }

    /// Takes the session-level advisory lock named `name` without waiting.
    ///
    /// Returns `false` when another session holds it. The lock is released by [`Store::unlock`]
    /// or when the connection ends (so a killed process never leaves it behind).
    ///
    /// # Errors
    /// Database errors.
    pub fn try_lock(&mut self, name: &str) -> Result<bool, StoreError> {
        let row = self
            .client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&advisory_key(name)])?;
        Ok(row.get(0))
    }

    /// Releases an advisory lock taken with [`Store::try_lock`].
    ///
    /// # Errors
    /// Database errors.
    pub fn unlock(&mut self, name: &str) -> Result<(), StoreError> {
        self.client
            .execute("SELECT pg_advisory_unlock($1)", &[&advisory_key(name)])?;
        Ok(())
    }

    // ----- runs -----

    /// Inserts a `runs` row for a pass of `binary_name` starting now; returns its id.
    ///
    /// # Errors
    /// Database errors.
    pub fn start_run(&mut self, binary_name: &str, host: &str) -> Result<i64, StoreError> {
        let pid = i32::try_from(std::process::id()).unwrap_or(i32::MAX);
        let row = self.client.query_one(
            "INSERT INTO runs (binary_name, host, pid) VALUES ($1, $2, $3) RETURNING id",
            &[&binary_name, &host, &pid],
        )?;
        Ok(row.get(0))
    }

    /// Completes a `runs` row with its outcome (`completed`, `lock_held`, `failed`,
    /// `dependency_unreachable`), counts and error text.
    ///
    /// # Errors
    /// Database errors.
    pub fn finish_run(
        &mut self,
        id: i64,
        outcome: &str,
        counts: &Value,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        self.client.execute(
            "UPDATE runs SET finished_at = now(), outcome = $2, counts = $3, error = $4 WHERE id = $1",
            &[&id, &outcome, counts, &error],
        )?;
        Ok(())
    }

    // ----- campaigns -----

    /// Inserts the campaign or updates its number, name and status; keeps the folder ids already known.
    ///
    /// # Errors
    /// Database errors.
    pub fn upsert_campaign(&mut self, campaign: &CampaignRow) -> Result<CampaignRow, StoreError> {
        let row = self.client.query_one(
            "INSERT INTO campaigns (dam_folder_id, campaign_number, campaign_name, status, masters_folder_id,
                                    final_assets_folder_id, box_folder_id, master_count)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (dam_folder_id) DO UPDATE SET
                campaign_number = EXCLUDED.campaign_number,
                campaign_name = EXCLUDED.campaign_name,
                status = EXCLUDED.status,
                masters_folder_id = COALESCE(EXCLUDED.masters_folder_id, campaigns.masters_folder_id),
                final_assets_folder_id = COALESCE(EXCLUDED.final_assets_folder_id, campaigns.final_assets_folder_id),
                box_folder_id = COALESCE(EXCLUDED.box_folder_id, campaigns.box_folder_id),
                master_count = COALESCE(EXCLUDED.master_count, campaigns.master_count),
                updated_at = now()
             RETURNING *",
            &[
                &campaign.dam_folder_id,
                &campaign.number,
                &campaign.name,
                &campaign.status,
                &campaign.masters_folder_id,
                &campaign.final_assets_folder_id,
                &campaign.box_folder_id,
                &campaign.master_count,
            ],
        )?;
        Ok(campaign_from_row(&row))
    }

    /// The campaign with DAM folder id `id`, if tracked.
    ///
    /// # Errors
    /// Database errors.
    pub fn campaign(&mut self, id: &str) -> Result<Option<CampaignRow>, StoreError> {
        let row = self
            .client
            .query_opt("SELECT * FROM campaigns WHERE dam_folder_id = $1", &[&id])?;
        Ok(row.as_ref().map(campaign_from_row))
    }

    /// Records the signature of the failure set last reported for a campaign and, in the same
    /// transaction, queues its `notifications` — only when the signature differs from the
    /// previous one. Returns whether it did (so a crash can never record one without the other).
    ///
    /// # Errors
    /// Database errors.
    pub fn note_partial_failure(
        &mut self,
        campaign_id: &str,
        signature: &str,
        notifications: &[NewNotification],
    ) -> Result<bool, StoreError> {
        let mut transaction = self.client.transaction()?;
        let changed = transaction.execute(
            "UPDATE campaigns SET last_partial_failure = $2, updated_at = now()
             WHERE dam_folder_id = $1 AND last_partial_failure IS DISTINCT FROM $2",
            &[&campaign_id, &signature],
        )?;
        if changed != 1 {
            return Ok(false);
        }
        insert_notifications(&mut transaction, notifications)?;
        transaction.commit()?;
        Ok(true)
    }

    // ----- masters -----

    /// The master with OTMM asset id `opentext_id`, if tracked.
    ///
    /// # Errors
    /// Database errors.
    pub fn master_by_opentext_id(
        &mut self,
        opentext_id: &str,
    ) -> Result<Option<MasterRow>, StoreError> {
        let row = self.client.query_opt(
            "SELECT * FROM master_assets WHERE opentext_id = $1",
            &[&opentext_id],
        )?;
        Ok(row.as_ref().map(master_from_row))
    }

    /// The master with (canonical) tracking ID `tracking_id`, if any.
    ///
    /// # Errors
    /// Database errors.
    pub fn master_by_tracking_id(
        &mut self,
        tracking_id: &str,
    ) -> Result<Option<MasterRow>, StoreError> {
        let row = self.client.query_opt(
            "SELECT * FROM master_assets WHERE tracking_id = $1",
            &[&tracking_id],
        )?;
        Ok(row.as_ref().map(master_from_row))
    }

    /// All masters recorded for a campaign, oldest first.
    ///
    /// # Errors
    /// Database errors.
    pub fn masters_of_campaign(&mut self, campaign_id: &str) -> Result<Vec<MasterRow>, StoreError> {
        let rows = self.client.query(
            "SELECT * FROM master_assets WHERE campaign_id = $1 ORDER BY id",
            &[&campaign_id],
        )?;
        Ok(rows.iter().map(master_from_row).collect())
    }

    /// Returns the master row for `opentext_id`, creating it (status `pending`) with a fresh tracking
    /// ID from `generate` when it does not exist. The row is committed before anything is uploaded,
    /// so an interrupted pass reuses the same tracking ID and never allocates a second one.
    ///
    /// Collisions on `tracking_id` (1 in 10^9) retry with a new ID, at most 16 times.
    ///
    /// # Errors
    /// [`StoreError::TrackingIdExhausted`], database errors.
    pub fn ensure_master(
        &mut self,
        opentext_id: &str,
        campaign_id: &str,
        original_filename: &str,
        final_assets_folder_id: Option<&str>,
        generate: &mut dyn FnMut() -> String,
    ) -> Result<MasterRow, StoreError> {
        const ATTEMPTS: u32 = 16;
        for _ in 0..ATTEMPTS {
            if let Some(existing) = self.master_by_opentext_id(opentext_id)? {
                return Ok(existing);
            }
            let tracking_id = generate();
            let inserted = self.client.query_opt(
                "INSERT INTO master_assets (tracking_id, opentext_id, campaign_id, original_filename, final_assets_folder_id)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT DO NOTHING
                 RETURNING *",
                &[&tracking_id, &opentext_id, &campaign_id, &original_filename, &final_assets_folder_id],
            )?;
            if let Some(row) = inserted {
                return Ok(master_from_row(&row));
            }
        }
        Err(StoreError::TrackingIdExhausted(ATTEMPTS))
    }

    /// Marks a master uploaded to Box, storing its full DAM metadata.
    ///
    /// # Errors
    /// Database errors.
    pub fn mark_master_uploaded(
        &mut self,
        id: i64,
        box_file_id: &str,
        box_file_url: &str,
        box_sha1: &str,
        upload_directory: &str,
        full_metadata: &Value,
    ) -> Result<(), StoreError> {
        self.client.execute(
            "UPDATE master_assets SET status = 'uploaded', box_file_id = $2, box_file_url = $3, box_sha1 = $4,
                    upload_directory = $5, full_metadata = $6, last_error = NULL, attempts = attempts + 1,
                    updated_at = now()
             WHERE id = $1",
            &[&id, &box_file_id, &box_file_url, &box_sha1, &upload_directory, full_metadata],
        )?;
        Ok(())
    }

    /// Marks a master failed with `error` (retried on the next pass).
    ///
    /// # Errors
    /// Database errors.
    pub fn mark_master_failed(&mut self, id: i64, error: &str) -> Result<(), StoreError> {
        self.client.execute(
            "UPDATE master_assets SET status = 'failed', last_error = $2, attempts = attempts + 1, updated_at = now()
             WHERE id = $1 AND status <> 'uploaded'",
            &[&id, &error],
        )?;
        Ok(())
    }

    // ----- campaign transitions -----

    /// Records the intent to move a campaign `from` -> `to` (idempotent) and returns its state.
    ///
    /// # Errors
    /// Database errors.
    pub fn begin_transition(
        &mut self,
        campaign_id: &str,
        from: &str,
        to: &str,
    ) -> Result<TransitionState, StoreError> {
        self.client.execute(
            "INSERT INTO campaign_transitions (campaign_id, from_status, to_status) VALUES ($1, $2, $3)
             ON CONFLICT (campaign_id, to_status) DO NOTHING",
            &[&campaign_id, &from, &to],
        )?;
        let row = self.client.query_one(
            "SELECT state FROM campaign_transitions WHERE campaign_id = $1 AND to_status = $2",
            &[&campaign_id, &to],
        )?;
        let state: String = row.get(0);
        Ok(if state == "done" {
            TransitionState::Done
        } else {
            TransitionState::Pending
        })
    }

    /// Campaign ids with a transition to `to` recorded but not completed (a crashed pass).
    ///
    /// # Errors
    /// Database errors.
    pub fn pending_transitions(&mut self, to: &str) -> Result<Vec<String>, StoreError> {
        let rows = self.client.query(
            "SELECT campaign_id FROM campaign_transitions WHERE to_status = $1 AND state = 'pending' ORDER BY requested_at",
            &[&to],
        )?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    /// State of the transition to `to`, if recorded.
    ///
    /// # Errors
    /// Database errors.
    pub fn transition_state(
        &mut self,
        campaign_id: &str,
        to: &str,
    ) -> Result<Option<TransitionState>, StoreError> {
        let row = self.client.query_opt(
            "SELECT state FROM campaign_transitions WHERE campaign_id = $1 AND to_status = $2",
            &[&campaign_id, &to],
        )?;
        Ok(row.map(|row| {
            let state: String = row.get(0);
            if state == "done" {
                TransitionState::Done
            } else {
                TransitionState::Pending
            }
        }))
    }

    /// In one transaction: marks the transition done, sets the campaign's status to `to` and
    /// queues `notifications`. Returns `false` (and queues nothing) when it was already done.
    ///
    /// # Errors
    /// Database errors (nothing is changed then).
    pub fn complete_transition(
        &mut self,
        campaign_id: &str,
        to: &str,
        notifications: &[NewNotification],
    ) -> Result<bool, StoreError> {
        let mut transaction = self.client.transaction()?;
        let updated = transaction.execute(
            "UPDATE campaign_transitions SET state = 'done', done_at = now()
             WHERE campaign_id = $1 AND to_status = $2 AND state = 'pending'",
            &[&campaign_id, &to],
        )?;
        if updated == 0 {
            return Ok(false);
        }
        transaction.execute(
            "UPDATE campaigns SET status = $2, updated_at = now() WHERE dam_folder_id = $1",
            &[&campaign_id, &to],
        )?;
        insert_notifications(&mut transaction, notifications)?;
        transaction.commit()?;
        Ok(true)
    }

    // ----- outbox -----

    /// Queues notifications in their own transaction (keys already present are skipped).
    ///
    /// # Errors
    /// Database errors.
    pub fn enqueue(&mut self, notifications: &[NewNotification]) -> Result<(), StoreError> {
        let mut transaction = self.client.transaction()?;
        insert_notifications(&mut transaction, notifications)?;
        transaction.commit()?;
        Ok(())
    }

    /// Claims the next due, unsent outbox row with an id above `after_id` for `owner` for
    /// `lease_secs` seconds (the cursor lets one delivery round try each row at most once).
    ///
    /// # Errors
    /// Database errors.
    pub fn claim_notification(
        &mut self,
        owner: &str,
        lease_secs: i64,
        after_id: i64,
    ) -> Result<Option<OutboxRow>, StoreError> {
        // The claim marks the delivery "outcome unknown" before any request leaves (a pass killed
        // in flight leaves it so) and returns the mark as it was before this claim.
        let row = self.client.query_opt(
            "UPDATE outbox SET lease_owner = $1, lease_expires_at = now() + make_interval(secs => $2::bigint::float8),
                    outcome_unknown_since = COALESCE(outbox.outcome_unknown_since, now())
             FROM (SELECT id, outcome_unknown_since AS previous FROM outbox
                   WHERE sent_at IS NULL AND next_attempt_at <= now() AND id > $3
                     AND (lease_expires_at IS NULL OR lease_expires_at < now())
                   ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) AS due
             WHERE outbox.id = due.id
             RETURNING outbox.id, outbox.idempotency_key, outbox.channel, outbox.target, outbox.event,
                       outbox.payload, outbox.attempts,
                       floor(extract(epoch FROM due.previous))::bigint AS outcome_unknown_since",
            &[&owner, &lease_secs, &after_id],
        )?;
        Ok(row.map(|row| OutboxRow {
            id: row.get("id"),
            idempotency_key: row.get("idempotency_key"),
            channel: row.get("channel"),
            target: row.get("target"),
            event: row.get("event"),
            payload: row.get("payload"),
            attempts: row.get("attempts"),
            outcome_unknown_since: row.get("outcome_unknown_since"),
        }))
    }

    /// Marks an outbox row delivered.
    ///
    /// # Errors
    /// Database errors.
    pub fn mark_notification_sent(&mut self, id: i64) -> Result<(), StoreError> {
        self.client.execute(
            "UPDATE outbox SET sent_at = now(), attempts = attempts + 1, last_error = NULL, lease_owner = NULL,
                    lease_expires_at = NULL WHERE id = $1",
            &[&id],
        )?;
        Ok(())
    }

    /// Records a failed delivery that the receiver did not accept (it refused the request, or
    /// the request never left): the row becomes due again after `retry_after_secs` and loses its
    /// "outcome unknown" mark. `error` is stored as given: the caller redacts it
    /// (`notify::outbox_error_text`).
    ///
    /// # Errors
    /// Database errors.
    pub fn mark_notification_failed(
        &mut self,
        id: i64,
        error: &str,
        retry_after_secs: i64,
    ) -> Result<(), StoreError> {
        self.record_notification_failure(id, error, retry_after_secs, false)
    }

    /// Records a failed delivery whose request may still have been accepted (timeout, dropped
    /// connection, 5xx): like [`Store::mark_notification_failed`], but the row keeps the
    /// "outcome unknown" mark its claim set, so the next delivery checks before re-sending.
    ///
    /// # Errors
    /// Database errors.
    pub fn mark_notification_unknown(
        &mut self,
        id: i64,
        error: &str,
        retry_after_secs: i64,
    ) -> Result<(), StoreError> {
        self.record_notification_failure(id, error, retry_after_secs, true)
    }

    fn record_notification_failure(
        &mut self,
        id: i64,
        error: &str,
        retry_after_secs: i64,
        outcome_unknown: bool,
    ) -> Result<(), StoreError> {
        self.client.execute(
            "UPDATE outbox SET attempts = attempts + 1, last_error = $2, lease_owner = NULL, lease_expires_at = NULL,
                    next_attempt_at = now() + make_interval(secs => $3::bigint::float8),
                    outcome_unknown_since = CASE WHEN $4 THEN outcome_unknown_since END
              WHERE id = $1",
            &[&id, &error, &retry_after_secs, &outcome_unknown],
        )?;
        Ok(())
    }

    /// Puts a claimed row back without counting an attempt: due again after `retry_after_secs`,
    /// its "outcome unknown" mark kept (an email waiting for Mailgun's events to settle).
    ///
    /// # Errors
    /// Database errors.
    pub fn defer_notification(
        &mut self,
        id: i64,
        note: &str,
        retry_after_secs: i64,
    ) -> Result<(), StoreError> {
        self.client.execute(
            "UPDATE outbox SET last_error = $2, lease_owner = NULL, lease_expires_at = NULL,
                    next_attempt_at = now() + make_interval(secs => $3::bigint::float8)
              WHERE id = $1",
            &[&id, &note, &retry_after_secs],
        )?;
        Ok(())
    }
}

pub(crate) fn insert_notifications(
    transaction: &mut postgres::Transaction<'_>,
    notifications: &[NewNotification],
) -> Result<(), StoreError> {
    for notification in notifications {
        transaction.execute(
            "INSERT INTO outbox (idempotency_key, channel, target, event, payload) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (idempotency_key) DO NOTHING",
            &[
                &notification.idempotency_key,
                &notification.channel,
                &notification.target,
                &notification.event,
                &notification.payload,
            ],
        )?;
    }
    Ok(())
}

fn campaign_from_row(row: &Row) -> CampaignRow {
    CampaignRow {
        dam_folder_id: row.get("dam_folder_id"),
        number: row.get("campaign_number"),
        name: row.get("campaign_name"),
        status: row.get("status"),
        masters_folder_id: row.get("masters_folder_id"),
        final_assets_folder_id: row.get("final_assets_folder_id"),
        box_folder_id: row.get("box_folder_id"),
        master_count: row.get("master_count"),
        last_partial_failure: row.get("last_partial_failure"),
    }
}

fn master_from_row(row: &Row) -> MasterRow {
    MasterRow {
        id: row.get("id"),
        tracking_id: row.get("tracking_id"),
        opentext_id: row.get("opentext_id"),
        campaign_id: row.get("campaign_id"),
        original_filename: row.get("original_filename"),
        full_metadata: row.get("full_metadata"),
        box_file_id: row.get("box_file_id"),
        final_assets_folder_id: row.get("final_assets_folder_id"),
        status: row.get("status"),
        last_error: row.get("last_error"),
    }
}

#[cfg(test)]
mod tests {
    use super::advisory_key;

    #[test]
    fn advisory_keys_are_stable_and_distinct() {
        // Stable across builds: a changed hash would let an old and a new binary run the same
        // watched folder at once during an upgrade.
        assert_eq!(
            advisory_key("box-poll:folder:123"),
            advisory_key("box-poll:folder:123")
        );
        assert_ne!(
            advisory_key("box-poll:folder:123"),
            advisory_key("box-poll:folder:124")
        );
        assert_eq!(
            advisory_key(""),
            i64::from_ne_bytes(0xcbf2_9ce4_8422_2325_u64.to_ne_bytes())
        );
    }
}
