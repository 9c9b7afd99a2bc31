//! P10: a booking → the push requests at the gateways (SPEC §5, §9), with 10,000 registered
//! Friends of whom about 200 are in reach.
//!
//! The in-process backend pushes to the loopback fakes of FCM and APNs (`friend-fakepush`), which
//! stamp every request with the system clock when it arrives. Each booking is timed from just before
//! its request to every push request's arrival, and the set of devices pushed is compared with the
//! Friends [`eligibility::check`] admits for the booked job, computed here from the profiles the
//! benchmark created — every one of them exactly once, nobody else. No Friend long-polls, so every
//! eligible Friend is a background Friend. The baseline is the same bookings' own request time
//! (booking → HTTP 200): a push can only leave after the booking's transaction committed, so the
//! difference between the two is what the dispatcher and the gateway clients add.

use crate::data::{Rng, ZURICH};
use crate::measure::{ms, percentile};
use crate::report::Row;
use chrono::{DateTime, Utc};
use friend_fakepush::{FakeApns, FakeFcm, Request};
use friend_protocol::eligibility::{self, JobReach};
use friend_protocol::{
    Category, FriendProfile, GeoPoint, JobDetails, JobResponse, NewFriend, PushPlatform,
    PushTokenRequest, Tier,
};
use friend_tests::{TestBackend, booking_at};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// Registered Friends, each with one push device.
const FRIENDS: usize = 10_000;
/// Bookings measured, one after the other.
const BOOKINGS: usize = 100;
/// Bookings before them, checked for exactly-once but not timed (the first access-token exchange,
/// the first provider token, connection set-up).
const WARM_UP: usize = 5;
/// Longest wait for one booking's pushes, before the booking counts as failed.
const WAIT: Duration = Duration::from_secs(10);
/// Requests in flight while the population is set up.
const SETUP_CONCURRENCY: usize = 64;

/// One Friend of the population: the profile eligibility is computed from, and its device.
struct Member {
    profile: FriendProfile,
    platform: PushPlatform,
    token: String,
}

/// A point `min_km..max_km` from `center`, uniform over the ring's area.
fn around(rng: &mut Rng, center: (f64, f64), min_km: f64, max_km: f64) -> GeoPoint {
    let r = (rng.f64() * (max_km * max_km - min_km * min_km) + min_km * min_km).sqrt();
    let bearing = rng.f64() * std::f64::consts::TAU;
    let lat = center.0 + r / 111.32 * bearing.cos();
    let lon = center.1 + r / (111.32 * center.0.to_radians().cos()) * bearing.sin();
    GeoPoint::new(lat, lon).unwrap()
}

/// The 10,000 Friends. Around Zürich main station: 180 qualified Friends within 12 km (in reach of
/// every booking), 60 at 27–33 km (in reach of some bookings, depending on where they are), 300
/// within 12 km not qualified for network jobs, 200 at 8–20 km with a 5 km travel radius. The rest
/// live anywhere in Switzerland at least 45 km from Zürich. Every tenth Friend is a Pro; 70 % have
/// an Android device (FCM), 30 % an iPhone (APNs).
fn population() -> Vec<NewFriend> {
    let mut rng = Rng::new(10);
    let zurich = GeoPoint::new(ZURICH.0, ZURICH.1).unwrap();
    let not_network: Vec<Category> = Category::ALL
        .into_iter()
        .filter(|c| *c != Category::Network)
        .collect();
    (0..FRIENDS)
        .map(|i| {
            let (home, radius_km, categories) = match i {
                0..180 => (
                    around(&mut rng, ZURICH, 0.0, 12.0),
                    30,
                    Category::ALL.to_vec(),
                ),
                180..240 => (
                    around(&mut rng, ZURICH, 27.0, 33.0),
                    30,
                    Category::ALL.to_vec(),
                ),
                240..540 => (around(&mut rng, ZURICH, 0.0, 12.0), 30, not_network.clone()),
                540..740 => (
                    around(&mut rng, ZURICH, 8.0, 20.0),
                    5,
                    Category::ALL.to_vec(),
                ),
                _ => loop {
                    let lat = 45.9 + rng.f64() * 1.8;
                    let lon = 6.1 + rng.f64() * 4.2;
                    let home = GeoPoint::new(lat, lon).unwrap();
                    if home.distance_m(&zurich) >= 45_000.0 {
                        break (home, 1 + (i % 50) as u32, Category::ALL.to_vec());
                    }
                },
            };
            NewFriend {
                name: format!("Friend {i}"),
                home,
                radius_km,
                categories,
                communities: vec![],
                tier: if i % 10 == 0 { Tier::Pro } else { Tier::Friend },
            }
        })
        .collect()
}

