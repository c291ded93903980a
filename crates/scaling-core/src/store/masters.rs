//! `master_assets`: one row per master asset of a campaign, with its tracking ID and its Box
//! upload.

use postgres::Row;
use serde_json::Value;

use super::state::{self, db_enum};
use super::{Store, StoreError};

db_enum! {
    /// `master_assets.status` (the database's CHECK list, `migrations/V1__initial.sql`).
    pub enum MasterStatus {
        /// Recorded (with its tracking ID), not in Box yet.
        Pending = "pending",
        /// Uploaded to Box (final).
        Uploaded = "uploaded",
        /// The last upload attempt failed; retried by the next a1-to-a2 pass.
        Failed = "failed",
    }
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
    /// Upload state.
    pub status: MasterStatus,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
}

fn master_from_row(row: &Row) -> Result<MasterRow, StoreError> {
    Ok(MasterRow {
        id: row.get("id"),
        tracking_id: row.get("tracking_id"),
        opentext_id: row.get("opentext_id"),
        campaign_id: row.get("campaign_id"),
        original_filename: row.get("original_filename"),
        full_metadata: row.get("full_metadata"),
        box_file_id: row.get("box_file_id"),
        final_assets_folder_id: row.get("final_assets_folder_id"),
        status: state::read(row, "master_assets", "status")?,
        last_error: row.get("last_error"),
    })
}

impl Store {
    /// The master with OTMM asset id `opentext_id`, if tracked.
    ///
    /// # Errors
    /// Database errors; [`StoreError::UnknownValue`] for a state this build does not know.
    pub fn master_by_opentext_id(
        &mut self,
        opentext_id: &str,
    ) -> Result<Option<MasterRow>, StoreError> {
        let row = self.client.query_opt(
            "SELECT * FROM master_assets WHERE opentext_id = $1",
            &[&opentext_id],
        )?;
        row.as_ref().map(master_from_row).transpose()
    }

    /// The master with (canonical) tracking ID `tracking_id`, if any.
    ///
    /// # Errors
    /// Database errors; [`StoreError::UnknownValue`] for a state this build does not know.
    pub fn master_by_tracking_id(
        &mut self,
        tracking_id: &str,
    ) -> Result<Option<MasterRow>, StoreError> {
        let row = self.client.query_opt(
            "SELECT * FROM master_assets WHERE tracking_id = $1",
            &[&tracking_id],
        )?;
        row.as_ref().map(master_from_row).transpose()
    }

    /// All masters recorded for a campaign, oldest first.
    ///
    /// # Errors
    /// Database errors; [`StoreError::UnknownValue`] for a state this build does not know.
    pub fn masters_of_campaign(&mut self, campaign_id: &str) -> Result<Vec<MasterRow>, StoreError> {
        let rows = self.client.query(
            "SELECT * FROM master_assets WHERE campaign_id = $1 ORDER BY id",
            &[&campaign_id],
        )?;
        rows.iter().map(master_from_row).collect()
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
                return master_from_row(&row);
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
}
