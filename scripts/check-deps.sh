#!/usr/bin/env bash
# The client library must build with rustls/ring only: no aws-lc, no OpenSSL — for the host and for
# the mobile targets (dependency resolution only; nothing is compiled for those targets here). The
# phone library also stays without HTTP/2 (h2): only the backend's push clients need it, and it
# would cost the phone library size (P6).
set -euo pipefail
cd "$(dirname "$0")/.."
for target in "" aarch64-linux-android armv7-linux-androideabi x86_64-linux-android aarch64-apple-ios aarch64-apple-ios-sim; do
  for crate in aws-lc-sys aws-lc-rs openssl-sys h2; do
    for package in friend-core friend-ffi; do
      if cargo tree -p "$package" ${target:+--target $target} -i "$crate" >/dev/null 2>&1; then
        echo "$package depends on $crate${target:+ for $target}" >&2
        exit 1
      fi
    done
  done
done
echo "dependency policy: ok (no aws-lc, no OpenSSL; no HTTP/2 in the phone library)"
