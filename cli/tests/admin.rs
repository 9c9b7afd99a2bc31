//! `friendctl admin` against `friendctl serve`: suspend and reactivate a Friend, rotate a token,
//! read the audit and the metrics; a wrong admin token exits 4, an unknown Friend 5, a malformed
//! id 2.

use super::smoke::{BIN, serve_with};
use serde_json::Value;
use std::process::{Command, Output};

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
