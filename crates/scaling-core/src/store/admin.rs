//! Queries of the operators' tools that span tables: `cleanup` (expired leases, old history),
//! `reprocess status` (dashboard figures) and `box-setup doctor` (migration state). The
//! single-table ones live with their table (`reprocess`'s ledger and outbox look-ups in
//! `ledger.rs` and `outbox.rs`, the last pass per binary in `runs.rs`).
//!
//! The clean-up statements come in pairs, a `SELECT count(*)` for `--dry-run` and the
//! `UPDATE`/`DELETE` itself, built from the same `WHERE` text so the two cannot drift apart.

use std::collections::BTreeMap;

use serde::Serialize;

pub use super::runs::BinaryRuns;
use super::{embedded, Store, StoreError};

/// Rows `cleanup` releases or deletes, per table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RowCounts {
    /// `box_files` rows.
    pub ledger: u64,
    /// `outbox` rows.
    pub outbox: u64,
    /// `runs` rows.
    pub runs: u64,
}

/// The dashboard figures of `reprocess status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StatusFigures {
    /// Master assets known.
    pub masters: i64,
    /// Masters uploaded to Box.
    pub masters_uploaded: i64,
    /// Masters whose last attempt failed (retried by the next a1-to-a2 pass).
    pub masters_failed: i64,
    /// Derivatives delivered to the DAM.
    pub derivatives_delivered: i64,
    /// Deliveries whose import is sent and not confirmed yet (`importing`).
    pub derivatives_in_progress: i64,
    /// Campaign status (as last seen or set) -> number of campaigns.
    pub campaigns_by_status: BTreeMap<String, i64>,
    /// Derivatives delivered to the DAM in the last 24 hours.
    pub derivatives_last_24h: i64,
    /// Masters uploaded to Box in the last 24 hours.
    pub masters_last_24h: i64,
    /// Box files whose latest version was rejected (they sit in `_errors/`).
    pub files_in_errors: i64,
    /// Box files waiting for a retry after a passing failure.
    pub files_waiting_retry: i64,
    /// Notifications not delivered yet.
    pub outbox_backlog: i64,
    /// Of those, how many failed at least once.
    pub outbox_failing: i64,
    /// Age of the oldest undelivered notification, seconds (database clock).
    pub outbox_oldest_age_secs: Option<i64>,
    /// Campaign status changes recorded but not completed (resumed by the next pass).
    pub transitions_pending: i64,
}

/// Schema migrations: embedded in this build vs applied to the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationState {
    /// Versions applied to the database, ascending (empty: never migrated).
    pub applied: Vec<i64>,
    /// `V{version}__{name}` of the migrations this build carries but the database lacks.
    pub pending: Vec<String>,
}

/// `box_files` rows whose lease has expired (the pass that held them died or hung).
const EXPIRED_LEDGER_LEASES: &str = "lease_owner IS NOT NULL AND lease_expires_at < now()";
/// `outbox` rows whose lease has expired.
const EXPIRED_OUTBOX_LEASES: &str =
    "sent_at IS NULL AND lease_owner IS NOT NULL AND lease_expires_at < now()";
/// History older than `$1` days, per table.
const OLD_RUNS: &str = "COALESCE(finished_at, started_at) < now() - make_interval(days => $1)";
const OLD_OUTBOX: &str = "sent_at < now() - make_interval(days => $1)";
const OLD_LEDGER: &str = "state IN ('archived', 'rejected', 'ignored') \
                          AND updated_at < now() - make_interval(days => $1)";

fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn days(value: u64) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

impl Store {
    // ----- cleanup -----

    /// Leases that expired (their pass died or hung): released when `release`, else only
    /// counted. A released ledger row goes back to `failed_transient`, due at once (the attempt
    /// that died is counted); a released outbox row is due as scheduled.
    ///
    /// # Errors
    /// Database errors.
    pub fn expired_leases(&mut self, release: bool) -> Result<RowCounts, StoreError> {
        if !release {
            let row = self.client.query_one(
                &format!(
                    "SELECT (SELECT count(*) FROM box_files WHERE {EXPIRED_LEDGER_LEASES}),
                            (SELECT count(*) FROM outbox WHERE {EXPIRED_OUTBOX_LEASES})"
                ),
                &[],
            )?;
            return Ok(RowCounts {
                ledger: count(row.get(0)),
                outbox: count(row.get(1)),
                runs: 0,
            });
        }
        let mut transaction = self.client.transaction()?;
        let ledger = transaction.execute(
            &format!(
                "UPDATE box_files SET lease_owner = NULL, lease_expires_at = NULL, next_attempt_at = NULL,
                        state = CASE WHEN state = 'claimed' THEN 'failed_transient' ELSE state END,
                        last_error = COALESCE(last_error, 'the pass working on it stopped (lease expired)'),
                        updated_at = now()
                 WHERE {EXPIRED_LEDGER_LEASES}"
            ),
            &[],
        )?;
        let outbox = transaction.execute(
            &format!(
                "UPDATE outbox SET lease_owner = NULL, lease_expires_at = NULL WHERE {EXPIRED_OUTBOX_LEASES}"
            ),
            &[],
        )?;
        transaction.commit()?;
        Ok(RowCounts {
            ledger,
            outbox,
            runs: 0,
        })
    }

