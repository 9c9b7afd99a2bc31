//! A fault-injecting TCP proxy on loopback: it sits between a client (reqwest over HTTP/1.1 with
//! keep-alive pooling) and the reference backend, both on 127.0.0.1, and lets its owner take the
//! network away ([`FaultProxy::go_offline`]), lose responses the server did process
//! ([`FaultProxy::drop_next_responses`]) or fail between two requests of a sequence such as sync pages
//! ([`FaultProxy::go_offline_after_responses`]).
//!
//! Its own crate because two users need it and neither should carry the other: the end-to-end
//! suites (`friend-tests` re-exports it as `friend_tests::proxy`) and `friendctl simulate`, whose
//! Friend devices each talk through one to lose their signal in tunnels and basements — the shipped
//! binary must not depend on the test support.
//!
//! It works on raw TCP and does not parse HTTP. Each client connection gets its own upstream
//! connection and bytes are pumped both ways. Requests and responses are recognised by *turns*,
//! which is an approximation:
//!
//! - a **request** starts when bytes arrive from the client on a new connection or after the upstream
//!   has sent bytes on that connection since the client last did;
//! - a **response** starts when bytes arrive from the upstream after the client has sent bytes on that
//!   connection since the upstream last did.
//!
//! This is exact for HTTP/1.1 without pipelining, which is what the tests do: one request, then its
//! whole response, on any one connection. It would miscount interim responses (`100 Continue` counts as
//! a response and the rest of the body as a new request), pipelined requests, and protocols where the
//! server speaks first. Do not use it with HTTP/2 or TLS-wrapped streams in a way that relies on the
//! counts.
//!
//! A deliberate cut (offline, a swallowed response, a dropped proxy) resets the client connection
//! (`SO_LINGER` 0, so the client sees a reset instead of a clean end of stream) and closes the upstream
//! connection. A connection that ends on its own (either side closes, or an I/O error) is closed
//! normally on both sides; half-closed connections are not kept open.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinSet};

/// A fault-injecting TCP proxy on `127.0.0.1` in front of one upstream address.
///
/// Cheap to share: every method takes `&self`, and clones are handles to the same proxy (counters and
/// faults are shared). The proxy — its accept loop and every connection task — stops when the last
/// handle is dropped; from that moment no further byte is forwarded in either direction.
#[derive(Clone)]
pub struct FaultProxy {
    shared: Arc<Shared>,
    addr: SocketAddr,
    _running: Arc<Running>,
}

/// State shared by the handles, the accept loop and the connection tasks.
struct Shared {
    upstream: SocketAddr,
    /// Online/offline and the cut generation; connection tasks watch it.
    link: watch::Sender<Link>,
    /// Responses still to swallow.
    drop_next: AtomicUsize,
    /// Requests still allowed before going offline, or [`DISARMED`].
    offline_after: AtomicUsize,
    connections: AtomicUsize,
    dropped: AtomicUsize,
}

/// `offline_after` when no automatic offline is pending.
const DISARMED: usize = usize::MAX;

/// What the connection tasks watch.
#[derive(Clone, Copy, Debug)]
struct Link {
    /// New connections are reset at once and no byte is forwarded.
    offline: bool,
    /// Incremented by every [`FaultProxy::go_offline`]. A connection belongs to the generation it was
    /// accepted in and is cut once the generation moves on, even if the proxy is online again by the
    /// time its task looks (so `go_offline(); go_online();` still kills every pooled connection).
    generation: u64,
}

/// Stops the accept loop (and with it every connection task) when the last handle goes.
struct Running {
    shared: Arc<Shared>,
    accept: AbortHandle,
}

impl Drop for Running {
    fn drop(&mut self) {
        // Cut first: connection tasks check the link before forwarding every chunk, so nothing passes
        // any more even before the runtime gets round to the abort.
        self.shared.cut(true);
        // The accept task owns the `JoinSet` of connection tasks; aborting it drops the set, which
        // aborts them all, and drops the listener.
        self.accept.abort();
    }
}

