//! The `box_files` ledger: one row per Box file *version* seen in a watched folder, claimed with
//! a renewable lease and a claim generation (fencing token).
//!
//! States ([`LedgerState`]): `seen` → `claimed` → `uploaded_to_dam` → `archived` (delivered), or
//! `rejecting` → `rejected` (its `_errors/` note and move to do, then done), or
//! `failed_transient` (retried later), or `ignored`. `rejecting` and `uploaded_to_dam` are
//! decisions already taken whose Box move may not have happened: a later pass finishes them from
//! the ledger even when the file no longer shows in the watched folder's listing.
//!
//! Attempts count outcomes (a reply from Box or the DAM that the file failed), never claims: a
//! pass that is killed costs the file nothing.

use jiff::Timestamp;
use postgres::Row;
use serde::Serialize;

use super::outbox::insert_notifications;
use super::state::{self, db_enum};
use super::{NewNotification, Store, StoreError};

db_enum! {
    /// State of a `box_files` row (the database's CHECK list, `migrations/V3__deliveries.sql`).
    pub enum LedgerState {
        /// Listed, not claimed yet.
        Seen = "seen",
        /// Claimed by a pass (see the lease).
        Claimed = "claimed",
        /// Imported into the DAM; the Box file still has to move to `_PROCESSED/`.
        UploadedToDam = "uploaded_to_dam",
        /// Delivered and moved to `_PROCESSED/{date}/` (final).
        Archived = "archived",
        /// Failed for a passing reason; retried after `next_attempt_at`.
        FailedTransient = "failed_transient",
        /// Rejection decided (email queued); note and move to `_errors/` may still be due.
        Rejecting = "rejecting",
        /// In `_errors/` with a note (final until moved back).
        Rejected = "rejected",
        /// Not a delivery (final).
        Ignored = "ignored",
    }
}

impl LedgerState {
    /// Archived, rejected or ignored: nothing left to do for this file version.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Archived | Self::Rejected | Self::Ignored)
    }
}

/// A Box file version seen in a watched folder (`box_files` row): what the passes work from and
/// what the operators' tools show.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BoxFileRow {
    /// Box file id.
    pub file_id: String,
    /// Box file version id (a replaced file is new work).
    pub file_version_id: String,
    /// Watched folder it was found in.
    pub watched_folder_id: String,
    /// File name when last seen.
    pub name: String,
    /// Ledger state.
    pub state: LedgerState,
    /// Failed attempts so far (outcomes, not claims).
    pub attempts: i32,
    /// Earliest time of the next attempt after a transient failure.
    pub next_attempt_at: Option<Timestamp>,
    /// Last error text (for `rejecting`/`rejected`: the problems, one per line).
    pub last_error: Option<String>,
    /// Derivative row (delivery), once created.
    pub derivative_id: Option<i64>,
    /// Box folder it was moved to (`_PROCESSED/{date}` or `_errors`).
    pub archived_folder_id: Option<String>,
    /// Incremented by every claim: the fencing token of the current holder.
    pub claim_generation: i64,
    /// The `.error.txt` note we uploaded for this version, if any.
    pub note_file_id: Option<String>,
    /// Last change of the row (UTC).
    pub updated_at: Timestamp,
    /// Pass holding a live lease on the row (database clock), if any: after a claim, the
    /// claimer.
    pub leased_by: Option<String>,
}

/// The columns [`box_file_from_row`] reads: the row and its live lease holder.
const BOX_FILE_COLUMNS: &str = "box_files.*, \
    CASE WHEN box_files.lease_expires_at > now() THEN box_files.lease_owner END AS leased_by";

/// Which claim a pass holds: the fencing token checked by every write that must come from the
/// current holder only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// Box file id.
    pub file_id: String,
    /// Box file version id.
    pub file_version_id: String,
    /// Lease owner (`{host}:{pid}:{start}`).
    pub owner: String,
    /// Claim generation at the time of the claim.
    pub generation: i64,
}

