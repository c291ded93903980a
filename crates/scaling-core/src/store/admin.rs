//! Queries of the operators' tools that span tables: `cleanup` (expired leases, old history),
//! `reprocess status` (dashboard figures) and `box-setup doctor` (migration state). The
//! single-table ones live with their table (`reprocess`'s ledger and outbox look-ups in
//! `ledger.rs` and `outbox.rs`, the last pass per binary in `runs.rs`).
//!
//! The clean-up statements come in pairs, a `SELECT count(*)` for `--dry-run` and the
//! `UPDATE`/`DELETE` itself, built from the same `WHERE` text so the two cannot drift apart.

use std::collections::BTreeMap;

use jiff::Timestamp;
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

/// The dashboard figures of `reprocess status`, each counted from the state things are in now
/// (never from a step on the way: a rejected file whose import was once sent is rejected, not
/// "in progress").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StatusFigures {
    /// Master assets known.
    pub masters: i64,
    /// Masters uploaded to Box.
    pub masters_uploaded: i64,
    /// Masters whose last attempt failed (retried by the next a1-to-a2 pass).
    pub masters_failed: i64,
    /// Derivatives (tracking ID + derivative name) the DAM holds, each counted once however many
    /// versions were delivered: a re-delivery on its way never lowers it.
    pub derivatives_delivered: i64,
    /// Deliveries replaced in the DAM by a higher version of the same derivative.
    pub deliveries_superseded: i64,
    /// Imports sent whose outcome is not confirmed yet (looked up by the next pass).
    pub imports_unconfirmed: i64,
    /// Campaign status (as last seen or set) -> number of campaigns.
    pub campaigns_by_status: BTreeMap<String, i64>,
    /// Derivatives delivered to the DAM in the last 24 hours.
    pub derivatives_last_24h: i64,
    /// Masters uploaded to Box in the last 24 hours.
    pub masters_last_24h: i64,
    /// Box files whose latest version was rejected (they sit in `_errors/`).
    pub files_in_errors: i64,
    /// Box files waiting for a retry after a passing failure (or whose pass died), not held by
    /// a live pass.
    pub files_waiting_retry: i64,
    /// Box files listed but not handled yet, not held by a live pass.
    pub files_queued: i64,
    /// Box files a live pass holds right now (lease not expired).
    pub files_in_progress: i64,
    /// Notifications not delivered yet.
    pub outbox_backlog: i64,
    /// Of those, how many failed at least once.
    pub outbox_failing: i64,
    /// Age of the oldest undelivered notification, seconds (database clock).
    pub outbox_oldest_age_secs: Option<i64>,
    /// Campaign status changes recorded but not completed (resumed by the next pass).
    pub transitions_pending: i64,
}

/// Which list of `reprocess status --files` a Box file is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileListKind {
    /// Rejected: in `_errors/` with a note (`reprocess file` moves it back once renamed).
    InErrors,
    /// Waiting for a retry after a passing failure (box-poll retries it; `reprocess file` now).
    WaitingRetry,
}

/// A Box file on one of the lists of `reprocess status --files`: its latest version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusFile {
    /// Which list.
    pub list: FileListKind,
    /// Box file id.
    pub file_id: String,
    /// Box file version id.
    pub file_version_id: String,
    /// File name when last seen.
    pub name: String,
    /// Watched folder id it was delivered to.
    pub watched_folder_id: String,
    /// Its last error (for a rejection: the problems, one per line).
    pub last_error: Option<String>,
    /// Failed attempts so far.
    pub attempts: i32,
    /// Earliest next attempt (UTC), for a file waiting for a retry.
    pub next_attempt_at: Option<Timestamp>,
    /// Last change (UTC).
    pub updated_at: Timestamp,
}

/// A campaign's progress, for `reprocess status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CampaignProgress {
    /// DAM folder id (40 hex).
    pub dam_folder_id: String,
    /// Campaign number (e.g. `C-2026-0142`).
    pub campaign_number: String,
    /// Campaign name.
    pub campaign_name: String,
    /// Status as last seen or set (A1/A2/A3).
    pub status: String,
    /// Masters of the campaign: the larger of those found in the DAM and those recorded.
    pub masters_total: i64,
    /// Masters uploaded to Box.
    pub masters_in_box: i64,
    /// Masters with a derivative delivered to the DAM.
    pub masters_with_derivative: i64,
    /// Last change (UTC).
    pub updated_at: Timestamp,
}

