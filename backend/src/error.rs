//! The backend's error type and its single mapping to an HTTP status and a JSON [`ApiError`] body.

use crate::db::DbError;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use friend_protocol::lifecycle::Refusal;
use friend_protocol::validate::Invalid;
use friend_protocol::{ApiError, ErrorCode};

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
            ErrorCode::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::CursorTooOld => StatusCode::GONE,
            ErrorCode::InvalidTransition | ErrorCode::NotAssignedToYou => StatusCode::CONFLICT,
            ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Internal | ErrorCode::Unknown => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::InvalidJson
            | ErrorCode::InvalidInput
            | ErrorCode::IdempotencyKeyMissing
            | ErrorCode::InvalidCursor
            | ErrorCode::UnknownService => StatusCode::BAD_REQUEST,
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
        (
            self.status,
            Json(ApiError {
                code: self.code,
                message: self.message,
            }),
        )
            .into_response()
    }
}

impl From<DbError> for AppError {
    fn from(e: DbError) -> AppError {
        match &e {
            DbError::Sqlite(rusqlite::Error::SqliteFailure(f, _))
                if matches!(
                    f.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) =>
            {
                AppError::new(ErrorCode::Unavailable, "storage busy, retry")
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
