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

//!
//! One file per table (`campaigns.rs` also holds `campaign_transitions`); [`Store`] is one type
//! with an `impl` block in each. `admin.rs` holds the operators' queries that span tables.

use postgres::{Client, NoTls};

use crate::config::DatabaseConfig;
use crate::secret::Secret;

pub mod admin;
mod campaigns;
pub mod derivatives;
mod events_cursor;
pub mod folders;
mod incidents;
pub mod ledger;
mod locks;
mod masters;
mod outbox;
mod probe;
mod runs;
mod state;
pub mod tls;

pub use campaigns::{CampaignRow, TransitionState};
pub use derivatives::{DeliveryClaim, DerivativeRow, NewDelivery, UploadStatus};
pub use events_cursor::EventsCursor;
pub use incidents::Incident;
pub use ledger::{BoxFileRow, Claim, LedgerState};
pub use masters::{MasterRow, MasterStatus};
pub use outbox::{queued_by_this_process, NewNotification, NotificationChannel, OutboxRow};
pub use probe::PassProbe;
pub use runs::RunOutcome;
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
    /// A row holds a value outside the set this build knows in a column read as an enum (a
    /// newer schema, or a hand edit): the table, the column and the value.
    #[error("{table}.{column} holds {value:?}, which this build does not know")]
    UnknownValue {
        /// Table name.
        table: &'static str,
        /// Column name.
        column: &'static str,
        /// The value found.
        value: String,
    },
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

/// Connection to the tracking database. One per pass (not shared between threads).
pub struct Store {
    client: Client,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
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
}
