//! The store's exactly-once primitives against a real PostgreSQL database.

use scaling_core::secret::Secret;
use scaling_core::store::{
    CampaignRow, NewNotification, NotificationChannel, Store, StoreError, TransitionState,
};
use serde_json::json;

use crate::util::TestDb;

fn store(db: &TestDb) -> Store {
    let mut store = Store::connect(&Secret::new(db.url.clone())).expect("connect");
    store.migrate().expect("migrate");
    store
}

fn campaign(store: &mut Store) -> CampaignRow {
    store
        .upsert_campaign(&CampaignRow {
            dam_folder_id: "c1".into(),
            number: "C-1".into(),
            name: "Test".into(),
            status: "A1".into(),
            masters_folder_id: Some("m".into()),
            final_assets_folder_id: Some("f".into()),
            box_folder_id: None,
            master_count: Some(1),
            last_partial_failure: None,
        })
        .expect("campaign")
}

#[test]
fn migrations_are_idempotent_and_concurrent_safe() {
    let db = TestDb::create();
    let handles: Vec<_> = (0..3)
        .map(|_| {
            let url = db.url.clone();
            std::thread::spawn(move || {
                let mut store = Store::connect(&Secret::new(url)).expect("connect");
                store.migrate().expect("migrate");
            })
        })
        .collect();
    for handle in handles {
        handle.join().expect("thread");
    }
    let mut client = db.client();
    let tables: i64 = client
        .query_one("SELECT count(*) FROM information_schema.tables WHERE table_name IN ('master_assets','box_files','outbox','runs')", &[])
        .expect("tables")
        .get(0);
    assert_eq!(tables, 4);
}

#[test]
fn ensure_master_keeps_one_tracking_id_and_retries_collisions() {
    let db = TestDb::create();
    let mut store = store(&db);
    campaign(&mut store);
    let mut ids = vec![
        "AAAAAA".to_string(),
        "AAAAAA".to_string(),
        "BBBBBB".to_string(),
    ]
    .into_iter();
    let first = store
        .ensure_master("asset-1", "c1", "a.mp4", Some("f"), &mut || {
            ids.next().expect("id")
        })
        .expect("first");
    assert_eq!(first.tracking_id, "AAAAAA");
    // Second master: the generator collides once with AAAAAA, then yields BBBBBB.
    let second = store
        .ensure_master("asset-2", "c1", "b.mp4", Some("f"), &mut || {
            ids.next().expect("id")
        })
        .expect("second");
    assert_eq!(second.tracking_id, "BBBBBB");
    // The same master again: the recorded ID, the generator is not even asked.
    let again = store
        .ensure_master("asset-1", "c1", "a.mp4", Some("f"), &mut || {
            panic!("no new tracking ID for a known master")
        })
        .expect("again");
    assert_eq!(again.tracking_id, "AAAAAA");
}

