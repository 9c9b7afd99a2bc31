//! The connection layer: the accept loop, and for HTTP/1 a guard in front of hyper's parser
//! (a connection opening with the HTTP/2 preface goes to `h2c.rs`).
//!
//! hyper answers a request head it cannot parse (a target over 64 KiB, a head over its buffer, an
//! invalid `Content-Length`, a malformed line) itself, with an empty body, before any service sees
//! the request. So every request head is checked here first, by the same rules hyper applies and
//! with tighter size limits: a head hyper would refuse never reaches it, and the refusal is the
//! API's JSON error (`bad_request`, `uri_too_long`, `headers_too_large`).
//!
//! The guard only looks at request heads; to find the next one it follows each body's framing
//! (`Content-Length` or chunked) as the bytes pass. On a refused head it hands hyper nothing more
//! and has the connection closed gracefully, so responses to the requests before it are still
//! written; the JSON refusal goes out last, when hyper shuts the connection down.
//!
//! A handler may also answer before it read the request body (a bad token, a malformed id); hyper
//! would then close the connection while the client is still sending, and the client would get a
//! reset instead of the answer. So what the handler left unread is read first (bounded), and a
//! connection closed mid-request is drained until the client closes.

use crate::clock::Clock;
use crate::error::AppError;
use crate::h2c;
use axum::http::{HeaderName, Method, Uri};
use friend_protocol::{ApiError, ErrorCode};
use std::future::Future;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};

/// Longest accepted request target (path and query), in bytes; longer is `414 uri_too_long`.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// Largest accepted request head (request line and header fields), in bytes; larger is
/// `431 headers_too_large`.
pub const MAX_HEAD_BYTES: usize = 32 * 1024;
/// Most header fields in one request (hyper's own limit); more is `431 headers_too_large`.
pub const MAX_HEADER_FIELDS: usize = 100;

/// Method, spaces and version around the target in a request line.
const REQUEST_LINE_SLACK: usize = 64;
/// When closing mid-request (a refused head, a body the handler did not read), how much the client
/// may still be sending that is read and discarded: closing a socket with unread data makes the
/// kernel reset it, and the client would lose the answer.
const CLOSE_DRAIN_BYTES: usize = 2 * 1024 * 1024;
/// How long such a client gets to finish sending and close.
const DRAIN_TIME: Duration = Duration::from_secs(5);
/// How much of a request body its handler left unread is read before the answer goes out, so the
/// connection stays usable; beyond this (or [`DRAIN_TIME`]) the answer says `connection: close`.
const UNREAD_BODY_DRAIN_BYTES: usize = 1024 * 1024;
/// The largest body length hyper accepts (`u64::MAX - 2`; the top values are its sentinels).
const MAX_BODY_LEN: u64 = u64::MAX - 2;
/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 16 * 1024;

/// Accepts connections on `listener` and serves `app` on each until `shutdown` resolves; then
/// stops accepting, closes idle connections, lets requests in flight finish for up to
/// `drain_timeout`, closes what is left and returns.
/// The time bounds of [`serve`].
pub(crate) struct Limits {
    /// How long a shutdown waits for requests in flight.
    pub drain: Duration,
    /// How long a connection may take to send a request head, or to start the next one.
    pub head: Duration,
}

