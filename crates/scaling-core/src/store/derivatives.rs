//! `derivative_assets`: one row per **delivery** — one version of one derivative (tracking ID +
//! derivative key + version) imported into the DAM.
//!
//! A row is written only after its file passed every content check, by [`Store::claim_delivery`],
//! which decides "new delivery / re-delivery / duplicate" and records the import request in one
//! transaction, under an advisory lock on the derivative key and fenced by the ledger claim: two
//! equivalent names (in one pass or two) can never both be imported, a pass whose lease lapsed can
//! never import, and a rejected file never touches the record of a delivered one.
//!
//! States ([`UploadStatus`]): `importing` (the request is recorded and may have reached the DAM:
//! it is looked up by its marker before anything is sent again) → `uploaded`, or `failed` (the DAM
//! said no; does not block a later delivery of the same version).

use jiff::Timestamp;
use postgres::Row;
use serde_json::Value;

use super::ledger::{lock_claim, Claim};
use super::locks::advisory_key;
use super::state::{self, db_enum};
use super::{NewNotification, Store, StoreError};

db_enum! {
    /// `derivative_assets.upload_status`.
    pub enum UploadStatus {
        /// Written by versions before 3 for rows whose import was never sent (migrated to `failed`).
        Pending = "pending",
        /// The import request is recorded (and maybe sent); the outcome is not known yet.
        Importing = "importing",
        /// The DAM holds the asset (`dam_asset_id`).
        Uploaded = "uploaded",
        /// The DAM refused or lost the import for good.
        Failed = "failed",
    }
}

/// A delivery (`derivative_assets` row).
#[derive(Debug, Clone, PartialEq)]
pub struct DerivativeRow {
    /// Row id.
    pub id: i64,
    /// Tracking ID of its master.
    pub tracking_id: String,
    /// Clean filename (as named in the DAM).
    pub derivative_filename: String,
    /// Canonical identity within the master ([`crate::naming::derivative_key`]).
    pub derivative_key: String,
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
    /// When the import request was last (about to be) sent.
    pub import_requested_at: Option<Timestamp>,
    /// Import state.
    pub upload_status: UploadStatus,
    /// Value of `dam.tracking_field_id` on the imported asset.
    pub marker: String,
    /// Ledger claim generation of the pass that last sent the import.
    pub claim_generation: i64,
    /// Import requests sent so far.
    pub retry_count: i32,
    /// Why the last import attempt failed or is in doubt.
    pub last_error: Option<String>,
}

pub(super) fn derivative_from_row(row: &Row) -> Result<DerivativeRow, StoreError> {
    Ok(DerivativeRow {
        id: row.get("id"),
        tracking_id: row.get("tracking_id"),
        derivative_filename: row.get("derivative_filename"),
        derivative_key: row.get("derivative_key"),
        version: row.get("version"),
        box_file_id: row.get("box_file_id"),
        box_file_version_id: row.get("box_file_version_id"),
        dam_folder_id: row.get("dam_folder_id"),
        dam_job_id: row.get("dam_job_id"),
        dam_asset_id: row.get("dam_asset_id"),
        import_requested_at: row.get("import_requested_at"),
        upload_status: state::read(row, "derivative_assets", "upload_status")?,
        marker: row.get("marker"),
        claim_generation: row.get("claim_generation"),
        retry_count: row.get("retry_count"),
        last_error: row.get("last_error"),
    })
}

/// What a pass asks to deliver (see [`Store::claim_delivery`]).
#[derive(Debug, Clone)]
pub struct NewDelivery<'a> {
    /// Tracking ID of the master.
    pub tracking_id: &'a str,
    /// Clean filename (DAM asset name).
    pub derivative_filename: &'a str,
    /// Canonical identity within the master.
    pub derivative_key: &'a str,
    /// Version number from the name.
    pub version: i32,
    /// Box file SHA-1.
    pub box_sha1: Option<&'a str>,
    /// DAM Final Assets folder.
    pub dam_folder_id: &'a str,
    /// Tracking marker written into the asset.
    pub marker: &'a str,
    /// Metadata fields sent (for the record).
    pub metadata: &'a Value,
    /// Media facts (for the record).
    pub media: &'a Value,
}

