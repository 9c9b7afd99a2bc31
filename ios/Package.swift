// swift-tools-version:5.9
// FriendCore for iOS (and macOS, for host tests): the Rust library as a binary xcframework, the
// uniffi-generated Swift API plus a thin async layer in the `FriendCore` target, and XCTest tests.
// Build the xcframework and copy the generated Swift first: `bash ios/build-xcframework.sh`.
import PackageDescription

let package = Package(
    name: "FriendCore",
    platforms: [.iOS(.v15), .macOS(.v12)],
    products: [
        .library(name: "FriendCore", targets: ["FriendCore"]),
    ],
    targets: [
        // Static libfriend_ffi.a per platform + FriendCoreFFI.h + module.modulemap (module FriendCoreFFI).
        .binaryTarget(name: "FriendCoreFFI", path: "FriendCoreFFI.xcframework"),
        // Generated/FriendCore.swift (uniffi, not committed) + FriendSession+Async.swift.
        .target(
            name: "FriendCore",
            dependencies: ["FriendCoreFFI"],
            path: "Sources/FriendCore"
        ),
        .testTarget(
            name: "FriendCoreTests",
            dependencies: ["FriendCore"],
            path: "Tests/FriendCoreTests"
        ),
    ]
)
