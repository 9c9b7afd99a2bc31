//! The accept race's typed outcomes (SPEC §4).

use crate::JobDetails;
use serde::{Deserialize, Serialize};

/// Why a Friend may not take a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum NotEligibleReason {
    /// The job lies outside the Friend's reach.
    Distance,
    /// The Friend is not qualified for the category.
    Category,
    /// The job belongs to a brand community the Friend is not part of.
    Community,
    /// The service requires a higher tier.
    Tier,
    /// The Friend already holds a slot job that overlaps (travel time included).
    OverlappingJob,
    /// The platform suspended the Friend.
    Suspended,
    /// A reason this build does not know.
    #[serde(other)]
    Unknown,
}

impl NotEligibleReason {
    /// Stable wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            NotEligibleReason::Distance => "distance",
            NotEligibleReason::Category => "category",
            NotEligibleReason::Community => "community",
            NotEligibleReason::Tier => "tier",
            NotEligibleReason::Suspended => "suspended",
            NotEligibleReason::OverlappingJob => "overlapping_job",
            NotEligibleReason::Unknown => "unknown",
        }
    }
}

/// Outcome of `POST /v1/friend/jobs/{id}/accept`. Stored under the request's idempotency key, so a
/// retry returns the same outcome — a Friend whose "won" response was lost learns they won.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum AcceptOutcome {
    /// The caller won; the job with full details.
    Won {
        /// The job, now assigned to the caller.
        job: Box<JobDetails>,
    },
    /// Another Friend was first.
    Taken,
    /// The customer cancelled.
    Cancelled,
    /// Nobody accepted in time.
    Expired,
    /// The caller may not take this job.
    NotEligible {
        /// Why.
        reason: NotEligibleReason,
    },
    /// An outcome this build does not know.
    #[serde(other)]
    Unknown,
}

impl AcceptOutcome {
    /// Stable wire name (the `outcome` tag).
    pub fn as_str(&self) -> &'static str {
        match self {
            AcceptOutcome::Won { .. } => "won",
            AcceptOutcome::Taken => "taken",
            AcceptOutcome::Cancelled => "cancelled",
            AcceptOutcome::Expired => "expired",
            AcceptOutcome::NotEligible { .. } => "not_eligible",
            AcceptOutcome::Unknown => "unknown",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stable_name_is_the_wire_tag() {
        for outcome in [
            AcceptOutcome::Taken,
            AcceptOutcome::Cancelled,
            AcceptOutcome::Expired,
            AcceptOutcome::NotEligible {
                reason: NotEligibleReason::Category,
            },
        ] {
            let json = serde_json::to_value(&outcome).unwrap_or_default();
            assert_eq!(json["outcome"], outcome.as_str());
        }
    }
}