pub(crate) async fn serve(
    listener: TcpListener,
    app: axum::Router,
    clock: Arc<dyn Clock>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    limits: Limits,
) -> io::Result<()> {
    let (drain_timeout, head_timeout) = (limits.drain, limits.head);
    // Unread request bodies are an HTTP/1 matter: over HTTP/2 a stream answered early ends with
    // RST_STREAM(NO_ERROR) and the connection goes on. Targets over HTTP/2 skip the guard.
    let apps = Arc::new(Apps {
        http2: app
            .clone()
            .layer(axum::middleware::from_fn(h2c::refuse_long_target)),
        http1: app.layer(axum::middleware::from_fn(drain_unread_body)),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        // Finished connections leave the set as new ones come, so it stays as large as the live ones.
        while connections.try_join_next().is_some() {}
        match accepted {
            Ok((stream, _)) => {
                connections.spawn(serve_connection(
                    stream,
                    apps.clone(),
                    clock.clone(),
                    stop_rx.clone(),
                    head_timeout,
                ));
            }
            // The peer gave up before we took it: nothing to do.
            Err(e) if is_connection_error(&e) => {}
            // Out of file descriptors or similar: retrying at once would spin.
            Err(e) => {
                tracing::error!("accept failed: {e}");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    () = &mut shutdown => break,
                }
            }
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let finished = tokio::time::timeout(drain_timeout, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if finished.is_err() {
        tracing::warn!(
            left = connections.len(),
            "drain bound of {drain_timeout:?} reached: closing the connections still busy"
        );
        connections.shutdown().await;
    }
    Ok(())
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// The service as each protocol gets it (the middleware that only one of them needs added).
struct Apps {
    http1: axum::Router,
    http2: axum::Router,
}

/// Serves one connection: HTTP/2 when it opens with the preface (see `h2c.rs`), else HTTP/1
/// through the guard.
async fn serve_connection(
    mut stream: TcpStream,
    apps: Arc<Apps>,
    clock: Arc<dyn Clock>,
    mut stop: watch::Receiver<bool>,
    head_timeout: Duration,
) {
    // A connection that has sent nothing yet is idle: a drain closes it like any idle one, and so
    // does the head timeout.
    let opening = tokio::select! {
        opening = tokio::time::timeout(head_timeout, h2c::sniff(&mut stream)) => match opening {
            Ok(opening) => opening,
            Err(_) => return tracing::debug!("connection sent nothing within {head_timeout:?}"),
        },
        _ = stop.wait_for(|stop| *stop) => return,
    };
    let start = match opening {
        Ok(h2c::Opening::Http1(start)) => start,
        Ok(h2c::Opening::Http2) => {
            return h2c::serve_connection(stream, apps.http2.clone(), stop).await;
        }
        Err(e) => return tracing::debug!("connection ended before its first request: {e}"),
    };
    let refused = Arc::new(Notify::new());
    let mut io = GuardedStream::new(stream, clock, refused.clone());
    io.take(&start);
    let service = hyper_util::service::TowerToHyperService::new(apps.http1.clone());
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(head_timeout)
        .serve_connection(hyper_util::rt::TokioIo::new(io), service);
    let conn = std::pin::pin!(conn);
    drive(conn, |c| c.graceful_shutdown(), stop, Some(refused)).await;
}

/// Drives a connection (HTTP/1 or HTTP/2) until it ends; `stop` turning true, or `refused` (the
/// HTTP/1 guard refused a head), closes it gracefully: what is in flight finishes first.
pub(crate) async fn drive<C, E>(
    mut conn: Pin<&mut C>,
    graceful_shutdown: fn(Pin<&mut C>),
    mut stop: watch::Receiver<bool>,
    refused: Option<Arc<Notify>>,
) where
    C: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let refused = async {
        match &refused {
            Some(r) => r.notified().await,
            None => std::future::pending().await,
        }
    };
    let mut refused = std::pin::pin!(refused);
    let mut closing = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!("connection ended: {e}");
                }
                return;
            }
            () = &mut refused, if !closing => {
                closing = true;
                graceful_shutdown(conn.as_mut());
            }
            _ = stop.wait_for(|stop| *stop), if !closing => {
                closing = true;
                graceful_shutdown(conn.as_mut());
            }
        }
    }
}

/// Reads what the handler left of the request body before its answer goes out. hyper would close
/// the connection instead, and a client still sending the body (answered early: a bad token, a
/// malformed id) gets a reset in place of the answer, or reuses a connection about to close.
async fn drain_unread_body(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use http_body_util::BodyExt as _;
    let (parts, body) = req.into_parts();
    let shared = Arc::new(Mutex::new(Some(body)));
    let body = axum::body::Body::new(SharedBody(shared.clone()));
    let mut response = next
        .run(axum::extract::Request::from_parts(parts, body))
        .await;
    let rest = shared.lock().ok().and_then(|mut body| body.take());
    let Some(mut rest) = rest else {
        return response;
    };
    let drain = async {
        let mut read = 0usize;
        while let Some(frame) = rest.frame().await {
            read += frame.ok()?.data_ref().map_or(0, |d| d.len());
            if read > UNREAD_BODY_DRAIN_BYTES {
                return None;
            }
        }
        Some(())
    };
    if tokio::time::timeout(DRAIN_TIME, drain)
        .await
        .ok()
        .flatten()
        .is_none()
    {
        response.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
    }
    response
}