impl BoxFileRow {
    /// The claim this row stands for, when `owner` holds it.
    pub fn claim(&self, owner: &str) -> Claim {
        Claim {
            file_id: self.file_id.clone(),
            file_version_id: self.file_version_id.clone(),
            owner: owner.to_string(),
            generation: self.claim_generation,
        }
    }
}

/// Locks the ledger row of `claim` for the rest of `transaction` when `claim` still holds it
/// (same owner and generation); false when another pass took it over. The fence of every write
/// that must come from the current holder only.
pub(super) fn lock_claim(
    transaction: &mut postgres::Transaction<'_>,
    claim: &Claim,
) -> Result<bool, StoreError> {
    let held = transaction.query_opt(
        "SELECT 1 FROM box_files WHERE file_id = $1 AND file_version_id = $2
           AND lease_owner = $3 AND claim_generation = $4 FOR UPDATE",
        &[
            &claim.file_id,
            &claim.file_version_id,
            &claim.owner,
            &claim.generation,
        ],
    )?;
    Ok(held.is_some())
}

pub(super) fn box_file_from_row(row: &Row) -> Result<BoxFileRow, StoreError> {
    Ok(BoxFileRow {
        file_id: row.get("file_id"),
        file_version_id: row.get("file_version_id"),
        watched_folder_id: row.get("watched_folder_id"),
        name: row.get("name"),
        state: state::read(row, "box_files", "state")?,
        attempts: row.get("attempts"),
        next_attempt_at: row.get("next_attempt_at"),
        last_error: row.get("last_error"),
        derivative_id: row.get("derivative_id"),
        archived_folder_id: row.get("archived_folder_id"),
        claim_generation: row.get("claim_generation"),
        note_file_id: row.get("note_file_id"),
        updated_at: row.get("updated_at"),
        leased_by: row.get("leased_by"),
    })
}

/// Ledger rows whose decided Box move did not happen yet and that no live pass holds.
pub(super) const UNFINISHED_MOVES_WHERE: &str = "state IN ('rejecting', 'uploaded_to_dam')
    AND (lease_owner IS NULL OR lease_expires_at < now())";