#[test]
fn a_box_file_lease_is_exclusive_until_it_expires() {
    let db = TestDb::create();
    let mut first = store(&db);
    let mut second = store(&db);
    first
        .observe_box_file("f1", "v1", "w", "x.mp4", Some("abc"), Some(3))
        .expect("observe");
    second
        .observe_box_file("f1", "v1", "w", "x.mp4", Some("abc"), Some(3))
        .expect("observe twice");
    assert!(first
        .claim_box_file("f1", "v1", "host:1", 600, None)
        .expect("claim")
        .is_some());
    assert!(
        second
            .claim_box_file("f1", "v1", "host:2", 600, None)
            .expect("claim")
            .is_none(),
        "live lease held by another owner"
    );
    // Expire it: the other owner takes over.
    db.client()
        .execute(
            "UPDATE box_files SET lease_expires_at = now() - interval '1 second'",
            &[],
        )
        .expect("expire");
    let taken = second
        .claim_box_file("f1", "v1", "host:2", 600, None)
        .expect("claim")
        .expect("taken over");
    // Claims are not attempts (a killed pass costs the file nothing); each claim is a new
    // generation, which fences the previous holder out.
    assert_eq!(taken.attempts, 0);
    assert_eq!(taken.claim_generation, 2);
    second
        .archive_box_file("f1", "v1", "processed", false, None)
        .expect("archive");
    // A final state is never claimed again from a listing alone (a stale listing that still
    // shows the file in the watched folder)...
    assert!(first
        .claim_box_file("f1", "v1", "host:1", 600, None)
        .expect("claim")
        .is_none());
    // ...nor with a generation read before another pass reopened it...
    assert!(first
        .claim_box_file("f1", "v1", "host:1", 600, Some(1))
        .expect("claim")
        .is_none());
    // ...but with the generation of the final row, once Box confirms the file is back in the
    // watched folder (moved back by a person): reopened, with no attempts.
    let reopened = first
        .claim_box_file("f1", "v1", "host:1", 600, Some(2))
        .expect("claim")
        .expect("moved back: reopened");
    assert_eq!(reopened.state, scaling_core::store::LedgerState::Claimed);
    assert_eq!(reopened.attempts, 0);
    assert_eq!(reopened.claim_generation, 3);
    // The second of two passes that both saw it back reopens nothing.
    assert!(second
        .claim_box_file("f1", "v1", "host:2", 600, Some(2))
        .expect("claim")
        .is_none());
    first
        .archive_box_file("f1", "v1", "processed", false, None)
        .expect("archive again");
    // A new version of the same file is new work.
    first
        .observe_box_file("f1", "v2", "w", "x.mp4", Some("def"), Some(3))
        .expect("observe v2");
    assert!(first
        .claim_box_file("f1", "v2", "host:1", 600, None)
        .expect("claim")
        .is_some());
}

#[test]
fn a_transition_completes_once_with_its_notifications() {
    let db = TestDb::create();
    let mut store = store(&db);
    campaign(&mut store);
    assert_eq!(
        store.begin_transition("c1", "A1", "A2").expect("begin"),
        TransitionState::Pending
    );
    assert_eq!(
        store
            .begin_transition("c1", "A1", "A2")
            .expect("begin again"),
        TransitionState::Pending
    );
    assert_eq!(
        store.pending_transitions("A2").expect("pending"),
        vec!["c1".to_string()]
    );
    let notification = NewNotification {
        idempotency_key: "campaign.a2:c1:email".into(),
        channel: NotificationChannel::Email,
        target: "a1_to_a2_complete".into(),
        event: "campaign.a2".into(),
        payload: json!({ "to": ["ops@example.com"], "context": {} }),
    };
    assert!(store
        .complete_transition("c1", "A2", std::slice::from_ref(&notification))
        .expect("complete"));
    assert!(
        !store
            .complete_transition("c1", "A2", &[notification])
            .expect("complete twice"),
        "second completion is a no-op"
    );
    assert_eq!(
        store
            .begin_transition("c1", "A1", "A2")
            .expect("begin after done"),
        TransitionState::Done
    );
    assert_eq!(
        store.campaign("c1").expect("campaign").expect("row").status,
        "A2"
    );
    let queued: i64 = db
        .client()
        .query_one("SELECT count(*) FROM outbox", &[])
        .expect("outbox")
        .get(0);
    assert_eq!(queued, 1);
}

#[test]
fn an_outbox_row_is_claimed_by_one_sender_at_a_time() {
    let db = TestDb::create();
    let mut first = store(&db);
    let mut second = store(&db);
    first
        .enqueue(&[NewNotification {
            idempotency_key: "k1".into(),
            channel: NotificationChannel::Webhook,
            target: "campaigns".into(),
            event: "campaign.a3".into(),
            payload: json!({}),
        }])
        .expect("enqueue");
    let row = first
        .claim_notification("a", 60, 0)
        .expect("claim")
        .expect("row");
    assert!(
        second
            .claim_notification("b", 60, 0)
            .expect("claim")
            .is_none(),
        "leased row is not handed out twice"
    );
    first
        .mark_notification_failed(row.id, "503", 0)
        .expect("failed");
    let again = second
        .claim_notification("b", 60, 0)
        .expect("claim")
        .expect("due again after failure");
    assert_eq!(again.attempts, 1);
    second
        .mark_notification_failed(again.id, "503", 0)
        .expect("failed again");
    // Due at once (zero backoff), but a delivery round's cursor skips rows it already tried.
    assert!(
        second
            .claim_notification("b", 60, again.id)
            .expect("claim")
            .is_none(),
        "a round tries each row at most once"
    );
    let third = second
        .claim_notification("b", 60, 0)
        .expect("claim")
        .expect("the next round tries it again");
    second.mark_notification_sent(third.id).expect("sent");
    assert!(
        first
            .claim_notification("a", 60, 0)
            .expect("claim")
            .is_none(),
        "sent rows are done"
    );
}

