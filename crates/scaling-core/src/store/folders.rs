//! `watched_folder_health` (migration V8): per watched folder, the last successful listing and
//! the last failed one with its error and fix, written by box-poll after its listings and read by
//! `reprocess status`.

use jiff::Timestamp;
use serde::Serialize;

use super::{Store, StoreError};

/// The outcome of listing one watched folder in a pass (what box-poll records).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderListing {
    /// Box folder id.
    pub folder_id: String,
    /// Its name in `box.watched_folders`.
    pub folder_name: String,
    /// `None`: listed; `Some((error, hint))`: the listing failed, with the fix when known.
    pub error: Option<(String, Option<String>)>,
}

/// The health of one watched folder, as `reprocess status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FolderHealth {
    /// Box folder id.
    pub folder_id: String,
    /// Its name when last listed.
    pub folder_name: String,
    /// End of the last successful listing (UTC).
    pub last_listed_at: Option<Timestamp>,
    /// Its age in seconds (database clock).
    pub last_listed_age_secs: Option<i64>,
    /// Error of the last failed listing, when it is more recent than the last successful one.
    pub last_error: Option<String>,
    /// The fix for that error, when known.
    pub last_error_hint: Option<String>,
    /// When that listing failed (UTC).
    pub last_error_at: Option<Timestamp>,
}

impl Store {
    /// Records the listings of one pass, in one statement (one round trip whatever their
    /// number): a success sets `last_listed_at` and clears the error; a failure keeps the last
    /// success and records the error, its hint and its time.
    ///
    /// # Errors
    /// Database errors.
    pub fn record_folder_listings(&mut self, listings: &[FolderListing]) -> Result<(), StoreError> {
        if listings.is_empty() {
            return Ok(());
        }
        let ids: Vec<&str> = listings.iter().map(|l| l.folder_id.as_str()).collect();
        let names: Vec<&str> = listings.iter().map(|l| l.folder_name.as_str()).collect();
        let errors: Vec<Option<&str>> = listings
            .iter()
            .map(|l| l.error.as_ref().map(|(error, _)| error.as_str()))
            .collect();
        let hints: Vec<Option<&str>> = listings
            .iter()
            .map(|l| l.error.as_ref().and_then(|(_, hint)| hint.as_deref()))
            .collect();
        self.client.execute(
            "INSERT INTO watched_folder_health AS h
                    (folder_id, folder_name, last_listed_at, last_error, last_error_hint, last_error_at)
             SELECT id, name, CASE WHEN error IS NULL THEN now() END, error, hint,
                    CASE WHEN error IS NOT NULL THEN now() END
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS l(id, name, error, hint)
             ON CONFLICT (folder_id) DO UPDATE SET
                 folder_name = EXCLUDED.folder_name,
                 last_listed_at = COALESCE(EXCLUDED.last_listed_at, h.last_listed_at),
                 last_error = EXCLUDED.last_error,
                 last_error_hint = EXCLUDED.last_error_hint,
                 last_error_at = COALESCE(EXCLUDED.last_error_at, h.last_error_at),
                 updated_at = now()",
            &[&ids, &names, &errors, &hints],
        )?;
        Ok(())
    }

    /// Every watched folder box-poll ever listed, by name.
    ///
    /// # Errors
    /// Database errors.
    pub fn folder_health(&mut self) -> Result<Vec<FolderHealth>, StoreError> {
        let rows = self.client.query(
            "SELECT folder_id, folder_name, last_listed_at,
                    EXTRACT(EPOCH FROM now() - last_listed_at)::bigint AS age,
                    last_error, last_error_hint, last_error_at
             FROM watched_folder_health ORDER BY folder_name, folder_id",
            &[],
        )?;
        Ok(rows
            .iter()
            .map(|row| FolderHealth {
                folder_id: row.get("folder_id"),
                folder_name: row.get("folder_name"),
                last_listed_at: row.get("last_listed_at"),
                last_listed_age_secs: row.get("age"),
                last_error: row.get("last_error"),
                last_error_hint: row.get("last_error_hint"),
                last_error_at: row.get("last_error_at"),
            })
            .collect())
    }
}
