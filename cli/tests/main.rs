#![allow(clippy::unwrap_used, clippy::expect_used)]

//! friendctl's tests: the simulation's invariants at small scale (in-process) and a smoke test of
//! the built binary (serve + friend + customer over loopback).

mod simulate;
mod smoke;
