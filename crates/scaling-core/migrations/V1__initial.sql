-- content-scaling tracking database, version 1.
-- Seed tables (campaigns, master_assets, derivative_assets) keep the seed's column names;
-- box_files, campaign_transitions, outbox and runs carry the exactly-once machinery (design.md §3).

CREATE TABLE campaigns (
    dam_folder_id          TEXT PRIMARY KEY,
    campaign_number        TEXT NOT NULL,
    campaign_name          TEXT NOT NULL,
    status                 TEXT NOT NULL,            -- status as last seen/set in the DAM (A1/A2/A3)
    masters_folder_id      TEXT,
    final_assets_folder_id TEXT,
    box_folder_id          TEXT,
    master_count           INTEGER,                  -- masters found in the DAM at the last a1-to-a2 pass
    last_partial_failure   TEXT,                     -- signature of the last reported failure set
    created_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at             TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE master_assets (
    id                 BIGSERIAL PRIMARY KEY,
    tracking_id        VARCHAR(6) NOT NULL UNIQUE,
    opentext_id        TEXT NOT NULL UNIQUE,
    campaign_id        TEXT NOT NULL REFERENCES campaigns (dam_folder_id),
    original_filename  TEXT NOT NULL,
    full_metadata      JSONB NOT NULL DEFAULT '{}'::jsonb,
    box_file_id        TEXT,
    box_file_url       TEXT,
    box_sha1           TEXT,
    upload_directory   TEXT,                          -- Box folder id the master was uploaded to
    final_assets_folder_id TEXT,                      -- DAM folder where derivatives go
    status             TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'uploaded', 'failed')),
    last_error         TEXT,
    attempts           INTEGER NOT NULL DEFAULT 0,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX master_assets_campaign ON master_assets (campaign_id);

CREATE TABLE derivative_assets (
    id                  BIGSERIAL PRIMARY KEY,
    tracking_id         VARCHAR(6) NOT NULL REFERENCES master_assets (tracking_id),
    derivative_filename TEXT NOT NULL,                -- clean filename as delivered to the DAM
    version             INTEGER NOT NULL,
    box_file_id         TEXT NOT NULL,
    box_file_version_id TEXT NOT NULL,
    box_sha1            TEXT,
    dam_folder_id       TEXT NOT NULL,
    dam_job_id          TEXT,
    dam_asset_id        TEXT,
    previous_dam_asset_id TEXT,                       -- re-delivery: the asset this one supersedes
    import_requested_at TIMESTAMPTZ,
    upload_status       TEXT NOT NULL DEFAULT 'pending' CHECK (upload_status IN ('pending', 'importing', 'uploaded', 'failed')),
    metadata            JSONB NOT NULL DEFAULT '{}'::jsonb,
    media               JSONB NOT NULL DEFAULT '{}'::jsonb,
    retry_count         INTEGER NOT NULL DEFAULT 0,
    last_error          TEXT,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (tracking_id, derivative_filename)
);

CREATE TABLE box_files (
    file_id           TEXT NOT NULL,
    file_version_id   TEXT NOT NULL,
    watched_folder_id TEXT NOT NULL,
    name              TEXT NOT NULL,
    sha1              TEXT,
    size_bytes        BIGINT,
    state             TEXT NOT NULL DEFAULT 'seen' CHECK (state IN
                        ('seen', 'claimed', 'uploaded_to_dam', 'archived', 'failed_transient', 'rejected', 'ignored')),
    attempts          INTEGER NOT NULL DEFAULT 0,
    next_attempt_at   TIMESTAMPTZ,
    last_error        TEXT,
    tracking_id       VARCHAR(6),
    derivative_id     BIGINT REFERENCES derivative_assets (id),
    archived_folder_id TEXT,
    lease_owner       TEXT,
    lease_expires_at  TIMESTAMPTZ,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (file_id, file_version_id)
);
CREATE INDEX box_files_state ON box_files (state);

-- One row per campaign status transition: the row is written before the DAM is changed
-- (state 'pending') and completed with its notifications in one transaction (state 'done'),
-- so a transition happens at most once and a crash between the two steps is resumed.
CREATE TABLE campaign_transitions (
    campaign_id  TEXT NOT NULL REFERENCES campaigns (dam_folder_id),
    from_status  TEXT NOT NULL,
    to_status    TEXT NOT NULL,
    state        TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done')),
    requested_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    done_at      TIMESTAMPTZ,
    PRIMARY KEY (campaign_id, to_status)
);

CREATE TABLE outbox (
    id              BIGSERIAL PRIMARY KEY,
    idempotency_key TEXT NOT NULL UNIQUE,
    channel         TEXT NOT NULL CHECK (channel IN ('email', 'webhook')),
    target          TEXT NOT NULL,                   -- email template name, or webhook endpoint name
    event           TEXT NOT NULL,
    payload         JSONB NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_error      TEXT,
    lease_owner     TEXT,
    lease_expires_at TIMESTAMPTZ,
    sent_at         TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX outbox_unsent ON outbox (next_attempt_at) WHERE sent_at IS NULL;

CREATE TABLE runs (
    id          BIGSERIAL PRIMARY KEY,
    binary_name TEXT NOT NULL,
    host        TEXT NOT NULL,
    pid         INTEGER NOT NULL,
    started_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at TIMESTAMPTZ,
    outcome     TEXT,                                -- completed / lock_held / failed / dependency_unreachable
    counts      JSONB NOT NULL DEFAULT '{}'::jsonb,
    error       TEXT
);
CREATE INDEX runs_binary_started ON runs (binary_name, started_at DESC);
