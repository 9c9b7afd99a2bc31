//! The one error type apps see. Its variants are what an app does something different about; each
//! has a stable [`FriendCoreError::code`] to branch on (never the detail text, which is for logs and
//! developers, and never contains personal data or tokens). The conversion from the core's rich
//! [`CoreError`] is written once, here.
//!
//! Race outcomes (taken, gone, not eligible) are not errors: `accept` returns them as an
//! `AcceptResult`, because losing a race is a normal answer.

use friend_core::CoreError;

/// Why a FriendCore call failed. In Kotlin a `FriendCoreException` subclass, in Swift a thrown enum.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum FriendCoreError {
    /// The backend could not be reached (or the answer was lost). Reads still work from the cache;
    /// queued actions are delivered when connectivity returns.
    #[error("offline: {detail}")]
    Offline {
        /// What failed.
        detail: String,
    },
    /// The backend is overloaded, failing (5xx) or answered something this version cannot read.
    /// Retry later.
    #[error("server unavailable: {detail}")]
    ServerUnavailable {
        /// What failed.
        detail: String,
    },
    /// The access token was refused, belongs to an account of the other role (a customer's token in
    /// a `FriendSession`, or the reverse), or is malformed (empty, whitespace, a line break, control
    /// characters): refresh it (or sign in again) and retry.
    #[error("unauthorized: {detail}")]
    Unauthorized {
        /// What failed.
        detail: String,
    },
    /// The job does not exist for this account, or is not in the local cache.
    #[error("not found: {detail}")]
    NotFound {
        /// What was looked for.
        detail: String,
    },
    /// The server (or the local state machine) refused the action: e.g. the job's state does not
    /// allow it (`reason` = `invalid_transition`), it is not assigned to you, or the account's role
    /// may not do this (`forbidden`).
    #[error("refused ({reason}): {detail}")]
    Refused {
        /// The server's stable refusal code (`friend_protocol::ErrorCode` wire name).
        reason: String,
        /// The explanation.
        detail: String,
    },
    /// A proposed quote breaks a guardrail (currency, bounds, missing reason for a deviation).
    /// Raised by the negotiation calls.
    #[error("invalid quote ({reason}): {detail}")]
    InvalidQuote {
        /// The rule's stable code.
        reason: String,
        /// The explanation.
        detail: String,
    },
    /// A consent payload (handed over device to device) failed verification: tampered, for another
    /// job, superseded, or signed by the wrong key or party. Ask for a fresh one.
    #[error("invalid consent ({reason}): {detail}")]
    InvalidConsent {
        /// The check's stable code.
        reason: String,
        /// The explanation.
        detail: String,
    },
    /// The local database failed, is corrupt or was written by a newer version. The cache may be
    /// deleted and rebuilt from the server (only unsent outbox items would be lost).
    #[error("storage: {detail}")]
    Storage {
        /// What failed.
        detail: String,
    },
    /// The data key does not open this database: the keystore lost or changed the key. Delete the
    /// database file and sync again.
    #[error("the data key does not match this database")]
    WrongKey,
    /// The host app's secrets provider failed (e.g. the keystore is locked).
    #[error("secrets unavailable: {detail}")]
    SecretsUnavailable {
        /// What failed.
        detail: String,
    },
    /// An argument is invalid (a malformed id, a radius out of range, a bad key length, …).
    #[error("invalid input: {detail}")]
    InvalidInput {
        /// Which argument and why.
        detail: String,
    },
    /// The backend URL is not acceptable: malformed, or plain `http://` to a non-loopback host.
    #[error("invalid backend url: {detail}")]
    InvalidUrl {
        /// Why.
        detail: String,
    },
    /// TLS failed: the certificate is not trusted or the server key does not match a pin. Do not
    /// retry blindly (captive portal or interception).
    #[error("tls: {detail}")]
    Tls {
        /// Why.
        detail: String,
    },
    /// The session was shut down or closed.
    #[error("session closed")]
    Closed,
    /// Anything else (an internal fault). Report it.
    #[error("{detail}")]
    Other {
        /// What failed.
        detail: String,
    },
}