/// Friend `i`'s device: FCM for 7 in 10, else an APNs token (64 hex digits).
fn device(i: usize) -> (PushPlatform, String) {
    if i % 10 < 7 {
        (PushPlatform::Fcm, format!("bench-fcm-{i:05}"))
    } else {
        (PushPlatform::Apns, format!("{:064x}", i + 1))
    }
}

/// A backend pushing to fresh fakes of FCM and APNs (the setup of `tests/tests/push_delivery.rs`).
async fn pushing_backend(dir: &std::path::Path) -> (TestBackend, FakeFcm, FakeApns) {
    TestBackend::start_pushing(dir).await
}

/// Creates the population's accounts and registers each one's device over HTTP
/// (`POST /v1/push-tokens`), [`SETUP_CONCURRENCY`] at a time.
async fn register(tb: &TestBackend, friends: Vec<NewFriend>) -> Vec<Member> {
    let permits = Arc::new(Semaphore::new(SETUP_CONCURRENCY));
    let http = tb.http();
    let tasks: Vec<_> = friends
        .into_iter()
        .enumerate()
        .map(|(i, new)| {
            let (backend, http, permits) = (tb.backend.clone(), http.clone(), permits.clone());
            tokio::spawn(async move {
                let _permit = permits.acquire_owned().await.unwrap();
                let created = backend.create_friend(new.clone()).await.unwrap();
                let (platform, token) = device(i);
                let req = PushTokenRequest {
                    platform,
                    token: token.clone(),
                    replaces: None,
                };
                let r = http
                    .post("/v1/push-tokens", &created.token, None, &req)
                    .await;
                assert_eq!(r.status, 200, "push-token registration: {}", r.text());
                Member {
                    profile: FriendProfile {
                        id: created.id,
                        name: new.name,
                        home: new.home,
                        radius_km: new.radius_km,
                        categories: new.categories,
                        communities: new.communities,
                        tier: new.tier,
                        suspended: false,
                    },
                    platform,
                    token,
                }
            })
        })
        .collect();
    let mut members = Vec::with_capacity(tasks.len());
    for t in tasks {
        members.push(t.await.unwrap());
    }
    members
}

/// The device tokens of the Friends eligible for `job`, by platform (FCM, APNs).
fn eligible_tokens(members: &[Member], job: &JobDetails) -> BTreeMap<String, PushPlatform> {
    let reach = JobReach {
        category: job.category,
        place: job.place,
        location: job.location,
        radius_km: job.radius_km,
        brand: job.brand.as_deref(),
        min_tier: job.min_tier,
    };
    members
        .iter()
        .filter(|m| eligibility::check(&m.profile, &reach).is_ok())
        .map(|m| (m.token.clone(), m.platform))
        .collect()
}

/// Polls `done` every millisecond until it holds or `limit` passes; whether it held. Cheap checks
/// only while pushes are in flight (the fakes' request counters, an atomic of the backend).
async fn poll(limit: Duration, mut done: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    done().await
}

