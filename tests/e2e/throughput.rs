//! Issue 5: `polling.workers` really runs files (and masters) at the same time, and the
//! exactly-once invariants of issue 3 still hold. Speed itself is measured by
//! `scripts/bench.sh`, never asserted here.

use crate::crash::Scene;

fn peaks(scene: &Scene) -> (u64, u64) {
    let stats = scene.world.sandbox.stats();
    (
        stats["box_peak_in_flight"].as_u64().expect("box peak"),
        stats["dam_peak_in_flight"].as_u64().expect("dam peak"),
    )
}

/// One worker is strictly sequential (the sandbox never sees two requests at once); four
/// workers overlap their Box downloads and DAM imports (each held 500 ms by the sandbox), and every
/// file is still delivered or rejected exactly once, with each status change once.
#[test]
fn four_workers_process_files_concurrently_and_exactly_once() {
    let scene = Scene::new();
    let one = [("POLLING_WORKERS", "1")];
    let output = scene.world.run_with_env("a1-to-a2", &[], &one);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        peaks(&scene),
        (1, 1),
        "one worker: never two requests at once"
    );

    // 12 derivatives and 2 badly named files.
    let clean = scene.deliver(4, 2);

    // Held long enough that workers started together are certainly inside at the same time.
    scene.world.sandbox.add_fault(serde_json::json!({
        "method": "GET", "path_prefix": "/2.0/files/", "kind": "delay", "delay_ms": 500,
    }));
    scene.world.sandbox.add_fault(serde_json::json!({
        "method": "POST", "path_prefix": "/otmmapi/v6/assets", "kind": "delay", "delay_ms": 500,
    }));
    let four = [("POLLING_WORKERS", "4")];
    let started = std::time::Instant::now();
    let output = scene.world.run_with_env("box-poll", &[], &four);
    let elapsed = started.elapsed();
    assert_eq!(output.status.code(), Some(0));
    let (box_peak, dam_peak) = peaks(&scene);
    eprintln!(
        "figures: 4 workers, 14 files in {:.2} s; peak in flight: Box {box_peak}, DAM {dam_peak}",
        elapsed.as_secs_f64()
    );
    assert!(
        dam_peak >= 2 && box_peak >= 2,
        "four workers overlap their 500 ms downloads and imports: peak Box {box_peak}, DAM {dam_peak}"
    );

    // Every file once: the pass above did it all (a second pass finds nothing to do).
    let mut db = scene.world.db.client();
    let delivered: i64 = db
        .query_one(
            "SELECT (counts->>'derivatives_delivered')::bigint FROM runs
             WHERE binary_name = 'box-poll' ORDER BY id DESC LIMIT 1",
            &[],
        )
        .expect("runs")
        .get(0);
    assert_eq!(delivered, 12);
    scene.run_until_ok("box-poll", 1);
    scene.assert_invariants(&clean, 2);
}

/// Issue 15: an idle pass costs at most 6 database round trips (counted on the wire by a proxy:
/// every batch the server answers, prepare steps included), for `box-poll` and `a1-to-a2`, once
/// the first passes have done the work.
#[test]
fn an_idle_pass_costs_at_most_six_database_round_trips() {
    let scene = Scene::new();
    scene.run_until_ok("a1-to-a2", 1);
    scene.run_until_ok("box-poll", 1);
    let proxy = crate::util::RoundTripProxy::start(&scene.world.db.url);
    for binary in ["box-poll", "a1-to-a2"] {
        let before = proxy.round_trips();
        let output = scene
            .world
            .run_with_env(binary, &[], &[("DATABASE_URL", proxy.url.as_str())]);
        assert_eq!(output.status.code(), Some(0), "{binary}");
        let round_trips = proxy.round_trips() - before;
        eprintln!("figures: idle {binary}: {round_trips} database round trips");
        assert!(
            (1..=6).contains(&round_trips),
            "idle {binary}: {round_trips} database round trips (at most 6)"
        );
    }
}