#[test]
fn advisory_locks_exclude_other_sessions_and_die_with_the_connection() {
    let db = TestDb::create();
    let mut first = store(&db);
    let mut second = store(&db);
    assert!(first.try_lock("box-poll:folder:1").expect("lock"));
    assert!(!second.try_lock("box-poll:folder:1").expect("lock held"));
    assert!(second.try_lock("box-poll:folder:2").expect("other folder"));
    drop(first); // a killed process: its connection ends
    crate::util::wait_for(std::time::Duration::from_secs(5), "lock release", || {
        second
            .try_lock("box-poll:folder:1")
            .expect("lock")
            .then_some(())
    });
}

#[test]
fn a_value_outside_the_known_states_is_a_typed_error_naming_its_column() {
    let db = TestDb::create();
    let mut store = store(&db);
    store
        .observe_box_file("f1", "v1", "w", "x.mp4", None, None)
        .expect("observe");
    let mut client = db.client();
    // A newer schema (or a hand edit) with a state this build does not know.
    client
        .batch_execute(
            "ALTER TABLE box_files DROP CONSTRAINT box_files_state_check;
             UPDATE box_files SET state = 'shredded';
             INSERT INTO runs (binary_name, host, pid, finished_at, outcome)
                  VALUES ('box-poll', 'h', 1, now(), 'exploded');",
        )
        .expect("hand edit");
    match store.ledger_file("f1") {
        Err(StoreError::UnknownValue {
            table,
            column,
            value,
        }) => assert_eq!(
            (table, column, value.as_str()),
            ("box_files", "state", "shredded")
        ),
        other => panic!("expected UnknownValue, got {other:?}"),
    }
    let error = store.binary_runs().expect_err("unknown outcome");
    assert_eq!(
        error.to_string(),
        "runs.outcome holds \"exploded\", which this build does not know"
    );
}

#[test]
fn a_listed_row_reads_like_a_claimed_one() {
    let db = TestDb::create();
    let mut store = store(&db);
    store
        .observe_box_file("f1", "v1", "w", "x.mp4", None, None)
        .expect("observe");
    let claimed = store
        .claim_box_file("f1", "v1", "host:1", 600, None)
        .expect("claim")
        .expect("claimed");
    assert_eq!(claimed.leased_by.as_deref(), Some("host:1"));
    let listed = store.ledger_file("f1").expect("ledger").expect("row");
    assert_eq!(
        listed, claimed,
        "one row type for box_files, whichever query read it"
    );
    store
        .enqueue(&[NewNotification {
            idempotency_key: "k1".into(),
            channel: NotificationChannel::Email,
            target: "t".into(),
            event: "e".into(),
            payload: json!({ "to": ["a@example.com"] }),
        }])
        .expect("enqueue");
    let pending = store.pending_notifications().expect("pending");
    assert_eq!(pending.len(), 1);
    assert!(!pending[0].leased);
    assert_eq!(pending[0].channel, NotificationChannel::Email);
    let claimed = store
        .claim_notification("a", 60, 0)
        .expect("claim")
        .expect("row");
    assert!(claimed.leased);
    let listed = store.pending_notifications().expect("pending");
    assert!(listed[0].leased, "a live lease shows in the listing");
    assert_eq!(listed[0].payload, claimed.payload);
}

