-- content-scaling tracking database, version 3: indexes for the operators' tools.
-- `cleanup` deletes history older than `retention.history_days` by these timestamps, and
-- `reprocess status` counts recent uploads; without them both scan whole tables that grow by
-- about 2,000 runs rows a day.

CREATE INDEX runs_finished ON runs (finished_at);
CREATE INDEX outbox_sent ON outbox (sent_at) WHERE sent_at IS NOT NULL;
CREATE INDEX box_files_final_updated ON box_files (updated_at)
    WHERE state IN ('archived', 'rejected', 'ignored');
CREATE INDEX derivative_assets_updated ON derivative_assets (updated_at);
