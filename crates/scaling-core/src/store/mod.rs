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

use jiff::Timestamp;
use postgres::{Client, NoTls, Row};
use serde_json::Value;

use crate::secret::Secret;

pub mod admin;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// Advisory-lock key under which migrations run (an arbitrary constant: "CSMIGR").
const MIGRATION_LOCK_KEY: i64 = 0x43_53_4d_49_47_52;

/// Errors of the tracking database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The server could not be reached or the connection broke (transient for the pass).
    #[error("database unreachable: {0}")]
    Unreachable(String),
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

/// A derivative (`derivative_assets` row).
#[derive(Debug, Clone, PartialEq)]
pub struct DerivativeRow {
    /// Row id.
    pub id: i64,
    /// Tracking ID of its master.
    pub tracking_id: String,
    /// Clean filename (as named in the DAM).
    pub derivative_filename: String,
    /// Delivery version (`v01` = 1).
    pub version: i32,
    /// Box file id of the delivered file.
    pub box_file_id: String,
    /// Box file version id of the delivered file.
    pub box_file_version_id: String,
    /// DAM folder it is imported into.
    pub dam_folder_id: String,
    /// OTMM import job id, once the import was accepted.
    pub dam_job_id: Option<String>,
    /// OTMM asset id, once the import completed.
    pub dam_asset_id: Option<String>,
    /// When the import request was (about to be) sent: a rerun looks for a landed asset first.
    pub import_requested_at: Option<Timestamp>,
    /// `pending`, `importing`, `uploaded` or `failed`.
    pub upload_status: String,
}