/// What one booking's pushes looked like at the gateways.
struct Outcome {
    /// Every push request for the booking, received − booking start.
    latencies: Vec<Duration>,
    /// Why the pushes were not exactly the eligible Friends once each, if they were not.
    wrong: Option<String>,
}

/// Compares the requests the gateways received for one booking with the eligible devices.
fn judge(
    requests: &[Request],
    eligible: &BTreeMap<String, PushPlatform>,
    job: &JobDetails,
    start: DateTime<Utc>,
) -> Outcome {
    let collapse_key = format!("offer-{}", job.id);
    let mut per_token: BTreeMap<String, usize> = BTreeMap::new();
    let mut strays = 0;
    let mut not_delivered = 0;
    let mut latencies = Vec::with_capacity(requests.len());
    for r in requests {
        latencies.push((r.received_at - start).to_std().unwrap_or(Duration::ZERO));
        if r.collapse_key().as_deref() != Some(collapse_key.as_str()) {
            strays += 1;
            continue;
        }
        if !r.is_delivered() {
            not_delivered += 1;
        }
        *per_token
            .entry(r.device_token.clone().unwrap_or_default())
            .or_default() += 1;
    }
    let missing = eligible
        .keys()
        .filter(|t| !per_token.contains_key(*t))
        .count();
    let twice = per_token.values().filter(|n| **n > 1).count();
    let ineligible = per_token
        .keys()
        .filter(|t| !eligible.contains_key(*t))
        .count();
    let wrong = (missing + twice + ineligible + strays + not_delivered > 0).then(|| {
        format!(
            "job {}: {} eligible, {} push requests: {missing} eligible devices missing, \
             {twice} pushed more than once, {ineligible} ineligible devices pushed, {strays} \
             requests with another collapse key, {not_delivered} not answered 2xx",
            job.id,
            eligible.len(),
            requests.len()
        )
    });
    Outcome { latencies, wrong }
}