/// A request body the handler reads through, while the connection layer keeps hold of it.
struct SharedBody(Arc<Mutex<Option<axum::body::Body>>>);

impl hyper::body::Body for SharedBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        match self.0.lock().ok().as_deref_mut().and_then(Option::as_mut) {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.0
            .lock()
            .ok()
            .as_deref()
            .and_then(Option::as_ref)
            .is_none_or(hyper::body::Body::is_end_stream)
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.0
            .lock()
            .ok()
            .as_deref()
            .and_then(Option::as_ref)
            .map(hyper::body::Body::size_hint)
            .unwrap_or_default()
    }
}

/// The socket as hyper sees it: request bytes pass only once their head was checked.
struct GuardedStream {
    stream: TcpStream,
    framer: Framer,
    clock: Arc<dyn Clock>,
    /// Checked bytes hyper has not taken yet, from `ready_at`.
    ready: Vec<u8>,
    ready_at: usize,
    /// Why a head was refused; the answer is rendered when it is sent (for its server time).
    refusal: Option<AppError>,
    /// The rendered answer and how much of it is written.
    answer: Option<(Vec<u8>, usize)>,
    /// Tells the connection task to close the connection gracefully.
    refused: Arc<Notify>,
    signalled: bool,
    /// After the last answer went out: what the client still sends is discarded, for a while.
    drain: Option<Drain>,
}

struct Drain {
    read: usize,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl GuardedStream {
    fn new(stream: TcpStream, clock: Arc<dyn Clock>, refused: Arc<Notify>) -> GuardedStream {
        GuardedStream {
            stream,
            framer: Framer::default(),
            clock,
            ready: Vec::new(),
            ready_at: 0,
            refusal: None,
            answer: None,
            refused,
            signalled: false,
            drain: None,
        }
    }

    /// Takes bytes read from the socket: what passed the check becomes ready for hyper.
    fn take(&mut self, got: &[u8]) {
        if let Err(refusal) = self.framer.feed(got, &mut self.ready) {
            tracing::info!(
                code = refusal.code.as_str(),
                "request head refused: {}",
                refusal.message
            );
            self.refusal = Some(refusal);
        }
    }

    /// Closes a connection the client may still be sending on (a refused head, or a request whose
    /// body the handler did not read): writes the refusal if any, ends the write side and discards
    /// what the client still sends until it closes (bounded in bytes and time), so the client reads
    /// the answer instead of a reset.
    fn poll_close_draining(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(refusal) = &self.refusal {
            let clock = &self.clock;
            let (response, written) = self
                .answer
                .get_or_insert_with(|| (render(refusal, clock.now()), 0));
            while *written < response.len() {
                let n = ready!(Pin::new(&mut self.stream).poll_write(cx, &response[*written..]))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                *written += n;
            }
        }
        if self.drain.is_none() {
            ready!(Pin::new(&mut self.stream).poll_flush(cx))?;
            ready!(Pin::new(&mut self.stream).poll_shutdown(cx))?;
            self.drain = Some(Drain {
                read: 0,
                deadline: Box::pin(tokio::time::sleep(DRAIN_TIME)),
            });
        }
        let Some(drain) = self.drain.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        loop {
            if drain.read > CLOSE_DRAIN_BYTES || drain.deadline.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Ok(()));
            }
            let mut scratch = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
            let mut buf = ReadBuf::uninit(&mut scratch);
            match ready!(Pin::new(&mut self.stream).poll_read(cx, &mut buf)) {
                Ok(()) if !buf.filled().is_empty() => drain.read += buf.filled().len(),
                // The client closed (or reset): it has what it needs.
                Ok(()) | Err(_) => return Poll::Ready(Ok(())),
            }
        }
    }
}

