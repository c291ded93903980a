-- About 1,000,000 rows of history as years of production would leave them (scripts/bench.py,
-- scenario `history`): campaigns long finished (A3) with a few still open, their masters and
-- derivatives, the Box file ledger of every delivery, rejection and ignored debris, a run row
-- for every pass of three years of cron, and the notifications sent. States and ages vary the
-- way they do in production; no lease is held (a finished pass releases its leases).
--
-- Rows: 5,000 campaigns, 50,000 master assets, 300,000 derivative assets, 350,000 Box files,
-- 250,000 runs, 50,000 outbox rows, 5,000 campaign transitions.
-- Run on a migrated, empty-enough database: the ids it makes start with `hist-` and cannot
-- clash with the sandbox's.
BEGIN;

INSERT INTO campaigns (dam_folder_id, campaign_number, campaign_name, status,
                       masters_folder_id, final_assets_folder_id, box_folder_id, master_count,
                       created_at, updated_at)
SELECT 'hist-c' || c,
       'C-' || (2023 + c % 3) || '-' || lpad(c::text, 4, '0'),
       'History campaign ' || c,
       CASE WHEN c % 250 = 0 THEN 'A2' WHEN c % 1000 = 1 THEN 'A1' ELSE 'A3' END,
       'hist-mf' || c, 'hist-fa' || c, 'hist-bf' || c, 10,
       now() - make_interval(days => 1095 - c * 1095 / 5000),
       now() - make_interval(days => 1095 - c * 1095 / 5000)
  FROM generate_series(1, 5000) AS c;

-- Ten masters a campaign; tracking IDs are six base-36 characters made from the number.
INSERT INTO master_assets (tracking_id, opentext_id, campaign_id, original_filename, full_metadata,
                           box_file_id, box_sha1, upload_directory, final_assets_folder_id,
                           status, attempts, created_at, updated_at)
SELECT upper(lpad(to_hex(m), 6, 'z')),
       'hist-m' || m,
       'hist-c' || ((m - 1) / 10 + 1),
       'master_' || m || CASE WHEN m % 3 = 0 THEN '.png' ELSE '.mp4' END,
       jsonb_build_object('asset_id', 'hist-m' || m, 'name', 'master_' || m),
       'hist-bm' || m, md5('m' || m), 'hist-bf' || ((m - 1) / 10 + 1), 'hist-fa' || ((m - 1) / 10 + 1),
       CASE WHEN m % 97 = 0 THEN 'failed' ELSE 'uploaded' END, 1,
       now() - make_interval(days => 1095 - ((m - 1) / 10 + 1) * 1095 / 5000),
       now() - make_interval(days => 1095 - ((m - 1) / 10 + 1) * 1095 / 5000)
  FROM generate_series(1, 50000) AS m;

-- Six deliveries a master: sizes and languages, some re-delivered as v02, 3% failed.
INSERT INTO derivative_assets (tracking_id, derivative_filename, derivative_key, version,
                               box_file_id, box_file_version_id, box_sha1, dam_folder_id,
                               dam_job_id, dam_asset_id, import_requested_at, upload_status,
                               metadata, media, retry_count, marker, created_at, updated_at)
SELECT upper(lpad(to_hex((d - 1) / 6 + 1), 6, 'z')),
       'Derivative_' || d || '.mp4',
       lower('Derivative_' || d || '.mp4'),
       1 + (d % 5 = 0)::int,
       'hist-bd' || d, 'hist-bv' || d, md5('d' || d),
       'hist-fa' || (((d - 1) / 6) / 10 + 1),
       'hist-j' || d, 'hist-a' || d,
       now() - make_interval(days => 1095 - (((d - 1) / 6) / 10 + 1) * 1095 / 5000),
       -- 3% failed; the first master of each campaign still at A2 has none delivered yet, so
       -- those campaigns stay open (an idle pass has no transition to make).
       CASE WHEN d % 33 = 0 THEN 'failed'
            WHEN (((d - 1) / 6) / 10 + 1) % 250 = 0 AND ((d - 1) / 6) % 10 = 0 THEN 'failed'
            ELSE 'uploaded' END,
       jsonb_build_object('language', 'EN'), jsonb_build_object('width', 1920, 'height', 1080),
       0,
       upper(lpad(to_hex((d - 1) / 6 + 1), 6, 'z')) || ' v01 box:hist-bd' || d || '/hist-bv' || d,
       now() - make_interval(days => 1095 - (((d - 1) / 6) / 10 + 1) * 1095 / 5000),
       now() - make_interval(days => 1095 - (((d - 1) / 6) / 10 + 1) * 1095 / 5000)
  FROM generate_series(1, 300000) AS d;

-- The Box ledger: one row per delivered version, plus rejections and ignored debris.
INSERT INTO box_files (file_id, file_version_id, watched_folder_id, name, sha1, size_bytes, state,
                       attempts, tracking_id, archived_folder_id, last_error, created_at, updated_at)
SELECT 'hist-bd' || f, 'hist-bv' || f, 'hist-w' || (f % 12),
       'Derivative_' || f || '.mp4', md5('d' || f), 1000000 + f,
       CASE WHEN f <= 300000 THEN 'archived'
            WHEN f % 2 = 0 THEN 'rejected'
            ELSE 'ignored' END,
       1,
       CASE WHEN f <= 300000 THEN upper(lpad(to_hex((f - 1) / 6 + 1), 6, 'z')) END,
       'hist-ar' || (f % 1000),
       CASE WHEN f > 300000 AND f % 2 = 0 THEN 'name: no tracking ID' END,
       now() - make_interval(secs => (350000 - f) * 270),
       now() - make_interval(secs => (350000 - f) * 270)
  FROM generate_series(1, 350000) AS f;

-- Three years of cron: passes of both binaries, nearly all completed.
INSERT INTO runs (binary_name, host, pid, started_at, finished_at, outcome, counts)
SELECT CASE WHEN r % 2 = 0 THEN 'box-poll' ELSE 'a1-to-a2' END,
       'cs-prod-1', 1000 + r % 30000,
       now() - make_interval(secs => (250000 - r) * 378),
       now() - make_interval(secs => (250000 - r) * 378) + interval '200 milliseconds',
       CASE WHEN r % 500 = 0 THEN 'dependency_unreachable' WHEN r % 97 = 0 THEN 'lock_held' ELSE 'completed' END,
       '{}'::jsonb
  FROM generate_series(1, 250000) AS r;

INSERT INTO outbox (idempotency_key, channel, target, event, payload, attempts, next_attempt_at,
                    sent_at, created_at)
SELECT 'hist-k' || o,
       CASE WHEN o % 2 = 0 THEN 'email' ELSE 'webhook' END,
       CASE WHEN o % 2 = 0 THEN 'campaign_a3' ELSE 'marketing' END,
       'campaign.a3', jsonb_build_object('campaign', 'hist-c' || (o % 5000 + 1)), 1,
       now() - make_interval(secs => (50000 - o) * 1890),
       now() - make_interval(secs => (50000 - o) * 1890),
       now() - make_interval(secs => (50000 - o) * 1890)
  FROM generate_series(1, 50000) AS o;

INSERT INTO campaign_transitions (campaign_id, from_status, to_status, state, requested_at, done_at)
SELECT 'hist-c' || c, 'A1', 'A2', 'done', now() - make_interval(days => 1095 - c * 1095 / 5000),
       now() - make_interval(days => 1095 - c * 1095 / 5000)
  FROM generate_series(1, 5000) AS c;

COMMIT;
ANALYZE;