/// A Box file seen in a watched folder (`box_files` ledger row).
#[derive(Debug, Clone, PartialEq)]
pub struct BoxFileRow {
    /// Box file id.
    pub file_id: String,
    /// Box file version id (a replaced file is new work).
    pub file_version_id: String,
    /// Watched folder it was found in.
    pub watched_folder_id: String,
    /// File name when seen.
    pub name: String,
    /// Ledger state: `seen`, `claimed`, `uploaded_to_dam`, `archived`, `failed_transient`, `rejected`, `ignored`.
    pub state: String,
    /// Passes that tried this file.
    pub attempts: i32,
    /// Earliest time of the next attempt after a transient failure.
    pub next_attempt_at: Option<Timestamp>,
    /// Last error text.
    pub last_error: Option<String>,
    /// Derivative row, once created.
    pub derivative_id: Option<i64>,
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
    /// Connects to PostgreSQL at `url` (libpq URL or key=value string).
    ///
    /// TLS: `sslmode=disable`/`prefer` connect without TLS (loopback and trusted networks);
    /// `require` is refused with a clear error until TLS support lands.
    ///
    /// # Errors
    /// [`StoreError::Unreachable`] when the server cannot be reached or refuses the login; the
    /// message never contains the password.
    pub fn connect(url: &Secret<String>) -> Result<Store, StoreError> {
        let config: postgres::Config = url.expose().parse().map_err(|error: postgres::Error| {
            StoreError::Unreachable(format!("invalid database URL: {error}"))
        })?;
        if matches!(config.get_ssl_mode(), postgres::config::SslMode::Require) {
            return Err(StoreError::Unreachable(
                "sslmode=require is not supported by this build yet; use sslmode=disable on a trusted network".into(),
            ));
        }
        let client = config
            .connect(NoTls)
            .map_err(|error| StoreError::Unreachable(error.to_string()))?;
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

    /// Records the signature of the partial-failure set last reported for a campaign.
    /// Returns `true` when it differs from the previous one (so the report should be sent).
    ///
    /// # Errors
    /// Database errors.
    pub fn note_partial_failure(
        &mut self,
        campaign_id: &str,
        signature: &str,
    ) -> Result<bool, StoreError> {
        let changed = self.client.execute(
            "UPDATE campaigns SET last_partial_failure = $2, updated_at = now()
             WHERE dam_folder_id = $1 AND last_partial_failure IS DISTINCT FROM $2",
            &[&campaign_id, &signature],
        )?;
        Ok(changed == 1)
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

    // ----- Box file ledger -----

    /// Records a file seen in a watched folder (no-op when already known) and returns its row.
    ///
    /// # Errors
    /// Database errors.
    pub fn observe_box_file(
        &mut self,
        file_id: &str,
        file_version_id: &str,
        watched_folder_id: &str,
        name: &str,
        sha1: Option<&str>,
        size_bytes: Option<i64>,
    ) -> Result<BoxFileRow, StoreError> {
        self.client.execute(
            "INSERT INTO box_files (file_id, file_version_id, watched_folder_id, name, sha1, size_bytes)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (file_id, file_version_id) DO NOTHING",
            &[&file_id, &file_version_id, &watched_folder_id, &name, &sha1, &size_bytes],
        )?;
        let row = self.client.query_one(
            "SELECT * FROM box_files WHERE file_id = $1 AND file_version_id = $2",
            &[&file_id, &file_version_id],
        )?;
        Ok(box_file_from_row(&row))
    }

    /// Claims a ledger row for `owner` for `lease_secs` seconds, unless another live lease holds it
    /// or it is in a final state (`archived`, `rejected`, `ignored`) or not yet due for retry.
    /// Returns the claimed row (with `attempts` incremented), or `None`.
    ///
    /// # Errors
    /// Database errors.
    pub fn claim_box_file(
        &mut self,
        file_id: &str,
        file_version_id: &str,
        owner: &str,
        lease_secs: i64,
    ) -> Result<Option<BoxFileRow>, StoreError> {
        let row = self.client.query_opt(
            "UPDATE box_files SET lease_owner = $3,
                    lease_expires_at = now() + make_interval(secs => $4::bigint::float8),
                    attempts = attempts + 1, updated_at = now(),
                    state = CASE WHEN state IN ('seen', 'failed_transient') THEN 'claimed' ELSE state END
             WHERE file_id = $1 AND file_version_id = $2
               AND state NOT IN ('archived', 'rejected', 'ignored')
               AND (lease_owner IS NULL OR lease_expires_at < now() OR lease_owner = $3)
               AND (next_attempt_at IS NULL OR next_attempt_at <= now())
             RETURNING *",
            &[&file_id, &file_version_id, &owner, &lease_secs],
        )?;
        Ok(row.as_ref().map(box_file_from_row))
    }

    /// Sets a ledger row's state, error and derivative link and releases its lease.
    /// `retry_after_secs` schedules the next attempt (for `failed_transient`).
    ///
    /// # Errors
    /// Database errors.
    pub fn set_box_file_state(
        &mut self,
        file_id: &str,
        file_version_id: &str,
        state: &str,
        error: Option<&str>,
        retry_after_secs: Option<i64>,
    ) -> Result<(), StoreError> {
        self.client.execute(
            "UPDATE box_files SET state = $3, last_error = COALESCE($4, last_error), lease_owner = NULL,
                    lease_expires_at = NULL, updated_at = now(),
                    next_attempt_at = CASE WHEN $5::bigint IS NULL THEN NULL
                                           ELSE now() + make_interval(secs => $5::bigint::float8) END
             WHERE file_id = $1 AND file_version_id = $2",
            &[&file_id, &file_version_id, &state, &error, &retry_after_secs],
        )?;
        Ok(())
    }

    /// Distinct lease owners (of Box files and outbox rows) whose name starts with `prefix`.
    ///
    /// # Errors
    /// Database errors.
    pub fn lease_owners_with_prefix(&mut self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let pattern = format!(
            "{}%",
            prefix
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        let rows = self.client.query(
            "SELECT lease_owner FROM box_files WHERE lease_owner LIKE $1
             UNION SELECT lease_owner FROM outbox WHERE lease_owner LIKE $1",
            &[&pattern],
        )?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    /// Releases every lease held by `owner` (a pass known to be dead); returns how many.
    ///
    /// # Errors
    /// Database errors.
    pub fn release_leases_of(&mut self, owner: &str) -> Result<u64, StoreError> {
        let files = self.client.execute(
            "UPDATE box_files SET lease_owner = NULL, lease_expires_at = NULL, updated_at = now() WHERE lease_owner = $1",
            &[&owner],
        )?;
        let notifications = self.client.execute(
            "UPDATE outbox SET lease_owner = NULL, lease_expires_at = NULL WHERE lease_owner = $1",
            &[&owner],
        )?;
        Ok(files + notifications)
    }

    /// Releases a claimed ledger row untouched after a dependency failure: back to
    /// `failed_transient`, due again at once, and the attempt is not counted.
    ///
    /// # Errors
    /// Database errors.
    pub fn release_box_file(
        &mut self,
        file_id: &str,
        file_version_id: &str,
        error: &str,
    ) -> Result<(), StoreError> {
        self.client.execute(
            "UPDATE box_files SET state = CASE WHEN state = 'claimed' THEN 'failed_transient' ELSE state END,
                    attempts = GREATEST(attempts - 1, 0), last_error = $3, lease_owner = NULL,
                    lease_expires_at = NULL, next_attempt_at = NULL, updated_at = now()
             WHERE file_id = $1 AND file_version_id = $2",
            &[&file_id, &file_version_id, &error],
        )?;
        Ok(())
    }

    /// Records where a ledger file was archived to (Box folder id) and marks it `archived`, or
    /// `rejected` when `rejected` is true.
    ///
    /// # Errors
    /// Database errors.
    pub fn archive_box_file(
        &mut self,
        file_id: &str,
        file_version_id: &str,
        archived_folder_id: &str,
        rejected: bool,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let state = if rejected { "rejected" } else { "archived" };
        self.client.execute(
            "UPDATE box_files SET state = $3, archived_folder_id = $4, last_error = COALESCE($5, last_error),
                    lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
             WHERE file_id = $1 AND file_version_id = $2",
            &[&file_id, &file_version_id, &state, &archived_folder_id, &error],
        )?;
        Ok(())
    }

    // ----- derivatives -----

    /// The derivative of `tracking_id` with clean filename `derivative_filename`, if any.
    ///
    /// # Errors
    /// Database errors.
    pub fn derivative(
        &mut self,
        tracking_id: &str,
        derivative_filename: &str,
    ) -> Result<Option<DerivativeRow>, StoreError> {
        let row = self.client.query_opt(
            "SELECT * FROM derivative_assets WHERE tracking_id = $1 AND derivative_filename = $2",
            &[&tracking_id, &derivative_filename],
        )?;
        Ok(row.as_ref().map(derivative_from_row))
    }

    /// Creates the derivative row for a delivery, or re-points an existing row at a newer version
    /// (a re-delivery: the previous DAM asset id is kept in `previous_dam_asset_id`), and links the
    /// ledger row to it, in one transaction. Returns the row.
    ///
    /// # Errors
    /// Database errors.
    #[allow(clippy::too_many_arguments)]
    pub fn upsert_derivative(
        &mut self,
        tracking_id: &str,
        derivative_filename: &str,
        version: i32,
        box_file_id: &str,
        box_file_version_id: &str,
        box_sha1: Option<&str>,
        dam_folder_id: &str,
    ) -> Result<DerivativeRow, StoreError> {
        let mut transaction = self.client.transaction()?;
        let row = transaction.query_one(
            "INSERT INTO derivative_assets (tracking_id, derivative_filename, version, box_file_id,
                                            box_file_version_id, box_sha1, dam_folder_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (tracking_id, derivative_filename) DO UPDATE SET
                previous_dam_asset_id = CASE WHEN derivative_assets.box_file_version_id = EXCLUDED.box_file_version_id
                                             THEN derivative_assets.previous_dam_asset_id
                                             ELSE derivative_assets.dam_asset_id END,
                dam_job_id = CASE WHEN derivative_assets.box_file_version_id = EXCLUDED.box_file_version_id
                                  THEN derivative_assets.dam_job_id ELSE NULL END,
                dam_asset_id = CASE WHEN derivative_assets.box_file_version_id = EXCLUDED.box_file_version_id
                                    THEN derivative_assets.dam_asset_id ELSE NULL END,
                import_requested_at = CASE WHEN derivative_assets.box_file_version_id = EXCLUDED.box_file_version_id
                                           THEN derivative_assets.import_requested_at ELSE NULL END,
                upload_status = CASE WHEN derivative_assets.box_file_version_id = EXCLUDED.box_file_version_id
                                     THEN derivative_assets.upload_status ELSE 'pending' END,
                version = EXCLUDED.version, box_file_id = EXCLUDED.box_file_id,
                box_file_version_id = EXCLUDED.box_file_version_id, box_sha1 = EXCLUDED.box_sha1,
                dam_folder_id = EXCLUDED.dam_folder_id, updated_at = now()
             RETURNING *",
            &[&tracking_id, &derivative_filename, &version, &box_file_id, &box_file_version_id, &box_sha1, &dam_folder_id],
        )?;
        let derivative = derivative_from_row(&row);
        transaction.execute(
            "UPDATE box_files SET derivative_id = $3, tracking_id = $4 WHERE file_id = $1 AND file_version_id = $2",
            &[&box_file_id, &box_file_version_id, &derivative.id, &tracking_id],
        )?;
        transaction.commit()?;
        Ok(derivative)
    }

    /// Records that a DAM import is about to be requested (before the request is sent), with the
    /// metadata and media facts it carries.
    ///
    /// # Errors
    /// Database errors.
    pub fn mark_import_requested(
        &mut self,
        id: i64,
        metadata: &Value,
        media: &Value,
    ) -> Result<(), StoreError> {
        self.client.execute(
            "UPDATE derivative_assets SET import_requested_at = now(), upload_status = 'importing', metadata = $2,
                    media = $3, retry_count = retry_count + 1, updated_at = now() WHERE id = $1",
            &[&id, metadata, media],
        )?;
        Ok(())
    }

    /// Records the OTMM import job id of a derivative.
    ///
    /// # Errors
    /// Database errors.
    pub fn set_import_job(&mut self, id: i64, job_id: &str) -> Result<(), StoreError> {
        self.client.execute(
            "UPDATE derivative_assets SET dam_job_id = $2, updated_at = now() WHERE id = $1",
            &[&id, &job_id],
        )?;
        Ok(())
    }

    /// Forgets an import attempt that provably did not land (so the next attempt imports again).
    ///
    /// # Errors
    /// Database errors.
    pub fn reset_import(&mut self, id: i64, error: &str) -> Result<(), StoreError> {
        self.client.execute(
            "UPDATE derivative_assets SET dam_job_id = NULL, import_requested_at = NULL, upload_status = 'failed',
                    last_error = $2, updated_at = now() WHERE id = $1",
            &[&id, &error],
        )?;
        Ok(())
    }

    /// In one transaction: marks the derivative uploaded with its DAM asset id and the ledger row
    /// `uploaded_to_dam` (the Box file still has to be archived).
    ///
    /// # Errors
    /// Database errors.
    pub fn mark_derivative_uploaded(
        &mut self,
        id: i64,
        dam_asset_id: &str,
        file_id: &str,
        file_version_id: &str,
    ) -> Result<(), StoreError> {
        let mut transaction = self.client.transaction()?;
        transaction.execute(
            "UPDATE derivative_assets SET dam_asset_id = $2, upload_status = 'uploaded', last_error = NULL,
                    updated_at = now() WHERE id = $1",
            &[&id, &dam_asset_id],
        )?;
        transaction.execute(
            "UPDATE box_files SET state = 'uploaded_to_dam', updated_at = now()
             WHERE file_id = $1 AND file_version_id = $2",
            &[&file_id, &file_version_id],
        )?;
        transaction.commit()?;
        Ok(())
    }

    /// Masters of a campaign that have no uploaded derivative yet (their tracking IDs).
    ///
    /// # Errors
    /// Database errors.
    pub fn masters_without_derivative(
        &mut self,
        campaign_id: &str,
    ) -> Result<Vec<String>, StoreError> {
        let rows = self.client.query(
            "SELECT m.tracking_id FROM master_assets m
             WHERE m.campaign_id = $1
               AND NOT EXISTS (SELECT 1 FROM derivative_assets d
                               WHERE d.tracking_id = m.tracking_id AND d.upload_status = 'uploaded')
             ORDER BY m.id",
            &[&campaign_id],
        )?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    /// Campaigns at status `status` (as last set by us) that have masters and whose every
    /// master has an uploaded derivative: ready for the next transition. Found from the
    /// database, so a pass that crashed before its completion check is caught up by the next.
    ///
    /// # Errors
    /// Database errors.
    pub fn campaigns_complete_at(&mut self, status: &str) -> Result<Vec<String>, StoreError> {
        let rows = self.client.query(
            "SELECT c.dam_folder_id FROM campaigns c
             WHERE c.status = $1
               AND EXISTS (SELECT 1 FROM master_assets m WHERE m.campaign_id = c.dam_folder_id)
               AND NOT EXISTS (SELECT 1 FROM master_assets m
                               WHERE m.campaign_id = c.dam_folder_id
                                 AND NOT EXISTS (SELECT 1 FROM derivative_assets d
                                                 WHERE d.tracking_id = m.tracking_id
                                                   AND d.upload_status = 'uploaded'))
             ORDER BY c.dam_folder_id",
            &[&status],
        )?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    /// Derivatives delivered for a campaign (for notifications), oldest first.
    ///
    /// # Errors
    /// Database errors.
    pub fn derivatives_of_campaign(
        &mut self,
        campaign_id: &str,
    ) -> Result<Vec<DerivativeRow>, StoreError> {
        let rows = self.client.query(
            "SELECT d.* FROM derivative_assets d JOIN master_assets m ON m.tracking_id = d.tracking_id
             WHERE m.campaign_id = $1 AND d.upload_status = 'uploaded' ORDER BY d.id",
            &[&campaign_id],
        )?;
        Ok(rows.iter().map(derivative_from_row).collect())
    }
}

fn insert_notifications(
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

fn derivative_from_row(row: &Row) -> DerivativeRow {
    DerivativeRow {
        id: row.get("id"),
        tracking_id: row.get("tracking_id"),
        derivative_filename: row.get("derivative_filename"),
        version: row.get("version"),
        box_file_id: row.get("box_file_id"),
        box_file_version_id: row.get("box_file_version_id"),
        dam_folder_id: row.get("dam_folder_id"),
        dam_job_id: row.get("dam_job_id"),
        dam_asset_id: row.get("dam_asset_id"),
        import_requested_at: row.get("import_requested_at"),
        upload_status: row.get("upload_status"),
    }
}

fn box_file_from_row(row: &Row) -> BoxFileRow {
    BoxFileRow {
        file_id: row.get("file_id"),
        file_version_id: row.get("file_version_id"),
        watched_folder_id: row.get("watched_folder_id"),
        name: row.get("name"),
        state: row.get("state"),
        attempts: row.get("attempts"),
        next_attempt_at: row.get("next_attempt_at"),
        last_error: row.get("last_error"),
        derivative_id: row.get("derivative_id"),
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
