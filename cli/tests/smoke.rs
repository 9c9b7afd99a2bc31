//! The built `friendctl` binary end to end: `serve` on a free loopback port with a fresh database,
//! then `customer` and `friend` commands as separate processes — online negotiation and rating,
//! consent by payload exchange with the Friend offline, the lost race, and the exit codes for a bad
//! token and a backend that is not running.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_friendctl");

/// Kills the server when the test ends, also on failure.
pub(crate) struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `friendctl serve` on a free loopback port with a fresh database; returns its URL.
pub(crate) fn serve(db: &Path) -> (Server, String) {
    serve_with(db, &[])
}

/// [`serve`] with more arguments (e.g. `--admin-token`).
pub(crate) fn serve_with(db: &Path, extra: &[&str]) -> (Server, String) {
    let mut child = Command::new(BIN)
        .args(["serve", "--addr", "127.0.0.1:0", "--db"])
        .arg(db)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("friendctl serve starts");
    let stdout = child.stdout.take().expect("stdout");
    let server = Server(child);
    let mut lines = BufReader::new(stdout);
    let mut first = String::new();
    lines.read_line(&mut first).expect("the first line");
    // Keep reading: a closed pipe would make the server's next println fail.
    std::thread::spawn(move || for _ in lines.lines() {});
    let url = first
        .trim()
        .rsplit(' ')
        .next()
        .filter(|u| u.starts_with("http://127.0.0.1:"))
        .unwrap_or_else(|| panic!("no address in {first:?}"))
        .to_owned();
    (server, url)
}

struct Cli {
    url: String,
    dir: PathBuf,
}

impl Cli {
    fn run(&self, role: &str, token: &str, db: &str, args: &[&str]) -> Output {
        Command::new(BIN)
            .arg(role)
            .args(["--url", &self.url, "--token", token, "--db"])
            .arg(self.dir.join(db))
            .args(args)
            .output()
            .expect("friendctl runs")
    }

    fn ok(&self, role: &str, token: &str, db: &str, args: &[&str]) -> Value {
        let out = self.run(role, token, db, args);
        assert!(
            out.status.success(),
            "{role} {args:?} failed ({:?}):\n{}\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }

    fn customer(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        self.ok("customer", "dev-customer-heidi", "heidi.db", &all)
    }

    fn anna(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        self.ok("friend", "dev-friend-anna", "anna.db", &all)
    }

    /// Books a router installation (distinct descriptions: the same booking twice within ten
    /// minutes is deduplicated on purpose).
    fn book(&self, description: &str) -> String {
        let booked = self.customer(&[
            "book",
            "--service",
            "network.router_setup",
            "--description",
            description,
        ]);
        booked["job_id"].as_str().expect("a job id").to_owned()
    }
}

#[test]
fn serve_friend_and_customer_over_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, url) = serve(&dir.path().join("backend.db"));
    let cli = Cli {
        url,
        dir: dir.path().to_owned(),
    };