impl Store {
    /// Records a file seen in a watched folder (no-op when already known, but the name follows a
    /// rename) and returns its row.
    ///
    /// # Errors
    /// Database errors; [`StoreError::UnknownValue`] for a state this build does not know.
    pub fn observe_box_file(
        &mut self,
        file_id: &str,
        file_version_id: &str,
        watched_folder_id: &str,
        name: &str,
        sha1: Option<&str>,
        size_bytes: Option<i64>,
    ) -> Result<BoxFileRow, StoreError> {
        let row = self.client.query_one(
            &format!("INSERT INTO box_files (file_id, file_version_id, watched_folder_id, name, sha1, size_bytes)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (file_id, file_version_id) DO UPDATE SET name = EXCLUDED.name
             RETURNING {BOX_FILE_COLUMNS}"),
            &[&file_id, &file_version_id, &watched_folder_id, &name, &sha1, &size_bytes],
        )?;
        box_file_from_row(&row)
    }

    /// Claims a ledger row for `owner` for `lease_secs` seconds and increments its claim
    /// generation, unless another live lease holds it, it is not yet due for retry, or it is in a
    /// final state. A final `archived`/`rejected` row is claimed (and reopened with no attempts
    /// counted) only with `reopen_generation` equal to its `claim_generation`: the caller has
    /// seen the row final, asked Box and found the file back in the watched folder (a person
    /// moved it back). The generation fences a pass whose check predates another pass's
    /// reopening: it reopens nothing. No clock is compared, so a file moved back a second after
    /// its rejection is taken up by the next pass.
    ///
    /// # Errors
    /// Database errors; [`StoreError::UnknownValue`] for a state this build does not know.
    pub fn claim_box_file(
        &mut self,
        file_id: &str,
        file_version_id: &str,
        owner: &str,
        lease_secs: i64,
        reopen_generation: Option<i64>,
    ) -> Result<Option<BoxFileRow>, StoreError> {
        let row = self.client.query_opt(
            &format!("UPDATE box_files SET lease_owner = $3,
                    lease_expires_at = now() + make_interval(secs => $4::bigint::float8),
                    claim_generation = claim_generation + 1, updated_at = now(),
                    attempts = CASE WHEN state IN ('archived', 'rejected') THEN 0 ELSE attempts END,
                    next_attempt_at = CASE WHEN state IN ('archived', 'rejected') THEN NULL ELSE next_attempt_at END,
                    state = CASE WHEN state IN ('seen', 'failed_transient', 'archived', 'rejected') THEN 'claimed'
                                 ELSE state END
             WHERE file_id = $1 AND file_version_id = $2
               AND state <> 'ignored'
               AND (state NOT IN ('archived', 'rejected') OR claim_generation = $5::bigint)
               AND (lease_owner IS NULL OR lease_expires_at < now() OR lease_owner = $3)
               AND (next_attempt_at IS NULL OR next_attempt_at <= now() OR state IN ('archived', 'rejected'))
             RETURNING {BOX_FILE_COLUMNS}"),
            &[&file_id, &file_version_id, &owner, &lease_secs, &reopen_generation],
        )?;
        row.as_ref().map(box_file_from_row).transpose()
    }

    /// Claims, for `owner`, the rows whose decision is recorded but whose Box move may not have
    /// happened (`rejecting`, `uploaded_to_dam`) and that no live pass holds; at most `limit`.
    ///
    /// # Errors
    /// Database errors; [`StoreError::UnknownValue`] for a state this build does not know.
    pub fn claim_unfinished_moves(
        &mut self,
        owner: &str,
        lease_secs: i64,
        limit: i64,
    ) -> Result<Vec<BoxFileRow>, StoreError> {
        let rows = self.client.query(
            &format!(
                "UPDATE box_files SET lease_owner = $1, claim_generation = claim_generation + 1,
                    lease_expires_at = now() + make_interval(secs => $2::bigint::float8)
             WHERE (file_id, file_version_id) IN (
                 SELECT file_id, file_version_id FROM box_files
                  WHERE {UNFINISHED_MOVES_WHERE}
                  ORDER BY updated_at LIMIT $3 FOR UPDATE SKIP LOCKED)
             RETURNING {BOX_FILE_COLUMNS}"
            ),
            &[&owner, &lease_secs, &limit],
        )?;
        rows.iter().map(box_file_from_row).collect()
    }

    /// Extends every lease `owner` holds to `lease_secs` from now (the heartbeat of a live
    /// pass); returns how many rows.
    ///
    /// # Errors
    /// Database errors.
    pub fn renew_leases(&mut self, owner: &str, lease_secs: i64) -> Result<u64, StoreError> {
        Ok(self.client.execute(
            "UPDATE box_files SET lease_expires_at = now() + make_interval(secs => $2::bigint::float8)
             WHERE lease_owner = $1",
            &[&owner, &lease_secs],
        )?)
    }

    /// Records a passing failure and releases the lease. `counted`: the failure is an outcome
    /// (a reply from Box or the DAM), so it counts against `retry.max_attempts`; a wait (an
    /// import job still running) does not. Returns the attempts after this one.
    ///
    /// # Errors
    /// Database errors.
    pub fn record_retry(
        &mut self,
        claim: &Claim,
        error: &str,
        counted: bool,
        retry_after_secs: i64,
    ) -> Result<i32, StoreError> {
        let row = self.client.query_opt(
            "UPDATE box_files SET state = 'failed_transient', last_error = $3,
                    attempts = attempts + CASE WHEN $4 THEN 1 ELSE 0 END,
                    lease_owner = NULL, lease_expires_at = NULL, updated_at = now(),
                    next_attempt_at = now() + make_interval(secs => $5::bigint::float8)
             WHERE file_id = $1 AND file_version_id = $2 AND state IN ('claimed', 'failed_transient', 'seen')
             RETURNING attempts",
            &[&claim.file_id, &claim.file_version_id, &error, &counted, &retry_after_secs],
        )?;
        Ok(row.map_or(0, |row| row.get(0)))
    }

    /// The attempts a file version has failed so far.
    ///
    /// # Errors
    /// Database errors.
    pub fn attempts_of(&mut self, file_id: &str, file_version_id: &str) -> Result<i32, StoreError> {
        let row = self.client.query_opt(
            "SELECT attempts FROM box_files WHERE file_id = $1 AND file_version_id = $2",
            &[&file_id, &file_version_id],
        )?;
        Ok(row.map_or(0, |row| row.get(0)))
    }

    /// Releases a claimed row untouched after a dependency failure: due again at once, no attempt
    /// counted.
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
                    last_error = $3, lease_owner = NULL,
                    lease_expires_at = NULL, next_attempt_at = NULL, updated_at = now()
             WHERE file_id = $1 AND file_version_id = $2",
            &[&file_id, &file_version_id, &error],
        )?;
        Ok(())
    }

