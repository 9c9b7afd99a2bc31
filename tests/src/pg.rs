//! A throwaway PostgreSQL server for the suites that run on PostgreSQL: a fresh cluster in a
//! temporary directory (`initdb`), one `postgres` child listening on a unix socket only (no port
//! to clash with), a database per test, stopped and removed on drop.
//!
//! The binaries come from `FRIEND_PG_BIN`, else the newest `/usr/lib/postgresql/*/bin` (Debian's
//! `postgresql` package; `.ci/run` installs it). `initdb` refuses to run as root, so as root the
//! server runs as the `postgres` user (`runuser`). Durability is off (`fsync=off`): these are
//! tests, and the server dies with them: it runs under a small shell that stops it and removes its
//! files when its standard input closes — when the test process ends, however it ends, so a server
//! shared by a whole test binary ([`PgServer::shared`]) is not left behind either.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Runs `postgres` with the arguments given, stops it (fast shutdown) when stdin closes, then
/// removes the data and socket directories ($1, $2).
const GUARD: &str = r#"data="$1"; sockets="$2"; shift 2
"$@" & pid=$!
read _ignored
kill -INT "$pid" 2>/dev/null
wait "$pid"
rm -rf "$data" "$sockets""#;

/// How long the server may take to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A running PostgreSQL server of its own.
pub struct PgServer {
    child: Child,
    /// Closing it stops the server (see [`GUARD`]).
    stdin: Option<ChildStdin>,
    socket_dir: PathBuf,
    bin: PathBuf,
    next_db: AtomicU32,
    _data: tempfile::TempDir,
    _sockets: tempfile::TempDir,
}

impl PgServer {
    /// Starts a fresh cluster; `Err` says what is missing or what failed.
    pub fn start() -> Result<PgServer, String> {
        let bin = bin_dir()?;
        let data = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
        let sockets = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
        let as_root = is_root();
        if as_root {
            for dir in [data.path(), sockets.path()] {
                run(Command::new("chown").arg("postgres").arg(dir))?;
            }
        }
        let cluster = data.path().join("cluster");
        let mut initdb = as_user(as_root, &bin.join("initdb"));
        initdb.arg("-D").arg(&cluster).args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
        ]);
        run(&mut initdb)?;
        let mut postgres = as_user(as_root, Path::new("sh"));
        postgres
            .args(["-c", GUARD, "guard"])
            .arg(data.path())
            .arg(sockets.path())
            .arg(bin.join("postgres"))
            .arg("-D")
            .arg(&cluster)
            .arg("-k")
            .arg(sockets.path())
            .args(["-c", "listen_addresses="])
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off", "-c", "max_connections=300"])
            .args(["-c", "lc_messages=C"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = postgres
            .spawn()
            .map_err(|e| format!("starting postgres: {e}"))?;
        let stdin = child.stdin.take();
        let log = child.stderr.take();
        let server = PgServer {
            child,
            stdin,
            socket_dir: sockets.path().to_owned(),
            bin,
            next_db: AtomicU32::new(0),
            _data: data,
            _sockets: sockets,
        };
        let log = log.ok_or("postgres: no log pipe")?;
        wait_ready(log)?;
        Ok(server)
    }

    /// One server for the whole test binary (each test takes a database of its own); started on
    /// first use, stopped when the process ends.
    pub fn shared() -> &'static PgServer {
        static SERVER: OnceLock<PgServer> = OnceLock::new();
        SERVER.get_or_init(PgServer::start_or_panic)
    }

    /// Starts a cluster or fails the test with what to install.
    pub fn start_or_panic() -> PgServer {
        PgServer::start().unwrap_or_else(|e| {
            panic!(
                "these tests need a PostgreSQL server (apt-get install postgresql, or set \
                 FRIEND_PG_BIN to its bin directory; .ci/run installs it): {e}"
            )
        })
    }

    /// Connection settings for database `name` (key-value form; the socket directory as host).
    pub fn url(&self, name: &str) -> String {
        format!(
            "host={} user=postgres dbname={name}",
            self.socket_dir.display()
        )
    }

    /// Creates a fresh, empty database and returns its connection settings.
    pub fn database(&self) -> Result<String, String> {
        let name = format!(
            "friend_test_{}",
            self.next_db.fetch_add(1, Ordering::Relaxed)
        );
        run(Command::new(self.bin.join("createdb"))
            .arg("-h")
            .arg(&self.socket_dir)
            .args(["-U", "postgres", &name]))?;
        Ok(self.url(&name))
    }
}

impl PgServer {
    /// The whole content of the database `url` names as SQL text (`pg_dump`): what a test
    /// searches for data that must not be stored in clear.
    pub fn dump(&self, url: &str) -> Result<Vec<u8>, String> {
        let mut cmd = Command::new(self.bin.join("pg_dump"));
        cmd.arg("--dbname").arg(url);
        let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
        if out.status.success() {
            Ok(out.stdout)
        } else {
            Err(format!(
                "{cmd:?} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        // Closing stdin makes the guard stop the server ("fast shutdown", milliseconds).
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

/// Waits until the server's log says it accepts connections (bounded by [`READY_TIMEOUT`]); the
/// rest of the log is drained by the same thread so the server never blocks on a full pipe.
fn wait_ready(log: std::process::ChildStderr) -> Result<(), String> {
    let (ready, said) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut tail = Vec::new();
        let mut told = false;
        for line in BufRead::lines(std::io::BufReader::new(log)).map_while(Result::ok) {
            if !told && line.contains("database system is ready to accept connections") {
                told = ready.send(Ok(())).is_ok();
            } else if !told {
                tail.push(line);
            }
        }
        if !told {
            let _ = ready.send(Err(format!("postgres exited: {}", tail.join(" / "))));
        }
    });
    said.recv_timeout(READY_TIMEOUT)
        .map_err(|_| format!("postgres not ready after {READY_TIMEOUT:?}"))?
}

/// The PostgreSQL binaries: `FRIEND_PG_BIN`, else the newest `/usr/lib/postgresql/*/bin`.
fn bin_dir() -> Result<PathBuf, String> {
    if let Ok(dir) = std::env::var("FRIEND_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .map_err(|e| format!("{}: {e}", root.display()))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .ok_or_else(|| format!("no PostgreSQL server under {}", root.display()))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// `program`, as the `postgres` user when we are root.
fn as_user(as_root: bool, program: &Path) -> Command {
    if as_root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
