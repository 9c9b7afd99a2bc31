//! The backend's error type and its single mapping to an HTTP status and a JSON [`ApiError`] body.

use crate::db::DbError;
use crate::pg::PgError;
use crate::sql::SqlError;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use friend_protocol::consent::ConsentError;
use friend_protocol::lifecycle::Refusal;
use friend_protocol::validate::Invalid;
use friend_protocol::{ApiError, ErrorCode};
use friend_protocol::{NegotiationError, QuoteError};

/// A failed request: status, stable code and message.
#[derive(Debug)]
pub struct AppError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine code.
    pub code: ErrorCode,
    /// Explanation for developers.
    pub message: String,
}

impl AppError {
    /// An error with the status that belongs to `code`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> AppError {
        let status = match code {
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ErrorCode::UriTooLong => StatusCode::URI_TOO_LONG,
            ErrorCode::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ErrorCode::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::CursorTooOld => StatusCode::GONE,
            ErrorCode::InvalidTransition
            | ErrorCode::NotAssignedToYou
            | ErrorCode::JobClosed
            | ErrorCode::NegotiationRefused
            | ErrorCode::AlreadyRated => StatusCode::CONFLICT,
            ErrorCode::InvalidQuote | ErrorCode::InvalidConsent => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Internal | ErrorCode::Unknown => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::InvalidJson
            | ErrorCode::InvalidInput
            | ErrorCode::IdempotencyKeyMissing
            | ErrorCode::InvalidCursor
            | ErrorCode::UnknownService
            | ErrorCode::BadRequest => StatusCode::BAD_REQUEST,
        };
        AppError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 404 for a job the caller may not see (whether it exists is not revealed).
    pub fn job_not_found() -> AppError {
        AppError::new(ErrorCode::NotFound, "no such job")
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(code = self.code.as_str(), message = %self.message, "request failed");
        }
        // An internal failure's message names the server's insides (a table, a constraint, a
        // driver's words): it goes to the log above, the client learns only that it happened.
        let message = match self.code {
            ErrorCode::Internal => "internal error (logged by the server)".to_owned(),
            _ => self.message,
        };
        (
            self.status,
            Json(ApiError {
                code: self.code,
                message,
            }),
        )
            .into_response()
    }
}

impl From<DbError> for AppError {
    fn from(e: DbError) -> AppError {
        let busy = |f: &rusqlite::ffi::Error| {
            matches!(
                f.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            )
        };
        match &e {
            DbError::Sqlite(rusqlite::Error::SqliteFailure(f, _))
            | DbError::Sql(SqlError::Sqlite(rusqlite::Error::SqliteFailure(f, _)))
                if busy(f) =>
            {
                AppError::new(ErrorCode::Unavailable, "storage busy, retry")
            }
            // The server is unreachable or the pool is exhausted: worth a retry, maybe elsewhere.
            DbError::Postgres(PgError::Pool(_)) => {
                AppError::new(ErrorCode::Unavailable, "database unavailable, retry")
            }
            DbError::Sql(e) if e.is_transient() => {
                AppError::new(ErrorCode::Unavailable, "storage contended, retry")
            }
            _ => AppError::new(ErrorCode::Internal, e.to_string()),
        }
    }
}

impl From<rusqlite::Error> for AppError {
    fn from(e: rusqlite::Error) -> AppError {
        AppError::from(DbError::from(e))
    }
}

impl From<SqlError> for AppError {
    fn from(e: SqlError) -> AppError {
        AppError::from(DbError::from(e))
    }
}

impl From<Invalid> for AppError {
    fn from(e: Invalid) -> AppError {
        AppError::new(ErrorCode::InvalidInput, e.to_string())
    }
}

impl From<Refusal> for AppError {
    fn from(r: Refusal) -> AppError {
        match r {
            Refusal::NotYourJob => AppError::job_not_found(),
            Refusal::NotAssignedToYou => AppError::new(ErrorCode::NotAssignedToYou, r.to_string()),
            Refusal::WrongRole { .. } => AppError::new(ErrorCode::Forbidden, r.to_string()),
            Refusal::InvalidState { .. } => {
                AppError::new(ErrorCode::InvalidTransition, r.to_string())
            }
        }
    }
}

impl From<serde_json::Error> for AppError {
    fn from(e: serde_json::Error) -> AppError {
        AppError::new(ErrorCode::Internal, format!("stored JSON: {e}"))
    }
}

/// A quote that breaks the guardrails: `invalid_quote`, the rule's code first in the message.
impl From<QuoteError> for AppError {
    fn from(e: QuoteError) -> AppError {
        AppError::new(ErrorCode::InvalidQuote, format!("{}: {e}", e.code()))
    }
}

/// A step the negotiation does not allow now: `negotiation_refused`, the rule's code first.
impl From<NegotiationError> for AppError {
    fn from(e: NegotiationError) -> AppError {
        AppError::new(ErrorCode::NegotiationRefused, format!("{}: {e}", e.code()))
    }
}

/// A consent that does not verify: `invalid_consent`, the reason's code first — except a payload
/// superseded by a newer version, which is authentic but too late (`negotiation_refused`).
impl From<ConsentError> for AppError {
    fn from(e: ConsentError) -> AppError {
        let code = match e {
            ConsentError::StaleVersion { .. } => ErrorCode::NegotiationRefused,
            _ => ErrorCode::InvalidConsent,
        };
        AppError::new(code, format!("{}: {e}", e.code()))
    }
}

impl AppError {
    /// An `invalid_consent` refusal for a reason the consent rules do not name themselves.
    pub fn consent(code: &str, message: impl std::fmt::Display) -> AppError {
        AppError::new(ErrorCode::InvalidConsent, format!("{code}: {message}"))
    }

    /// `job_closed`: the job has ended, so nothing more can change on it.
    pub fn job_closed(state: friend_protocol::JobState) -> AppError {
        AppError::new(
            ErrorCode::JobClosed,
            format!("the job is {}: nothing more can change", state.as_str()),
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    async fn body(e: AppError) -> ApiError {
        let bytes = axum::body::to_bytes(e.into_response().into_body(), 4096)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn an_internal_failure_s_cause_stays_in_the_log() {
        let leak = "duplicate key value violates unique constraint \"ledger_pkey\"";
        let answer = body(AppError::new(ErrorCode::Internal, leak)).await;
        assert_eq!(answer.code, ErrorCode::Internal);
        assert!(!answer.message.contains("ledger"), "{}", answer.message);
        let refused = body(AppError::new(ErrorCode::JobClosed, "the job is completed")).await;
        assert_eq!(
            refused.message, "the job is completed",
            "other errors explain themselves"
        );
    }
}