    // Online: book, see it in the inbox, win the race, check in, agree a price, complete, rate.
    let job = cli.book("New router, Wi-Fi does not reach the bedroom");
    let inbox = cli.anna(&["inbox"]);
    let ids: Vec<_> = inbox["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["offer"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(ids.contains(&job), "{inbox}");
    let won = cli.anna(&["accept", &job]);
    assert_eq!(won["outcome"], "won");
    assert_eq!(
        won["job"]["contact"]["name"], "Heidi Muster",
        "the winner sees the contact"
    );
    let lost = cli.run("friend", "dev-friend-luca", "luca.db", &["accept", &job]);
    assert_eq!(lost.status.code(), Some(6), "a lost race is exit code 6");
    cli.anna(&["check-in", &job]);
    let proposed = cli.anna(&[
        "propose",
        &job,
        "--item",
        "service:1:89.00:Router installation",
        "--item",
        "material:1:12.50:LAN cable 5 m",
    ]);
    assert_eq!(proposed["applied"], true);
    assert_eq!(proposed["total"]["minor"], 10150);
    let accepted = cli.customer(&["accept-quote", &job]);
    assert_eq!(accepted["version"], 1);
    cli.anna(&["complete", &job, "--payment", "cash"]);
    cli.customer(&[
        "rate",
        &job,
        "--stars",
        "5",
        "--comment",
        "Quick and friendly",
    ]);
    let shown = cli.customer(&["show", &job]);
    assert_eq!(shown["job"]["state"], "completed", "{shown}");
    assert_eq!(shown["job"]["rating"], 5);
    assert_eq!(shown["job"]["final_total"]["minor"], 10150);

    // Offline: the Friend's phone has no signal on site; consent goes by payload, the outbox
    // replays when the phone is back.
    let job = cli.book("Router in the cellar, no signal down there");
    cli.anna(&["accept", &job]);
    cli.anna(&["check-in", &job]);
    let proposal = cli.anna(&[
        "--offline",
        "propose",
        &job,
        "--item",
        "service:1:89.00:Router installation",
    ]);
    assert_eq!(proposal["applied"], false, "queued, not sent");
    let payload = proposal["payload"].as_str().unwrap();
    cli.customer(&["import", &job, payload]);
    let acceptance = cli.customer(&["accept-quote", &job]);
    let agreed = cli.anna(&[
        "--offline",
        "import",
        &job,
        acceptance["payload"].as_str().unwrap(),
    ]);
    assert_eq!(agreed["agreed"]["version"], 1, "{agreed}");
    cli.anna(&["--offline", "complete", &job, "--payment", "online"]);
    let outbox = cli.anna(&["outbox"]);
    let statuses: Vec<_> = outbox
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["status"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        statuses.iter().all(|s| s == "applied"),
        "everything replayed: {outbox}"
    );
    assert_eq!(cli.customer(&["show", &job])["job"]["state"], "completed");

    // Exit codes scripts rely on.
    let bad = cli.run("friend", "not-a-token", "bad.db", &["status"]);
    assert_eq!(
        bad.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    assert!(String::from_utf8_lossy(&bad.stderr).contains("token"));
    let down = Command::new(BIN)
        .args([
            "friend",
            "--url",
            "http://127.0.0.1:1",
            "--token",
            "dev-friend-anna",
            "--db",
        ])
        .arg(dir.path().join("down.db"))
        .arg("status")
        .output()
        .unwrap();
    assert_eq!(
        down.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    assert!(String::from_utf8_lossy(&down.stderr).contains("friendctl serve"));
    let usage = Command::new(BIN)
        .args(["friend", "accept", "not-a-uuid"])
        .output()
        .unwrap();
    assert_eq!(usage.status.code(), Some(2));
    let help = Command::new(BIN)
        .args(["customer", "book", "--help"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("Examples"));
}

/// Sizes and lengths out of range are usage errors (exit 2) before any work starts, not an
/// allocation abort halfway through set-up.
#[test]
fn out_of_range_numbers_are_usage_errors() {
    for args in [
        &["simulate", "--jobs", "99999999999"][..],
        &["simulate", "--friends", "0"],
        &["simulate", "--customers", "5001"],
        &["simulate", "--instances", "17"],
        &["customer", "book", "--slot-hours", "13"],
        &["customer", "book", "--slot-hours", "0"],
        // The deadline is now + timeout: a huge one used to panic (instant overflow).
        &[
            "customer",
            "watch",
            "0b7f3c1e-3c59-4a55-9d3e-8d4c7c0e1a2b",
            "--timeout",
            "18446744073709551615",
        ],
        &[
            "customer",
            "watch",
            "0b7f3c1e-3c59-4a55-9d3e-8d4c7c0e1a2b",
            "--timeout",
            "2592001",
        ],
    ] {
        let out = Command::new(BIN).args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("is not in"), "{args:?}: {stderr}");
    }
}

/// `friendctl … | head -1`: a reader that goes away after the first line is not a crash — the
/// command finishes its work, exits with its own code, and prints no panic.
#[test]
fn a_closed_output_pipe_is_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, url) = serve(&dir.path().join("backend.db"));
    let mut child = Command::new(BIN)
        .args([
            "customer",
            "--url",
            &url,
            "--token",
            "dev-customer-heidi",
            "--db",
        ])
        .arg(dir.path().join("c.db"))
        .args(["catalog"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Close the reading end before the command writes: every write then fails with EPIPE.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}