impl FaultProxy {
    /// Starts listening on `127.0.0.1:0` (an ephemeral port), forwarding every connection to
    /// `upstream` (e.g. `127.0.0.1:41234`). Must be called inside a Tokio runtime, which runs the
    /// proxy's tasks. Fails when no loopback port can be bound (e.g. out of file descriptors).
    pub async fn bind(upstream: SocketAddr) -> io::Result<FaultProxy> {
        let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let (link, _) = watch::channel(Link {
            offline: false,
            generation: 0,
        });
        let shared = Arc::new(Shared {
            upstream,
            link,
            drop_next: AtomicUsize::new(0),
            offline_after: AtomicUsize::new(DISARMED),
            connections: AtomicUsize::new(0),
            dropped: AtomicUsize::new(0),
        });
        let accept = tokio::spawn(accept_loop(listener, Arc::clone(&shared))).abort_handle();
        Ok(FaultProxy {
            shared: Arc::clone(&shared),
            addr,
            _running: Arc::new(Running { shared, accept }),
        })
    }

    /// [`FaultProxy::bind`] for test code, where a failure to bind is the test's failure report.
    ///
    /// # Panics
    ///
    /// If no loopback port can be bound.
    pub async fn start(upstream: SocketAddr) -> FaultProxy {
        FaultProxy::bind(upstream)
            .await
            .unwrap_or_else(|e| panic!("FaultProxy: cannot listen on 127.0.0.1:0: {e}"))
    }

    /// `http://127.0.0.1:PORT` of the proxy.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The proxy's listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Offline: every open client connection is reset at once and new connections are accepted and
    /// reset immediately, so a client cannot reach the upstream. Takes effect when this returns: no
    /// chunk read from either side afterwards is forwarded (a chunk already being written may finish).
    pub fn go_offline(&self) {
        self.shared.cut(true);
    }

    /// Back online: new connections are forwarded normally again. Connections cut while offline stay
    /// cut; clients reconnect.
    ///
    /// Client-side race to expect: the proxy resets pooled connections asynchronously and the client
    /// notices asynchronously too, so a pooling client (hyper/reqwest) may still pick a connection
    /// that was cut by the outage for its first request(s) after `go_online`. That request fails with
    /// a reset (hyper does not retry a request whose write failed) and never reaches the upstream.
    /// Tests must tolerate it or rely on the client's own retry.
    pub fn go_online(&self) {
        self.shared.link.send_if_modified(|link| {
            let was_offline = link.offline;
            link.offline = false;
            was_offline
        });
    }

    /// The next `n` upstream responses are swallowed: the request bytes are forwarded to the upstream
    /// (so the server does process the request), but as soon as the upstream starts answering, the
    /// client connection is reset without forwarding any response byte. After `n` such responses,
    /// forwarding is normal again. Replaces any earlier count; `0` cancels.
    pub fn drop_next_responses(&self, n: usize) {
        self.shared.drop_next.store(n, Ordering::SeqCst);
    }

    /// Lets `n` more requests through normally, then goes offline (as [`FaultProxy::go_offline`]) at
    /// the start of the next request, which is not forwarded. Used to inject a failure between sync
    /// pages.
    ///
    /// Approximation: this counts requests (client turns, see the module docs), not finished
    /// responses. With one request at a time, as a sequential client does, that is the same: the
    /// `n` requests get their whole responses and the failure hits the `n + 1`st. A response still
    /// in flight on another connection when the `n + 1`st request starts is cut too. Replaces any
    /// earlier count; [`FaultProxy::go_online`] does not cancel it.
    pub fn go_offline_after_responses(&self, n: usize) {
        // `DISARMED` is `usize::MAX`; nobody asks for that many.
        self.shared
            .offline_after
            .store(n.min(DISARMED - 1), Ordering::SeqCst);
    }

    /// How many client connections were accepted so far, including those reset at once while
    /// offline. Counted before the connection is served, so it includes every connection that has
    /// seen a byte or a reset from the proxy.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// How many responses were swallowed by [`FaultProxy::drop_next_responses`] so far. Counted before
    /// the client connection is reset.
    pub fn dropped_responses(&self) -> usize {
        self.shared.dropped.load(Ordering::SeqCst)
    }
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let link = *self.shared.link.borrow();
        f.debug_struct("FaultProxy")
            .field("addr", &self.addr)
            .field("upstream", &self.shared.upstream)
            .field("offline", &link.offline)
            .field("connections", &self.connections())
            .field("dropped_responses", &self.dropped_responses())
            .finish()
    }
}

impl Shared {
    /// Cuts every current connection; with `offline`, also refuses new ones until `go_online`.
    fn cut(&self, offline: bool) {
        self.link.send_modify(|link| {
            link.offline |= offline;
            link.generation = link.generation.wrapping_add(1);
        });
    }

