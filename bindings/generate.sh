#!/usr/bin/env bash
# Builds the FFI library and generates its Kotlin and Swift bindings in library mode with the
# workspace's pinned uniffi-bindgen (tools/uniffi-bindgen):
#
#   bash bindings/generate.sh             # debug library (host tests)
#   bash bindings/generate.sh --release   # phone build: size-tuned profile `mobile`, trimmed SQLite
#
# Output (git-ignored): bindings/generated/kotlin/ch/friendcore/friend_ffi.kt and
# bindings/generated/swift/{FriendCore.swift, FriendCoreFFI.h, FriendCoreFFI.modulemap}.
# The library is target/{debug,mobile}/libfriend_ffi.{so,dylib}. Generation reads the uniffi
# metadata from the unstripped library; strip copies only afterwards, for packaging.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=debug
cargo_flags=()
case "${1:-}" in
  --release)
    profile=mobile
    cargo_flags=(--profile mobile)
    # shellcheck source=bindings/mobile-env.sh
    source bindings/mobile-env.sh
    ;;
  "") ;;
  *) echo "usage: $0 [--release]" >&2; exit 2 ;;
esac

case "$(uname -s)" in
  Darwin) lib="target/$profile/libfriend_ffi.dylib" ;;
  *) lib="target/$profile/libfriend_ffi.so" ;;
esac

if [ "$profile" = debug ]; then
  # The same selection as `cargo test --workspace` (libs, bins, tests, examples), not
  # `-p friend-ffi -p uniffi-bindgen`: a different selection resolves dependency features
  # differently (single packages: hyper without `server`; no tests: no dev-dependency features),
  # which rebuilt hyper, reqwest, uniffi, the core and more next to the test build in CI.
  cargo build --locked --workspace --lib --bins --tests --examples
else
  cargo build --locked -p friend-ffi "${cargo_flags[@]}"
  # The generator is a one-shot host tool: a debug build is quicker to build than to run slowly.
  cargo build --locked -p uniffi-bindgen
fi

out=bindings/generated
rm -rf "$out/kotlin" "$out/swift"
target/debug/uniffi-bindgen generate "$lib" --language kotlin --out-dir "$out/kotlin"
target/debug/uniffi-bindgen generate "$lib" --language swift --out-dir "$out/swift"

# Fail loudly if either language produced nothing (CI relies on this for Swift, which cannot be
# compiled on Linux).
for f in "$out/kotlin/ch/friendcore/friend_ffi.kt" "$out/swift/FriendCore.swift" \
         "$out/swift/FriendCoreFFI.h" "$out/swift/FriendCoreFFI.modulemap"; do
  if [ ! -s "$f" ]; then
    echo "generate.sh: expected $f was not generated" >&2
    ls -R "$out" >&2
    exit 1
  fi
done
echo "generated Kotlin and Swift bindings from $lib into $out/"
