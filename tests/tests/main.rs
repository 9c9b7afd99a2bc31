//! FriendCore end-to-end scenarios: one test binary (fast to build and run), real HTTP over
//! loopback against the reference backend started in-process.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod backend_accept_lookup;
mod backend_access;
mod backend_admin;
mod backend_drain;
mod backend_h2c;
mod backend_input;
mod backend_metrics;
mod backend_negotiation;
mod backend_race;
mod backend_serial_writes;
mod backend_sync;
mod backend_visit;
mod core_accept;
mod core_crash;
mod core_identity;
mod core_negotiation;
mod core_outbox;
mod core_privacy;
mod core_sync;
mod core_visit;
mod pg_change_log;
mod pg_instances;
mod pg_lease;
mod pg_retry;
mod pg_wakeups;
mod push_delivery;
mod push_registration;
