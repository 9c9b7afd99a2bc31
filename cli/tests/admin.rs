//! `friendctl admin` against `friendctl serve`: suspend and reactivate a Friend, rotate a token,
//! read the audit and the metrics; a wrong admin token exits 4, an unknown Friend 5, a malformed
//! id 2. Without a backend: plain http to a remote host, a URL without a scheme and a token with a
//! line break exit 2 before anything is sent; a backend that never answers exits 3 at --timeout.

use super::smoke::{BIN, serve_with};
use serde_json::Value;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn run(url: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(["admin", "--url", url])
        .args(args)
        .env_remove("FRIEND_ADMIN_TOKEN")
        .output()
        .expect("friendctl runs")
}

fn ok(url: &str, args: &[&str]) -> String {
    let out = run(url, args);
    assert!(
        out.status.success(),
        "admin {args:?} failed ({:?}): {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn suspend_reactivate_rotate_audit_and_metrics() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_server, url) = serve_with(
        &dir.path().join("backend.db"),
        &["--admin-token", "test-admin"],
    );
    let status = Command::new(BIN)
        .args([
            "friend",
            "--url",
            &url,
            "--token",
            "dev-friend-anna",
            "--db",
        ])
        .arg(dir.path().join("anna.db"))
        .args(["--json", "status"])
        .output()
        .expect("friendctl runs");
    assert!(status.status.success());
    let status: Value = serde_json::from_slice(&status.stdout).expect("JSON");
    let anna = status["profile"]["id"]
        .as_str()
        .expect("Anna's id")
        .to_owned();

    let suspended: Value = serde_json::from_str(&ok(
        &url,
        &[
            "--token",
            "test-admin",
            "suspend",
            &anna,
            "--reason",
            "no-shows",
        ],
    ))
    .expect("JSON");
    assert_eq!(suspended["suspended"], true);
    let back: Value =
        serde_json::from_str(&ok(&url, &["--token", "test-admin", "reactivate", &anna]))
            .expect("JSON");
    assert_eq!(back["suspended"], false);
    let rotated: Value =
        serde_json::from_str(&ok(&url, &["--token", "test-admin", "rotate-token", &anna]))
            .expect("JSON");
    assert!(rotated["token"].as_str().is_some_and(|t| !t.is_empty()));
    let audit: Value =
        serde_json::from_str(&ok(&url, &["--token", "test-admin", "audit"])).expect("JSON");
    let actions: Vec<&str> = audit["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .filter_map(|c| c["action"].as_str())
        .collect();
    assert_eq!(actions, ["rotate_token", "reactivate", "suspend"]);
    let qualified: Value = serde_json::from_str(&ok(
        &url,
        &[
            "--token",
            "test-admin",
            "qualify",
            &anna,
            "--categories",
            "tv,network",
            "--radius",
            "20",
        ],
    ))
    .expect("JSON");
    assert_eq!(qualified["radius_km"], 20);
    assert_eq!(
        qualified["categories"],
        serde_json::json!(["tv", "network"])
    );
    let friends: Value =
        serde_json::from_str(&ok(&url, &["--token", "test-admin", "friends"])).expect("JSON");
    assert!(
        friends["friends"].as_array().is_some_and(|f| f.len() == 5),
        "the five dev Friends"
    );
    let metrics = ok(&url, &["--token", "test-admin", "metrics"]);
    assert!(metrics.contains("friend_http_requests_total{"), "{metrics}");

    let refused = run(&url, &["--token", "wrong", "audit"]);
    assert_eq!(refused.status.code(), Some(4));
    let unknown = run(
        &url,
        &[
            "--token",
            "test-admin",
            "reactivate",
            "00000000-0000-4000-8000-000000000000",
        ],
    );
    assert_eq!(unknown.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("not_found"));
    let malformed = run(&url, &["--token", "test-admin", "reactivate", "anna"]);
    assert_eq!(malformed.status.code(), Some(2));
}

/// The admin token never goes over plain http to a host that is not loopback (the device
/// commands' rule); loopback and https are still allowed (here: nothing listens, so exit 3).
#[test]
fn plain_http_to_a_remote_host_is_a_usage_error() {
    for url in ["http://admin.example.invalid", "http://10.1.2.3:8080"] {
        let out = run(url, &["--token", "t", "audit"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{url}: {stderr}");
        assert!(
            stderr.contains("only allowed to loopback"),
            "{url}: {stderr}"
        );
        assert!(stderr.contains("https://"), "{url}: {stderr}");
    }
    // A port nothing listens on (bound, then closed).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    for url in [
        format!("http://127.0.0.1:{port}"),
        format!("http://localhost:{port}"),
    ] {
        let out = run(&url, &["--token", "t", "audit"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{url}: {stderr}");
    }
}

/// A URL without a scheme and a token no header can carry are usage errors that say what is
/// wrong, not "cannot reach the backend".
#[test]
fn a_url_without_a_scheme_or_a_token_with_a_line_break_is_a_usage_error() {
    let cases: [(&str, &str, &str); 5] = [
        ("localhost:8080", "t", "not an http:// or https:// URL"),
        ("127.0.0.1:8080", "t", "is not a URL"),
        (
            "http://127.0.0.1:8080",
            "admin\n",
            "line break at character 6",
        ),
        (
            "http://127.0.0.1:8080",
            "ad\u{1}min",
            "control character U+0001",
        ),
        ("http://127.0.0.1:8080", "", "it is empty"),
    ];
    for (url, token, says) in cases {
        let out = run(url, &["--token", token, "audit"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{url} {token:?}: {stderr}");
        assert!(stderr.contains(says), "{url} {token:?}: {stderr}");
        assert!(
            !stderr.contains("cannot reach"),
            "{url} {token:?}: {stderr}"
        );
    }
}

/// A backend that accepts the connection and never answers: the command gives up at --timeout
/// with the unreachable code (3), instead of hanging.
#[test]
fn a_backend_that_never_answers_times_out() {
    // The kernel completes the handshake for the backlog; nobody ever reads or answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", silent.local_addr().expect("address"));
    let started = Instant::now();
    let (tx, rx) = std::sync::mpsc::channel();
    let command_url = url.clone();
    std::thread::spawn(move || {
        let _ = tx.send(run(
            &command_url,
            &["--token", "t", "--timeout", "1", "audit"],
        ));
    });
    let out = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("friendctl admin gave up within 10 s");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("no answer within 1 s"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(10));
    drop(silent);
}
