//! The workspace's pinned `uniffi-bindgen`. Run through `bindings/generate.sh`, which builds the FFI
//! library first and then calls `uniffi-bindgen generate --library …` for Kotlin and Swift. Pinning
//! it here (instead of a globally installed binary) keeps the generator and the scaffolding compiled
//! into the library on the same uniffi version.

fn main() {
    uniffi::uniffi_bindgen_main()
}
