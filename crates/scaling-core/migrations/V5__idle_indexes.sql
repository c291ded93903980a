-- content-scaling tracking database, version 5: an idle pass that stays flat with years of
-- history (issue "Idle cost that does not grow"). Every statement an idle `box-poll` or
-- `a1-to-a2` pass runs finds its rows through an index that holds only the rows it can want
-- (partial where the predicate is fixed), measured with EXPLAIN ANALYZE on about 1,000,000 rows
-- of history (scripts/bench-history.sql). The lease-owner look-up of every pass already uses the
-- partial indexes of V3 (box_files_lease_owner, outbox_lease_owner).

-- outbox delivery claims the next due row in id order: without this the planner walks the
-- primary key through every sent row (50,000 rows: 22 ms).
CREATE INDEX outbox_unsent_id ON outbox (id) WHERE sent_at IS NULL;

-- Pending campaign transitions, resumed at the start of every pass (a sequential scan of every
-- transition ever made otherwise).
CREATE INDEX campaign_transitions_pending ON campaign_transitions (to_status, requested_at)
    WHERE state = 'pending';

-- Campaigns at a status (the A2 campaigns box-poll checks for completion every pass).
CREATE INDEX campaigns_status ON campaigns (status);

-- "Has this master a delivered derivative?", asked for every master of every A2 campaign every
-- pass: answered from the index alone, without reading the failed and superseded rows.
CREATE INDEX derivative_assets_uploaded ON derivative_assets (tracking_id)
    WHERE upload_status = 'uploaded';
