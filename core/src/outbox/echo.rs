//! The local echo: a job as this device shows it, the server's details with the still-queued
//! actions laid on top — moved as the shared state machine would move them — without ever
//! overwriting what the server said. A queued check-in shows the job on site, a queued cancel shows
//! it cancelled, a queued release hides it (the negotiation's pending steps are echoed by
//! `crate::negotiation::local_view`, a decline by the inbox hiding the offer).

use super::ActionKind;
use friend_protocol::JobDetails;
use friend_protocol::lifecycle::{self, Actor, Event, JobFacts};

/// `details` with the `pending` kinds (oldest first) applied, and whether one hides the job. A
/// queued action the job is already past changes nothing (the server will answer it).
pub(crate) fn shown(
    mut details: JobDetails,
    pending: impl IntoIterator<Item = ActionKind>,
) -> (JobDetails, bool) {
    let mut hidden = false;
    for kind in pending {
        let (actor, event) = match kind {
            ActionKind::Release => {
                hidden = true;
                continue;
            }
            ActionKind::CheckIn => match details.friend.as_ref() {
                Some(holder) => (Actor::Friend(holder.id), Event::CheckIn),
                None => continue,
            },
            ActionKind::Cancel => (Actor::Customer(details.customer_id), Event::Cancel),
            _ => continue,
        };
        if let Ok(next) = lifecycle::transition(&JobFacts::of(&details), &actor, event) {
            details.state = next.state;
        }
    }
    (details, hidden)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::cache::tests::new_job;
    use friend_protocol::{AccountId, FriendSummary, JobState, Tier};

    fn held(state: JobState) -> JobDetails {
        let mut job = new_job(1, 3, state);
        job.friend = Some(FriendSummary {
            id: AccountId(uuid::Uuid::from_u128(9)),
            name: "Anna".into(),
            tier: Tier::Friend,
        });
        job
    }

    #[test]
    fn queued_actions_move_the_shown_state_as_the_state_machine_would() {
        let (job, hidden) = shown(held(JobState::Assigned), [ActionKind::CheckIn]);
        assert_eq!((job.state, hidden), (JobState::OnSite, false));
        // Already past it (the customer uploaded the signed proposal first): nothing changes.
        let (job, _) = shown(held(JobState::Agreed), [ActionKind::CheckIn]);
        assert_eq!(job.state, JobState::Agreed);
        // The customer's cancel, before and after the Friend arrived.
        assert_eq!(
            shown(held(JobState::Assigned), [ActionKind::Cancel])
                .0
                .state,
            JobState::Cancelled
        );
        assert_eq!(
            shown(held(JobState::OnSite), [ActionKind::Cancel]).0.state,
            JobState::OnSite
        );
        // A release hides the job; other kinds leave it as the server said.
        assert!(shown(held(JobState::Assigned), [ActionKind::Release]).1);
        let (job, hidden) = shown(
            held(JobState::OnSite),
            [ActionKind::Consent, ActionKind::Reject],
        );
        assert_eq!((job.state, hidden), (JobState::OnSite, false));
        assert_eq!(job, held(JobState::OnSite), "nothing else is touched");
    }
}
