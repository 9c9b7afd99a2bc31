#!/usr/bin/env bash
# Runs every test of the project: unit, property and end-to-end suites of the Rust workspace, then
# the host JVM tests of the Kotlin bindings (android/jvm-tests: generated Kotlin + JNA against the
# debug libfriend_ffi.so, talking to a friend-backend the tests start).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${FRIEND_PG_BIN:-}" ] && ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  echo "scripts/test.sh: the PostgreSQL suites start a throwaway server and need its binaries:" >&2
  echo "  apt-get install -y postgresql   (or set FRIEND_PG_BIN; .ci/run installs it)" >&2
  exit 1
fi
cargo test --workspace --locked
# The end-to-end behaviour suite once more on PostgreSQL: every backend it starts gets a fresh
# database on the test binary's own throwaway server (tests/src/pg.rs).
FRIEND_TEST_DB=postgres cargo test --locked -p friend-tests --test main -- --skip pg_

if ! command -v mvn >/dev/null 2>&1 || ! command -v java >/dev/null 2>&1; then
  echo "scripts/test.sh: the Kotlin binding tests need a JDK (17+) and Maven:" >&2
  echo "  apt-get install -y openjdk-17-jdk-headless maven   (or run .ci/run, which installs them)" >&2
  exit 1
fi
# Builds the whole workspace (the FFI library, the generator, the backend the JVM tests start).
bash bindings/generate.sh
mvn -B -ntp -f android/jvm-tests/pom.xml test
