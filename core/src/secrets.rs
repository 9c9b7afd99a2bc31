//! Secrets come from the host app (platform keystore), per use: the core never stores the access
//! token, and the data-encryption key only lives in memory while a session is open.

use crate::error::CoreError;

/// Supplies the access token and the data-encryption key.
pub trait SecretsProvider: Send + Sync {
    /// The current bearer token for the backend. Called for every request, so a refreshed token
    /// takes effect at once.
    fn access_token(&self) -> Result<String, CoreError>;
    /// The 32-byte AES-256 key that encrypts personal data in the local database.
    fn data_key(&self) -> Result<Vec<u8>, CoreError>;
}

/// Fixed secrets, for tests, the CLI and simulations.
pub struct StaticSecrets {
    token: String,
    key: Vec<u8>,
}

impl StaticSecrets {
    /// Secrets from a token and a key.
    pub fn new(token: impl Into<String>, key: [u8; 32]) -> StaticSecrets {
        StaticSecrets {
            token: token.into(),
            key: key.to_vec(),
        }
    }
}

impl SecretsProvider for StaticSecrets {
    fn access_token(&self) -> Result<String, CoreError> {
        Ok(self.token.clone())
    }

    fn data_key(&self) -> Result<Vec<u8>, CoreError> {
        Ok(self.key.clone())
    }
}
