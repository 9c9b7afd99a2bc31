//! Synthetic data shared by the benchmarks: offers spread over the Zürich–Bern region.

use chrono::{TimeZone, Utc};
use friend_protocol::{Category, GeoPoint, JobId, Money, Offer, Place, Tier, Timing};

/// Zürich main station, the centre of every inbox query.
pub const ZURICH: (f64, f64) = (47.3779, 8.5403);

/// A small deterministic generator (the same data in every run).
pub struct Rng(u64);

impl Rng {
    /// Seeded.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// Uniform in [0, 1).
    pub fn f64(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `n` open offers, uniformly over a 120 km × 120 km square around Zürich (so a 30 km radius
/// holds about a fifth of them), all on site, expiring in two hours.
pub fn offers(n: usize, seed: u64) -> Vec<Offer> {
    let mut rng = Rng::new(seed);
    let now = Utc.timestamp_millis_opt(NOW_MS).unwrap();
    (0..n)
        .map(|i| {
            let lat = ZURICH.0 + (rng.f64() - 0.5) * 1.08; // ±60 km
            let lon = ZURICH.1 + (rng.f64() - 0.5) * 1.60; // ±60 km at 47°N
            let exact = GeoPoint::new(lat, lon).unwrap();
            Offer {
                id: JobId(uuid::Uuid::from_u128(i as u128 + 1)),
                version: 1,
                service_id: "network.router_setup".into(),
                category: Category::ALL[i % Category::ALL.len()],
                title: "Router installation".into(),
                description: format!("Job {i}: the Wi-Fi does not reach the bedroom, please help"),
                timing: Timing::Now,
                place: Place::OnSite,
                approx_location: Some(exact.approximate()),
                district: Some("8004 Zürich".into()),
                orientation_price: Money::chf(8900),
                brand: None,
                min_tier: Tier::Friend,
                radius_km: 30,
                created_at: now,
                expires_at: now + chrono::Duration::hours(2),
            }
        })
        .collect()
}

/// The benchmark's "now" in server milliseconds.
pub const NOW_MS: i64 = 1_800_000_000_000;
