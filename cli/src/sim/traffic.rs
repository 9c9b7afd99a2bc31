//! Bytes on the wire per account, measured at the embedded backend's HTTP layer: a middleware in
//! front of every route attributes each request to the account whose bearer token it carries and
//! counts request and response body bytes (sync responses separately).
//!
//! Why here and not in the device: the core keeps no per-session byte counter a caller can read
//! yet; counting at the server sees exactly the same bodies (the backend does not compress).

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// One account's traffic.
#[derive(Debug, Default)]
pub struct Counters {
    /// Requests.
    pub requests: AtomicU64,
    /// `GET /v1/sync` requests.
    pub sync_requests: AtomicU64,
    /// Response body bytes.
    pub down_bytes: AtomicU64,
    /// Response body bytes of sync requests.
    pub sync_down_bytes: AtomicU64,
    /// Request body bytes.
    pub up_bytes: AtomicU64,
}

impl Counters {
    fn add(&self, sync: bool, up: u64, down: u64) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.up_bytes.fetch_add(up, Ordering::Relaxed);
        self.down_bytes.fetch_add(down, Ordering::Relaxed);
        if sync {
            self.sync_requests.fetch_add(1, Ordering::Relaxed);
            self.sync_down_bytes.fetch_add(down, Ordering::Relaxed);
        }
    }

    /// A plain copy of the counts.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            requests: self.requests.load(Ordering::Relaxed),
            sync_requests: self.sync_requests.load(Ordering::Relaxed),
            down_bytes: self.down_bytes.load(Ordering::Relaxed),
            sync_down_bytes: self.sync_down_bytes.load(Ordering::Relaxed),
            up_bytes: self.up_bytes.load(Ordering::Relaxed),
        }
    }
}

/// The counts at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Requests.
    pub requests: u64,
    /// Sync requests.
    pub sync_requests: u64,
    /// Response body bytes.
    pub down_bytes: u64,
    /// Sync response body bytes.
    pub sync_down_bytes: u64,
    /// Request body bytes.
    pub up_bytes: u64,
}

/// Counters for every registered token, and for all traffic.
#[derive(Debug, Default)]
pub struct Traffic {
    by_token: RwLock<HashMap<String, Arc<Counters>>>,
    /// Everything, including requests without a known token.
    pub total: Counters,
}

impl Traffic {
    /// Starts counting the requests that carry `token`; returns its counters.
    pub fn register(&self, token: &str) -> Arc<Counters> {
        let counters = Arc::new(Counters::default());
        if let Ok(mut map) = self.by_token.write() {
            map.insert(token.to_owned(), counters.clone());
        }
        counters
    }

    fn lookup(&self, token: &str) -> Option<Arc<Counters>> {
        self.by_token.read().ok()?.get(token).cloned()
    }

    async fn count(&self, req: Request, next: Next) -> Response {
        let counters = req
            .headers()
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .and_then(|t| self.lookup(t));
        let sync = req.uri().path() == "/v1/sync";
        let up = req
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        let response = next.run(req).await;
        let (parts, body) = response.into_parts();
        // Every answer of this backend is a small JSON document: buffering it to count is cheap.
        let bytes = match axum::body::to_bytes(body, usize::MAX).await {
            Ok(b) => b,
            Err(_) => return Response::from_parts(parts, Body::empty()),
        };
        let down = bytes.len() as u64;
        self.total.add(sync, up, down);
        if let Some(c) = counters {
            c.add(sync, up, down);
        }
        Response::from_parts(parts, Body::from(bytes))
    }
}

/// `router` behind the counting middleware.
pub fn layer(router: axum::Router, traffic: Arc<Traffic>) -> axum::Router {
    router.layer(axum::middleware::from_fn(
        move |req: Request, next: Next| {
            let traffic = traffic.clone();
            async move { traffic.count(req, next).await }
        },
    ))
}
