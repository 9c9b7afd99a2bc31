//! The push path: what the backend pushed through the fake gateways (offers per booking, job
//! updates), whether any offer went to a long-polling or ineligible Friend, how fast a pushed
//! offer reached the woken phone's cache, and the dead tokens.

use super::{ms, quantile, sorted};
use crate::sim::audit::PushAudit;
use crate::sim::metrics::{JobRun, Metrics};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The push path.
#[derive(Debug, Clone, Serialize)]
pub struct Push {
    /// Devices registered through FCM (Android).
    pub fcm_devices: usize,
    /// Devices registered through APNs (iOS).
    pub apns_devices: usize,
    /// Bookings that reached the server.
    pub bookings: usize,
    /// Offer pushes the gateways accepted (re-offers of released jobs included).
    pub offer_pushes: u64,
    /// Offer pushes per booking.
    pub per_booking: f64,
    /// Friends who learned of an offer at its booking (pushed, or long-polling), mean per booking.
    pub learned_per_booking: f64,
    /// Job updates accepted for customers.
    pub to_customers: u64,
    /// Job updates accepted for Friends (holding a job).
    pub to_friends: u64,
    /// Offer pushes of a booking to Friends who were long-polling then (must be 0).
    pub to_long_polling: u64,
    /// Offer pushes to Friends the eligibility rule does not offer the job to (must be 0).
    pub to_ineligible: u64,
    /// Pushes the backend's dispatcher counts as sent.
    pub sent: u64,
    /// Refused for good (dead tokens aside).
    pub failed: u64,
    /// Dropped unsent because they had expired.
    pub expired: u64,
    /// Attempts postponed (Retry-After, transport failures).
    pub retried: u64,
    /// Times the dispatcher sat idle with pushes queued (nothing sent for half a second) and the
    /// simulation asked it to look (should be 0).
    pub stalls: u64,
    /// Why the gateways were not all answered at the end, if they were not.
    pub unsettled: Option<String>,
    /// Wakes of phones by push (each one sync).
    pub wakes: u64,
    /// Pushes that woke their phone at once.
    pub prompt: u64,
    /// Pushes that waited for the phone's debounce: a wake already due, or one after a recent one.
    pub debounced: u64,
    /// The phone's debounce, virtual seconds (`push_coalesce_secs`).
    pub debounce_secs: i64,
    /// Offer pushes that woke their phone at once and found the offer in its cache after
    /// `on_push`: gateway receipt → offer in the cache, wall clock.
    pub to_cache_samples: usize,
    /// Median, ms.
    pub to_cache_p50_ms: Option<f64>,
    /// 99th percentile, ms.
    pub to_cache_p99_ms: Option<f64>,
    /// Offer pushes that woke their phone at once and whose offer was no longer open when it
    /// synced (taken or cancelled first).
    pub gone_at_wake: u64,
    /// Tokens dead at the gateway.
    pub dead_tokens: usize,
    /// Of which the backend pushed to.
    pub dead_tokens_pushed: usize,
    /// "Unregistered" answers the gateways gave them.
    pub dead_answers: u64,
    /// Dead tokens the backend removed (its own count).
    pub dead_removed: u64,
    /// Dead tokens pushed to and still registered at the end (must be 0).
    pub dead_still_registered: usize,
}

impl Push {
    /// From the audit's push checks, the jobs' runs and the wake measurements.
    pub(crate) fn build(
        audit: &PushAudit,
        runs: &[JobRun],
        metrics: &Metrics,
        counters: &BTreeMap<String, u64>,
        debounce_secs: i64,
    ) -> Push {
        let t = &audit.tally;
        let c = &audit.counts;
        let booked: Vec<&JobRun> = runs.iter().filter(|r| r.booked_at.is_some()).collect();
        let bookings = booked.len();
        let per = |x: f64| {
            if bookings == 0 {
                0.0
            } else {
                x / bookings as f64
            }
        };
        let latency = sorted(
            metrics
                .gateway_to_cache_ms
                .lock()
                .map(|v| v.clone())
                .unwrap_or_default(),
        );
        let counter = |name: &str| counters.get(name).copied().unwrap_or(0);
        Push {
            fcm_devices: t.fcm_devices,
            apns_devices: t.apns_devices,
            bookings,
            offer_pushes: t.offers,
            per_booking: per(t.offers as f64),
            learned_per_booking: per(booked.iter().map(|r| r.learned as f64).sum()),
            to_customers: t.to_customers,
            to_friends: t.to_friends,
            to_long_polling: audit.to_long_polling,
            to_ineligible: audit.to_ineligible,
            sent: c.sent,
            failed: c.failed,
            expired: c.expired,
            retried: c.retried,
            stalls: audit.nudges,
            unsettled: audit.unsettled.clone(),
            wakes: counter("push.woke_friend") + counter("push.woke_customer"),
            prompt: counter("push.prompt"),
            debounced: counter("push.debounced"),
            debounce_secs,
            to_cache_samples: latency.len(),
            to_cache_p50_ms: quantile(&latency, 0.5),
            to_cache_p99_ms: quantile(&latency, 0.99),
            gone_at_wake: counter("push.offer_gone_at_wake"),
            dead_tokens: t.dead_tokens,
            dead_tokens_pushed: t.dead_tokens_pushed,
            dead_answers: t.dead_answers,
            dead_removed: c.dead_tokens,
            dead_still_registered: audit.dead_still_registered,
        }
    }

    /// The section for people.
    pub(crate) fn write_text(&self, o: &mut String) {
        let p = self;
        let _ = writeln!(
            o,
            "\nPush (the backend's dispatcher → fake FCM and APNs on loopback; {} Android, {} iOS devices)",
            p.fcm_devices, p.apns_devices
        );
        let _ = writeln!(
            o,
            "  {} offer pushes for {} bookings: {:.1} per booking ({:.1} Friends learned of each, long-polling ones included) · to long-polling or ineligible Friends: {}",
            p.offer_pushes,
            p.bookings,
            p.per_booking,
            p.learned_per_booking,
            p.to_long_polling + p.to_ineligible
        );
        let _ = writeln!(
            o,
            "  job updates: {} to customers, {} to Friends · dispatcher: {} sent, {} failed, {} expired unsent, {} retried, {} stalls",
            p.to_customers, p.to_friends, p.sent, p.failed, p.expired, p.retried, p.stalls
        );
        let _ = writeln!(
            o,
            "  {} wakes (one sync each): {} pushes woke their phone at once, {} waited for its {}-minute debounce",
            p.wakes,
            p.prompt,
            p.debounced,
            p.debounce_secs / 60
        );
        let _ = writeln!(
            o,
            "  push → offer in cache (wall clock, gateway receipt → on_push done): {} offers · p50 {} · p99 {} · {} gone before the phone synced",
            p.to_cache_samples,
            ms(p.to_cache_p50_ms),
            ms(p.to_cache_p99_ms),
            p.gone_at_wake
        );
        let _ = writeln!(
            o,
            "  dead tokens: {} of {} pushed to, {} \"unregistered\" answers, {} removed by the backend, {} still registered",
            p.dead_tokens_pushed,
            p.dead_tokens,
            p.dead_answers,
            p.dead_removed,
            p.dead_still_registered
        );
        if let Some(why) = &p.unsettled {
            let _ = writeln!(o, "  not all pushes were answered at the end: {why}");
        }
    }
}