impl AsyncRead for GuardedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.ready_at < this.ready.len() {
                let n = buf.remaining().min(this.ready.len() - this.ready_at);
                buf.put_slice(&this.ready[this.ready_at..this.ready_at + n]);
                this.ready_at += n;
                if this.ready_at == this.ready.len() {
                    // Released, not kept: an idle connection (a waiting long-poll) holds no buffer.
                    this.ready = Vec::new();
                    this.ready_at = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if this.refusal.is_some() {
                // hyper has every request before the refused head and asks for more: have the
                // connection closed gracefully (after the request in flight, if any). This read
                // never completes; the close does not need it.
                if !this.signalled {
                    this.signalled = true;
                    this.refused.notify_one();
                }
                return Poll::Pending;
            }
            // On the stack, not in the connection: an idle connection (a waiting long-poll) holds
            // no read buffer of its own (BENCHMARKS.md, P9).
            let mut storage = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
            let mut scratch = ReadBuf::uninit(&mut storage);
            ready!(Pin::new(&mut this.stream).poll_read(cx, &mut scratch))?;
            let got = scratch.filled();
            if got.is_empty() {
                // End of stream; an unfinished head is dropped (the client left mid-request).
                return Poll::Ready(Ok(()));
            }
            this.take(got);
        }
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, data)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.refusal.is_some() || this.framer.in_request() {
            this.poll_close_draining(cx)
        } else {
            Pin::new(&mut this.stream).poll_shutdown(cx)
        }
    }
}

/// The complete HTTP/1.1 response carrying `refusal` as an [`ApiError`]; the connection closes.
fn render(refusal: &AppError, now: chrono::DateTime<chrono::Utc>) -> Vec<u8> {
    let body = serde_json::to_vec(&ApiError {
        code: refusal.code,
        message: refusal.message.clone(),
    })
    // Serialising two strings cannot fail; should it ever, the code alone still goes out.
    .unwrap_or_else(|_| format!(r#"{{"code":"{}","message":""}}"#, refusal.code.as_str()).into());
    let mut out = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n{}: {}\r\n\r\n",
        refusal.status.as_u16(),
        refusal.status.canonical_reason().unwrap_or(""),
        body.len(),
        crate::routes::SERVER_TIME_HEADER,
        now.timestamp_millis(),
    )
    .into_bytes();
    out.extend_from_slice(&body);
    out
}

/// Where the request stream is: in a head, or in a body of known framing.
#[derive(Debug, Default)]
enum State {
    /// Collecting a request head (possibly after leading empty lines).
    #[default]
    Head,
    /// In a `Content-Length` body: this many bytes to go.
    Body(u64),
    /// In a chunked body.
    Chunked(Chunked),
    /// A chunked body was malformed: hyper fails that request and closes the connection, so the
    /// rest is passed on unchecked rather than guessed at.
    Unframed,
    /// A head was refused: nothing more is passed on.
    Refused,
}

/// Splits the request byte stream into heads and bodies, checking each head before it passes.
#[derive(Debug, Default)]
struct Framer {
    state: State,
    /// The unfinished head.
    head: Vec<u8>,
}

impl Framer {
    /// Feeds bytes read from the socket; appends to `out` what may go on to hyper. A refused head
    /// ends the stream: it and everything after it are held back.
    fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), AppError> {
        let mut rest: Vec<u8>;
        let mut data = input;
        while !data.is_empty() {
            match &mut self.state {
                State::Head => {
                    self.head.extend_from_slice(data);
                    // A head ends with a line break: only parse when one arrived.
                    if !data.contains(&b'\n') {
                        return self.check_partial(None);
                    }
                    let (len, next) = match check_head(&self.head) {
                        Ok(Some(done)) => done,
                        Ok(None) => {
                            let target = partial_target_len(&self.head);
                            return self.check_partial(target);
                        }
                        Err(e) => return self.refuse(e),
                    };
                    rest = self.head.split_off(len);
                    out.extend_from_slice(&self.head);
                    self.head.clear();
                    self.state = next;
                    data = &rest;
                }
                State::Body(left) => {
                    let n = usize::try_from(*left).unwrap_or(usize::MAX).min(data.len());
                    out.extend_from_slice(&data[..n]);
                    *left -= n as u64;
                    if *left == 0 {
                        self.state = State::Head;
                    }
                    data = &data[n..];
                }
                State::Chunked(chunked) => {
                    let (n, step) = chunked.scan(data);
                    out.extend_from_slice(&data[..n]);
                    match step {
                        ChunkStep::More => {}
                        ChunkStep::Done => self.state = State::Head,
                        ChunkStep::Malformed => self.state = State::Unframed,
                    }
                    data = &data[n..];
                }
                State::Unframed => {
                    out.extend_from_slice(data);
                    return Ok(());
                }
                State::Refused => return Ok(()),
            }
        }
        Ok(())
    }

    /// Whether the client is inside a request: part of a head or a body has come and the rest may
    /// still be on its way.
    fn in_request(&self) -> bool {
        match self.state {
            State::Head => !self.head.is_empty(),
            State::Body(_) | State::Chunked(_) | State::Unframed => true,
            State::Refused => false,
        }
    }

    /// An unfinished head: refused once it can no longer fit the limits.
    fn check_partial(&mut self, target_len: Option<usize>) -> Result<(), AppError> {
        let line_open = !self.head.contains(&b'\n');
        if target_len.is_some_and(|n| n > MAX_URI_BYTES)
            || (line_open && self.head.len() > MAX_URI_BYTES + REQUEST_LINE_SLACK)
        {
            return self.refuse(uri_too_long());
        }
        if self.head.len() > MAX_HEAD_BYTES {
            return self.refuse(headers_too_large());
        }
        Ok(())
    }

    fn refuse(&mut self, e: AppError) -> Result<(), AppError> {
        self.state = State::Refused;
        self.head = Vec::new();
        Err(e)
    }
}