    /// Whether a connection of `generation` must stop forwarding.
    fn is_cut(&self, generation: u64) -> bool {
        let link = self.link.borrow();
        link.offline || link.generation != generation
    }

    /// A request starts: counts it against `go_offline_after_responses` and goes offline when it is
    /// one too many. Returns whether the request may pass.
    fn request_starts(&self) -> bool {
        let before = self
            .offline_after
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| match left {
                DISARMED => None,
                0 => Some(DISARMED),
                left => Some(left - 1),
            });
        if before == Ok(0) {
            self.cut(true);
            false
        } else {
            true
        }
    }

    /// A response starts: whether to swallow it (counted as dropped).
    fn swallow_response(&self) -> bool {
        let swallow = self
            .drop_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                left.checked_sub(1)
            })
            .is_ok();
        if swallow {
            self.dropped.fetch_add(1, Ordering::SeqCst);
        }
        swallow
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let client = match accepted {
                    Ok((client, _)) => client,
                    Err(_) => {
                        // Per-connection failures (aborted handshakes) and fd exhaustion. A short
                        // back-off, not synchronisation: it keeps an exhausted process from spinning.
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        continue;
                    }
                };
                shared.connections.fetch_add(1, Ordering::SeqCst);
                let link = *shared.link.borrow();
                if link.offline {
                    reset(&client);
                    continue;
                }
                connections.spawn(serve(Arc::clone(&shared), client, link.generation));
            }
            // Reap finished connection tasks; `None` (empty set) just disables this branch once.
            Some(_) = connections.join_next() => {}
        }
    }
}

/// Which side spoke last on a connection.
const NOBODY: u8 = 0;
const CLIENT: u8 = 1;
const UPSTREAM: u8 = 2;

/// How a pump (or the whole connection) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// End of stream or an I/O error: close normally.
    Closed,
    /// A deliberate fault: reset the client.
    Cut,
}

/// Serves one client connection of link `generation` until either side ends or a fault cuts it.
async fn serve(shared: Arc<Shared>, client: TcpStream, generation: u64) {
    let mut link = shared.link.subscribe();
    let upstream = tokio::select! {
        biased;
        () = cut_signal(&mut link, generation) => {
            reset(&client);
            return;
        }
        upstream = TcpStream::connect(shared.upstream) => match upstream {
            Ok(upstream) => upstream,
            Err(_) => {
                reset(&client);
                return;
            }
        },
    };
    // Small request/response writes: do not let Nagle + delayed ACK add latency.
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);

    let last_speaker = AtomicU8::new(NOBODY);
    let requests = pump(&client, &upstream, || {
        if shared.is_cut(generation) {
            return false;
        }
        let new_request = last_speaker.swap(CLIENT, Ordering::SeqCst) != CLIENT;
        !new_request || shared.request_starts()
    });
    let responses = pump(&upstream, &client, || {
        if shared.is_cut(generation) {
            return false;
        }
        let new_response = last_speaker.swap(UPSTREAM, Ordering::SeqCst) == CLIENT;
        !(new_response && shared.swallow_response())
    });
    let end = tokio::select! {
        biased;
        () = cut_signal(&mut link, generation) => End::Cut,
        end = requests => end,
        end = responses => end,
    };
    if end == End::Cut {
        reset(&client);
    }
    // Both sockets close here.
}

/// Resolves once connections of `generation` must be cut.
async fn cut_signal(link: &mut watch::Receiver<Link>, generation: u64) {
    // Checks the current value first. An error means the sender is gone, which cannot happen while
    // this task holds `Shared`; treat it as a cut anyway.
    let _ = link
        .wait_for(|link| link.offline || link.generation != generation)
        .await;
}

/// Copies `from` → `to`, asking `pass` before forwarding each chunk; `false` cuts the connection.
async fn pump(from: &TcpStream, to: &TcpStream, pass: impl Fn() -> bool) -> End {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match read_some(from, &mut buf).await {
            Ok(0) | Err(_) => return End::Closed,
            Ok(n) => n,
        };
        if !pass() {
            return End::Cut;
        }
        if write_all(to, &buf[..n]).await.is_err() {
            return End::Closed;
        }
    }
}

/// Reads what is available (at least one byte, or 0 at end of stream). Uses readiness + `try_read`
/// so only Tokio's `net` feature is needed.
async fn read_some(stream: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        stream.readable().await?;
        match stream.try_read(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            other => return other,
        }
    }
}

