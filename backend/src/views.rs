//! What each caller may see of a job, decided in one place: the customer and the Friend holding the
//! job get full details; an eligible Friend gets the approximate offer; everyone else learns only
//! that it left their inbox, and why.

use crate::store::jobs::JobRow;
use chrono::{DateTime, Utc};
use friend_protocol::{Change, FriendProfile, JobState, RemovalReason, eligibility};

/// The change a Friend receives for a job (`declined`: whether they declined or released it).
/// An open job past its expiry counts as expired even before the sweep reaches it.
pub fn for_friend(job: &JobRow, me: &FriendProfile, declined: bool, now: DateTime<Utc>) -> Change {
    if job.friend_id() == Some(me.id) {
        return Change::Job {
            job: Box::new(job.details()),
        };
    }
    let reason = match job.state {
        JobState::Open if job.expires_at <= now => RemovalReason::Expired,
        JobState::Open => {
            if declined {
                RemovalReason::Declined
            } else if eligibility::check(me, &job.reach()).is_ok() {
                return Change::Offer { offer: job.offer() };
            } else {
                RemovalReason::NotEligible
            }
        }
        JobState::Cancelled => RemovalReason::Cancelled,
        JobState::Expired => RemovalReason::Expired,
        _ => RemovalReason::Taken,
    };
    Change::Removed {
        job_id: job.id,
        version: job.version,
        reason,
    }
}

/// The change a customer receives for one of their jobs.
pub fn for_customer(job: &JobRow) -> Change {
    Change::Job {
        job: Box::new(job.details()),
    }
}