pub(crate) fn uri_too_long() -> AppError {
    AppError::new(
        ErrorCode::UriTooLong,
        format!("the request target is longer than {MAX_URI_BYTES} bytes"),
    )
}

fn headers_too_large() -> AppError {
    AppError::new(
        ErrorCode::HeadersTooLarge,
        format!(
            "the request head is larger than {MAX_HEAD_BYTES} bytes or has more than \
             {MAX_HEADER_FIELDS} header fields"
        ),
    )
}

fn bad_request(message: impl Into<String>) -> AppError {
    AppError::new(ErrorCode::BadRequest, message)
}

/// The target's length of a head whose request line is complete but whose fields are not.
fn partial_target_len(head: &[u8]) -> Option<usize> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADER_FIELDS];
    let mut req = httparse::Request::new(&mut fields);
    let _ = req.parse(head);
    req.path.map(str::len)
}

/// Checks a head by hyper's rules (httparse, method, target, body framing) and this server's
/// limits. `Ok(None)`: not complete yet; `Ok(Some((len, state)))`: the head is `len` bytes and
/// the stream continues in `state`.
fn check_head(head: &[u8]) -> Result<Option<(usize, State)>, AppError> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADER_FIELDS];
    let mut req = httparse::Request::new(&mut fields);
    let len = match req.parse(head) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(headers_too_large()),
        Err(e) => return Err(bad_request(format!("malformed request head: {e}"))),
    };
    if len > MAX_HEAD_BYTES {
        return Err(headers_too_large());
    }
    // A complete parse has all three; `unwrap_or` keeps this free of panics all the same.
    let (method, target, version) = (
        req.method.unwrap_or(""),
        req.path.unwrap_or(""),
        req.version.unwrap_or(1),
    );
    if target.len() > MAX_URI_BYTES {
        return Err(uri_too_long());
    }
    Method::from_bytes(method.as_bytes()).map_err(|_| bad_request("malformed request method"))?;
    Uri::try_from(target).map_err(|e| bad_request(format!("malformed request target: {e}")))?;
    Ok(Some((len, body_framing(req.headers, version == 1)?)))
}