    /// Marks a file version `ignored` (not a delivery, or gone from Box) and releases it.
    ///
    /// # Errors
    /// Database errors.
    pub fn ignore_box_file(
        &mut self,
        file_id: &str,
        file_version_id: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        self.client.execute(
            "UPDATE box_files SET state = 'ignored', last_error = $3, lease_owner = NULL,
                    lease_expires_at = NULL, updated_at = now()
             WHERE file_id = $1 AND file_version_id = $2",
            &[&file_id, &file_version_id, &reason],
        )?;
        Ok(())
    }

    /// Records a rejection decision with its notifications, in one transaction: the row becomes
    /// `rejecting` with `problems` (one per line) as its error, and the emails are queued. The
    /// note and the move to `_errors/` follow; a crash after this is finished by a later pass.
    /// Returns false (nothing written) when `claim` no longer holds the row.
    ///
    /// # Errors
    /// Database errors.
    pub fn begin_reject(
        &mut self,
        claim: &Claim,
        problems: &str,
        notifications: &[NewNotification],
    ) -> Result<bool, StoreError> {
        let mut transaction = self.client.transaction()?;
        let changed = transaction.execute(
            "UPDATE box_files SET state = 'rejecting', last_error = $5, updated_at = now()
             WHERE file_id = $1 AND file_version_id = $2 AND lease_owner = $3 AND claim_generation = $4",
            &[&claim.file_id, &claim.file_version_id, &claim.owner, &claim.generation, &problems],
        )?;
        if changed == 0 {
            return Ok(false);
        }
        insert_notifications(&mut transaction, notifications)?;
        transaction.commit()?;
        Ok(true)
    }

    /// Records the `.error.txt` note uploaded for a rejected file version.
    ///
    /// # Errors
    /// Database errors.
    pub fn set_note(
        &mut self,
        file_id: &str,
        file_version_id: &str,
        note_file_id: &str,
    ) -> Result<(), StoreError> {
        self.client.execute(
            "UPDATE box_files SET note_file_id = $3 WHERE file_id = $1 AND file_version_id = $2",
            &[&file_id, &file_version_id, &note_file_id],
        )?;
        Ok(())
    }

    /// Notes we wrote for earlier rejected versions of Box file `file_id` (any version) that
    /// are still recorded in `_errors/`: they move with the file once it is delivered.
    ///
    /// # Errors
    /// Database errors.
    pub fn notes_of_file(&mut self, file_id: &str) -> Result<Vec<(String, String)>, StoreError> {
        let rows = self.client.query(
            "SELECT file_version_id, note_file_id FROM box_files
             WHERE file_id = $1 AND note_file_id IS NOT NULL",
            &[&file_id],
        )?;
        Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
    }

