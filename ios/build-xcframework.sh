#!/usr/bin/env bash
# Builds FriendCoreFFI.xcframework (static libfriend_ffi.a for iOS devices, the iOS simulator and
# macOS — the macOS slice runs `swift test` on the Mac) with the size profile `mobile`, and copies
# the generated Swift API into Sources/FriendCore/Generated/. macOS with Xcode only:
#
#   rustup target add aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios \
#                     aarch64-apple-darwin x86_64-apple-darwin
#   bash ios/build-xcframework.sh
#   cd ios && swift test          # needs target/debug/friend-backend: cargo build -p friend-backend
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=../bindings/mobile-env.sh
source bindings/mobile-env.sh

if [ "$(uname -s)" != Darwin ] || ! command -v xcodebuild >/dev/null 2>&1; then
  echo "build-xcframework.sh: needs macOS with Xcode (xcodebuild, lipo)" >&2
  exit 1
fi

targets=(aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios aarch64-apple-darwin x86_64-apple-darwin)
for t in "${targets[@]}"; do
  cargo build --locked -p friend-ffi --profile mobile --target "$t"
done

# Swift API, C header and module map, generated (library mode) from the host's unstripped library.
env -u LIBSQLITE3_FLAGS bash bindings/generate.sh   # host debug build, as the host tests use

work=target/xcframework
rm -rf "$work" ios/FriendCoreFFI.xcframework
mkdir -p "$work/headers" "$work/ios-simulator" "$work/macos"
cp bindings/generated/swift/FriendCoreFFI.h "$work/headers/"
# An xcframework's headers directory must call its module map module.modulemap.
cp bindings/generated/swift/FriendCoreFFI.modulemap "$work/headers/module.modulemap"

lib() { echo "target/$1/mobile/libfriend_ffi.a"; }
lipo -create "$(lib aarch64-apple-ios-sim)" "$(lib x86_64-apple-ios)" -output "$work/ios-simulator/libfriend_ffi.a"
lipo -create "$(lib aarch64-apple-darwin)" "$(lib x86_64-apple-darwin)" -output "$work/macos/libfriend_ffi.a"

xcodebuild -create-xcframework \
  -library "$(lib aarch64-apple-ios)" -headers "$work/headers" \
  -library "$work/ios-simulator/libfriend_ffi.a" -headers "$work/headers" \
  -library "$work/macos/libfriend_ffi.a" -headers "$work/headers" \
  -output ios/FriendCoreFFI.xcframework

mkdir -p ios/Sources/FriendCore/Generated
cp bindings/generated/swift/FriendCore.swift ios/Sources/FriendCore/Generated/FriendCore.swift
echo "built ios/FriendCoreFFI.xcframework and ios/Sources/FriendCore/Generated/FriendCore.swift"