/// The request body's framing, as hyper decides it (RFC 9112 §6.3): `Transfer-Encoding` ending in
/// `chunked` wins over `Content-Length`; differing or malformed lengths, another final transfer
/// coding, or a transfer coding in HTTP/1.0 are refused.
fn body_framing(fields: &[httparse::Header<'_>], http11: bool) -> Result<State, AppError> {
    let mut transfer_encoding = false;
    let mut chunked = false;
    let mut length: Option<u64> = None;
    for field in fields {
        HeaderName::from_bytes(field.name.as_bytes())
            .map_err(|_| bad_request("malformed header field name"))?;
        if field.name.eq_ignore_ascii_case("transfer-encoding") {
            if !http11 {
                return Err(bad_request("Transfer-Encoding is not allowed in HTTP/1.0"));
            }
            transfer_encoding = true;
            length = None;
            chunked = ends_with_chunked(field.value);
        } else if field.name.eq_ignore_ascii_case("content-length") {
            if transfer_encoding {
                continue;
            }
            let n = digits(field.value).ok_or_else(|| {
                bad_request("Content-Length must be a non-negative decimal number")
            })?;
            if length.is_some_and(|previous| previous != n) {
                return Err(bad_request("conflicting Content-Length fields"));
            }
            if n > MAX_BODY_LEN {
                return Err(AppError::new(
                    ErrorCode::BodyTooLarge,
                    "request body too large",
                ));
            }
            length = Some(n);
        }
    }
    if transfer_encoding && !chunked {
        return Err(bad_request("Transfer-Encoding must end with chunked"));
    }
    Ok(match length {
        _ if chunked => State::Chunked(Chunked::default()),
        Some(n) if n > 0 => State::Body(n),
        _ => State::Head,
    })
}

/// A `Content-Length` value: decimal digits only (no sign, no list), as hyper reads it.
fn digits(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0u64, |n, b| match b {
        b'0'..=b'9' => n.checked_mul(10)?.checked_add(u64::from(b - b'0')),
        _ => None,
    })
}

/// Whether the last coding of a `Transfer-Encoding` value is `chunked` (hyper reads only visible
/// ASCII values).
fn ends_with_chunked(value: &[u8]) -> bool {
    let visible = value
        .iter()
        .all(|b| *b == b'\t' || (b' '..0x7f).contains(b));
    visible
        && std::str::from_utf8(value).is_ok_and(|v| {
            v.rsplit(',')
                .next()
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"))
        })
}

/// Position in a chunked body (RFC 9112 §7.1): size line, data, CRLF, …, last chunk, trailers.
#[derive(Debug, Default)]
enum Chunked {
    /// At the start of a size line.
    #[default]
    Start,
    /// In the size's hex digits: the size so far.
    Size(u64),
    /// After the size: whitespace or extensions up to CR.
    SizeRest(u64),
    /// The LF ending the size line.
    SizeLf(u64),
    /// Chunk data: this many bytes to go.
    Data(u64),
    /// The CRLF after chunk data.
    DataCr,
    DataLf,
    /// After the last chunk, at the start of a trailer line or the final empty line.
    TrailerStart,
    /// Inside a trailer line.
    Trailer,
    TrailerLf,
    /// The final LF.
    EndLf,
}

/// What the chunk scanner found.
enum ChunkStep {
    /// Everything scanned belongs to the body, which goes on.
    More,
    /// The body ended with the scanned bytes.
    Done,
    /// Not valid chunked framing.
    Malformed,
}