    /// Forgets a note once it moved along with its delivered file.
    ///
    /// # Errors
    /// Database errors.
    pub fn clear_note(&mut self, file_id: &str, file_version_id: &str) -> Result<(), StoreError> {
        self.client.execute(
            "UPDATE box_files SET note_file_id = NULL WHERE file_id = $1 AND file_version_id = $2",
            &[&file_id, &file_version_id],
        )?;
        Ok(())
    }

    /// Records where a ledger file was moved (Box folder id) and marks it `archived`, or
    /// `rejected` when `rejected` is true; releases the lease.
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
        let state = if rejected {
            LedgerState::Rejected
        } else {
            LedgerState::Archived
        };
        self.client.execute(
            "UPDATE box_files SET state = $3, archived_folder_id = $4, last_error = COALESCE($5, last_error),
                    lease_owner = NULL, lease_expires_at = NULL, next_attempt_at = NULL, updated_at = now()
             WHERE file_id = $1 AND file_version_id = $2",
            &[&file_id, &file_version_id, &state.as_str(), &archived_folder_id, &error],
        )?;
        Ok(())
    }

    // ----- reprocess -----

    /// The most recently changed ledger row of Box file `file_id` (any version), if known.
    ///
    /// # Errors
    /// Database errors; [`StoreError::UnknownValue`] for a state this build does not know.
    pub fn ledger_file(&mut self, file_id: &str) -> Result<Option<BoxFileRow>, StoreError> {
        let row = self.client.query_opt(
            &format!(
                "SELECT {BOX_FILE_COLUMNS} FROM box_files WHERE file_id = $1
                 ORDER BY updated_at DESC, file_version_id DESC LIMIT 1"
            ),
            &[&file_id],
        )?;
        row.as_ref().map(box_file_from_row).transpose()
    }

    /// Files whose latest ledger row is `rejected` (they sit in `_errors/`), oldest rejection
    /// first; only those of watched folder `watched_folder_id` and rejected at or after `since`
    /// when given.
    ///
    /// # Errors
    /// Database errors; [`StoreError::UnknownValue`] for a state this build does not know.
    pub fn rejected_files(
        &mut self,
        watched_folder_id: Option<&str>,
        since: Option<Timestamp>,
    ) -> Result<Vec<BoxFileRow>, StoreError> {
        let rows = self.client.query(
            &format!(
                "SELECT * FROM (SELECT DISTINCT ON (file_id) {BOX_FILE_COLUMNS} FROM box_files
                                ORDER BY file_id, updated_at DESC, file_version_id DESC) latest
                 WHERE state = 'rejected'
                   AND ($1::text IS NULL OR watched_folder_id = $1)
                   AND ($2::timestamptz IS NULL OR updated_at >= $2)
                 ORDER BY updated_at, file_id"
            ),
            &[&watched_folder_id, &since],
        )?;
        rows.iter().map(box_file_from_row).collect()
    }

    /// Makes a rejected (or waiting) ledger row claimable again at once, as if the file had just
    /// been seen in `watched_folder_id` under `name`: state `seen`, attempts 0, no retry delay,
    /// no archive folder. Rows in other states (delivered, or held by a live lease) are left
    /// alone. Returns whether the row was reopened.
    ///
    /// # Errors
    /// Database errors.
    pub fn reopen_box_file(
        &mut self,
        file_id: &str,
        file_version_id: &str,
        watched_folder_id: &str,
        name: &str,
    ) -> Result<bool, StoreError> {
        let changed = self.client.execute(
            "UPDATE box_files SET state = 'seen', attempts = 0, next_attempt_at = NULL, lease_owner = NULL,
                    lease_expires_at = NULL, archived_folder_id = NULL, watched_folder_id = $3, name = $4,
                    updated_at = now()
             WHERE file_id = $1 AND file_version_id = $2
               AND (state IN ('rejected', 'failed_transient', 'seen')
                    OR (state = 'claimed' AND (lease_expires_at IS NULL OR lease_expires_at < now())))",
            &[&file_id, &file_version_id, &watched_folder_id, &name],
        )?;
        Ok(changed > 0)
    }
}
