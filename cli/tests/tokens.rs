//! The built binary with a token of the other role or a malformed one: every device command of
//! both roles refuses the other role's token with exit code 4 and a message naming the role the
//! token belongs to, and leaves no database behind; each kind of malformed token is a usage error
//! (exit 2) that says what is wrong; logs follow `-v` and never carry colour codes into a pipe.

use super::smoke::{BIN, serve};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn friendctl(url: &str, db: &Path, role: &str, token: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg(role)
        .args(["--url", url, "--token", token, "--db"])
        .arg(db)
        .args(args)
        // What is checked is friendctl's own default, not the environment's.
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .env_remove("FRIENDCTL_TOKEN")
        .output()
        .expect("friendctl runs")
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// No escape codes and no log lines below error on stderr (the command's own error line is fine).
fn assert_quiet(out: &Output, what: &str) {
    assert!(
        !out.stderr.contains(&0x1b),
        "{what}: colour codes on a pipe\n{}",
        text(out)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains(" WARN ") && !stderr.contains(" INFO "),
        "{what}: log lines without -v\n{}",
        text(out)
    );
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn the_other_roles_token_is_exit_4_naming_its_role_and_caches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, url) = serve(&dir.path().join("backend.db"));
    // Heidi books, so each account has something of its own a wrong session could cache: her job
    // is in her feed and in Anna's inbox.
    let own = dir.path().join("own");
    let booked = friendctl(
        &url,
        &own.join("heidi.db"),
        "customer",
        "dev-customer-heidi",
        &["--json", "book", "--service", "network.router_setup"],
    );
    assert_eq!(booked.status.code(), Some(0), "{}", text(&booked));
    let job: serde_json::Value = serde_json::from_slice(&booked.stdout).unwrap();
    let job = job["job_id"].as_str().unwrap().to_owned();

    let item = "service:1:89.00:Router installation";
    let friend_commands: Vec<Vec<&str>> = vec![
        vec!["status"],
        vec!["inbox"],
        vec!["inbox", "--at", "47.37,8.54"],
        vec!["accept", &job],
        vec!["decline", &job],
        vec!["jobs"],
        vec!["show", &job],
        vec!["check-in", &job],
        vec!["propose", &job, "--item", item],
        vec!["quote", &job],
        vec!["accept-quote", &job],
        vec!["reject-quote", &job],
        vec!["import", &job, "not-a-payload"],
        vec!["complete", &job],
        vec!["escalate", &job],
        vec!["unsuccessful", &job],
        vec!["outbox"],
        vec!["ledger"],
    ];
    let customer_commands: Vec<Vec<&str>> = vec![
        vec!["status"],
        vec!["catalog"],
        vec!["book", "--service", "network.router_setup"],
        vec!["jobs"],
        vec!["show", &job],
        vec!["watch", &job, "--timeout", "1"],
        vec!["quote", &job],
        vec!["accept-quote", &job],
        vec!["reject-quote", &job],
        vec!["counter", &job, "--item", item],
        vec!["import", &job, "not-a-payload"],
        vec!["cancel", &job],
        vec!["rate", &job, "--stars", "5"],
        vec!["outbox"],
    ];
    let wrong = dir.path().join("wrong");
    std::fs::create_dir_all(&wrong).unwrap();
    let cases = [
        (
            "friend",
            "dev-customer-heidi",
            "a customer account",
            &friend_commands,
        ),
        (
            "customer",
            "dev-friend-anna",
            "a Friend account",
            &customer_commands,
        ),
    ];
    for (role, token, belongs, commands) in cases {
        for args in commands {
            let out = friendctl(&url, &wrong.join(format!("{role}.db")), role, token, args);
            let what = format!("{role} {args:?} with {token}");
            assert_eq!(out.status.code(), Some(4), "{what}\n{}", text(&out));
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                stderr.contains(&format!("this token belongs to {belongs}")),
                "{what}: the message names the token's role\n{}",
                text(&out)
            );
            assert_quiet(&out, &what);
        }
    }
    // Nothing of either account was cached: not even an empty database or a key file was made.
    assert_eq!(files(&wrong), Vec::<PathBuf>::new());

    // With --offline the backend cannot be asked: work is queued locally, and the next online
    // command refuses the token before anything is delivered or synced.
    let offline_db = wrong.join("offline.db");
    let queued = friendctl(
        &url,
        &offline_db,
        "customer",
        "dev-friend-anna",
        &["--offline", "book", "--service", "network.router_setup"],
    );
    assert_eq!(queued.status.code(), Some(0), "{}", text(&queued));
    let online = friendctl(&url, &offline_db, "customer", "dev-friend-anna", &["jobs"]);
    assert_eq!(online.status.code(), Some(4), "{}", text(&online));
    let listing = friendctl(
        &url,
        &offline_db,
        "customer",
        "dev-friend-anna",
        &["--offline", "--json", "outbox"],
    );
    let items: serde_json::Value = serde_json::from_slice(&listing.stdout).unwrap();
    assert_eq!(
        items[0]["status"], "pending",
        "kept for a good token, neither sent nor refused: {items}"
    );
    for file in files(&wrong) {
        let bytes = std::fs::read(&file).unwrap();
        for marker in [job.as_str(), "Anna Keller", "Heidi Muster"] {
            assert!(
                !contains(&bytes, marker),
                "{marker} cached in {}",
                file.display()
            );
        }
    }
}