impl Chunked {
    /// Scans `data`; returns how many bytes belong to the body and what follows them.
    fn scan(&mut self, data: &[u8]) -> (usize, ChunkStep) {
        let mut i = 0;
        while i < data.len() {
            if let Chunked::Data(left) = self {
                let n = usize::try_from(*left)
                    .unwrap_or(usize::MAX)
                    .min(data.len() - i);
                *left -= n as u64;
                i += n;
                if *left == 0 {
                    *self = Chunked::DataCr;
                }
                continue;
            }
            let b = data[i];
            i += 1;
            let hex = (b as char).to_digit(16).map(u64::from);
            let next = match (&*self, b) {
                (Chunked::Start, _) => hex.map(Chunked::Size),
                (Chunked::Size(n), _) if hex.is_some() => n
                    .checked_mul(16)
                    .zip(hex)
                    .and_then(|(n, d)| n.checked_add(d))
                    .map(Chunked::Size),
                (Chunked::Size(n), b';' | b' ' | b'\t') => Some(Chunked::SizeRest(*n)),
                (Chunked::Size(n) | Chunked::SizeRest(n), b'\r') => Some(Chunked::SizeLf(*n)),
                (Chunked::SizeRest(_), b'\n') => None,
                (Chunked::SizeRest(n), _) => Some(Chunked::SizeRest(*n)),
                (Chunked::SizeLf(0), b'\n') => Some(Chunked::TrailerStart),
                (Chunked::SizeLf(n), b'\n') => Some(Chunked::Data(*n)),
                (Chunked::DataCr, b'\r') => Some(Chunked::DataLf),
                (Chunked::DataLf, b'\n') => Some(Chunked::Start),
                (Chunked::TrailerStart, b'\r') => Some(Chunked::EndLf),
                (Chunked::TrailerStart | Chunked::Trailer, b'\n') => None,
                (Chunked::Trailer, b'\r') => Some(Chunked::TrailerLf),
                (Chunked::TrailerStart | Chunked::Trailer, _) => Some(Chunked::Trailer),
                (Chunked::TrailerLf, b'\n') => Some(Chunked::TrailerStart),
                (Chunked::EndLf, b'\n') => return (i, ChunkStep::Done),
                _ => None,
            };
            match next {
                Some(state) => *self = state,
                None => return (i - 1, ChunkStep::Malformed),
            }
        }
        (i, ChunkStep::More)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Feeds `stream` cut at `cuts`; returns what passed and the refusal's code, if any.
    fn run(stream: &[u8], cuts: &[usize]) -> (Vec<u8>, Option<ErrorCode>) {
        let mut framer = Framer::default();
        let mut out = Vec::new();
        let mut at = 0;
        let mut ends: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
        ends.sort_unstable();
        ends.push(stream.len());
        for end in ends {
            if let Err(e) = framer.feed(&stream[at..end.max(at)], &mut out) {
                return (out, Some(e.code));
            }
            at = end.max(at);
        }
        (out, None)
    }

    /// Serves a one-route app on loopback with a `head` timeout; its address.
    async fn serve_with_head_timeout(head: Duration) -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
        let limits = Limits {
            drain: Duration::from_secs(1),
            head,
        };
        let clock: Arc<dyn Clock> = Arc::new(crate::clock::SystemClock);
        tokio::spawn(serve(listener, app, clock, std::future::pending(), limits));
        addr
    }

