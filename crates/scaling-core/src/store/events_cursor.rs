//! `box_events_cursor`: box-poll's place in Box's events stream (one row, see `V6`).

use postgres::types::Type;

use super::{Store, StoreError};

/// The saved cursor; all empty before the first save.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventsCursor {
    /// Opaque `next_stream_position` to read from; `None` when unknown.
    pub stream_position: Option<String>,
    /// Seconds since every watched folder was last listed (database clock); `None` when never.
    pub full_listing_age_secs: Option<i64>,
    /// Watched folders whose last listing still held files to handle (or failed).
    pub pending_folder_ids: Vec<String>,
    /// Watched folders configured when the cursor was saved.
    pub watched_folder_ids: Vec<String>,
}

impl Store {
    /// The saved events cursor (the default when none was saved yet).
    ///
    /// # Errors
    /// Database errors.
    pub fn events_cursor(&mut self) -> Result<EventsCursor, StoreError> {
        // Once per pass: one round trip (no prepare).
        let row = self.client.query_typed_opt(
            "SELECT stream_position, \
                    (extract(epoch FROM now() - full_listing_at))::bigint AS full_listing_age_secs, \
                    pending_folder_ids, watched_folder_ids \
             FROM box_events_cursor WHERE singleton",
            &[],
        )?;
        Ok(row.map_or_else(EventsCursor::default, |row| EventsCursor {
            stream_position: row.get("stream_position"),
            full_listing_age_secs: row.get("full_listing_age_secs"),
            pending_folder_ids: row.get("pending_folder_ids"),
            watched_folder_ids: row.get("watched_folder_ids"),
        }))
    }

    /// Saves the cursor after a pass listed its folders: `stream_position` (`None`: unknown, the
    /// next pass starts over), `full_listing` (every watched folder was listed: its time is now),
    /// the pending and the configured watched folders.
    ///
    /// # Errors
    /// Database errors.
    pub fn save_events_cursor(
        &mut self,
        stream_position: Option<&str>,
        full_listing: bool,
        pending_folder_ids: &[String],
        watched_folder_ids: &[String],
    ) -> Result<(), StoreError> {
        self.client.query_typed(
            "INSERT INTO box_events_cursor AS c \
                 (singleton, stream_position, full_listing_at, pending_folder_ids, watched_folder_ids) \
             VALUES (true, $1, CASE WHEN $2 THEN now() END, $3, $4) \
             ON CONFLICT (singleton) DO UPDATE SET stream_position = EXCLUDED.stream_position, \
                 full_listing_at = CASE WHEN $2 THEN now() ELSE c.full_listing_at END, \
                 pending_folder_ids = EXCLUDED.pending_folder_ids, \
                 watched_folder_ids = EXCLUDED.watched_folder_ids, updated_at = now()",
            &[
                (&stream_position, Type::TEXT),
                (&full_listing, Type::BOOL),
                (&pending_folder_ids, Type::TEXT_ARRAY),
                (&watched_folder_ids, Type::TEXT_ARRAY),
            ],
        )?;
        Ok(())
    }
}