#[uniffi::export]
impl FriendCoreError {
    /// Stable machine code of the error, e.g. `offline`, `wrong_key`, `invalid_url`.
    pub fn code(&self) -> String {
        self.code_str().to_owned()
    }

    /// Human-readable description for logs (English; no personal data).
    pub fn describe(&self) -> String {
        self.to_string()
    }
}

impl FriendCoreError {
    pub(crate) fn code_str(&self) -> &'static str {
        match self {
            FriendCoreError::Offline { .. } => "offline",
            FriendCoreError::ServerUnavailable { .. } => "server_unavailable",
            FriendCoreError::Unauthorized { .. } => "unauthorized",
            FriendCoreError::NotFound { .. } => "not_found",
            FriendCoreError::Refused { .. } => "refused",
            FriendCoreError::InvalidQuote { .. } => "invalid_quote",
            FriendCoreError::InvalidConsent { .. } => "invalid_consent",
            FriendCoreError::Storage { .. } => "storage",
            FriendCoreError::WrongKey => "wrong_key",
            FriendCoreError::SecretsUnavailable { .. } => "secrets_unavailable",
            FriendCoreError::InvalidInput { .. } => "invalid_input",
            FriendCoreError::InvalidUrl { .. } => "invalid_url",
            FriendCoreError::Tls { .. } => "tls",
            FriendCoreError::Closed => "session_closed",
            FriendCoreError::Other { .. } => "other",
        }
    }

    pub(crate) fn invalid_input(detail: impl Into<String>) -> FriendCoreError {
        FriendCoreError::InvalidInput {
            detail: detail.into(),
        }
    }
}

impl From<CoreError> for FriendCoreError {
    fn from(e: CoreError) -> FriendCoreError {
        let detail = e.to_string();
        match e {
            CoreError::Offline { .. } => FriendCoreError::Offline { detail },
            CoreError::ServerUnavailable(_) | CoreError::InvalidResponse(_) => {
                FriendCoreError::ServerUnavailable { detail }
            }
            // A token of the other role or a malformed one: the app needs another token too.
            CoreError::Unauthorized(_)
            | CoreError::WrongRole { .. }
            | CoreError::InvalidToken(_) => FriendCoreError::Unauthorized { detail },
            CoreError::Forbidden(_) => FriendCoreError::Refused {
                reason: "forbidden".into(),
                detail,
            },
            CoreError::NotFound(_) | CoreError::NotCached(_) => {
                FriendCoreError::NotFound { detail }
            }
            CoreError::Refused { code, .. } => FriendCoreError::Refused {
                reason: code.as_str().into(),
                detail,
            },
            CoreError::Negotiation { code, .. } => FriendCoreError::Refused {
                reason: code.into(),
                detail,
            },
            CoreError::InvalidQuote { code, .. } => FriendCoreError::InvalidQuote {
                reason: code.into(),
                detail,
            },
            CoreError::InvalidConsent { code, .. } => FriendCoreError::InvalidConsent {
                reason: code.into(),
                detail,
            },
            CoreError::InvalidUrl(_) => FriendCoreError::InvalidUrl { detail },
            CoreError::Tls(_) => FriendCoreError::Tls { detail },
            CoreError::Storage(_) | CoreError::SchemaTooNew(_) | CoreError::Corrupt(_) => {
                FriendCoreError::Storage { detail }
            }
            CoreError::WrongKey => FriendCoreError::WrongKey,
            CoreError::Secrets(_) => FriendCoreError::SecretsUnavailable { detail },
            CoreError::InvalidInput(_) => FriendCoreError::InvalidInput { detail },
            CoreError::Closed => FriendCoreError::Closed,
        }
    }
}