    /// Sends `bytes`, reads everything until the server closes; what it answered. Bounded: a
    /// server that keeps the connection fails the test instead of hanging it.
    async fn until_closed(addr: std::net::SocketAddr, bytes: &[u8]) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(bytes).await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
            .await
            .unwrap_or_else(|_| panic!("still open after 10 s having sent {bytes:?}"))
            .unwrap();
        String::from_utf8_lossy(&answer).into_owned()
    }

    #[tokio::test]
    async fn connections_that_do_not_finish_a_request_in_time_are_closed() {
        let addr = serve_with_head_timeout(Duration::from_millis(200)).await;
        // Nothing at all; half a head; half the HTTP/2 preface: closed, unanswered.
        for opening in [
            &b""[..],
            b"GET / HTTP/1.1\r\nHost: x",
            b"PRI * HTTP/2.0\r\n",
        ] {
            assert_eq!(until_closed(addr, opening).await, "", "{opening:?}");
        }
        // A request is answered; the connection, idle after it, is closed like the others.
        let answered = until_closed(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
        assert!(answered.ends_with("ok"), "{answered}");
    }

    const PIPELINE: &[u8] = b"\r\nGET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n\
        POST /v1/keys HTTP/1.1\r\nContent-Length: 5\r\n\r\nGET /\
        POST /v1/keys HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: -1\r\n\r\n\
        3;ext=1\r\nGET\r\n10\r\n0123456789abcdef\r\n0\r\nTrailer: x\r\n\r\n\
        GET /v1/sync HTTP/1.0\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n";

    #[test]
    fn bodies_that_look_like_heads_pass_untouched() {
        assert_eq!(run(PIPELINE, &[]), (PIPELINE.to_vec(), None));
        // Byte by byte: the same.
        let cuts: Vec<usize> = (0..PIPELINE.len()).collect();
        assert_eq!(run(PIPELINE, &cuts), (PIPELINE.to_vec(), None));
    }

    proptest! {
        #[test]
        fn any_split_passes_the_same_bytes(cuts in proptest::collection::vec(0usize..400, 0..12)) {
            prop_assert_eq!(run(PIPELINE, &cuts), (PIPELINE.to_vec(), None));
        }
    }

    #[test]
    fn refused_heads_hold_back_everything_from_them_on() {
        let good = b"GET /a HTTP/1.1\r\n\r\n".to_vec();
        let cases: Vec<(Vec<u8>, ErrorCode)> = vec![
            (
                [
                    b"GET /".as_slice(),
                    &[b'a'; MAX_URI_BYTES],
                    b" HTTP/1.1\r\n\r\n",
                ]
                .concat(),
                ErrorCode::UriTooLong,
            ),
            // No line break yet, already too long for a request line.
            (
                [
                    b"GET /".as_slice(),
                    &[b'a'; MAX_URI_BYTES + REQUEST_LINE_SLACK],
                ]
                .concat(),
                ErrorCode::UriTooLong,
            ),
            (
                [b"GET / HTTP/1.1\r\nX: ".as_slice(), &[b'b'; MAX_HEAD_BYTES]].concat(),
                ErrorCode::HeadersTooLarge,
            ),
            (
                [
                    b"GET / HTTP/1.1\r\n".as_slice(),
                    &b"X: y\r\n".repeat(MAX_HEADER_FIELDS + 1),
                ]
                .concat(),
                ErrorCode::HeadersTooLarge,
            ),
            (
                b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n".to_vec(),
                ErrorCode::BadRequest,
            ),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 1, 1\r\n\r\n".to_vec(),
                ErrorCode::BadRequest,
            ),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n".to_vec(),
                ErrorCode::BadRequest,
            ),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n".to_vec(),
                ErrorCode::BadRequest,
            ),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 18446744073709551614\r\n\r\n".to_vec(),
                ErrorCode::BodyTooLarge,
            ),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n".to_vec(),
                ErrorCode::BadRequest,
            ),
            (
                b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(),
                ErrorCode::BadRequest,
            ),
            (
                b"GET / HTTP/1.1\r\nno colon\r\n\r\n".to_vec(),
                ErrorCode::BadRequest,
            ),
            (b"G\x01T / HTTP/1.1\r\n\r\n".to_vec(), ErrorCode::BadRequest),
            (b"GET / HTTP/2.0\r\n\r\n".to_vec(), ErrorCode::BadRequest),
            (
                b"GET /\x7f HTTP/1.1\r\n\r\n".to_vec(),
                ErrorCode::BadRequest,
            ),
        ];
        for (i, (bad, code)) in cases.into_iter().enumerate() {
            for cuts in [vec![], vec![good.len() + 3, good.len() + 4000]] {
                let mut framer = Framer::default();
                let mut out = Vec::new();
                let stream = [good.as_slice(), &bad].concat();
                let mut at = 0;
                let mut refused = None;
                for end in cuts.into_iter().chain([stream.len()]) {
                    let end = end.clamp(at, stream.len());
                    refused = refused.or(framer.feed(&stream[at..end], &mut out).err());
                    at = end;
                }
                assert_eq!(refused.map(|e| e.code), Some(code), "case {i}");
                assert_eq!(framer.feed(&good, &mut out).map_err(|e| e.code), Ok(()));
                assert_eq!(out, good, "case {i}: only the request before passes");
            }
        }
    }

    #[test]
    fn malformed_chunked_bodies_are_left_to_hyper() {
        let stream = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nGET /\x01 HTTP/1.1\r\n\r\n";
        assert_eq!(run(stream, &[]), (stream.to_vec(), None));
    }
}
