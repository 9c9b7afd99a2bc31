#!/usr/bin/env bash
# Builds libfriend_ffi.so for arm64-v8a, armeabi-v7a and x86_64 with cargo-ndk (size profile
# `mobile`, 16 KB page alignment) into android/src/main/jniLibs/<abi>/, and generates the Kotlin
# bindings the module compiles (bindings/generated/kotlin). Then: `cd android && gradle assembleRelease`.
#
# Needs: the Android NDK r27+ (ANDROID_NDK_HOME), `cargo install cargo-ndk`, and
# `rustup target add aarch64-linux-android armv7-linux-androideabi x86_64-linux-android`.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=../bindings/mobile-env.sh
source bindings/mobile-env.sh

: "${ANDROID_NDK_HOME:?set ANDROID_NDK_HOME to an Android NDK (r27 or newer)}"
if ! cargo ndk --version >/dev/null 2>&1; then
  echo "build-jnilibs.sh: cargo-ndk is missing: cargo install cargo-ndk" >&2
  exit 1
fi

# Android 15+ devices may use 16 KB memory pages: align the ELF load segments to 16 KB (NDK r28
# does this by default; r27 needs the flag). Relocations are packed (Android's format, API >= 23),
# which saves ~240 KB per library. Target-specific, so host build scripts are untouched.
flags="-C link-arg=-Wl,-z,max-page-size=16384 -C link-arg=-Wl,--pack-dyn-relocs=android"
export CARGO_TARGET_AARCH64_LINUX_ANDROID_RUSTFLAGS="$flags"
export CARGO_TARGET_ARMV7_LINUX_ANDROIDEABI_RUSTFLAGS="$flags"
export CARGO_TARGET_X86_64_LINUX_ANDROID_RUSTFLAGS="$flags"

# minSdk 24 (android/build.gradle.kts). cargo-ndk copies each library to jniLibs/<abi>/ and strips
# it there; the unstripped ones stay in target/<triple>/mobile/.
cargo ndk --platform 24 -t arm64-v8a -t armeabi-v7a -t x86_64 -o android/src/main/jniLibs \
  build --locked -p friend-ffi --profile mobile

# The Kotlin API is the same for every platform; generate it from the host library.
env -u LIBSQLITE3_FLAGS bash bindings/generate.sh   # host debug build, as the host tests use

ls -l android/src/main/jniLibs/*/libfriend_ffi.so
