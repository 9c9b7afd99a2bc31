//! Delta sync of the inbox and the caller's jobs (SPEC §5).
//!
//! The server keeps one ordered log of job changes; what concerns a caller is the changes of the
//! jobs that name them and, for a Friend, those of open jobs in the area tiles their reach touches
//! that the eligibility rule lets them see. A client asks for the changes after its cursor
//! (`GET /v1/sync?cursor=…&wait=…&limit=…`) and applies each page together with the page's cursor
//! in one transaction. Without a cursor — first sync, or after a [`crate::ErrorCode::CursorTooOld`]
//! answer — the server sends a snapshot: pages with `reset = true` that together replace the cache.

use crate::{JobDetails, JobId, Offer};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Longest long-poll the server holds a sync request, in seconds.
pub const MAX_WAIT_SECS: u32 = 30;
/// Largest page a client may ask for.
pub const MAX_PAGE_LIMIT: u32 = 1000;
/// Page size when the client does not ask for one.
pub const DEFAULT_PAGE_LIMIT: u32 = 500;

/// Why a job left the caller's inbox or jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RemovalReason {
    /// Another Friend accepted it.
    Taken,
    /// The customer cancelled it.
    Cancelled,
    /// Nobody accepted it in time.
    Expired,
    /// The caller is no longer eligible.
    NotEligible,
    /// The caller declined it.
    Declined,
    /// A reason this build does not know.
    #[serde(other)]
    Unknown,
}

/// One change in a sync page. Each change states where the job now lives for the caller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)] // most changes are offers: boxing them would add an allocation each
pub enum Change {
    /// An open job the caller is eligible for (insert or update in the inbox).
    Offer {
        /// The offer.
        offer: Offer,
    },
    /// A job the caller holds or booked, with full details (insert or update in "my jobs").
    Job {
        /// The job.
        job: Box<JobDetails>,
    },
    /// The job left the caller's inbox.
    Removed {
        /// Which job.
        job_id: JobId,
        /// The job's version at removal, so a client can ignore it when it already knows newer data.
        version: u64,
        /// Why.
        reason: RemovalReason,
    },
    /// A change kind this build does not know; skip it.
    #[serde(other)]
    Unknown,
}

/// One page of changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SyncPage {
    /// The server's clock when the page was built; clients derive their clock offset from it.
    pub server_time: DateTime<Utc>,
    /// Opaque cursor to store with this page and send with the next request.
    pub cursor: String,
    /// More changes are waiting: ask again right away.
    pub more: bool,
    /// This page belongs to a snapshot: the pages up to the one with `more = false` replace the cache.
    pub reset: bool,
    /// The changes, oldest first; at most one per job.
    pub changes: Vec<Change>,
}

/// `GET /v1/ready`: this instance serves and its database answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Readiness {
    /// Always `ready` (a 503 `unavailable` says why not).
    pub status: String,
    /// The server's clock.
    pub server_time: DateTime<Utc>,
    /// Long-polls waiting on this instance now (what a drain will answer at once).
    pub waiting_long_polls: u64,
}

/// `GET /v1/health`: liveness and the server clock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    /// Always `ok` when the server answers.
    pub status: String,
    /// The server's clock.
    pub server_time: DateTime<Utc>,
}