    /// History older than `older_than_days` days: finished (or abandoned) `runs` rows, delivered
    /// `outbox` rows and ledger rows in a final state (`archived`, `rejected`, `ignored`).
    /// Deleted when `delete`, else only counted.
    ///
    /// # Errors
    /// Database errors.
    pub fn old_history(
        &mut self,
        older_than_days: u64,
        delete: bool,
    ) -> Result<RowCounts, StoreError> {
        let days = days(older_than_days);
        if !delete {
            let row = self.client.query_one(
                &format!(
                    "SELECT (SELECT count(*) FROM box_files WHERE {OLD_LEDGER}),
                            (SELECT count(*) FROM outbox WHERE {OLD_OUTBOX}),
                            (SELECT count(*) FROM runs WHERE {OLD_RUNS})"
                ),
                &[&days],
            )?;
            return Ok(RowCounts {
                ledger: count(row.get(0)),
                outbox: count(row.get(1)),
                runs: count(row.get(2)),
            });
        }
        let mut transaction = self.client.transaction()?;
        let ledger = transaction.execute(
            &format!("DELETE FROM box_files WHERE {OLD_LEDGER}"),
            &[&days],
        )?;
        let outbox =
            transaction.execute(&format!("DELETE FROM outbox WHERE {OLD_OUTBOX}"), &[&days])?;
        let runs = transaction.execute(&format!("DELETE FROM runs WHERE {OLD_RUNS}"), &[&days])?;
        transaction.commit()?;
        Ok(RowCounts {
            ledger,
            outbox,
            runs,
        })
    }

    // ----- status -----

    /// The dashboard figures (one round trip, database clock).
    ///
    /// # Errors
    /// Database errors.
    pub fn status_figures(&mut self) -> Result<StatusFigures, StoreError> {
        let row = self.client.query_one(
            "WITH latest AS (SELECT DISTINCT ON (file_id) state FROM box_files
                             ORDER BY file_id, updated_at DESC, file_version_id DESC)
             SELECT
               (SELECT count(*) FROM master_assets) AS masters,
               (SELECT count(*) FROM master_assets WHERE status = 'uploaded') AS masters_uploaded,
               (SELECT count(*) FROM master_assets WHERE status = 'failed') AS masters_failed,
               (SELECT count(*) FROM derivative_assets WHERE upload_status = 'uploaded') AS derivatives_delivered,
               (SELECT count(*) FROM derivative_assets WHERE upload_status = 'importing') AS derivatives_in_progress,
               (SELECT count(*) FROM derivative_assets
                 WHERE upload_status = 'uploaded' AND updated_at > now() - interval '24 hours') AS derivatives_last_24h,
               (SELECT count(*) FROM master_assets
                 WHERE status = 'uploaded' AND updated_at > now() - interval '24 hours') AS masters_last_24h,
               (SELECT count(*) FROM latest WHERE state = 'rejected') AS files_in_errors,
               (SELECT count(*) FROM latest WHERE state = 'failed_transient') AS files_waiting_retry,
               (SELECT count(*) FROM outbox WHERE sent_at IS NULL) AS outbox_backlog,
               (SELECT count(*) FROM outbox WHERE sent_at IS NULL AND attempts > 0) AS outbox_failing,
               (SELECT EXTRACT(EPOCH FROM now() - min(created_at))::bigint FROM outbox WHERE sent_at IS NULL)
                 AS outbox_oldest_age_secs,
               (SELECT count(*) FROM campaign_transitions WHERE state = 'pending') AS transitions_pending",
            &[],
        )?;
        let campaigns = self.client.query(
            "SELECT status, count(*) FROM campaigns GROUP BY status ORDER BY status",
            &[],
        )?;
        Ok(StatusFigures {
            masters: row.get("masters"),
            masters_uploaded: row.get("masters_uploaded"),
            masters_failed: row.get("masters_failed"),
            derivatives_delivered: row.get("derivatives_delivered"),
            derivatives_in_progress: row.get("derivatives_in_progress"),
            campaigns_by_status: campaigns
                .iter()
                .map(|row| (row.get(0), row.get(1)))
                .collect(),
            derivatives_last_24h: row.get("derivatives_last_24h"),
            masters_last_24h: row.get("masters_last_24h"),
            files_in_errors: row.get("files_in_errors"),
            files_waiting_retry: row.get("files_waiting_retry"),
            outbox_backlog: row.get("outbox_backlog"),
            outbox_failing: row.get("outbox_failing"),
            outbox_oldest_age_secs: row.get("outbox_oldest_age_secs"),
            transitions_pending: row.get("transitions_pending"),
        })
    }

    // ----- doctor -----

    /// Which embedded migrations the database has and lacks. Reads only (never migrates).
    ///
    /// # Errors
    /// Database errors.
    pub fn migration_state(&mut self) -> Result<MigrationState, StoreError> {
        let exists: bool = self
            .client
            .query_one(
                "SELECT to_regclass('refinery_schema_history') IS NOT NULL",
                &[],
            )?
            .get(0);
        let applied: Vec<i64> = if exists {
            self.client
                .query(
                    "SELECT version::bigint FROM refinery_schema_history ORDER BY version",
                    &[],
                )?
                .iter()
                .map(|row| row.get(0))
                .collect()
        } else {
            Vec::new()
        };
        let pending = embedded::migrations::runner()
            .get_migrations()
            .iter()
            .filter(|migration| !applied.contains(&i64::from(migration.version())))
            .map(|migration| format!("V{}__{}", migration.version(), migration.name()))
            .collect();
        Ok(MigrationState { applied, pending })
    }
}
