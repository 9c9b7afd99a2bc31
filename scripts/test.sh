#!/usr/bin/env bash
# Runs every test of the project: unit, property and end-to-end suites of the Rust workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --locked
