//! `friend-ffi`: FriendCore for Kotlin and Swift through uniffi (proc-macros only).
//!
//! This crate holds no business logic. It owns what only a foreign-language boundary needs:
//!
//! - `rt`: the tokio runtime every async export runs on, and cancellation by abort;
//! - [`error`]: one error enum, [`FriendCoreError`], with stable codes; the only mapping from
//!   `friend_core::CoreError`;
//! - [`types`], [`config`], [`status`]: records and enums mirroring the core and protocol types
//!   (those crates stay free of uniffi);
//! - [`secrets`], [`listeners`], [`logging`]: the foreign traits the app implements (keystore,
//!   change listeners, log sink) and their adapters, which contain foreign failures;
//! - [`negotiation`]: the price negotiation as a device knows it, shared by both roles;
//! - [`session`]: [`Session`], the calls both roles share (sync, outbox, negotiation answers,
//!   status, listeners, shutdown), written once over `friend_core::Session`;
//! - [`friend`]: [`FriendSession`], the object a Friend's app holds: the Friend's own calls and
//!   its `session()`;
//! - [`customer`]: [`CustomerSession`], the object a customer's app holds: the customer's own
//!   calls and its `session()`.
//!
//! Generate the bindings with `bash bindings/generate.sh` (see the README's Bindings section).

uniffi::setup_scaffolding!();

pub mod config;
pub mod customer;
pub mod error;
pub mod friend;
pub mod listeners;
pub mod logging;
pub mod negotiation;
mod rt;
pub mod secrets;
pub mod session;
pub mod status;
pub mod types;

pub use config::SessionConfig;
pub use customer::CustomerSession;
pub use error::FriendCoreError;
pub use friend::FriendSession;
pub use session::Session;

/// The version of the FriendCore library (for logs and bug reports).
#[uniffi::export]
pub fn library_version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Every source file of this crate without comments, with its unit tests cut off.
    fn sources() -> Vec<(String, String)> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                let code = match text.find("#[cfg(test)]\nmod tests") {
                    Some(i) => &text[..i],
                    None => &text,
                };
                let code: Vec<&str> = code
                    .lines()
                    .filter(|l| !l.trim_start().starts_with("//"))
                    .collect();
                out.push((path.display().to_string(), code.join("\n")));
            }
        }
        assert!(out.len() >= 8, "found the sources");
        out
    }

    /// uniffi runs an exported future on the caller's thread, with no tokio reactor: work that
    /// needs one fails only at run time ("there is no reactor running"). So every `async fn` of the
    /// crate must hand its work to the owned runtime (`rt::run`, or a helper whose own body starts
    /// with it: `Session`'s `self.run`, the role objects' `self.account.run` and `Account::open`)
    /// before anything else is awaited.
    #[test]
    fn every_async_export_runs_on_the_owned_runtime() {
        let mut checked = 0;
        for (file, code) in sources() {
            let mut rest = code.as_str();
            while let Some(i) = rest.find("async fn ") {
                let after = &rest[i..];
                let name: String = after["async fn ".len()..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                let open = after.find('{').unwrap();
                // Without whitespace: rustfmt may break `self.account.run(` across lines.
                let body: String = after[open..].split_whitespace().collect();
                let handed_off = [
                    "rt::run(",
                    "self.run(",
                    "self.account.run(",
                    "Account::open(",
                ]
                .iter()
                .filter_map(|call| body.find(call))
                .min();
                let first_await = body.find(".await");
                let ok = file.ends_with("rt.rs") && name == "run"
                    || matches!((handed_off, first_await), (Some(h), Some(a)) if h < a);
                assert!(
                    ok,
                    "{file}: `async fn {name}` must start with rt::run(…) or a helper calling it"
                );
                checked += 1;
                rest = &after[open..];
            }
        }
        assert!(checked >= 15, "only {checked} async fns found");
    }

    /// Our own code needs no `unsafe` (uniffi's generated scaffolding is the only unsafe code).
    #[test]
    fn no_unsafe_code_of_our_own() {
        for (file, code) in sources() {
            assert!(!code.contains("unsafe"), "{file} contains unsafe code");
        }
    }

    /// Also no `#[uniffi::export(async_runtime …)]`: it would poll on async-compat's runtime
    /// instead of ours (one more thread, and work on the caller's thread).
    #[test]
    fn no_second_runtime() {
        for (file, code) in sources() {
            assert!(!code.contains("async_runtime"), "{file}");
        }
    }
}
