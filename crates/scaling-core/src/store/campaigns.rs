//! `campaigns` and `campaign_transitions`: the campaigns we track and their status changes.
//!
//! A status change is recorded (`pending`) before the DAM is touched and completed (`done`)
//! together with its notifications in one transaction, so it happens at most once and a crash
//! between the two steps is resumed by the next pass.

use postgres::Row;

use postgres::types::Type;

use super::outbox::insert_notifications;
use super::state::{self, db_enum};
use super::{NewNotification, Store, StoreError};

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

db_enum! {
    /// `campaign_transitions.state` (the database's CHECK list, `migrations/V1__initial.sql`).
    pub enum TransitionState {
        /// Recorded; the DAM may or may not have been changed yet.
        Pending = "pending",
        /// The DAM was changed and notifications queued.
        Done = "done",
    }
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

/// Campaigns (ids) whose transition to `$1` is recorded but not done, oldest first.
pub(super) const PENDING_TRANSITIONS_SQL: &str = "SELECT campaign_id FROM campaign_transitions WHERE to_status = $1 AND state = 'pending' ORDER BY requested_at";

impl Store {
    /// Inserts the campaign or updates its number, name and status; keeps the folder ids already known.
    ///
    /// # Errors
    /// Database errors; [`StoreError::UnknownValue`] for a state this build does not know.
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
    /// Database errors; [`StoreError::UnknownValue`] for a state this build does not know.
    pub fn campaign(&mut self, id: &str) -> Result<Option<CampaignRow>, StoreError> {
        let row = self
            .client
            .query_opt("SELECT * FROM campaigns WHERE dam_folder_id = $1", &[&id])?;
        Ok(row.as_ref().map(campaign_from_row))
    }

    /// The DAM folder ids of the campaigns numbered `number` (e.g. `C-2026-0142`, compared
    /// without regard to case or surrounding spaces), as tracked: usually one.
    ///
    /// # Errors
    /// Database errors.
    pub fn campaign_ids_by_number(&mut self, number: &str) -> Result<Vec<String>, StoreError> {
        let rows = self.client.query(
            "SELECT dam_folder_id FROM campaigns WHERE lower(campaign_number) = lower($1)
             ORDER BY updated_at DESC",
            &[&number.trim()],
        )?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
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

    /// Records the intent to move a campaign `from` -> `to` (idempotent) and returns its state.
    ///
    /// # Errors
    /// Database errors; [`StoreError::UnknownValue`] for a state this build does not know.
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
        state::read(&row, "campaign_transitions", "state")
    }

    /// Campaign ids with a transition to `to` recorded but not completed (a crashed pass).
    ///
    /// # Errors
    /// Database errors.
    pub fn pending_transitions(&mut self, to: &str) -> Result<Vec<String>, StoreError> {
        // Asked once per pass: typed parameters, one round trip (no prepare).
        let rows = self
            .client
            .query_typed(PENDING_TRANSITIONS_SQL, &[(&to, Type::TEXT)])?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    /// State of the transition to `to`, if recorded.
    ///
    /// # Errors
    /// Database errors; [`StoreError::UnknownValue`] for a state this build does not know.
    pub fn transition_state(
        &mut self,
        campaign_id: &str,
        to: &str,
    ) -> Result<Option<TransitionState>, StoreError> {
        let row = self.client.query_opt(
            "SELECT state FROM campaign_transitions WHERE campaign_id = $1 AND to_status = $2",
            &[&campaign_id, &to],
        )?;
        row.map(|row| state::read(&row, "campaign_transitions", "state"))
            .transpose()
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
}
