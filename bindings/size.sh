#!/usr/bin/env bash
# Measures SPEC P6: builds the phone library as the packaging scripts do (profile `mobile` with
# bindings/mobile-env.sh), strips a copy and prints its size in bytes on the last line.
#
#   bash bindings/size.sh            # prints e.g. "stripped libfriend_ffi.so: 4845504 bytes"
#   bash bindings/size.sh --check    # also fails when it exceeds 5,000,000 bytes
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bindings/mobile-env.sh
source bindings/mobile-env.sh
cargo build --locked -p friend-ffi --profile mobile
lib=target/mobile/libfriend_ffi.so
stripped="$(mktemp -d)/libfriend_ffi.so"
cp "$lib" "$stripped"
strip "$stripped"
bytes=$(stat -c %s "$stripped")
rm -r "$(dirname "$stripped")"
echo "stripped libfriend_ffi.so: $bytes bytes"
if [ "${1:-}" = --check ] && [ "$bytes" -gt 5000000 ]; then
  echo "size.sh: over the 5 MB budget (SPEC P6)" >&2
  exit 1
fi
