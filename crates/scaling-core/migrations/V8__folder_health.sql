-- content-scaling tracking database, version 8: the health of each watched folder, for
-- `reprocess status` (issue 14, "Status that tells the truth"). box-poll writes one row per
-- watched folder it lists: the last successful listing, and the last failed one with its error
-- and the fix when known (a 403: invite the service account as Editor). Written only by a pass
-- that lists (an idle pass on the events stream lists nothing and writes nothing).
CREATE TABLE watched_folder_health (
    folder_id        text PRIMARY KEY,
    folder_name      text NOT NULL,
    last_listed_at   timestamptz,
    last_error       text,
    last_error_hint  text,
    last_error_at    timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