/// The decision of [`Store::claim_delivery`].
#[derive(Debug, Clone, PartialEq)]
pub enum DeliveryClaim {
    /// A new delivery row in `importing`, committed: send the import now.
    Send(DerivativeRow),
    /// This Box file version already has a live delivery (an earlier attempt): reconcile it,
    /// never send blindly.
    Existing(DerivativeRow),
    /// Another Box file already delivers this derivative at this or a higher version.
    Duplicate(DerivativeRow),
    /// The pass no longer holds the file (its lease lapsed and another pass claimed it).
    LostClaim,
}

/// Campaigns (ids) at status `$1` with masters, every one of which has an uploaded derivative.
pub(super) const CAMPAIGNS_COMPLETE_AT_SQL: &str = "SELECT c.dam_folder_id FROM campaigns c
     WHERE c.status = $1
       AND EXISTS (SELECT 1 FROM master_assets m WHERE m.campaign_id = c.dam_folder_id)
       AND NOT EXISTS (SELECT 1 FROM master_assets m
                       WHERE m.campaign_id = c.dam_folder_id
                         AND NOT EXISTS (SELECT 1 FROM derivative_assets d
                                         WHERE d.tracking_id = m.tracking_id
                                           AND d.upload_status = 'uploaded'))
     ORDER BY c.dam_folder_id";

/// Imports in doubt (`importing`) whose Box file version was rejected meanwhile.
pub(super) const ORPHANED_IMPORTS_FROM: &str = "FROM derivative_assets d
       JOIN box_files b ON b.file_id = d.box_file_id AND b.file_version_id = d.box_file_version_id
      WHERE d.upload_status = 'importing' AND b.state = 'rejected'";

impl Store {
    /// The live delivery (not `failed`) of Box file version `(file_id, file_version_id)`, if any.
    ///
    /// # Errors
    /// Database errors; [`StoreError::UnknownValue`] for a state this build does not know.
    pub fn delivery_of_box_version(
        &mut self,
        file_id: &str,
        file_version_id: &str,
    ) -> Result<Option<DerivativeRow>, StoreError> {
        let row = self.client.query_opt(
            "SELECT * FROM derivative_assets
             WHERE box_file_id = $1 AND box_file_version_id = $2 AND upload_status <> 'failed'
             ORDER BY id DESC LIMIT 1",
            &[&file_id, &file_version_id],
        )?;
        row.as_ref().map(derivative_from_row).transpose()
    }

    /// The live delivery of the same derivative, from another Box file version, at `version` or
    /// higher: what makes a new one a duplicate. Read-only (the final word is
    /// [`Store::claim_delivery`]'s).
    ///
    /// # Errors
    /// Database errors; [`StoreError::UnknownValue`] for a state this build does not know.
    pub fn blocking_delivery(
        &mut self,
        tracking_id: &str,
        derivative_key: &str,
        version: i32,
        file_id: &str,
        file_version_id: &str,
    ) -> Result<Option<DerivativeRow>, StoreError> {
        let row = self.client.query_opt(
            "SELECT * FROM derivative_assets
             WHERE tracking_id = $1 AND derivative_key = $2 AND version >= $3 AND upload_status <> 'failed'
               AND NOT (box_file_id = $4 AND box_file_version_id = $5)
             ORDER BY version DESC, id DESC LIMIT 1",
            &[&tracking_id, &derivative_key, &version, &file_id, &file_version_id],
        )?;
        row.as_ref().map(derivative_from_row).transpose()
    }

