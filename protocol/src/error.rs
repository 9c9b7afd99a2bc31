//! The JSON error body every failed backend call returns, with a stable machine code.

use serde::{Deserialize, Serialize};

/// Stable machine codes of API errors. Clients branch on these, never on messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Missing, malformed or unknown bearer token (401).
    Unauthorized,
    /// The caller's role may not use this route (403).
    Forbidden,
    /// No such route or no such resource visible to the caller (404).
    NotFound,
    /// The route exists but not with this method (405).
    MethodNotAllowed,
    /// The body is not valid JSON or has the wrong shape or types (400).
    InvalidJson,
    /// A field has an invalid value (400).
    InvalidInput,
    /// The body exceeds the size limit (413).
    BodyTooLarge,
    /// The body did not arrive in time (408): nothing was done; send the request again.
    RequestTimeout,
    /// A route that requires an `Idempotency-Key` header got none (400).
    IdempotencyKeyMissing,
    /// The `Idempotency-Key` was used before with a different request (422).
    IdempotencyKeyReused,
    /// The sync cursor is malformed (400).
    InvalidCursor,
    /// The sync cursor is older than the server keeps: sync again without a cursor (410).
    CursorTooOld,
    /// The job's state does not allow this action (409).
    InvalidTransition,
    /// The job is not assigned to the calling Friend (409 or 404).
    NotAssignedToYou,
    /// The catalog has no such service (400).
    UnknownService,
    /// The job has ended (cancelled, completed, expired, escalated, unsuccessful): nothing more can
    /// change on it (409). The job's state says how it ended, e.g. the customer cancelled meanwhile.
    JobClosed,
    /// A quote breaks the guardrails of SPEC §7; the message starts with the quote rule's code (422).
    InvalidQuote,
    /// A signed consent is malformed, not signed by a key registered for the signing party, altered,
    /// for another job, or does not match the stored proposal; the message starts with the reason
    /// (422).
    InvalidConsent,
    /// The negotiation does not allow this step now (stale or skipped version, nothing pending, own
    /// proposal, completion without agreement or at another total); the message starts with the
    /// negotiation rule's code (409).
    NegotiationRefused,
    /// The job was already rated (409).
    AlreadyRated,
    /// The request is not well-formed HTTP/1.1: a malformed request line or header field, an invalid
    /// `Content-Length` or `Transfer-Encoding` (400). The connection is closed after the answer.
    BadRequest,
    /// The request target (path and query) is longer than the server accepts (414). The connection
    /// is closed after the answer.
    UriTooLong,
    /// The request head is larger than the server accepts or has too many header fields (431). The
    /// connection is closed after the answer.
    HeadersTooLarge,
    /// The server is overloaded or its storage is unavailable; retry later (503).
    Unavailable,
    /// An unexpected server fault (500); never caused by input.
    Internal,
    /// A code this build does not know.
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The code's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::InvalidInput => "invalid_input",
            ErrorCode::BodyTooLarge => "body_too_large",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::IdempotencyKeyMissing => "idempotency_key_missing",
            ErrorCode::IdempotencyKeyReused => "idempotency_key_reused",
            ErrorCode::InvalidCursor => "invalid_cursor",
            ErrorCode::CursorTooOld => "cursor_too_old",
            ErrorCode::InvalidTransition => "invalid_transition",
            ErrorCode::NotAssignedToYou => "not_assigned_to_you",
            ErrorCode::UnknownService => "unknown_service",
            ErrorCode::JobClosed => "job_closed",
            ErrorCode::InvalidQuote => "invalid_quote",
            ErrorCode::InvalidConsent => "invalid_consent",
            ErrorCode::NegotiationRefused => "negotiation_refused",
            ErrorCode::AlreadyRated => "already_rated",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::UriTooLong => "uri_too_long",
            ErrorCode::HeadersTooLarge => "headers_too_large",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
            ErrorCode::Unknown => "unknown",
        }
    }
}

/// Body of every error response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiError {
    /// Stable machine code.
    pub code: ErrorCode,
    /// Human-readable explanation (English, for logs and developers; not for end users).
    pub message: String,
}