/// Writes all of `data`.
async fn write_all(stream: &TcpStream, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        stream.writable().await?;
        match stream.try_write(data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Makes the coming close a reset (RST) instead of an orderly end of stream.
fn reset(stream: &TcpStream) {
    // If the option cannot be set, the close is an orderly one, which clients see as a failure too.
    let _ = stream.set_zero_linger();
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use tokio::time::timeout;

    const REQUEST: &[u8] = b"GET /ping HTTP/1.1\r\nHost: upstream\r\n\r\n";
    const RESPONSE: &[u8] =
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok";
    /// Every wait in these tests is bounded by this.
    const LIMIT: Duration = Duration::from_secs(10);

    /// A keep-alive HTTP/1.1 upstream that answers every request (headers only, no body) with
    /// [`RESPONSE`], counting each request it has read in full before answering it.
    struct Upstream {
        addr: SocketAddr,
        requests: Arc<AtomicUsize>,
        accept: AbortHandle,
    }

    impl Drop for Upstream {
        fn drop(&mut self) {
            self.accept.abort();
        }
    }

    impl Upstream {
        async fn start() -> Upstream {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let requests = Arc::new(AtomicUsize::new(0));
            let counter = Arc::clone(&requests);
            let accept = tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let counter = Arc::clone(&counter);
                    tokio::spawn(async move {
                        let mut pending = Vec::new();
                        let mut buf = [0u8; 4096];
                        loop {
                            match read_some(&stream, &mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => pending.extend_from_slice(&buf[..n]),
                            }
                            while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n")
                            {
                                pending.drain(..end + 4);
                                counter.fetch_add(1, Ordering::SeqCst);
                                if write_all(&stream, RESPONSE).await.is_err() {
                                    return;
                                }
                            }
                        }
                    });
                }
            })
            .abort_handle();
            Upstream {
                addr,
                requests,
                accept,
            }
        }

        fn requests(&self) -> usize {
            self.requests.load(Ordering::SeqCst)
        }
    }

    /// What a client saw for one request.
    #[derive(Debug, PartialEq, Eq)]
    enum Outcome {
        /// The whole [`RESPONSE`].
        Answered,
        /// End of stream or an error after `bytes` response bytes.
        Failed { bytes: usize },
    }

    /// Sends [`REQUEST`] on `stream` and reads one response.
    async fn exchange(stream: &TcpStream) -> Outcome {
        let run = async {
            if write_all(stream, REQUEST).await.is_err() {
                return Outcome::Failed { bytes: 0 };
            }
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while got.len() < RESPONSE.len() {
                match read_some(stream, &mut buf).await {
                    Ok(0) | Err(_) => return Outcome::Failed { bytes: got.len() },
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            assert_eq!(got, RESPONSE, "the response arrived altered");
            Outcome::Answered
        };
        timeout(LIMIT, run)
            .await
            .expect("no response and no failure within the limit: the proxy hangs")
    }

    /// Connects to the proxy (a refused connection is `None`).
    async fn connect(proxy: &FaultProxy) -> Option<TcpStream> {
        timeout(LIMIT, TcpStream::connect(proxy.addr()))
            .await
            .expect("connecting to the proxy hangs")
            .ok()
    }

    /// One request on a new connection.
    async fn fresh_exchange(proxy: &FaultProxy) -> Outcome {
        match connect(proxy).await {
            Some(stream) => exchange(&stream).await,
            None => Outcome::Failed { bytes: 0 },
        }
    }

    /// Waits until the proxy closes or resets an idle connection, failing if a byte arrives.
    async fn closed_by_proxy(stream: &TcpStream, what: &str) {
        let mut buf = [0u8; 64];
        match timeout(LIMIT, read_some(stream, &mut buf)).await {
            Err(_) => panic!("{what}: the open connection was not closed within the limit"),
            Ok(Ok(n)) if n > 0 => panic!("{what}: {n} unexpected bytes on a cut connection"),
            Ok(_) => {}
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn forwards_requests_and_responses_on_a_keep_alive_connection() {
        let upstream = Upstream::start().await;
        let proxy = FaultProxy::start(upstream.addr).await;
        assert_eq!(proxy.url(), format!("http://{}", proxy.addr()));
        assert!(proxy.url().starts_with("http://127.0.0.1:"));

        let stream = connect(&proxy).await.expect("proxy refuses connections");
        for _ in 0..3 {
            assert_eq!(exchange(&stream).await, Outcome::Answered);
        }
        assert_eq!(upstream.requests(), 3);
        assert_eq!(proxy.connections(), 1);
        assert_eq!(proxy.dropped_responses(), 0);

        assert_eq!(fresh_exchange(&proxy).await, Outcome::Answered);
        assert_eq!(proxy.connections(), 2);
        assert_eq!(upstream.requests(), 4);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_swallowed_response_was_processed_upstream_but_never_reaches_the_client() {
        let upstream = Upstream::start().await;
        let proxy = FaultProxy::start(upstream.addr).await;

        let stream = connect(&proxy).await.expect("proxy refuses connections");
        assert_eq!(exchange(&stream).await, Outcome::Answered);

        proxy.drop_next_responses(1);
        assert_eq!(exchange(&stream).await, Outcome::Failed { bytes: 0 });
        assert_eq!(
            upstream.requests(),
            2,
            "the upstream must have processed the swallowed request"
        );
        assert_eq!(proxy.dropped_responses(), 1);

        // One only: the next connection works again.
        assert_eq!(fresh_exchange(&proxy).await, Outcome::Answered);
        assert_eq!(upstream.requests(), 3);
        assert_eq!(proxy.dropped_responses(), 1);

        // Several, across connections.
        proxy.drop_next_responses(2);
        assert_eq!(fresh_exchange(&proxy).await, Outcome::Failed { bytes: 0 });
        assert_eq!(fresh_exchange(&proxy).await, Outcome::Failed { bytes: 0 });
        assert_eq!(fresh_exchange(&proxy).await, Outcome::Answered);
        assert_eq!(upstream.requests(), 6);
        assert_eq!(proxy.dropped_responses(), 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn offline_cuts_open_connections_and_refuses_new_ones_until_online() {
        let upstream = Upstream::start().await;
        let proxy = FaultProxy::start(upstream.addr).await;

        let idle = connect(&proxy).await.expect("proxy refuses connections");
        assert_eq!(exchange(&idle).await, Outcome::Answered);
        let busy = connect(&proxy).await.expect("proxy refuses connections");
        assert_eq!(exchange(&busy).await, Outcome::Answered);
        assert_eq!(upstream.requests(), 2);

        proxy.go_offline();
        // An idle pooled connection is closed without the client doing anything.
        closed_by_proxy(&idle, "offline").await;
        // A request on an already-open connection right after going offline never reaches upstream.
        assert_eq!(exchange(&busy).await, Outcome::Failed { bytes: 0 });
        // New connections fail.
        assert_eq!(fresh_exchange(&proxy).await, Outcome::Failed { bytes: 0 });
        assert_eq!(
            upstream.requests(),
            2,
            "a request got through while offline"
        );

        proxy.go_online();
        assert_eq!(fresh_exchange(&proxy).await, Outcome::Answered);
        assert_eq!(upstream.requests(), 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_brief_outage_still_cuts_pooled_connections() {
        let upstream = Upstream::start().await;
        let proxy = FaultProxy::start(upstream.addr).await;
        let pooled = connect(&proxy).await.expect("proxy refuses connections");
        assert_eq!(exchange(&pooled).await, Outcome::Answered);

        proxy.go_offline();
        proxy.go_online();
        closed_by_proxy(&pooled, "offline then online").await;
        assert_eq!(fresh_exchange(&proxy).await, Outcome::Answered);
        assert_eq!(upstream.requests(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn goes_offline_after_the_given_number_of_responses() {
        let upstream = Upstream::start().await;
        let proxy = FaultProxy::start(upstream.addr).await;
        let stream = connect(&proxy).await.expect("proxy refuses connections");

        proxy.go_offline_after_responses(2);
        assert_eq!(exchange(&stream).await, Outcome::Answered);
        assert_eq!(exchange(&stream).await, Outcome::Answered);
        assert_eq!(exchange(&stream).await, Outcome::Failed { bytes: 0 });
        assert_eq!(upstream.requests(), 2, "the third request reached upstream");
        // Now offline for everyone.
        assert_eq!(fresh_exchange(&proxy).await, Outcome::Failed { bytes: 0 });

        // Online again, and the trigger does not fire twice.
        proxy.go_online();
        for _ in 0..3 {
            assert_eq!(fresh_exchange(&proxy).await, Outcome::Answered);
        }
        assert_eq!(upstream.requests(), 5);

        // Counted across connections; 0 means the very next request.
        proxy.go_offline_after_responses(1);
        assert_eq!(fresh_exchange(&proxy).await, Outcome::Answered);
        assert_eq!(fresh_exchange(&proxy).await, Outcome::Failed { bytes: 0 });
        proxy.go_online();
        proxy.go_offline_after_responses(0);
        assert_eq!(fresh_exchange(&proxy).await, Outcome::Failed { bytes: 0 });
        assert_eq!(upstream.requests(), 6);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropping_the_last_handle_stops_the_proxy() {
        let upstream = Upstream::start().await;
        let proxy = FaultProxy::start(upstream.addr).await;
        let handle = proxy.clone();
        let stream = connect(&proxy).await.expect("proxy refuses connections");
        assert_eq!(exchange(&stream).await, Outcome::Answered);

        drop(proxy);
        // Still running through the clone.
        assert_eq!(exchange(&stream).await, Outcome::Answered);
        assert_eq!(handle.connections(), 1);

        let addr = handle.addr();
        drop(handle);
        closed_by_proxy(&stream, "dropped proxy").await;
        // A late connection is refused or reset, never forwarded.
        if let Ok(Ok(late)) = timeout(LIMIT, TcpStream::connect(addr)).await {
            assert_eq!(exchange(&late).await, Outcome::Failed { bytes: 0 });
        }
        assert_eq!(upstream.requests(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_upstream_that_is_down_resets_the_client() {
        // Bind and release a port so that nothing listens there.
        let vacant = {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            listener.local_addr().unwrap()
        };
        let proxy = FaultProxy::start(vacant).await;
        assert_eq!(fresh_exchange(&proxy).await, Outcome::Failed { bytes: 0 });
    }

    /// The way the end-to-end tests use it: reqwest with a keep-alive pool.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_pooling_http_client_sees_each_fault() {
        // reqwest is built without a default TLS provider; ignore "already installed".
        let _ = rustls::crypto::ring::default_provider().install_default();
        let upstream = Upstream::start().await;
        let proxy = FaultProxy::start(upstream.addr).await;
        let client = reqwest::Client::builder()
            .timeout(LIMIT)
            .pool_max_idle_per_host(16)
            .build()
            .unwrap();
        let url = format!("{}/ping", proxy.url());
        let get = || async {
            match timeout(LIMIT, client.get(&url).send()).await {
                Err(_) => panic!("reqwest GET through the proxy hangs"),
                Ok(Err(e)) => Err(e),
                Ok(Ok(resp)) => {
                    assert_eq!(resp.status().as_u16(), 200);
                    let body = timeout(LIMIT, resp.text()).await.expect("body hangs");
                    Ok(body.unwrap())
                }
            }
        };

        for _ in 0..3 {
            assert_eq!(get().await.unwrap(), "ok");
        }
        // No assertion on `connections()`: hyper races a new connect against the return of the
        // previous connection to its pool, so back-to-back requests may open a second one.
        assert_eq!(upstream.requests(), 3);

        proxy.drop_next_responses(1);
        get()
            .await
            .expect_err("a swallowed response must fail the request");
        assert_eq!(upstream.requests(), 4);
        assert_eq!(get().await.unwrap(), "ok");

        proxy.go_offline();
        get().await.expect_err("offline must fail the request");
        assert_eq!(upstream.requests(), 5);
        proxy.go_online();
        // The pool may still hold a connection the proxy cut but hyper has not yet seen closed (it
        // races a connect against the pool, so there can be more than one); a request written into
        // it fails with a reset and is not retried. At most one such failure per stale connection.
        let mut stale = 0;
        let body = loop {
            match get().await {
                Ok(body) => break body,
                Err(e) if stale < 3 => {
                    stale += 1;
                    eprintln!("stale pooled connection after the outage: {e}");
                }
                Err(e) => panic!("still failing after going online: {e}"),
            }
        };
        assert_eq!(body, "ok");
        assert_eq!(upstream.requests(), 6);

        proxy.go_offline_after_responses(2);
        assert_eq!(get().await.unwrap(), "ok");
        assert_eq!(get().await.unwrap(), "ok");
        get().await.expect_err("the third request must fail");
        assert_eq!(upstream.requests(), 8);
        assert_eq!(proxy.dropped_responses(), 1);
    }
}
