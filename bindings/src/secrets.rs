//! The host app's secrets provider (platform keystore) as a foreign trait, and its adapter to the
//! core's trait. The core asks for the token on every request (so a refreshed token takes effect at
//! once) and for the data key when a session opens; neither is stored or logged.

use crate::error::FriendCoreError;
use friend_core::CoreError;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

/// Supplies the access token and the data-encryption key, implemented by the app (Android Keystore,
/// iOS Keychain). Called on FriendCore's own threads: answer quickly (cache the values in memory).
#[uniffi::export(foreign)]
pub trait SecretsProvider: Send + Sync {
    /// The current bearer token for the backend. Throw `FriendCoreError.Unauthorized` when signed
    /// out; anything else thrown is reported as `secrets_unavailable`.
    fn access_token(&self) -> Result<String, FriendCoreError>;
    /// The 32-byte AES-256 key that encrypts personal data in this account's database. It must stay
    /// the same for the life of the database (a different key gives `wrong_key`).
    fn data_key(&self) -> Result<Vec<u8>, FriendCoreError>;
}

/// Adapts the foreign provider to the core's trait.
pub(crate) struct ForeignSecrets(pub Arc<dyn SecretsProvider>);

impl friend_core::SecretsProvider for ForeignSecrets {
    fn access_token(&self) -> Result<String, CoreError> {
        ask(|| self.0.access_token())
    }

    fn data_key(&self) -> Result<Vec<u8>, CoreError> {
        ask(|| self.0.data_key())
    }
}

fn ask<T>(f: impl FnOnce() -> Result<T, FriendCoreError>) -> Result<T, CoreError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(FriendCoreError::Unauthorized { detail })) => Err(CoreError::Unauthorized(detail)),
        Ok(Err(e)) => Err(CoreError::Secrets(e.to_string())),
        Err(_) => Err(CoreError::Secrets("the secrets provider failed".into())),
    }
}
