-- content-scaling tracking database, version 3: deliveries claimed atomically, fenced leases,
-- attempts counted by outcome (issue "Exactly once, proven from outside").
--
-- derivative_assets becomes one row per *delivery*: one (tracking ID, derivative key, version)
-- imported into the DAM. A row is only written once the file passed every content check, in the
-- same transaction that decides "new delivery / re-delivery / duplicate" under an advisory lock
-- on the derivative key, so two equivalent names can never both be imported and a rejected file
-- never touches the record of a delivered one. Rows whose import the DAM refused for good are
-- `failed` and do not block a later delivery of the same version.

ALTER TABLE derivative_assets DROP CONSTRAINT IF EXISTS derivative_assets_tracking_id_derivative_filename_key;

-- Canonical identity of a derivative within its master: the clean filename, NFC, lower case
-- (Box compares names case-insensitively; the parser already normalises segments and versions).
ALTER TABLE derivative_assets ADD COLUMN derivative_key TEXT;
UPDATE derivative_assets SET derivative_key = lower(derivative_filename);
ALTER TABLE derivative_assets ALTER COLUMN derivative_key SET NOT NULL;

-- The value written into dam.tracking_field_id of the imported asset: how a doubtful import is
-- found again before anything is sent a second time.
ALTER TABLE derivative_assets ADD COLUMN marker TEXT;
UPDATE derivative_assets
   SET marker = tracking_id || ' v' || lpad(version::text, 2, '0') || ' box:' || box_file_id || '/' || box_file_version_id;
ALTER TABLE derivative_assets ALTER COLUMN marker SET NOT NULL;

-- The ledger claim generation of the pass that last sent the import (fencing token).
ALTER TABLE derivative_assets ADD COLUMN claim_generation BIGINT NOT NULL DEFAULT 0;

-- Rows that never had an import sent (the old code wrote them before the content checks).
UPDATE derivative_assets SET upload_status = 'failed', last_error = COALESCE(last_error, 'no import was sent')
 WHERE upload_status = 'pending';

CREATE UNIQUE INDEX derivative_assets_delivery
    ON derivative_assets (tracking_id, derivative_key, version) WHERE upload_status <> 'failed';
CREATE INDEX derivative_assets_box_version ON derivative_assets (box_file_id, box_file_version_id);
CREATE INDEX derivative_assets_importing ON derivative_assets (id) WHERE upload_status = 'importing';

-- Ledger: a claim generation (incremented by every claim: the fencing token), the note we
-- wrote for a rejected version, and the state `rejecting` (decision recorded, email queued,
-- note and move to _errors still to do).
ALTER TABLE box_files ADD COLUMN claim_generation BIGINT NOT NULL DEFAULT 0;
ALTER TABLE box_files ADD COLUMN note_file_id TEXT;
ALTER TABLE box_files DROP CONSTRAINT IF EXISTS box_files_state_check;
ALTER TABLE box_files ADD CONSTRAINT box_files_state_check CHECK (state IN
    ('seen', 'claimed', 'uploaded_to_dam', 'archived', 'failed_transient', 'rejecting', 'rejected', 'ignored'));

-- Leases are looked up by owner on every pass (dead local passes, renewal): index only the few
-- rows that hold one.
CREATE INDEX box_files_lease_owner ON box_files (lease_owner) WHERE lease_owner IS NOT NULL;
CREATE INDEX outbox_lease_owner ON outbox (lease_owner) WHERE lease_owner IS NOT NULL;
CREATE INDEX box_files_unfinished ON box_files (file_id) WHERE state IN ('rejecting', 'uploaded_to_dam');
