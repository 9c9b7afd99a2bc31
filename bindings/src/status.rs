//! Sync status and sync reports, shared by every session kind.

use crate::error::core_code_to_ffi;
use std::time::{Duration, SystemTime};

/// The last sync failure.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SyncError {
    /// The stable code, as `FriendCoreError.code()` would give it (e.g. `offline`).
    pub code: String,
    /// Description for logs.
    pub detail: String,
}

/// The observable sync state: connectivity, last success, outbox counts, first-sync progress.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SyncStatus {
    /// The last request reached the backend.
    pub connected: bool,
    /// Device time of the last successful sync.
    pub last_success: Option<SystemTime>,
    /// Outbox items waiting for delivery.
    pub pending_outbox: u32,
    /// Outbox items the server refused (set aside with their reason).
    pub refused_outbox: u32,
    /// The last failure.
    pub last_error: Option<SyncError>,
    /// A snapshot (first sync or full resync) is in progress.
    pub snapshot_in_progress: bool,
    /// Items received by the snapshot in progress so far.
    pub snapshot_items: u64,
    /// Server clock minus device clock, ms.
    pub clock_offset_ms: i64,
    /// Response bytes received from the backend since the session opened.
    pub bytes_received: u64,
    /// Set when the session found its database corrupt at open and rebuilt it.
    pub cache_recovery: Option<CacheRecovery>,
}

/// A corrupt database found at open and rebuilt: the damaged file is kept aside (never deleted)
/// and the undelivered outbox carried over; the cache refills at the next sync.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct CacheRecovery {
    /// What SQLite reported.
    pub problem: String,
    /// Where the damaged file was kept.
    pub kept_at: String,
    /// Undelivered outbox items carried over.
    pub outbox_items_restored: u64,
}

impl From<friend_core::SyncStatus> for SyncStatus {
    fn from(s: friend_core::SyncStatus) -> SyncStatus {
        SyncStatus {
            connected: s.connected,
            last_success: s.last_success_ms.and_then(device_time),
            pending_outbox: s.pending_outbox,
            refused_outbox: s.refused_outbox,
            last_error: s.last_error.map(|(code, detail)| SyncError {
                code: core_code_to_ffi(&code).to_owned(),
                detail,
            }),
            snapshot_in_progress: s.snapshot_in_progress,
            snapshot_items: s.snapshot_items,
            clock_offset_ms: s.clock_offset_ms,
            bytes_received: s.bytes_received,
            cache_recovery: s.cache_recovery.map(|r| CacheRecovery {
                problem: r.problem,
                kept_at: r.kept_at.display().to_string(),
                outbox_items_restored: r.outbox_items_restored as u64,
            }),
        }
    }
}

fn device_time(ms: i64) -> Option<SystemTime> {
    let ms = u64::try_from(ms).ok()?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_millis(ms))
}

/// What a sync run did.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SyncReport {
    /// Pages applied.
    pub pages: u32,
    /// Changes applied.
    pub changes: u64,
    /// The run ended with a full snapshot replacing the cache.
    pub replaced_cache: bool,
}

impl From<friend_core::SyncReport> for SyncReport {
    fn from(r: friend_core::SyncReport) -> SyncReport {
        SyncReport {
            pages: r.pages,
            changes: r.changes,
            replaced_cache: r.replaced_cache,
        }
    }
}