/// One pass, for the timeline of the status page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PassRecord {
    /// Binary name.
    pub binary: String,
    /// Start (UTC).
    pub started_at: Timestamp,
    /// End (UTC); `None` while it runs or when it was killed.
    pub finished_at: Option<Timestamp>,
    /// Outcome text (`completed`, `failed`, `dependency_unreachable`, ...), `None` while running.
    pub outcome: Option<String>,
}

/// Whether `reprocess status` can read the database, which it never migrates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SchemaState {
    /// Every migration of this build is applied; the schema exists since `age_secs` seconds.
    Current {
        /// Seconds since the first migration was applied (database clock): the install time.
        age_secs: Option<i64>,
    },
    /// No schema at all: nothing ran against this database yet.
    NotInitialised,
    /// The database lacks migrations of this build (`V{n}__{name}`): a pass or `cleanup` of this
    /// version applies them.
    Older {
        /// The missing migrations.
        pending: Vec<String>,
    },
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

    /// The dashboard figures (database clock). Box files are judged by their latest version;
    /// a file held by a live lease is in progress whatever its state.
    ///
    /// # Errors
    /// Database errors.
    pub fn status_figures(&mut self) -> Result<StatusFigures, StoreError> {
        let row = self.client.query_one(
            "WITH latest AS (SELECT DISTINCT ON (file_id) state, lease_expires_at > now() AS live
                             FROM box_files
                             ORDER BY file_id, updated_at DESC, file_version_id DESC)
             SELECT
               (SELECT count(*) FROM master_assets) AS masters,
               (SELECT count(*) FROM master_assets WHERE status = 'uploaded') AS masters_uploaded,
               (SELECT count(*) FROM master_assets WHERE status = 'failed') AS masters_failed,
               (SELECT count(*) FROM (SELECT DISTINCT tracking_id, derivative_key FROM derivative_assets
                                      WHERE upload_status = 'uploaded') d) AS derivatives_delivered,
               (SELECT count(*) FROM derivative_assets d WHERE d.upload_status = 'uploaded'
                  AND EXISTS (SELECT 1 FROM derivative_assets n
                              WHERE n.tracking_id = d.tracking_id AND n.derivative_key = d.derivative_key
                                AND n.upload_status = 'uploaded' AND n.version > d.version))
                 AS deliveries_superseded,
               (SELECT count(*) FROM derivative_assets d WHERE d.upload_status = 'importing'
                  AND NOT EXISTS (SELECT 1 FROM box_files b
                                  WHERE b.file_id = d.box_file_id AND b.file_version_id = d.box_file_version_id
                                    AND b.state IN ('rejected', 'rejecting')))
                 AS imports_unconfirmed,
               (SELECT count(*) FROM derivative_assets
                 WHERE upload_status = 'uploaded' AND updated_at > now() - interval '24 hours') AS derivatives_last_24h,
               (SELECT count(*) FROM master_assets
                 WHERE status = 'uploaded' AND updated_at > now() - interval '24 hours') AS masters_last_24h,
               (SELECT count(*) FROM latest WHERE live) AS files_in_progress,
               (SELECT count(*) FROM latest WHERE live IS NOT TRUE AND state IN ('rejected', 'rejecting'))
                 AS files_in_errors,
               (SELECT count(*) FROM latest WHERE live IS NOT TRUE AND state IN ('failed_transient', 'claimed'))
                 AS files_waiting_retry,
               (SELECT count(*) FROM latest WHERE live IS NOT TRUE AND state = 'seen') AS files_queued,
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
            deliveries_superseded: row.get("deliveries_superseded"),
            imports_unconfirmed: row.get("imports_unconfirmed"),
            campaigns_by_status: campaigns
                .iter()
                .map(|row| (row.get(0), row.get(1)))
                .collect(),
            derivatives_last_24h: row.get("derivatives_last_24h"),
            masters_last_24h: row.get("masters_last_24h"),
            files_in_errors: row.get("files_in_errors"),
            files_waiting_retry: row.get("files_waiting_retry"),
            files_queued: row.get("files_queued"),
            files_in_progress: row.get("files_in_progress"),
            outbox_backlog: row.get("outbox_backlog"),
            outbox_failing: row.get("outbox_failing"),
            outbox_oldest_age_secs: row.get("outbox_oldest_age_secs"),
            transitions_pending: row.get("transitions_pending"),
        })
    }

    /// The Box files of `reprocess status --files`, by their latest version, not held by a live
    /// pass: rejected ones (in `_errors/`) and ones waiting for a retry, newest first, at most
    /// `limit`.
    ///
    /// # Errors
    /// Database errors.
    pub fn status_files(&mut self, limit: i64) -> Result<Vec<StatusFile>, StoreError> {
        let rows = self.client.query(
            "SELECT * FROM (SELECT DISTINCT ON (file_id) file_id, file_version_id, name, watched_folder_id,
                                   state, last_error, attempts, next_attempt_at, updated_at,
                                   lease_expires_at > now() AS live
                            FROM box_files
                            ORDER BY file_id, updated_at DESC, file_version_id DESC) latest
             WHERE live IS NOT TRUE
               AND state IN ('rejected', 'rejecting', 'failed_transient', 'claimed')
             ORDER BY updated_at DESC, file_id
             LIMIT $1",
            &[&limit],
        )?;
        Ok(rows
            .iter()
            .map(|row| {
                let state: String = row.get("state");
                StatusFile {
                    list: if state.starts_with("reject") {
                        FileListKind::InErrors
                    } else {
                        FileListKind::WaitingRetry
                    },
                    file_id: row.get("file_id"),
                    file_version_id: row.get("file_version_id"),
                    name: row.get("name"),
                    watched_folder_id: row.get("watched_folder_id"),
                    last_error: row.get("last_error"),
                    attempts: row.get("attempts"),
                    next_attempt_at: row.get("next_attempt_at"),
                    updated_at: row.get("updated_at"),
                }
            })
            .collect())
    }

    /// Campaigns with their progress, the unfinished ones (not at `done_status`) first, then
    /// the most recently changed, at most `limit`.
    ///
    /// # Errors
    /// Database errors.
    pub fn campaign_progress(
        &mut self,
        done_status: &str,
        limit: i64,
    ) -> Result<Vec<CampaignProgress>, StoreError> {
        let rows = self.client.query(
            "SELECT c.dam_folder_id, c.campaign_number, c.campaign_name, c.status, c.updated_at,
                    GREATEST(COALESCE(c.master_count, 0), count(m.id)) AS masters_total,
                    count(m.id) FILTER (WHERE m.status = 'uploaded') AS masters_in_box,
                    count(m.id) FILTER (WHERE EXISTS (SELECT 1 FROM derivative_assets d
                                                      WHERE d.tracking_id = m.tracking_id
                                                        AND d.upload_status = 'uploaded'))
                      AS masters_with_derivative
             FROM campaigns c LEFT JOIN master_assets m ON m.campaign_id = c.dam_folder_id
             GROUP BY c.dam_folder_id
             ORDER BY c.status = $1, c.updated_at DESC, c.dam_folder_id
             LIMIT $2",
            &[&done_status, &limit],
        )?;
        Ok(rows
            .iter()
            .map(|row| CampaignProgress {
                dam_folder_id: row.get("dam_folder_id"),
                campaign_number: row.get("campaign_number"),
                campaign_name: row.get("campaign_name"),
                status: row.get("status"),
                masters_total: row.get("masters_total"),
                masters_in_box: row.get("masters_in_box"),
                masters_with_derivative: row.get("masters_with_derivative"),
                updated_at: row.get("updated_at"),
            })
            .collect())
    }

    /// The passes started in the last `hours` hours, oldest first, at most `limit` (the newest).
    ///
    /// # Errors
    /// Database errors.
    pub fn pass_history(&mut self, hours: i32, limit: i64) -> Result<Vec<PassRecord>, StoreError> {
        let rows = self.client.query(
            "SELECT * FROM (SELECT binary_name, started_at, finished_at, outcome, id FROM runs
                            WHERE started_at > now() - make_interval(hours => $1)
                            ORDER BY started_at DESC, id DESC LIMIT $2) recent
             ORDER BY started_at, id",
            &[&hours, &limit],
        )?;
        Ok(rows
            .iter()
            .map(|row| PassRecord {
                binary: row.get("binary_name"),
                started_at: row.get("started_at"),
                finished_at: row.get("finished_at"),
                outcome: row.get("outcome"),
            })
            .collect())
    }

    /// Whether the schema is there and current, without changing anything (`reprocess status`
    /// never migrates).
    ///
    /// # Errors
    /// Database errors.
    pub fn schema_state(&mut self) -> Result<SchemaState, StoreError> {
        let migrations = self.migration_state()?;
        if migrations.applied.is_empty() {
            return Ok(SchemaState::NotInitialised);
        }
        if !migrations.pending.is_empty() {
            return Ok(SchemaState::Older {
                pending: migrations.pending,
            });
        }
        // refinery records `applied_on` as RFC 3339 text.
        let age_secs: Option<i64> = self
            .client
            .query_one(
                "SELECT EXTRACT(EPOCH FROM now() - min(applied_on::timestamptz))::bigint
                 FROM refinery_schema_history",
                &[],
            )?
            .get(0);
        Ok(SchemaState::Current { age_secs })
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
