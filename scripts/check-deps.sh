#!/usr/bin/env bash
# The client library must build with rustls/ring only: no aws-lc, no OpenSSL — for the host and for
# the mobile targets (dependency resolution only; nothing is compiled for those targets here).
set -euo pipefail
cd "$(dirname "$0")/.."
for target in "" aarch64-linux-android armv7-linux-androideabi x86_64-linux-android aarch64-apple-ios aarch64-apple-ios-sim; do
  for crate in aws-lc-sys aws-lc-rs openssl-sys; do
    if cargo tree -p friend-core ${target:+--target $target} -i "$crate" >/dev/null 2>&1; then
      echo "friend-core depends on $crate${target:+ for $target}" >&2
      exit 1
    fi
  done
done
echo "dependency policy: ok (no aws-lc, no OpenSSL)"