#[test]
fn a_malformed_token_is_a_usage_error_that_says_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens here: a malformed token must be caught before any connection is tried.
    let url = "http://127.0.0.1:9";
    let long = "x".repeat(friend_core::MAX_TOKEN_BYTES + 1);
    let cases = [
        ("", "it is empty"),
        ("dev-friend\nanna", "a line break at character 11"),
        ("dev-friend-anna\n", "ends with a line break"),
        ("dev-friend-anna\r\n", "a line break at character 16"),
        (" dev-friend-anna", "whitespace (U+0020) at character 1"),
        ("dev-friend-anna ", "whitespace (U+0020) at character 16"),
        ("dev friend anna", "whitespace (U+0020) at character 4"),
        ("dev-friend\tanna", "whitespace (U+0009)"),
        (
            "dev-friend\u{1}anna",
            "control character U+0001 at character 11",
        ),
        ("dev-friend\u{7f}", "control character U+007F"),
        ("dev-fréund", "non-ASCII character at character 7"),
        (long.as_str(), "bytes long"),
    ];
    for (token, problem) in cases {
        for role in ["friend", "customer"] {
            let out = friendctl(url, &dir.path().join("d.db"), role, token, &["status"]);
            let what = format!("{role} with {token:?}");
            assert_eq!(out.status.code(), Some(2), "{what}\n{}", text(&out));
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                stderr.contains("token")
                    && stderr.contains("malformed")
                    && stderr.contains(problem),
                "{what}: expected {problem:?}\n{}",
                text(&out)
            );
            assert_quiet(&out, &what);
        }
    }
    assert_eq!(files(dir.path()), Vec::<PathBuf>::new(), "nothing created");
    // A missing token is still the usage message that asks for one.
    let missing = Command::new(BIN)
        .args(["friend", "--url", url, "status"])
        .env_remove("FRIENDCTL_TOKEN")
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("--token is required"));
}

#[test]
fn logs_follow_verbosity_and_carry_no_colour_into_a_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, url) = serve(&dir.path().join("backend.db"));
    // A damaged database is rebuilt with a warning: the kind of event -v is for.
    let corrupt = |name: &str| {
        let db = dir.path().join(name);
        std::fs::write(&db, b"this is not an SQLite database, it is a test").unwrap();
        db
    };
    let quiet = friendctl(
        &url,
        &corrupt("quiet.db"),
        "friend",
        "dev-friend-anna",
        &["status"],
    );
    assert_eq!(quiet.status.code(), Some(0), "{}", text(&quiet));
    assert_quiet(&quiet, "status without -v");
    assert!(quiet.stderr.is_empty(), "{}", text(&quiet));

    let verbose = friendctl(
        &url,
        &corrupt("verbose.db"),
        "friend",
        "dev-friend-anna",
        &["-v", "status"],
    );
    assert_eq!(verbose.status.code(), Some(0), "{}", text(&verbose));
    let stderr = String::from_utf8_lossy(&verbose.stderr);
    assert!(
        stderr.contains("WARN") && stderr.contains("corrupt"),
        "-v shows the warning\n{}",
        text(&verbose)
    );
    assert!(
        !verbose.stderr.contains(&0x1b),
        "colour codes on a pipe\n{}",
        text(&verbose)
    );
}
