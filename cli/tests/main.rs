#![allow(clippy::unwrap_used, clippy::expect_used)]

//! friendctl's tests: the simulation's invariants at small scale (in-process), a smoke test of
//! the built binary (serve + friend + customer over loopback), and the binary with a token of the
//! other role or a malformed one, and the admin commands.

mod admin;
mod simulate;
mod smoke;
mod tokens;
