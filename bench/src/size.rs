//! P6 (the stripped release FFI library) and the memory of a Friend session holding 10,000 jobs.

use crate::report::Row;
use std::path::Path;
use std::process::Command;

/// Builds the phone library exactly as the packaging scripts do (`bindings/size.sh`: profile
/// `mobile`, trimmed SQLite), strips a copy and measures it.
pub fn p6_library_size(workspace: &Path) -> Row {
    let out = Command::new("bash")
        .arg("bindings/size.sh")
        .current_dir(workspace)
        .output();
    let bytes = out.ok().and_then(|o| {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .last()
            .and_then(|l| {
                l.split_whitespace()
                    .rev()
                    .nth(1)
                    .and_then(|n| n.parse::<u64>().ok())
            })
    });
    match bytes {
        Some(b) => Row::absolute(
            "P6",
            "FFI library for phones (x86_64 host build, profile mobile, stripped)",
            b as f64 / 1_000_000.0,
            "MB",
            5.0,
        ),
        None => Row::info(
            "P6",
            "stripped FFI library",
            "not measured: bindings/size.sh failed".into(),
        ),
    }
}

/// A `/proc/self/status` field in KB (e.g. `VmRSS:`), 0 when unreadable.
pub(crate) fn status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// Runs in a child process: the peak RSS of a Friend session holding 10,000 cached offers after an
/// inbox query (index loaded), and the process's RSS before the session opened.
pub async fn memory_child() {
    let before = status_kb("VmRSS:");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("mem.db");
    {
        let store = friend_core::store::Store::open(&db).unwrap();
        let cipher = friend_core::crypto::FieldCipher::new(&friend_tests::TEST_KEY).unwrap();
        let page: Vec<_> = crate::data::offers(10_000, 3)
            .into_iter()
            .map(|offer| friend_protocol::Change::Offer { offer })
            .collect();
        store
            .write(|tx| {
                friend_core::store::cache::apply_changes(
                    tx,
                    &cipher,
                    &page,
                    false,
                    crate::data::NOW_MS,
                )
            })
            .unwrap();
    }
    let account = friend_tests::TestAccount {
        id: friend_protocol::AccountId::random(),
        token: "t".into(),
    };
    // An unreachable loopback port: the session works from its cache alone.
    let session = friend_tests::open_friend("http://127.0.0.1:9", &account, &db).await;
    let here = friend_tests::point(friend_tests::places::ZURICH);
    let inbox = session
        .inbox(here, 500.0, friend_core::InboxFilter::default())
        .await
        .unwrap();
    let peak = status_kb("VmHWM:");
    println!("{before} {peak} {}", inbox.items.len());
}

/// Spawns [`memory_child`] and reads its figures.
pub fn memory() -> Vec<Row> {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe).arg("mem-child").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let nums: Vec<u64> = text
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    let [before, peak, items] = nums[..] else {
        return vec![Row::info(
            "mem",
            "peak RSS of a Friend session",
            format!("not measured: {text}"),
        )];
    };
    vec![
        Row::info(
            "mem",
            &format!(
                "peak RSS, process with a Friend session holding {items} cached offers (index loaded)"
            ),
            format!("{:.1} MB", peak as f64 / 1024.0),
        ),
        Row::info(
            "mem",
            "baseline: the same process before opening the session",
            format!("{:.1} MB", before as f64 / 1024.0),
        ),
    ]
}
