//! Who is pushed, decided by the backend from the same rules as sync (SPEC §5, issue 13.2), and
//! queued in the transaction of the change itself.
//!
//! - An open job (booked, or given back): every eligible Friend ([`eligibility::check`]) with a
//!   push device, who did not decline it and has no waiting long-poll. Candidates are read by home
//!   tile around the job ([`area::tiles_around`] at the job's largest reach), so the choice costs
//!   O(Friends in the job's tiles), not O(all Friends); remote jobs reach every qualified Friend.
//! - The customer: accepted, arrived, a quote waits, the price is agreed, completed, expired, and
//!   the unhappy endings.
//! - The holding Friend: the customer cancelled, consent arrived, a quote was rejected, rated.
//!
//! "No waiting long-poll" is per account and read when the change is committed, before the
//! long-polls are woken: a long-poll waiting then is woken by this very commit and reads the change,
//! so the account's devices need no push.

use crate::area;
use crate::push::PushMessage;
use crate::push::content::{self, Recipient, Update};
use crate::sql::Tx;
use crate::store::jobs::{self, JobRow};
use crate::store::push::{self as queue, Device};
use chrono::{DateTime, Utc};
use friend_protocol::lifecycle::{Actor, Event};
use friend_protocol::push::PushKind;
use friend_protocol::{AccountId, JobId, JobState, Party, Place, eligibility};

/// After `friend`'s profile changed (suspended, qualifications, travel radius): the offers still
/// queued for their devices that the new profile no longer allows are withdrawn, the others stay
/// (the same rule as when they were queued, [`eligibility::check`]); how many rows went.
pub fn refit_offers(
    tx: &Tx<'_>,
    friend: &friend_protocol::FriendProfile,
) -> crate::sql::Result<usize> {
    let prefix = format!("{}-", PushKind::Offer.as_str());
    let queued: Vec<(String, Option<JobId>)> = queue::queued_offers_to(tx, friend.id)?
        .into_iter()
        .map(|key| {
            let job = key.strip_prefix(&prefix).and_then(|id| id.parse().ok());
            (key, job)
        })
        .collect();
    let ids: Vec<JobId> = queued.iter().filter_map(|(_, job)| *job).collect();
    let jobs = jobs::get_many(tx, &ids)?;
    let mut withdrawn = 0;
    for (key, job) in &queued {
        let fits = job
            .and_then(|id| jobs.get(&id))
            .is_some_and(|job| eligibility::check(friend, &job.reach()).is_ok());
        if !fits {
            withdrawn += queue::withdraw_from(tx, friend.id, key)?;
        }
    }
    Ok(withdrawn)
}

/// What a change tells whom; chosen where the change is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum News {
    /// Nobody is pushed (a declined offer, a new device key): syncing clients still see it.
    Quiet,
    /// The job is open for the crowd: offer it to the eligible Friends.
    Offered,
    /// The customer hears of it.
    Customer(Update),
    /// The holding Friend (or the one who held it until this change) hears of it.
    Friend(Update),
}

impl News {
    /// The news of a state-machine event (an event may tell several parties).
    pub fn of(event: Event, actor: &Actor) -> &'static [News] {
        match event {
            Event::Accept => &[News::Customer(Update::Accepted)],
            Event::Release => &[News::Offered, News::Customer(Update::SearchingAgain)],
            Event::CheckIn => &[News::Customer(Update::Arrived)],
            Event::AgreePrice => &[News::Customer(Update::PriceAgreed)],
            Event::Complete => &[News::Customer(Update::Completed)],
            Event::Cancel => match actor {
                Actor::Customer(_) => &[News::Friend(Update::Cancelled)],
                _ => &[],
            },
            Event::Expire => &[News::Customer(Update::Expired)],
            Event::Escalate => &[News::Customer(Update::Escalated)],
            Event::CheckOutUnsuccessful => &[News::Customer(Update::CheckedOut)],
            Event::SetAppointment => &[News::Customer(Update::AppointmentSet)],
            Event::OnMyWay => &[News::Customer(Update::OnTheWay)],
            Event::DeclineAppointment => {
                &[News::Offered, News::Friend(Update::AppointmentDeclined)]
            }
        }
    }

    /// `update` for the party other than `by` (negotiation steps tell the other side).
    pub fn to_other_than(by: Party, update: Update) -> News {
        match by {
            Party::Friend => News::Customer(update),
            _ => News::Friend(update),
        }
    }
}