#[test]
fn the_pass_probe_answers_every_question_of_an_idle_pass_in_one_statement() {
    let db = TestDb::create();
    let mut store = store(&db);
    let empty = store.probe_pass("cs-1:", "A3", "A2").expect("probe");
    assert!(empty.lease_owners.is_empty() && empty.pending_transitions.is_empty());
    assert!(empty.complete_campaigns.is_empty());
    assert!(!empty.orphaned_imports && !empty.unfinished_moves && !empty.notifications_due);

    let mut client = db.client();
    client
        .batch_execute(
            "INSERT INTO campaigns (dam_folder_id, campaign_number, campaign_name, status) VALUES
                 ('done', 'C-1', 'Complete', 'A2'), ('open', 'C-2', 'Waiting', 'A2'),
                 ('old', 'C-3', 'Finished', 'A3');
             INSERT INTO master_assets (tracking_id, opentext_id, campaign_id, original_filename) VALUES
                 ('AAAAAA', 'm1', 'done', 'a.mp4'), ('BBBBBB', 'm2', 'open', 'b.mp4'),
                 ('CCCCCC', 'm3', 'old', 'c.mp4');
             INSERT INTO derivative_assets (tracking_id, derivative_filename, derivative_key, version,
                     box_file_id, box_file_version_id, dam_folder_id, upload_status, marker) VALUES
                 ('AAAAAA', 'a_EN.mp4', 'a_en.mp4', 1, 'f1', 'v1', 'fa', 'uploaded', 'm-1'),
                 ('BBBBBB', 'b_EN.mp4', 'b_en.mp4', 1, 'f2', 'v2', 'fa', 'importing', 'm-2'),
                 ('CCCCCC', 'c_EN.mp4', 'c_en.mp4', 1, 'f3', 'v3', 'fa', 'uploaded', 'm-3');
             INSERT INTO box_files (file_id, file_version_id, watched_folder_id, name, state,
                                    lease_owner, lease_expires_at) VALUES
                 ('f1', 'v1', 'w', 'a', 'archived', NULL, NULL),
                 ('f2', 'v2', 'w', 'b', 'rejected', NULL, NULL),
                 ('f4', 'v4', 'w', 'd', 'claimed', 'cs-1:42:7', now() + interval '1 hour'),
                 ('f5', 'v5', 'w', 'e', 'claimed', 'cs-10:42:7', now() + interval '1 hour'),
                 ('f6', 'v6', 'w', 'f', 'uploaded_to_dam', 'cs-1:43:7', now() + interval '1 hour');
             INSERT INTO campaign_transitions (campaign_id, from_status, to_status, state) VALUES
                 ('old', 'A2', 'A3', 'done'), ('done', 'A2', 'A3', 'pending'),
                 ('open', 'A1', 'A2', 'pending');
             INSERT INTO outbox (idempotency_key, channel, target, event, payload, next_attempt_at) VALUES
                 ('later', 'email', 't', 'e', '{}', now() + interval '1 hour');",
        )
        .expect("history");
    let probe = store.probe_pass("cs-1:", "A3", "A2").expect("probe");
    let mut owners = probe.lease_owners.clone();
    owners.sort();
    assert_eq!(owners, ["cs-1:42:7", "cs-1:43:7"], "cs-10: is another host");
    assert_eq!(
        probe.pending_transitions,
        ["done"],
        "only transitions to A3"
    );
    assert_eq!(
        probe.complete_campaigns,
        ["done"],
        "open still waits for a derivative"
    );
    assert!(
        probe.orphaned_imports,
        "m-2 is importing and its Box file was rejected"
    );
    assert!(
        !probe.unfinished_moves,
        "the one unfinished move is leased by a live pass"
    );
    assert!(
        !probe.notifications_due,
        "the one notification is due later"
    );

    client
        .batch_execute(
            "UPDATE box_files SET lease_expires_at = now() - interval '1 second' WHERE file_id = 'f6';
             UPDATE outbox SET next_attempt_at = now();",
        )
        .expect("lapse");
    let probe = store.probe_pass("cs-1:", "A3", "A2").expect("probe");
    assert!(probe.unfinished_moves, "a lapsed lease frees the move");
    assert!(probe.notifications_due);
}
