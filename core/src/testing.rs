//! Test support: a loopback HTTP/1.1 backend answering each request from a closure. Compiled for
//! tests only (`#[cfg(test)]` in `lib.rs`): a failure here is the test's failure, so it panics.

use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The requests a [`fake_backend`] was sent, as "METHOD /path?query", in order.
pub(crate) type Seen = Arc<Mutex<Vec<String>>>;

/// Starts a loopback backend that answers every request with `answer(method, path)` — a status
/// line ("200 OK") and a JSON body — and returns its URL and the requests it was sent.
pub(crate) async fn fake_backend(
    answer: impl Fn(&str, &str) -> (&'static str, String) + Send + Sync + 'static,
) -> (String, Seen) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        // Test-only (see the module doc): no loopback port means the test cannot run at all.
        .expect("bind loopback");
    // Test-only: a bound listener has an address.
    let url = format!("http://{}", listener.local_addr().expect("local addr"));
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let answer = Arc::new(answer);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let (log, answer) = (log.clone(), answer.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let mut chunk = [0u8; 4096];
                    let Ok(n) = socket.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                    let length: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().to_owned())
                        })
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    if buf.len() < end + 4 + length {
                        continue;
                    }
                    buf.drain(..end + 4 + length);
                    let mut words = head.split(' ');
                    let method = words.next().unwrap_or("").to_owned();
                    let path = words.next().unwrap_or("").to_owned();
                    if let Ok(mut seen) = log.lock() {
                        seen.push(format!("{method} {path}"));
                    }
                    let (status, body) = answer(&method, &path);
                    let reply = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if socket.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, seen)
}
