//! The core's error type. One enum, each variant with a stable machine code; the FFI layer maps
//! these codes to what an app acts on. Messages are for developers and never contain personal data
//! or tokens.

use friend_protocol::{ErrorCode, Role};
use thiserror::Error;

/// Everything that can go wrong in the core.
#[derive(Debug, Error)]
pub enum CoreError {
    /// The backend could not be reached (or the answer was lost). `maybe_delivered` is true when
    /// the request may have reached the server before the failure (timeouts, dropped responses).
    #[error("offline: {message}")]
    Offline {
        /// What failed.
        message: String,
        /// Whether the server may have processed the request.
        maybe_delivered: bool,
    },
    /// The backend answered 5xx or is overloaded; retry later.
    #[error("server unavailable: {0}")]
    ServerUnavailable(String),
    /// The token was refused (401).
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The account may not do this (403).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The token belongs to an account of another role than the session's (a customer's token in
    /// a Friend session, or the reverse). Found out before anything else is sent, so nothing of
    /// that account is synced or cached.
    #[error(
        "wrong role: the token belongs to {}, not to {}",
        account_of(*actual),
        account_of(*expected)
    )]
    WrongRole {
        /// The session's role.
        expected: Role,
        /// The role the backend says the token has.
        actual: Role,
    },
    /// The access token cannot be sent as a bearer token (empty, whitespace, a line break, control
    /// or non-ASCII characters, too long). The message says what is wrong, never the token.
    #[error("invalid token: {0}")]
    InvalidToken(String),
    /// The job (or route) does not exist for this account (404).
    #[error("not found: {0}")]
    NotFound(String),
    /// The server refused the request with a typed reason.
    #[error("refused ({}): {message}", code.as_str())]
    Refused {
        /// The server's stable code.
        code: ErrorCode,
        /// The server's explanation.
        message: String,
    },
    /// The server's answer could not be understood.
    #[error("invalid response: {0}")]
    InvalidResponse(String),
    /// The backend URL is not acceptable (plain HTTP to a non-loopback host, or malformed).
    #[error("invalid backend url: {0}")]
    InvalidUrl(String),
    /// TLS could not be set up, or the server's key does not match a pin.
    #[error("tls: {0}")]
    Tls(String),
    /// The local database failed.
    #[error("storage: {0}")]
    Storage(String),
    /// The local database was written by a newer version of the library.
    #[error("cache schema {0} is newer than this library supports")]
    SchemaTooNew(i64),
    /// The data-encryption key does not open this database's encrypted fields.
    #[error("the data key does not match this database")]
    WrongKey,
    /// Stored data failed validation (the cache may be rebuilt from the server).
    #[error("corrupt cache: {0}")]
    Corrupt(String),
    /// The host app's secrets provider failed.
    #[error("secrets unavailable: {0}")]
    Secrets(String),
    /// An argument from the host app is invalid.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The item is not in the local cache.
    #[error("not in the cache: {0}")]
    NotCached(String),
    /// A quote breaks the shared quote rules (code from `friend_protocol::quote::QuoteError`).
    #[error("invalid quote ({code}): {message}")]
    InvalidQuote {
        /// The rule's stable code.
        code: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A consent payload failed verification (code from `friend_protocol::consent::ConsentError`):
    /// tampered, for another job, superseded, signed by the wrong key or party.
    #[error("invalid consent ({code}): {message}")]
    InvalidConsent {
        /// The check's stable code.
        code: &'static str,
        /// What failed.
        message: String,
    },
    /// The negotiation does not allow this step (code from `NegotiationError`), e.g. accepting
    /// one's own proposal or completing at a total that was not agreed.
    #[error("negotiation refused ({code}): {message}")]
    Negotiation {
        /// The rule's stable code.
        code: &'static str,
        /// Why.
        message: String,
    },
    /// The session was shut down.
    #[error("session closed")]
    Closed,
}

