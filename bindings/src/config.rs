//! [`SessionConfig`]: where a session keeps its database and how it reaches the backend. Shared by
//! every session kind. The app chooses the path (one database per account, in its private storage);
//! the core never guesses platform paths.

use crate::error::FriendCoreError;
use std::time::Duration;

/// Where a session keeps its data and how it reaches the backend.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SessionConfig {
    /// The account's database file (created when missing), e.g. in the app's files directory.
    pub db_path: String,
    /// The backend, e.g. `https://api.example.ch`. Plain `http://` only to loopback hosts.
    pub base_url: String,
    /// Optional base64 SHA-256 pins of the backend's public key (SPKI); empty: the bundled roots
    /// alone decide.
    #[uniffi(default = [])]
    pub pins: Vec<String>,
    /// TCP + TLS connect timeout, ms.
    #[uniffi(default = 5000)]
    pub connect_timeout_ms: u32,
    /// Timeout of one ordinary request, ms.
    #[uniffi(default = 15000)]
    pub request_timeout_ms: u32,
    /// Most changes per sync page (1…1000).
    #[uniffi(default = 500)]
    pub sync_page_limit: u32,
}

impl TryFrom<SessionConfig> for friend_core::SessionConfig {
    type Error = FriendCoreError;
    fn try_from(c: SessionConfig) -> Result<friend_core::SessionConfig, FriendCoreError> {
        if c.db_path.trim().is_empty() {
            return Err(FriendCoreError::invalid_input("db_path is empty"));
        }
        if c.connect_timeout_ms == 0 || c.request_timeout_ms == 0 {
            return Err(FriendCoreError::invalid_input("timeouts must be positive"));
        }
        let mut config = friend_core::SessionConfig::new(c.db_path, c.base_url);
        config.api.pins = c.pins;
        config.api.connect_timeout = Duration::from_millis(c.connect_timeout_ms.into());
        config.api.request_timeout = Duration::from_millis(c.request_timeout_ms.into());
        config.sync_page_limit = c.sync_page_limit;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The record's declared defaults are the core's defaults.
    #[test]
    fn defaults_match_the_core() {
        let core = friend_core::SessionConfig::new("a.db", "http://127.0.0.1:1");
        let ffi = SessionConfig {
            db_path: "a.db".into(),
            base_url: "http://127.0.0.1:1".into(),
            pins: vec![],
            connect_timeout_ms: 5000,
            request_timeout_ms: 15000,
            sync_page_limit: 500,
        };
        let converted = friend_core::SessionConfig::try_from(ffi).unwrap();
        assert_eq!(converted.api.connect_timeout, core.api.connect_timeout);
        assert_eq!(converted.api.request_timeout, core.api.request_timeout);
        assert_eq!(converted.sync_page_limit, core.sync_page_limit);
        assert_eq!(converted.api.pins, core.api.pins);
    }
}