/// A committed change's news about one job, with the job after the change.
#[derive(Debug, Clone)]
pub struct Announcement {
    /// The job after the change.
    pub job: JobRow,
    /// What it tells whom.
    pub news: News,
    /// The Friend holding it, or the one who held it until this change (a cancelled job's).
    pub holder: Option<AccountId>,
}

/// Queues the pushes `announcements` call for, skipping accounts for which `awake` holds (a
/// long-poll waits). Runs inside the change's transaction. Returns how many were queued.
pub fn enqueue(
    tx: &Tx<'_>,
    announcements: &[Announcement],
    awake: &dyn Fn(AccountId) -> bool,
    now: DateTime<Utc>,
) -> crate::sql::Result<usize> {
    let mut queued = 0;
    for a in announcements {
        if a.job.state != JobState::Open {
            // The offer is gone: its pushes still waiting would only announce a job the Friend
            // can no longer take.
            queue::withdraw(
                tx,
                &content::collapse_key(PushKind::Offer.as_str(), &a.job.id),
            )?;
        }
        queued += match a.news {
            News::Quiet => 0,
            News::Offered => offer(tx, &a.job, awake, now)?,
            News::Customer(update) => {
                let push = content::update_push(&a.job.details(), Recipient::Customer, update);
                to_account(tx, a.job.customer_id, &push, awake, now)?
            }
            News::Friend(update) => match a.holder {
                Some(friend) => {
                    let push = content::update_push(&a.job.details(), Recipient::Friend, update);
                    to_account(tx, friend, &push, awake, now)?
                }
                None => 0,
            },
        };
    }
    Ok(queued)
}

fn to_account(
    tx: &Tx<'_>,
    account: AccountId,
    push: &PushMessage,
    awake: &dyn Fn(AccountId) -> bool,
    now: DateTime<Utc>,
) -> crate::sql::Result<usize> {
    if awake(account) {
        return Ok(0);
    }
    let devices = queue::devices_of(tx, account)?;
    let expires = now + chrono::Duration::from_std(push.ttl).unwrap_or(chrono::Duration::zero());
    let pushes: Vec<_> = devices.iter().map(|d| (d, push.clone())).collect();
    queue::enqueue(tx, &pushes, expires, now)
}

/// Offers an open job to the eligible Friends' devices.
fn offer(
    tx: &Tx<'_>,
    job: &JobRow,
    awake: &dyn Fn(AccountId) -> bool,
    now: DateTime<Utc>,
) -> crate::sql::Result<usize> {
    if job.state != JobState::Open || job.expires_at <= now {
        return Ok(0);
    }
    let tiles = match (job.place, job.location) {
        (Place::OnSite, Some(at)) => Some(area::tiles_around(
            &at,
            eligibility::max_reach_m(job.radius_km),
        )),
        (Place::OnSite, None) => return Ok(0),
        _ => None,
    };
    let declined = jobs::decliners(tx, job.id)?;
    let offer = job.offer();
    let reach = job.reach();
    let candidates: Vec<(friend_protocol::FriendProfile, Device)> =
        queue::friend_devices(tx, tiles.as_deref())?;
    let pushes: Vec<_> = candidates
        .iter()
        .filter(|(friend, _)| {
            !declined.contains(&friend.id)
                && eligibility::check(friend, &reach).is_ok()
                && !awake(friend.id)
        })
        .map(|(friend, device)| (device, content::offer_push(&offer, Some(&friend.home), now)))
        .collect();
    queue::enqueue(tx, &pushes, job.expires_at, now)
}