/// The FFI code for a core error code, for places that only kept the code (the sync status).
/// Agrees with `From<CoreError>` (a test checks every variant).
pub(crate) fn core_code_to_ffi(core_code: &str) -> &'static str {
    match core_code {
        "offline" => "offline",
        "server_unavailable" | "invalid_response" => "server_unavailable",
        "unauthorized" | "wrong_role" | "invalid_token" => "unauthorized",
        "forbidden" | "refused" | "negotiation_refused" => "refused",
        "invalid_quote" => "invalid_quote",
        "invalid_consent" => "invalid_consent",
        "not_found" | "not_cached" => "not_found",
        "invalid_url" => "invalid_url",
        "tls" => "tls",
        "storage" | "schema_too_new" | "corrupt_cache" => "storage",
        "wrong_key" => "wrong_key",
        "secrets_unavailable" => "secrets_unavailable",
        "invalid_input" => "invalid_input",
        "session_closed" => "session_closed",
        _ => "other",
    }
}

/// A foreign callback (secrets provider) threw something that is not a `FriendCoreError`.
impl From<uniffi::UnexpectedUniFFICallbackError> for FriendCoreError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> FriendCoreError {
        FriendCoreError::SecretsUnavailable { detail: e.reason }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use friend_protocol::ErrorCode;

    #[test]
    fn core_errors_map_to_what_the_app_acts_on() {
        let cases = [
            (
                CoreError::Offline {
                    message: "x".into(),
                    maybe_delivered: false,
                },
                "offline",
            ),
            (
                CoreError::ServerUnavailable("x".into()),
                "server_unavailable",
            ),
            (CoreError::InvalidResponse("x".into()), "server_unavailable"),
            (CoreError::Unauthorized("x".into()), "unauthorized"),
            (
                CoreError::WrongRole {
                    expected: friend_protocol::Role::Friend,
                    actual: friend_protocol::Role::Customer,
                },
                "unauthorized",
            ),
            (CoreError::InvalidToken("x".into()), "unauthorized"),
            (CoreError::Forbidden("x".into()), "refused"),
            (CoreError::NotFound("x".into()), "not_found"),
            (CoreError::NotCached("x".into()), "not_found"),
            (
                CoreError::Refused {
                    code: ErrorCode::InvalidTransition,
                    message: "x".into(),
                },
                "refused",
            ),
            (
                CoreError::InvalidQuote {
                    code: "total_mismatch",
                    message: "x".into(),
                },
                "invalid_quote",
            ),
            (
                CoreError::InvalidConsent {
                    code: "bad_signature",
                    message: "x".into(),
                },
                "invalid_consent",
            ),
            (
                CoreError::Negotiation {
                    code: "not_agreed",
                    message: "x".into(),
                },
                "refused",
            ),
            (CoreError::InvalidUrl("x".into()), "invalid_url"),
            (CoreError::Tls("x".into()), "tls"),
            (CoreError::Storage("x".into()), "storage"),
            (CoreError::SchemaTooNew(9), "storage"),
            (CoreError::Corrupt("x".into()), "storage"),
            (CoreError::WrongKey, "wrong_key"),
            (CoreError::Secrets("x".into()), "secrets_unavailable"),
            (CoreError::InvalidInput("x".into()), "invalid_input"),
            (CoreError::Closed, "session_closed"),
        ];
        for (core, code) in cases {
            let (shown, core_code) = (core.to_string(), core.code());
            let ffi = FriendCoreError::from(core);
            assert_eq!(ffi.code(), code, "{shown}");
            assert_eq!(
                core_code_to_ffi(core_code),
                code,
                "status mapping of {shown}"
            );
        }
    }

    #[test]
    fn refusals_keep_the_server_reason() {
        let e = FriendCoreError::from(CoreError::Refused {
            code: ErrorCode::InvalidTransition,
            message: "the job is assigned".into(),
        });
        assert!(
            matches!(&e, FriendCoreError::Refused { reason, .. } if reason == "invalid_transition"),
            "{e:?}"
        );
    }
}