impl CoreError {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            CoreError::Offline { .. } => "offline",
            CoreError::ServerUnavailable(_) => "server_unavailable",
            CoreError::Unauthorized(_) => "unauthorized",
            CoreError::Forbidden(_) => "forbidden",
            CoreError::WrongRole { .. } => "wrong_role",
            CoreError::InvalidToken(_) => "invalid_token",
            CoreError::NotFound(_) => "not_found",
            CoreError::Refused { .. } => "refused",
            CoreError::InvalidResponse(_) => "invalid_response",
            CoreError::InvalidUrl(_) => "invalid_url",
            CoreError::Tls(_) => "tls",
            CoreError::Storage(_) => "storage",
            CoreError::SchemaTooNew(_) => "schema_too_new",
            CoreError::WrongKey => "wrong_key",
            CoreError::Corrupt(_) => "corrupt_cache",
            CoreError::Secrets(_) => "secrets_unavailable",
            CoreError::InvalidInput(_) => "invalid_input",
            CoreError::NotCached(_) => "not_cached",
            CoreError::InvalidQuote { .. } => "invalid_quote",
            CoreError::InvalidConsent { .. } => "invalid_consent",
            CoreError::Negotiation { .. } => "negotiation_refused",
            CoreError::Closed => "session_closed",
        }
    }

    /// Whether retrying the same request later may succeed (transport and server trouble), as
    /// opposed to a definite answer.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            CoreError::Offline { .. }
                | CoreError::ServerUnavailable(_)
                | CoreError::InvalidResponse(_)
        )
    }

    /// Whether the token is what failed (refused, of another role, malformed): nothing gets through
    /// with it, but queued work is kept for when the host app supplies a good one.
    pub fn is_token_problem(&self) -> bool {
        matches!(
            self,
            CoreError::Unauthorized(_) | CoreError::WrongRole { .. } | CoreError::InvalidToken(_)
        )
    }

    /// The error a refusal stored with an outbox item stands for: the server's code with its
    /// message, a `forbidden` staying [`CoreError::Forbidden`] (never a generic refusal).
    pub fn from_refusal(code: Option<&str>, message: String) -> CoreError {
        let code = code
            .and_then(|c| serde_json::from_value(serde_json::Value::String(c.to_owned())).ok())
            .unwrap_or(ErrorCode::Unknown);
        match code {
            ErrorCode::Forbidden => CoreError::Forbidden(message),
            ErrorCode::Unauthorized => CoreError::Unauthorized(message),
            ErrorCode::NotFound => CoreError::NotFound(message),
            code => CoreError::Refused { code, message },
        }
    }

    pub(crate) fn offline(message: impl Into<String>, maybe_delivered: bool) -> CoreError {
        CoreError::Offline {
            message: message.into(),
            maybe_delivered,
        }
    }
}

/// "a Friend account", "a customer account": how messages name a role.
pub fn account_of(role: Role) -> &'static str {
    match role {
        Role::Friend => "a Friend account",
        Role::Customer => "a customer account",
        Role::Unknown => "an account of a role this version does not know",
    }
}

impl From<rusqlite::Error> for CoreError {
    /// Only a damaged file is [`CoreError::Corrupt`] (the cache may then be rebuilt); busy,
    /// permission, disk full and every other failure stay [`CoreError::Storage`], an error the app
    /// sees — never a reason to move a healthy cache aside.
    fn from(e: rusqlite::Error) -> CoreError {
        use rusqlite::ffi::ErrorCode as Sqlite;
        match e.sqlite_error_code() {
            Some(Sqlite::DatabaseCorrupt | Sqlite::NotADatabase) => {
                CoreError::Corrupt(format!("database file: {e}"))
            }
            _ => CoreError::Storage(e.to_string()),
        }
    }
}

impl From<serde_json::Error> for CoreError {
    fn from(e: serde_json::Error) -> CoreError {
        CoreError::Corrupt(format!("stored JSON: {e}"))
    }
}

impl From<friend_protocol::quote::QuoteError> for CoreError {
    fn from(e: friend_protocol::quote::QuoteError) -> CoreError {
        CoreError::InvalidQuote {
            code: e.code(),
            message: e.to_string(),
        }
    }
}

impl From<friend_protocol::consent::ConsentError> for CoreError {
    fn from(e: friend_protocol::consent::ConsentError) -> CoreError {
        CoreError::InvalidConsent {
            code: e.code(),
            message: e.to_string(),
        }
    }
}

impl From<friend_protocol::negotiation::NegotiationError> for CoreError {
    fn from(e: friend_protocol::negotiation::NegotiationError) -> CoreError {
        CoreError::Negotiation {
            code: e.code(),
            message: e.to_string(),
        }
    }
}

/// Result with [`CoreError`].
pub type CoreResult<T> = Result<T, CoreError>;