    /// Decides and records a delivery in one transaction, under an advisory lock on the
    /// derivative key and fenced by `claim` (the ledger row must still be held by the same owner
    /// and generation): an existing live delivery of this Box version is returned for
    /// reconciliation; one of another Box file at this or a higher version makes it a duplicate;
    /// otherwise a new row is written in `importing` with the import request time, linked to the
    /// ledger row, and must be sent.
    ///
    /// # Errors
    /// Database errors; [`StoreError::UnknownValue`] for a state this build does not know.
    pub fn claim_delivery(
        &mut self,
        claim: &Claim,
        delivery: &NewDelivery<'_>,
    ) -> Result<DeliveryClaim, StoreError> {
        let mut transaction = self.client.transaction()?;
        let lock = advisory_key(&format!(
            "derivative:{}:{}",
            delivery.tracking_id, delivery.derivative_key
        ));
        transaction.execute("SELECT pg_advisory_xact_lock($1)", &[&lock])?;
        if !lock_claim(&mut transaction, claim)? {
            return Ok(DeliveryClaim::LostClaim);
        }
        let rows = transaction.query(
            "SELECT * FROM derivative_assets
             WHERE tracking_id = $1 AND derivative_key = $2 AND upload_status <> 'failed'
             ORDER BY version DESC, id DESC",
            &[&delivery.tracking_id, &delivery.derivative_key],
        )?;
        let live: Vec<DerivativeRow> = rows
            .iter()
            .map(derivative_from_row)
            .collect::<Result<_, _>>()?;
        if let Some(existing) = live.iter().find(|row| {
            row.box_file_id == claim.file_id && row.box_file_version_id == claim.file_version_id
        }) {
            return Ok(DeliveryClaim::Existing(existing.clone()));
        }
        if let Some(blocking) = live.iter().find(|row| row.version >= delivery.version) {
            return Ok(DeliveryClaim::Duplicate(blocking.clone()));
        }
        let previous = live
            .iter()
            .find(|row| row.upload_status == UploadStatus::Uploaded)
            .and_then(|row| row.dam_asset_id.clone());
        let row = transaction.query_one(
            "INSERT INTO derivative_assets (tracking_id, derivative_filename, derivative_key, version,
                    box_file_id, box_file_version_id, box_sha1, dam_folder_id, marker, claim_generation,
                    previous_dam_asset_id, import_requested_at, upload_status, metadata, media, retry_count)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, now(), 'importing', $12, $13, 1)
             RETURNING *",
            &[
                &delivery.tracking_id,
                &delivery.derivative_filename,
                &delivery.derivative_key,
                &delivery.version,
                &claim.file_id,
                &claim.file_version_id,
                &delivery.box_sha1,
                &delivery.dam_folder_id,
                &delivery.marker,
                &claim.generation,
                &previous,
                delivery.metadata,
                delivery.media,
            ],
        )?;
        let derivative = derivative_from_row(&row)?;
        transaction.execute(
            "UPDATE box_files SET derivative_id = $3, tracking_id = $4 WHERE file_id = $1 AND file_version_id = $2",
            &[&claim.file_id, &claim.file_version_id, &derivative.id, &delivery.tracking_id],
        )?;
        transaction.commit()?;
        Ok(DeliveryClaim::Send(derivative))
    }

    /// Records that the import of an existing `importing` delivery is about to be sent again
    /// (its earlier request provably did not land), fenced by `claim`. Returns false when the
    /// claim was lost (do not send).
    ///
    /// # Errors
    /// Database errors.
    pub fn resend_import(&mut self, id: i64, claim: &Claim) -> Result<bool, StoreError> {
        let mut transaction = self.client.transaction()?;
        if !lock_claim(&mut transaction, claim)? {
            return Ok(false);
        }
        let changed = transaction.execute(
            "UPDATE derivative_assets SET import_requested_at = now(), dam_job_id = NULL, claim_generation = $2,
                    retry_count = retry_count + 1, updated_at = now()
             WHERE id = $1 AND upload_status = 'importing'",
            &[&id, &claim.generation],
        )?;
        transaction.commit()?;
        Ok(changed > 0)
    }

    /// Records the OTMM import job id of a delivery.
    ///
    /// # Errors
    /// Database errors.
    pub fn set_import_job(&mut self, id: i64, job_id: &str) -> Result<(), StoreError> {
        self.client.execute(
            "UPDATE derivative_assets SET dam_job_id = $2, last_error = NULL, updated_at = now() WHERE id = $1",
            &[&id, &job_id],
        )?;
        Ok(())
    }

    /// Records why an import request's outcome is in doubt (no reply, an error reply that may
    /// have followed the write): the delivery stays `importing` and is looked up by its marker
    /// before anything is sent again.
    ///
    /// # Errors
    /// Database errors.
    pub fn note_import_doubt(&mut self, id: i64, error: &str) -> Result<(), StoreError> {
        self.client.execute(
            "UPDATE derivative_assets SET last_error = $2, updated_at = now() WHERE id = $1",
            &[&id, &error],
        )?;
        Ok(())
    }

    /// Marks a delivery `failed`: the DAM answered that it does not hold it (job failed, or not
    /// found long after the request). It no longer blocks a new delivery of the same version.
    ///
    /// # Errors
    /// Database errors.
    pub fn mark_delivery_failed(&mut self, id: i64, error: &str) -> Result<(), StoreError> {
        self.client.execute(
            "UPDATE derivative_assets SET upload_status = 'failed', last_error = $2, updated_at = now()
             WHERE id = $1 AND upload_status = 'importing'",
            &[&id, &error],
        )?;
        Ok(())
    }

    /// In one transaction: marks the delivery uploaded with its DAM asset id, queues
    /// `notifications` (the `asset.imported` webhooks), and its ledger row
    /// `uploaded_to_dam` (the Box file still has to move to `_PROCESSED/`; a row already moved
    /// to `_errors/` — a late import adopted — is moved on by a later pass).
    ///
    /// # Errors
    /// Database errors.
    pub fn mark_derivative_uploaded(
        &mut self,
        id: i64,
        dam_asset_id: &str,
        notifications: &[NewNotification],
    ) -> Result<(), StoreError> {
        let mut transaction = self.client.transaction()?;
        let row = transaction.query_opt(
            "UPDATE derivative_assets SET dam_asset_id = $2, upload_status = 'uploaded', last_error = NULL,
                    updated_at = now() WHERE id = $1 AND upload_status IN ('importing', 'uploaded')
             RETURNING box_file_id, box_file_version_id",
            &[&id, &dam_asset_id],
        )?;
        if let Some(row) = row {
            let file_id: String = row.get(0);
            let version_id: String = row.get(1);
            transaction.execute(
                "UPDATE box_files SET state = 'uploaded_to_dam', derivative_id = $3, updated_at = now()
                 WHERE file_id = $1 AND file_version_id = $2 AND state <> 'archived'",
                &[&file_id, &version_id, &id],
            )?;
            // Keyed per derivative: adopting the same import again queues nothing new.
            super::outbox::insert_notifications(&mut transaction, notifications)?;
        }
        transaction.commit()?;
        Ok(())
    }

    /// Deliveries still `importing` whose Box file is no longer being worked on from the watched
    /// folder (its ledger row was rejected — e.g. the DAM stayed in doubt for
    /// `retry.max_attempts` passes): each pass asks the DAM about them until it answers yes or
    /// no. At most `limit`, oldest first.
    ///
    /// # Errors
    /// Database errors; [`StoreError::UnknownValue`] for a state this build does not know.
    pub fn orphaned_imports(&mut self, limit: i64) -> Result<Vec<DerivativeRow>, StoreError> {
        let rows = self.client.query(
            &format!("SELECT d.* {ORPHANED_IMPORTS_FROM} ORDER BY d.id LIMIT $1"),
            &[&limit],
        )?;
        rows.iter().map(derivative_from_row).collect()
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

    /// The latest delivered version of each derivative of a campaign (for notifications),
    /// oldest first.
    ///
    /// # Errors
    /// Database errors; [`StoreError::UnknownValue`] for a state this build does not know.
    pub fn derivatives_of_campaign(
        &mut self,
        campaign_id: &str,
    ) -> Result<Vec<DerivativeRow>, StoreError> {
        let rows = self.client.query(
            "SELECT * FROM (
                 SELECT DISTINCT ON (d.tracking_id, d.derivative_key) d.*
                   FROM derivative_assets d JOIN master_assets m ON m.tracking_id = d.tracking_id
                  WHERE m.campaign_id = $1 AND d.upload_status = 'uploaded'
                  ORDER BY d.tracking_id, d.derivative_key, d.version DESC, d.id DESC) latest
             ORDER BY id",
            &[&campaign_id],
        )?;
        rows.iter().map(derivative_from_row).collect()
    }
}
