//! The simulation's invariants at small scale, run in-process as a library call.

use friendctl::sim::{self, NoProgress, SimConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_day_keeps_every_invariant_and_a_consistent_report() {
    let report = sim::run(SimConfig::small(17), &NoProgress)
        .await
        .expect("the simulation runs");
    eprintln!("{}", report.text());

    // Given 40 booked jobs, when the day is over, then:
    let i = &report.invariants;
    assert_eq!(
        i.double_assignments, 0,
        "at most one Won per job, and it is the server's Friend"
    );
    assert_eq!(
        i.lost_writes, 0,
        "every queued action ended applied or refused"
    );
    assert_eq!(i.jobs_left_open, 0, "every job ends terminal or assigned");
    assert_eq!(i.jobs_not_booked, 0, "every booking reached the server");
    assert_eq!(
        i.misdirected_pushes, 0,
        "no offer pushed to a long-polling or ineligible Friend"
    );
    assert_eq!(
        i.dead_token_mismatches, 0,
        "every dead token pushed to was removed"
    );
    assert!(i.ok);

    // The report is complete and adds up.
    assert_eq!(report.setup.jobs, 40);
    let states: u64 = report.final_states.values().sum();
    assert_eq!(states, 40, "{:?}", report.final_states);
    let t = &report.time_to_accept;
    assert_eq!(t.considered, t.accepted + t.never_accepted);
    assert_eq!(t.accepted, t.samples_secs.len());
    assert_eq!(t.buckets.len(), 4);
    assert!(
        t.buckets
            .windows(2)
            .all(|w| w[0].simulated <= w[1].simulated),
        "cumulative shares grow"
    );
    assert!(t.accepted > 0, "some jobs were accepted");
    let won = report.race.accept_attempts
        - report.race.race_losers
        - report.race.gone
        - report.race.not_eligible
        - report.race.offline
        - report.race.errors;
    let v = &report.visit;
    assert_eq!(
        won,
        t.accepted + v.found_again,
        "one Won per accepted job, and one per second search that found a Friend"
    );
    assert_eq!(report.race.checked_jobs, 40);
    let o = &report.outbox;
    assert!(o.queued > 0);
    assert_eq!(o.applied + o.refused, o.queued, "{:?}", o.by_kind);
    assert_eq!(o.pending, 0);
    assert_eq!(o.unexpected_items, 0);
    let by_kind: u64 = o.by_kind.values().map(|k| k.queued).sum();
    assert_eq!(by_kind, o.queued);
    assert!(o.by_kind.contains_key("customer book") && o.by_kind.contains_key("friend check_in"));
    assert_eq!(
        o.by_kind["friend push_token"].applied, 30,
        "every Friend registered"
    );
    assert_eq!(
        o.by_kind["customer push_token"].applied, 12,
        "every customer registered"
    );

    // The backend pushed through the fake gateways, and the pushes woke the phones.
    let p = &report.push;
    assert_eq!(p.fcm_devices + p.apns_devices, 42);
    assert!(p.apns_devices > 0 && p.fcm_devices > 0);
    assert!(p.offer_pushes > 0 && p.per_booking > 0.0);
    assert!(p.to_customers > 0, "customers heard of their jobs");
    assert_eq!(
        p.sent,
        p.offer_pushes + p.to_customers + p.to_friends,
        "what the dispatcher sent is what the gateways accepted"
    );
    assert!(p.wakes > 0 && p.to_cache_samples > 0);
    assert_eq!(p.dead_tokens, 1);
    assert_eq!(p.dead_removed, p.dead_answers);
    assert_eq!(p.dead_still_registered, 0);
    assert_eq!(report.sync_bytes.friends, 30);
    assert!(report.sync_bytes.sync_requests > 0);
    assert!(report.http.requests > 0);
    let completed = report.final_states.get("completed").copied().unwrap_or(0) as usize;
    assert_eq!(
        report.negotiation.paid_online + report.negotiation.paid_cash,
        completed,
        "every completed job was paid one way"
    );
    assert_eq!(report.negotiation.deviation.jobs, completed);

    // After the accept: visits agreed, estimates sent and measured, fees as the policy says.
    assert!(v.appointments > 0 && v.appointments <= v.accepts);
    assert!(v.on_my_way > 0 && v.latest_estimate.jobs > 0);
    assert!(v.latest_estimate.median_abs_min.is_some());
    assert_eq!(
        o.by_kind["friend appointment"].queued as usize, v.appointments,
        "one agreed visit queued per appointment step"
    );
    for fees in [&v.late_cancellations, &v.no_shows] {
        assert_eq!(fees.charged, fees.jobs as i64 * 3_900, "CHF 39 a fee");
        assert_eq!(fees.payout + fees.commission, fees.charged);
    }
    assert_eq!(v.preview_mismatches, 0, "the fee charged is the one shown");
    assert!(v.found_again as u64 <= v.releases.values().sum::<u64>());
    let (_, timeline) = v.sample.as_ref().expect("a sample job's live status");
    assert_eq!(timeline[0].1, "searching for a Friend");
    assert!(timeline.iter().any(|(_, s)| s.contains("on the way")));

    // The backend's own metrics count what the simulation saw.
    assert!(
        report.scrape.agree,
        "metrics vs simulation: {:?}",
        report.scrape
    );

    // And the files are written.
    let dir = tempfile::tempdir().expect("temp dir");
    let files = sim::write_files(&report, dir.path()).expect("files");
    assert_eq!(files.len(), 3);
    let svg = std::fs::read_to_string(dir.path().join("time_to_accept.svg")).expect("svg");
    assert!(svg.starts_with("<svg") && svg.contains("polyline"));
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("report.json")).expect("json"),
    )
    .expect("valid JSON");
    assert_eq!(json["invariants"]["ok"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_day_on_three_postgres_instances_keeps_every_invariant() {
    let mut config = SimConfig::small(17);
    config.db = Some(
        friend_tests::pg::PgServer::shared()
            .database()
            .expect("a database on the test PostgreSQL server"),
    );
    config.instances = 3;
    let report = sim::run(config, &NoProgress)
        .await
        .expect("the simulation runs");
    eprintln!("{}", report.text());
    assert_eq!(
        (report.setup.store.as_str(), report.setup.instances),
        ("postgres", 3)
    );
    let i = &report.invariants;
    assert_eq!(i.double_assignments, 0);
    assert_eq!(i.lost_writes, 0);
    assert_eq!(i.jobs_left_open, 0);
    assert_eq!(i.misdirected_pushes, 0);
    assert!(i.ok);
    let states: u64 = report.final_states.values().sum();
    assert_eq!(states, 40, "{:?}", report.final_states);
    assert!(
        report.scrape.agree,
        "the instances' summed counters agree with the report: {:?}",
        report.scrape
    );
}