/// P10: bookings at points within 2 km of Zürich main station, one after the other, each waited
/// for until its pushes are answered and the push queue is empty.
pub async fn p10_push_gateway() -> Vec<Row> {
    let dir = tempfile::tempdir().unwrap();
    let (tb, fcm, apns) = pushing_backend(dir.path()).await;
    let customer = tb.customer("Heidi").await;
    let setup = Instant::now();
    let members = register(&tb, population()).await;
    eprintln!(
        "   {} Friends created and their push tokens registered in {:.1} s",
        members.len(),
        setup.elapsed().as_secs_f64()
    );
    // A real backend did not just load 10,000 accounts: fold the bulk load's write-ahead log into
    // the database before the bookings, so they do not pay for its checkpoint.
    rusqlite::Connection::open(&tb.db_path)
        .unwrap()
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    let fcm_devices = members
        .iter()
        .filter(|m| m.platform == PushPlatform::Fcm)
        .count();
    let http = tb.http();
    let mut rng = Rng::new(11);
    let (mut per_push, mut last_push, mut booking) = (Vec::new(), Vec::new(), Vec::new());
    let (mut eligible_total, mut pushed_total, mut eligible_counts) = (0, 0, Vec::new());
    let mut failed = 0u64;
    let (mut fcm_seen, mut apns_seen) = (0, 0);
    for n in 0..WARM_UP + BOOKINGS {
        let at = (
            ZURICH.0 + (rng.f64() - 0.5) * 0.036,  // ±2 km
            ZURICH.1 + (rng.f64() - 0.5) * 0.0530, // ±2 km at 47°N
        );
        let start_wall = Utc::now();
        let start = Instant::now();
        let r = http
            .post(
                "/v1/customer/jobs",
                &customer.token,
                Some(&format!("p10-{n}")),
                &booking_at(at),
            )
            .await;
        let answered = start.elapsed();
        assert_eq!(r.status, 200, "booking failed: {}", r.text());
        let job = r.json::<JobResponse>().job;
        let eligible = eligible_tokens(&members, &job);
        let fcm_want = eligible
            .values()
            .filter(|p| **p == PushPlatform::Fcm)
            .count();
        let apns_want = eligible.len() - fcm_want;

        // Everything this booking queued was committed before the answer: once the gateways
        // received the expected number of requests and the queue is empty, the record is final.
        let arrived = poll(WAIT, async || {
            fcm.request_count() >= fcm_seen + fcm_want
                && apns.request_count() >= apns_seen + apns_want
        })
        .await;
        let backend = tb.backend.clone();
        let drained = poll(WAIT, async || backend.push_queue().await.unwrap().0 == 0).await;

        let mut requests = fcm.requests().split_off(fcm_seen);
        fcm_seen += requests.len();
        let from_apns = apns.requests().split_off(apns_seen);
        apns_seen += from_apns.len();
        requests.extend(from_apns);
        let mut outcome = judge(&requests, &eligible, &job, start_wall);
        if !(arrived && drained) && outcome.wrong.is_none() {
            outcome.wrong = Some(format!(
                "job {}: the push queue did not drain within {WAIT:?}",
                job.id
            ));
        }
        if let Some(why) = &outcome.wrong {
            eprintln!("   FAIL {why}");
            failed += 1;
        }
        eligible_total += eligible.len();
        pushed_total += requests.len();
        eligible_counts.push(eligible.len());
        if n >= WARM_UP {
            booking.push(answered);
            last_push.push(outcome.latencies.iter().copied().max().unwrap_or_default());
            per_push.extend(outcome.latencies);
        }
    }
    let counts = tb.backend.push_counts();
    for v in [&mut per_push, &mut last_push, &mut booking] {
        v.sort();
    }
    let total = WARM_UP + BOOKINGS;
    let base = "booking → HTTP 200, same bookings";
    let (b50, b99) = (
        ms(percentile(&booking, 50.0)),
        ms(percentile(&booking, 99.0)),
    );
    vec![
        Row::info(
            "P10",
            "Friends with a registered push device (FCM / APNs)",
            format!(
                "{} ({fcm_devices} / {})",
                members.len(),
                members.len() - fcm_devices
            ),
        ),
        Row::info(
            "P10",
            &format!("eligible Friends per booking (eligibility::check), {total} bookings"),
            format!(
                "{}–{} (mean {:.1})",
                eligible_counts.iter().min().unwrap_or(&0),
                eligible_counts.iter().max().unwrap_or(&0),
                eligible_total as f64 / total as f64
            ),
        ),
        Row::info(
            "P10",
            "push requests at the gateways / eligible Friends, all bookings",
            format!(
                "{pushed_total} / {eligible_total} (dispatcher: {} sent, {} failed, {} retried)",
                counts.sent, counts.failed, counts.retried
            ),
        ),
        Row::exact(
            "P10",
            &format!(
                "bookings (of {total}) whose pushes were not every eligible Friend exactly once"
            ),
            failed,
            0,
        ),
        Row::absolute_vs(
            "P10",
            &format!(
                "booking → push request at the gateway, p50 over {} pushes ({BOOKINGS} bookings)",
                per_push.len()
            ),
            ms(percentile(&per_push, 50.0)),
            None,
            b50,
            &format!("{base}, p50"),
        ),
        Row::absolute_vs(
            "P10",
            "booking → push request at the gateway, p99 over all pushes",
            ms(percentile(&per_push, 99.0)),
            Some(100.0),
            b99,
            &format!("{base}, p99"),
        ),
        Row::absolute_vs(
            "P10",
            "booking → last push of the booking at the gateway, p50",
            ms(percentile(&last_push, 50.0)),
            None,
            b50,
            &format!("{base}, p50"),
        ),
        Row::absolute_vs(
            "P10",
            "booking → last push of the booking at the gateway, p99",
            ms(percentile(&last_push, 99.0)),
            Some(100.0),
            b99,
            &format!("{base}, p99"),
        ),
    ]
}
