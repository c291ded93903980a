//! Emails once (issue 11, defect 7): Mailgun does not de-duplicate on `h:X-Idempotency-Key`, so
//! a send whose reply is lost (500 after accept, dropped connection) used to reach the inbox
//! twice. Every email now carries a stable `Message-Id` derived from its outbox key, and before
//! re-sending an email whose earlier outcome is unknown the delivery asks Mailgun's events API
//! whether that Message-Id was accepted (README "Exactly once").
//!
//! The trigger is the A2 success email of `a1-to-a2` (one per campaign); the second and third
//! runs find nothing to do but deliver the outbox.

use serde_json::{json, Value};

use crate::util::{post_json, route_count, World};

const FAST: &str = "tests/e2e/scenarios/fast.yaml";

/// The sandbox inbox.
fn emails(world: &World) -> Vec<Value> {
    world.sandbox.state()["emails"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// `(sent, last_error, outcome unknown)` of every email row of the outbox.
fn email_rows(world: &World) -> Vec<(bool, Option<String>, bool)> {
    world
        .db
        .client()
        .query(
            "SELECT sent_at IS NOT NULL, last_error, outcome_unknown_since IS NOT NULL
               FROM outbox WHERE channel = 'email' ORDER BY id",
            &[],
        )
        .expect("outbox rows")
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect()
}

fn set_mailgun_events(world: &World, mode: &str) {
    let reply = post_json(
        &format!("{}/config", world.sandbox.control()),
        &json!({ "mailgun_events": mode }),
    );
    assert_eq!(reply["mailgun_events"], mode, "{reply}");
}

/// The Message-Id the sandbox recorded for an email (its `h:Message-Id`).
fn message_id(email: &Value) -> String {
    email["headers"]["Message-Id"]
        .as_str()
        .unwrap_or_else(|| panic!("email without Message-Id: {email}"))
        .to_string()
}

fn assert_well_formed_message_id(id: &str, domain: &str) {
    let inner = id
        .strip_prefix('<')
        .and_then(|rest| rest.strip_suffix('>'))
        .unwrap_or_else(|| panic!("Message-Id in angle brackets: {id}"));
    let (left, right) = inner.split_once('@').expect("id@domain");
    assert_eq!(right, domain, "{id}");
    assert_eq!(left.len(), 32, "{id}");
    assert!(left.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
}

/// No credential form of the Mailgun key in the outbox.
fn assert_no_key_in_outbox(world: &World) {
    use base64::Engine as _;
    let key = world.sandbox.str("mailgun_api_key");
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("api:{key}"));
    let texts: Vec<String> = world
        .db
        .client()
        .query("SELECT coalesce(last_error, '') FROM outbox", &[])
        .expect("outbox")
        .iter()
        .map(|row| row.get(0))
        .collect();
    for text in texts {
        assert!(
            !text.contains(&key) && !text.contains(&basic),
            "credential in outbox.last_error: {text}"
        );
    }
}

/// A Mailgun send that takes effect but whose reply is lost (`rule`), then passes until the
/// outbox is empty: the inbox holds the email once, the events API was asked.
fn lost_reply_is_confirmed_not_resent(rule: Value) {
    let world = World::new(Some(FAST));
    world.sandbox.add_fault(rule);
    assert_eq!(world.run("a1-to-a2", &[]).status.code(), Some(0));
    let first = emails(&world);
    assert_eq!(first.len(), 1, "Mailgun accepted the email: {first:?}");
    let rows = email_rows(&world);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(
        !rows[0].0 && rows[0].2,
        "lost reply: not sent, outcome unknown: {rows:?}"
    );

    // The next passes converge: confirmed through the events API, never sent again.
    for _ in 0..2 {
        assert_eq!(world.run("a1-to-a2", &[]).status.code(), Some(0));
    }
    let after = emails(&world);
    assert_eq!(after.len(), 1, "the inbox holds the email once: {after:?}");
    let domain = world.sandbox.str("mailgun_domain");
    assert_well_formed_message_id(&message_id(&after[0]), &domain);
    let rows = email_rows(&world);
    assert!(rows.iter().all(|row| row.0), "marked sent: {rows:?}");
    let stats = world.sandbox.stats();
    assert_eq!(
        route_count(&stats, "GET /v3/{domain}/events 200"),
        1,
        "one events look-up: {stats}"
    );
    assert_no_key_in_outbox(&world);
}

#[test]
fn a_500_after_accept_leaves_one_email_in_the_inbox() {
    lost_reply_is_confirmed_not_resent(json!({
        "method": "POST", "path_prefix": "/v3/", "status": 500, "after": true, "count": 1
    }));
}

#[test]
fn a_dropped_connection_after_accept_leaves_one_email_in_the_inbox() {
    lost_reply_is_confirmed_not_resent(json!({
        "method": "POST", "path_prefix": "/v3/", "kind": "drop", "after": true, "count": 1
    }));
}

/// When the events API cannot confirm (unavailable, or it does not index custom Message-Ids,
/// or the check is switched off), the email waits `email.events_settle_secs` and is then sent
/// again: the reader sees two copies with one Message-Id (README "Exactly once").
#[test]
fn without_a_confirmation_the_email_waits_then_goes_out_again_with_the_same_message_id() {
    for (mode, extra) in [
        ("unavailable", vec![]),
        ("no_custom_ids", vec![]),
        ("match", vec![("EMAIL_CONFIRM_WITH_EVENTS", "false")]),
    ] {
        eprintln!("=== mailgun_events {mode} {extra:?}");
        let world = World::new(Some(FAST));
        set_mailgun_events(&world, mode);
        world.sandbox.add_fault(json!({
            "method": "POST", "path_prefix": "/v3/", "status": 500, "after": true, "count": 1
        }));
        assert_eq!(
            world.run_with_env("a1-to-a2", &[], &extra).status.code(),
            Some(0)
        );
        assert_eq!(emails(&world).len(), 1);

        if extra.is_empty() {
            // Within the settle time nothing is re-sent (production waits 1800 s for late events).
            let mut waiting = extra.clone();
            waiting.push(("EMAIL_EVENTS_SETTLE_SECS", "3600"));
            assert_eq!(
                world.run_with_env("a1-to-a2", &[], &waiting).status.code(),
                Some(0)
            );
            assert_eq!(
                emails(&world).len(),
                1,
                "{mode}: waits for the events to settle"
            );
            let rows = email_rows(&world);
            assert!(
                !rows[0].0
                    && rows[0].2
                    && rows[0]
                        .1
                        .as_deref()
                        .is_some_and(|e| e.contains("events_settle_secs")),
                "{mode}: waiting, outcome still unknown: {rows:?}"
            );
            // The hour passes (the row was deferred by the settle time, not by a failure).
            world
                .db
                .client()
                .execute(
                    "UPDATE outbox SET next_attempt_at = now() WHERE channel = 'email'",
                    &[],
                )
                .expect("let the settle time pass");
        }

        // After the settle time (0 in the sandbox overlay) it goes out again.
        for _ in 0..2 {
            assert_eq!(
                world.run_with_env("a1-to-a2", &[], &extra).status.code(),
                Some(0)
            );
        }
        let inbox = emails(&world);
        assert_eq!(
            inbox.len(),
            2,
            "{mode}: at least once, two copies: {inbox:?}"
        );
        assert_eq!(
            message_id(&inbox[0]),
            message_id(&inbox[1]),
            "{mode}: both copies carry one Message-Id"
        );
        let rows = email_rows(&world);
        assert!(
            rows.iter().all(|row| row.0),
            "{mode}: marked sent: {rows:?}"
        );
        let lookups = route_count_prefix_events(&world);
        if extra.is_empty() {
            assert!(lookups >= 1, "{mode}: the events API was asked");
        } else {
            assert_eq!(lookups, 0, "confirm_with_events: false asks nothing");
        }
        assert_no_key_in_outbox(&world);
    }
}

fn route_count_prefix_events(world: &World) -> u64 {
    crate::util::route_count_prefix(&world.sandbox.stats(), "GET /v3/{domain}/events ")
}
