-- Where box-poll is in Box's events stream (one row): the opaque stream position to read from,
-- when every watched folder was last listed, the watched folders whose last listing still held
-- files to handle (listed again next pass), and the watched folders known when it was saved (a
-- folder added to the configuration since is listed in full once).
CREATE TABLE box_events_cursor (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    stream_position text,
    full_listing_at timestamptz,
    pending_folder_ids text[] NOT NULL DEFAULT '{}',
    watched_folder_ids text[] NOT NULL DEFAULT '{}',
    updated_at timestamptz NOT NULL DEFAULT now()
);
