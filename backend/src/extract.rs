//! Request extractors whose rejections are our typed JSON errors, so no malformed input ever gets
//! axum's plain-text answers.

use crate::error::AppError;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use friend_protocol::ErrorCode;
use serde::de::DeserializeOwned;
use std::time::Duration;

/// A JSON body.
pub struct ApiJson<T>(pub T);

/// How much of an oversized body is read and discarded before answering 413. Closing a connection
/// with unread request data makes the kernel reset it, and the client may then never see the typed
/// error; reading a bounded amount first lets ordinary oversized requests get their answer. Beyond
/// this the connection is simply dropped.
const DRAIN_LIMIT: usize = 1024 * 1024;

fn too_large() -> AppError {
    AppError::new(ErrorCode::BodyTooLarge, "request body too large")
}

/// How long a body may take to arrive (a request body is at most 64 KiB). A client that sends a
/// head and then trickles its body does not hold the connection for ever.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// [`read_bounded`] within `limit`, else `request_timeout` (nothing was done).
async fn read_in_time(
    body: axum::body::Body,
    limit: Duration,
) -> Result<axum::body::Bytes, AppError> {
    tokio::time::timeout(limit, read_bounded(body))
        .await
        .map_err(|_| {
            AppError::new(
                ErrorCode::RequestTimeout,
                format!("the body did not arrive within {} s", limit.as_secs()),
            )
        })?
}

/// Reads the body up to [`MAX_BODY_BYTES`](crate::routes::MAX_BODY_BYTES); an oversized body is
/// drained up to [`DRAIN_LIMIT`] and refused with `body_too_large`.
async fn read_bounded(body: axum::body::Body) -> Result<axum::body::Bytes, AppError> {
    use http_body_util::BodyExt as _;
    let mut body = body;
    let mut kept = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| AppError::new(ErrorCode::InvalidJson, e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen = seen.saturating_add(data.len());
        if seen > DRAIN_LIMIT {
            return Err(too_large());
        }
        if seen <= crate::routes::MAX_BODY_BYTES {
            kept.extend_from_slice(&data);
        }
    }
    if seen > crate::routes::MAX_BODY_BYTES {
        return Err(too_large());
    }
    Ok(kept.into())
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, AppError> {
        let (parts, body) = req.into_parts();
        let declared = parts
            .headers
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > DRAIN_LIMIT) {
            return Err(too_large());
        }
        let bytes = read_in_time(body, BODY_TIMEOUT).await?;
        let req = Request::from_parts(parts, axum::body::Body::from(bytes));
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(JsonRejection::BytesRejection(e))
                if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE =>
            {
                Err(too_large())
            }
            Err(e) => Err(AppError::new(ErrorCode::InvalidJson, e.body_text())),
        }
    }
}

/// Query parameters.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e: QueryRejection| AppError::new(ErrorCode::InvalidInput, e.body_text()))
    }
}

/// Path parameters.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|e: PathRejection| AppError::new(ErrorCode::InvalidInput, e.body_text()))
    }
}

/// Longest accepted `Idempotency-Key`.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 128;

/// The `Idempotency-Key` header, if present and well formed.
pub struct IdempotencyKey(pub Option<String>);

impl IdempotencyKey {
    /// The key, or the typed error for routes that require one.
    pub fn required(self) -> Result<String, AppError> {
        self.0.ok_or_else(|| {
            AppError::new(
                ErrorCode::IdempotencyKeyMissing,
                "this route requires an Idempotency-Key header",
            )
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, AppError> {
        let Some(v) = parts.headers.get("idempotency-key") else {
            return Ok(IdempotencyKey(None));
        };
        let key = v
            .to_str()
            .ok()
            .map(str::trim)
            .filter(|k| !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY_LEN)
            .ok_or_else(|| {
                AppError::new(ErrorCode::InvalidInput, format!("Idempotency-Key must be 1…{MAX_IDEMPOTENCY_KEY_LEN} visible ASCII characters"))
            })?;
        Ok(IdempotencyKey(Some(key.to_owned())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// A body whose next frame never comes (a client that stopped sending mid-body).
    struct Stalled;

    impl hyper::body::Body for Stalled {
        type Data = axum::body::Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
            Poll::Pending
        }
    }

    #[tokio::test]
    async fn a_body_that_stops_arriving_is_a_request_timeout() {
        let body = axum::body::Body::new(Stalled);
        let e = read_in_time(body, Duration::from_millis(20))
            .await
            .err()
            .map(|e| (e.status, e.code));
        assert_eq!(
            e,
            Some((
                axum::http::StatusCode::REQUEST_TIMEOUT,
                ErrorCode::RequestTimeout
            ))
        );
        let whole = read_in_time(axum::body::Body::from("{}"), Duration::from_millis(20)).await;
        assert_eq!(whole.ok().as_deref(), Some(&b"{}"[..]));
    }
}
