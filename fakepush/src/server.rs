//! Serving: the accept loop both fakes run (hyper, HTTP/1.1 or HTTP/2 with prior knowledge), reading
//! a request into plain values, writing a [`Reply`], and the guard that stops it all.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use hyper::{Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinSet};

use crate::record::{Pending, Recorder, Reply};

/// The response body type of both fakes.
pub(crate) type Body = Full<Bytes>;

/// What a handler returns: a response, or [`Stopped`] — hyper then resets the stream (HTTP/2) or
/// closes the connection (HTTP/1.1) without answering.
pub(crate) type Answer = Result<Response<Body>, Stopped>;

/// The fake was stopped while a request waited: it gets no answer.
#[derive(Debug)]
pub(crate) struct Stopped;

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the fake push gateway was stopped")
    }
}

impl std::error::Error for Stopped {}

/// Which HTTP a fake speaks.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Protocol {
    /// HTTP/1.1 (FCM; the backend's client speaks HTTP/1.1 to a cleartext base URL).
    Http1,
    /// HTTP/2 with prior knowledge, no TLS (APNs).
    Http2,
}

/// Stops the fake when the last handle goes, or on `stop()`.
pub(crate) struct Running {
    recorder: Arc<Recorder>,
    accept: AbortHandle,
}

impl Running {
    /// Closes the gate first — held requests and any request still arriving end unanswered even
    /// before the runtime gets round to the abort — then aborts the accept task. It owns the
    /// `JoinSet` of connection tasks and the listener, so those go with it.
    pub(crate) fn stop(&self) {
        self.recorder.stop();
        self.accept.abort();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A listener on an ephemeral loopback port, and its address.
pub(crate) async fn listen() -> io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

/// Serves `listener` with `handler` on a new task until the returned guard stops it.
pub(crate) fn spawn<H, F>(
    listener: TcpListener,
    protocol: Protocol,
    recorder: Arc<Recorder>,
    handler: H,
) -> Running
where
    H: Fn(hyper::Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Answer> + Send + 'static,
{
    let accept = tokio::spawn(accept_loop(listener, protocol, handler)).abort_handle();
    Running { recorder, accept }
}

async fn accept_loop<H, F>(listener: TcpListener, protocol: Protocol, handler: H)
where
    H: Fn(hyper::Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Answer> + Send + 'static,
{
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve(stream, protocol, handler.clone()));
                }
                Err(_) => {
                    // Aborted handshakes, fd exhaustion. A short back-off, not synchronisation: it
                    // keeps an exhausted process from spinning.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            },
            // Reap finished connection tasks; `None` (empty set) just disables this branch once.
            Some(_) = connections.join_next() => {}
        }
    }
}

async fn serve<H, F>(stream: TcpStream, protocol: Protocol, handler: H)
where
    H: Fn(hyper::Request<Incoming>) -> F + Send + Sync + 'static,
    F: Future<Output = Answer> + Send + 'static,
{
    let io = TokioIo::new(stream);
    let service = hyper::service::service_fn(handler);
    // A connection error (the client went away, a protocol error) ends this connection only.
    let _ = match protocol {
        Protocol::Http1 => {
            hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await
        }
        Protocol::Http2 => {
            // HTTP/2 streams run on tasks of their own (not in the connection set); they end when
            // the connection does (h2 fails its streams then) or on the closed gate.
            hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(io, service)
                .await
        }
    };
}

/// A request read into plain values.
pub(crate) struct Received {
    pub method: String,
    pub path: String,
    pub http_version: String,
    pub headers: BTreeMap<String, String>,
    pub body: Bytes,
    pub json: Value,
}

impl Received {
    /// Reads the head and the whole body (a body that fails half-way counts as empty).
    pub(crate) async fn read(request: hyper::Request<Incoming>) -> Received {
        let (parts, body) = request.into_parts();
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        Received {
            method: parts.method.to_string(),
            path: parts.uri.path().to_string(),
            http_version: format!("{:?}", parts.version),
            headers: header_map(&parts.headers),
            json: serde_json::from_slice(&body).unwrap_or(Value::Null),
            body,
        }
    }

    /// Header `name` (lower-case).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

fn header_map(headers: &HeaderMap) -> BTreeMap<String, String> {
    let mut map: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        map.entry(name.as_str().to_string())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    map
}

/// The HTTP response for `reply`; a 500 saying why when the reply is not valid HTTP.
pub(crate) fn respond(reply: &Reply) -> Response<Body> {
    let Ok(status) = StatusCode::from_u16(reply.status) else {
        return invalid(&format!("status {}", reply.status));
    };
    let body = if reply.body.is_null() {
        Bytes::new()
    } else {
        Bytes::from(reply.body.to_string())
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    if !reply.body.is_null() {
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    for (name, value) in &reply.headers {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            (Ok(name), Ok(value)) => {
                response.headers_mut().append(name, value);
            }
            _ => return invalid(&format!("header {name:?}: {value:?}")),
        }
    }
    response
}

fn invalid(what: &str) -> Response<Body> {
    let body = json!({ "fake_error": format!("invalid scripted reply: {what}") });
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response
}

/// Sends `response`, noting its status as the answer to the pending request.
pub(crate) fn answer(pending: Pending<'_>, response: Response<Body>) -> Answer {
    pending.answered(response.status().as_u16());
    Ok(response)
}
