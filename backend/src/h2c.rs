//! HTTP/2 without TLS, by prior knowledge (RFC 9113 §3.3): what a load balancer in front of the
//! instances speaks when it multiplexes many devices' requests over a few connections.
//!
//! Phones speak HTTP/1.1 (the phone library carries no h2) and TLS ends at the load balancer. At
//! crowd scale most devices hold a long-poll; over HTTP/1.1 each costs the instance a socket and
//! hyper's per-connection buffers, over HTTP/2 only a stream (BENCHMARKS.md, P9). A connection is
//! HTTP/2 when it opens with the HTTP/2 preface; anything else goes to the HTTP/1 guard
//! (`http1.rs`) with the bytes read so far.

use crate::error::AppError;
use crate::http1::{MAX_HEAD_BYTES, MAX_URI_BYTES};
use std::io;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::watch;

/// The client connection preface of HTTP/2.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Most streams (requests) one connection carries at once; hyper's default is 200. A load balancer
/// opens more connections beyond it.
pub(crate) const MAX_STREAMS: u32 = 1_000;

/// How often an HTTP/2 connection is pinged, and how long the answer may take.
const KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(30);

/// How a connection opened.
pub(crate) enum Opening {
    /// With the HTTP/2 preface (consumed).
    Http2,
    /// With anything else: HTTP/1, these bytes already read (at most the preface's length).
    Http1(Vec<u8>),
}

/// Reads the start of `stream` until it is, or cannot be, the HTTP/2 preface. An HTTP/1 request
/// differs from it within its first bytes (no method is `PRI`), so at most one extra read.
pub(crate) async fn sniff(stream: &mut TcpStream) -> io::Result<Opening> {
    let mut start = [0u8; PREFACE.len()];
    let mut len = 0;
    while len < start.len() {
        let n = stream.read(&mut start[len..]).await?;
        len += n;
        if n == 0 || start[..len] != PREFACE[..len] {
            return Ok(Opening::Http1(start[..len].to_vec()));
        }
    }
    Ok(Opening::Http2)
}

/// Serves HTTP/2 on `stream` (its preface read) until the client closes it or `stop` turns true;
/// then a GOAWAY, and the streams in flight finish (a draining instance answers its long-polls).
pub(crate) async fn serve_connection(
    stream: TcpStream,
    app: axum::Router,
    stop: watch::Receiver<bool>,
) {
    // The socket as hyper's HTTP/2 server sees it: the preface (read by `sniff`) first.
    let (read, write) = stream.into_split();
    let io = tokio::io::join(PREFACE.chain(read), write);
    let service = hyper_util::service::TowerToHyperService::new(app);
    let conn = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
        .timer(hyper_util::rt::TokioTimer::new())
        // A peer that stops answering pings is gone (a dead load balancer, a cut link): its
        // connection and streams are closed instead of held.
        .keep_alive_interval(KEEP_ALIVE)
        .keep_alive_timeout(KEEP_ALIVE)
        .max_concurrent_streams(MAX_STREAMS)
        .max_header_list_size(MAX_HEAD_BYTES as u32)
        .serve_connection(hyper_util::rt::TokioIo::new(io), service);
    let conn = std::pin::pin!(conn);
    crate::http1::drive(conn, |c| c.graceful_shutdown(), stop, None).await;
}

/// Refuses a request target over [`MAX_URI_BYTES`] as the HTTP/1 guard does (`414 uri_too_long`):
/// HTTP/2 requests do not pass through that guard.
pub(crate) async fn refuse_long_target(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Result<axum::response::Response, AppError> {
    let target = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if target > MAX_URI_BYTES {
        return Err(crate::http1::uri_too_long());
    }
    Ok(next.run(req).await)
}
