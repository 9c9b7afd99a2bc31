//! Secrets come from the host app (platform keystore), per use: the core never stores the access
//! token, and the data-encryption key only lives in memory while a session is open.

use crate::error::{CoreError, CoreResult};
use crate::session::SessionConfig;
use friend_protocol::Role;

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

/// The longest token sent: far above any token the backend issues, far below header limits.
pub const MAX_TOKEN_BYTES: usize = 4096;

/// Checks that `token` can be sent as a bearer token: not empty, at most [`MAX_TOKEN_BYTES`], and
/// only visible ASCII (no whitespace, line breaks, control or non-ASCII characters). Nothing is
/// trimmed: a token copied with a trailing newline is a mistake to report, not to guess around.
/// The error ([`CoreError::InvalidToken`]) says what is wrong and where, never the token.
pub fn check_token(token: &str) -> CoreResult<()> {
    let problem = if token.is_empty() {
        Some("it is empty".to_owned())
    } else if token.len() > MAX_TOKEN_BYTES {
        Some(format!(
            "it is {} bytes long (at most {MAX_TOKEN_BYTES})",
            token.len()
        ))
    } else {
        let last = token.chars().count();
        token.chars().enumerate().find_map(|(i, c)| {
            let at = i + 1;
            match c {
                '\n' | '\r' if at == last => {
                    Some(format!("it ends with a line break (character {at})"))
                }
                '\n' | '\r' => Some(format!("it contains a line break at character {at}")),
                c if c.is_whitespace() => Some(format!(
                    "it contains whitespace (U+{:04X}) at character {at}",
                    u32::from(c)
                )),
                c if c.is_control() => Some(format!(
                    "it contains the control character U+{:04X} at character {at}",
                    u32::from(c)
                )),
                c if !c.is_ascii() => Some(format!(
                    "it contains a non-ASCII character at character {at}"
                )),
                _ => None,
            }
        })
    };
    match problem {
        Some(p) => Err(CoreError::InvalidToken(p)),
        None => Ok(()),
    }
}

/// What a session constructor does before anything is opened: checks the token's form (so a
/// malformed one is a typed error at once, not a transport failure later) and makes every request
/// wait until the backend confirmed the token is of `role`.
pub(crate) fn session_for_role(
    mut config: SessionConfig,
    secrets: &dyn SecretsProvider,
    role: Role,
) -> CoreResult<SessionConfig> {
    // A provider that cannot answer yet (signed out, keystore locked) does not keep the cache from
    // opening: every request asks it again and fails on its own.
    if let Ok(token) = secrets.access_token() {
        check_token(&token)?;
    }
    config.api.role = Some(role);
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(token: &str) -> String {
        match check_token(token) {
            Err(CoreError::InvalidToken(p)) => p,
            other => panic!("{token:?}: {other:?}"),
        }
    }

    #[test]
    fn well_formed_tokens_pass() {
        for t in [
            "dev-friend-anna",
            "fc_PPO9BIIyVwMPVZ7p_DeOvnH3i_giLiJpdcLP1Zi3gqY",
            "a.b~c+/=",
        ] {
            assert!(check_token(t).is_ok(), "{t}");
        }
        assert!(check_token(&"x".repeat(MAX_TOKEN_BYTES)).is_ok());
    }

    #[test]
    fn each_malformation_is_named_without_the_token() {
        assert_eq!(problem(""), "it is empty");
        assert!(problem(&"x".repeat(MAX_TOKEN_BYTES + 1)).contains("at most"));
        assert_eq!(
            problem("dev-friend\nanna"),
            "it contains a line break at character 11"
        );
        assert_eq!(
            problem("dev-friend-anna\n"),
            "it ends with a line break (character 16)"
        );
        assert_eq!(
            problem("dev-friend-anna\r\n"),
            "it contains a line break at character 16"
        );
        assert!(problem(" dev-friend-anna").contains("whitespace (U+0020) at character 1"));
        assert!(problem("dev friend").contains("whitespace"));
        assert!(problem("dev\tfriend").contains("whitespace (U+0009)"));
        assert!(problem("dev\u{1}friend").contains("control character U+0001 at character 4"));
        assert!(problem("dev\u{7f}").contains("control character U+007F"));
        assert!(problem("dév").contains("non-ASCII character at character 2"));
        assert!(!problem("secret\n").contains("secret"));
    }
}
