//! Targeted long-poll wake-ups. A waiting sync subscribes for its own account before it looks at
//! the feed (so no wake-up is lost between the look and the wait); a committed change wakes only the
//! accounts it names and, for an open job's change, the waiting Friends the eligibility rule lets
//! see it (a Friend subscribes with their profile). Idle waiters cost a channel each and no CPU;
//! an account's profile is kept for a while after its long-poll ends, so the renewal can subscribe
//! before it reads (`routes/sync.rs`).
//!
//! Waiting Friends are indexed by what their delta reads: (home tile, category) for on-site jobs
//! and category for remote ones. An open job's change asks the rule only about the Friends in the
//! tiles within its reach ([`area::tiles_around`], the same bound the push plan uses) and of its
//! category — a few dozen at crowd scale rather than every waiting long-poll.

use crate::area;
use crate::store::Effects;
use friend_protocol::eligibility::{self, JobReach};
use friend_protocol::{AccountId, Category, FriendProfile, Place};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How long an account's slot (its Friend profile) is kept after its last long-poll ended: a
/// renewal within it subscribes before reading, in one transaction. Accounts gone for longer cost
/// nothing here; their next long-poll reads the profile before it subscribes.
const KEEP_IDLE: Duration = Duration::from_secs(120);

#[derive(Default)]
struct Slot {
    sender: Option<watch::Sender<u64>>,
    /// The waiting Friend's profile (customers have none); kept when nobody waits, so the
    /// account's next long-poll can subscribe before it reads the profile again.
    friend: Option<FriendProfile>,
    /// Bumped each time `friend` is replaced (see [`Waiter::indexed_by`]).
    generation: u64,
    wakes: u64,
    /// When the account's last waiter left (`None` while one waits).
    left: Option<Instant>,
}

/// The waiting Friends by what their delta reads.
#[derive(Default)]
struct Index {
    /// On-site jobs: by the Friend's home tile and each of their categories.
    near: HashMap<(i64, Category), HashSet<AccountId>>,
    /// Remote jobs: by category.
    anywhere: HashMap<Category, HashSet<AccountId>>,
}

impl Index {
    fn keys(friend: &FriendProfile) -> impl Iterator<Item = ((i64, Category), Category)> + '_ {
        let tile = area::tile_of(&friend.home);
        friend.categories.iter().map(move |c| ((tile, *c), *c))
    }

    fn insert(&mut self, friend: &FriendProfile) {
        for (near, category) in Self::keys(friend) {
            self.near.entry(near).or_default().insert(friend.id);
            self.anywhere.entry(category).or_default().insert(friend.id);
        }
    }

    fn remove(&mut self, friend: &FriendProfile) {
        for (near, category) in Self::keys(friend) {
            if let Some(set) = self.near.get_mut(&near) {
                set.remove(&friend.id);
                if set.is_empty() {
                    self.near.remove(&near);
                }
            }
            if let Some(set) = self.anywhere.get_mut(&category) {
                set.remove(&friend.id);
                if set.is_empty() {
                    self.anywhere.remove(&category);
                }
            }
        }
    }

    /// The waiting Friends a change of a job with `reach` can concern: a superset of those the
    /// eligibility rule lets see it.
    fn candidates(&self, reach: &JobReach<'_>, out: &mut Vec<AccountId>) {
        match (reach.place, reach.location) {
            (Place::OnSite, Some(at)) => {
                let radius = eligibility::max_reach_m(reach.radius_km);
                for tile in area::tiles_around(&at, radius) {
                    if let Some(set) = self.near.get(&(tile, reach.category)) {
                        out.extend(set.iter().copied());
                    }
                }
            }
            // Remote (or, defensively, an on-site job without a location): by category alone.
            _ => {
                if let Some(set) = self.anywhere.get(&reach.category) {
                    out.extend(set.iter().copied());
                }
            }
        }
    }
}

/// The waiting long-polls by account, and the Friends among them by what they read.
#[derive(Default)]
struct Registry {
    slots: HashMap<AccountId, Slot>,
    index: Index,
    /// Accounts with a waiting long-poll.
    waiting: usize,
    /// When slots idle for longer than [`KEEP_IDLE`] were last dropped.
    swept: Option<Instant>,
}

impl Registry {
    /// Drops the slots of accounts that have not waited for [`KEEP_IDLE`], at most every half of
    /// it: the registry holds the accounts that long-poll now, not every account ever seen.
    fn sweep(&mut self, now: Instant) {
        if self
            .swept
            .is_some_and(|at| now.saturating_duration_since(at) < KEEP_IDLE / 2)
        {
            return;
        }
        self.swept = Some(now);
        self.slots.retain(|_, s| {
            s.left
                .is_none_or(|at| now.saturating_duration_since(at) < KEEP_IDLE)
        });
    }
}

/// Registry of waiting long-polls by account.
#[derive(Default)]
pub struct Notifier {
    registry: Mutex<Registry>,
    /// Eligibility checks made by wake-ups (for tests and benchmarks: what a change costs).
    checks: AtomicU64,
    /// Waiting long-polls woken, all accounts.
    woken: AtomicU64,
}

/// A subscription; dropping it unregisters when it was the account's last waiter.
pub struct Waiter<'a> {
    notifier: &'a Notifier,
    account: AccountId,
    rx: watch::Receiver<u64>,
    /// The account's profile generation when this waiter subscribed.
    generation: u64,
}

impl Notifier {
    /// Subscribes `account` to wake-ups from now on. A Friend is indexed by `friend`, or without
    /// one by the profile this notifier last knew for the account (check with
    /// [`Waiter::indexed_by`] once the profile is read).
    pub fn subscribe(
        &self,
        account: AccountId,
        friend: Option<&FriendProfile>,
    ) -> Option<Waiter<'_>> {
        let mut registry = self.registry.lock().ok()?;
        registry.sweep(Instant::now());
        let Registry {
            slots,
            index,
            waiting: waiting_accounts,
            ..
        } = &mut *registry;
        let slot = slots.entry(account).or_default();
        let waiting = slot.sender.is_some();
        if let Some(f) = friend
            && slot.friend.as_ref() != Some(f)
        {
            // A changed profile (qualifications, home) is indexed afresh.
            slot.generation += 1;
            if let Some(old) = slot.friend.replace(f.clone())
                && waiting
            {
                index.remove(&old);
            }
            if waiting {
                index.insert(f);
            }
        }
        let rx = match &slot.sender {
            Some(tx) => tx.subscribe(),
            None => {
                let (tx, rx) = watch::channel(0);
                slot.sender = Some(tx);
                slot.left = None;
                *waiting_accounts += 1;
                if let Some(f) = &slot.friend {
                    index.insert(f);
                }
                rx
            }
        };
        Some(Waiter {
            notifier: self,
            account,
            rx,
            generation: slot.generation,
        })
    }

    /// Wakes the waiting long-polls a committed write concerns: the accounts it names, and the
    /// waiting Friends an open job's change may reach (each woken at most once).
    pub fn wake(&self, effects: &Effects) {
        let reaches: Vec<JobReach<'_>> = effects.broadcast.iter().map(|j| j.reach()).collect();
        self.ring(effects.seq, &effects.wake, &reaches);
    }

    /// Wakes the long-polls of `named` and the waiting Friends the rule lets see a job with one
    /// of `reaches`, with change sequence `seq`.
    fn ring(&self, seq: u64, named: &[AccountId], reaches: &[JobReach<'_>]) {
        let Ok(mut registry) = self.registry.lock() else {
            return;
        };
        let Registry { slots, index, .. } = &mut *registry;
        let mut woken = 0;
        for a in named {
            if let Some(slot) = slots.get_mut(a) {
                woken += u64::from(slot.ring(seq));
            }
        }
        self.woken.fetch_add(woken, Ordering::Relaxed);
        if reaches.is_empty() {
            return;
        }
        let mut rung: HashSet<AccountId> = named.iter().copied().collect();
        let mut candidates = Vec::new();
        let mut checks = 0;
        for reach in reaches {
            candidates.clear();
            index.candidates(reach, &mut candidates);
            for account in &candidates {
                if rung.contains(account) {
                    continue;
                }
                let Some(slot) = slots.get_mut(account) else {
                    continue;
                };
                checks += 1;
                if slot
                    .friend
                    .as_ref()
                    .is_some_and(|f| eligibility::check(f, reach).is_ok())
                {
                    woken += u64::from(slot.ring(seq));
                    rung.insert(*account);
                }
            }
        }
        self.checks.fetch_add(checks, Ordering::Relaxed);
        self.woken.fetch_add(woken, Ordering::Relaxed);
    }

    /// Waiting long-polls woken so far, all accounts.
    pub fn woken(&self) -> u64 {
        self.woken.load(Ordering::Relaxed)
    }

    /// Eligibility checks wake-ups have made so far: what open-job changes cost.
    pub fn eligibility_checks(&self) -> u64 {
        self.checks.load(Ordering::Relaxed)
    }

    /// How many times a waiting long-poll of `account` was woken (for tests and benchmarks).
    pub fn wake_count(&self, account: AccountId) -> u64 {
        self.registry
            .lock()
            .ok()
            .and_then(|r| r.slots.get(&account).map(|s| s.wakes))
            .unwrap_or(0)
    }

    /// Whether `account` has a long-poll waiting (its devices need no push).
    pub fn is_waiting(&self, account: AccountId) -> bool {
        self.registry
            .lock()
            .map(|r| r.slots.get(&account).is_some_and(|s| s.sender.is_some()))
            .unwrap_or(false)
    }

    /// How many accounts have a waiting long-poll.
    pub fn waiting_accounts(&self) -> usize {
        self.registry.lock().map(|r| r.waiting).unwrap_or(0)
    }
}

impl Slot {
    /// Wakes the waiting long-polls of this account; whether there were any.
    fn ring(&mut self, seq: u64) -> bool {
        if let Some(tx) = &self.sender {
            tx.send_replace(seq);
            self.wakes += 1;
            return true;
        }
        false
    }
}

impl Waiter<'_> {
    /// Whether this waiter has been indexed by `friend` since it subscribed: the account's
    /// profile then was `friend` and was not replaced since. If not, a change to a job `friend`
    /// may see could have gone by unnoticed: subscribe with `friend` and look again.
    pub fn indexed_by(&self, friend: &FriendProfile) -> bool {
        self.notifier.registry.lock().is_ok_and(|r| {
            r.slots.get(&self.account).is_some_and(|s| {
                s.generation == self.generation && s.friend.as_ref() == Some(friend)
            })
        })
    }

    /// Resolves at the next wake-up after subscribing.
    pub async fn changed(&mut self) {
        // An error means the sender is gone, which only happens when we are unregistering.
        let _ = self.rx.changed().await;
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        let Ok(mut registry) = self.notifier.registry.lock() else {
            return;
        };
        let Registry {
            slots,
            index,
            waiting,
            ..
        } = &mut *registry;
        if let Some(slot) = slots.get_mut(&self.account)
            && let Some(tx) = &slot.sender
            // Our own receiver is still alive here, hence 1.
            && tx.receiver_count() <= 1
        {
            slot.sender = None;
            slot.left = Some(Instant::now());
            *waiting -= 1;
            if let Some(f) = &slot.friend {
                index.remove(f);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use friend_protocol::{GeoPoint, Tier};

    const ZURICH: (f64, f64) = (47.3769, 8.5417);
    const BERN: (f64, f64) = (46.9480, 7.4474);

    fn at((lat, lon): (f64, f64)) -> GeoPoint {
        GeoPoint::new(lat, lon).expect("a valid point")
    }

    fn friend(home: (f64, f64), categories: &[Category]) -> FriendProfile {
        FriendProfile {
            id: AccountId::random(),
            name: "Friend".into(),
            home: at(home),
            radius_km: 20,
            categories: categories.to_vec(),
            communities: Vec::new(),
            tier: Tier::Friend,
            suspended: false,
        }
    }

    fn job(category: Category, place: Place, location: (f64, f64)) -> JobReach<'static> {
        JobReach {
            category,
            place,
            location: Some(at(location)),
            radius_km: friend_protocol::DEFAULT_JOB_RADIUS_KM,
            brand: None,
            min_tier: Tier::Friend,
        }
    }

    #[test]
    fn an_open_job_change_asks_the_rule_only_about_the_waiters_near_it() {
        let n = Notifier::default();
        let near = friend(ZURICH, &[Category::Network]);
        let far: Vec<_> = (0..1000)
            .map(|_| friend(BERN, &[Category::Network]))
            .collect();
        let other_category = friend(ZURICH, &[Category::Tv]);
        let _w = n.subscribe(near.id, Some(&near)).expect("subscribed");
        let _o = n.subscribe(other_category.id, Some(&other_category));
        let _far: Vec<_> = far.iter().map(|f| n.subscribe(f.id, Some(f))).collect();

        n.ring(7, &[], &[job(Category::Network, Place::OnSite, ZURICH)]);

        assert_eq!(n.wake_count(near.id), 1, "the Friend in reach is woken");
        assert_eq!(n.wake_count(other_category.id), 0, "not another category");
        assert!(far.iter().all(|f| n.wake_count(f.id) == 0), "not Bern");
        assert_eq!(n.eligibility_checks(), 1, "only the candidate was checked");
    }

    #[test]
    fn a_remote_job_reaches_its_category_anywhere_and_each_waiter_once() {
        let n = Notifier::default();
        let zurich = friend(ZURICH, &[Category::Computer, Category::Network]);
        let bern = friend(BERN, &[Category::Computer]);
        let tv = friend(BERN, &[Category::Tv]);
        let _a = n.subscribe(zurich.id, Some(&zurich));
        let _b = n.subscribe(bern.id, Some(&bern));
        let _c = n.subscribe(tv.id, Some(&tv));

        let remote = job(Category::Computer, Place::Remote, ZURICH);
        n.ring(3, &[bern.id], &[remote, remote]);

        assert_eq!(n.wake_count(zurich.id), 1);
        assert_eq!(n.wake_count(bern.id), 1, "named and eligible: woken once");
        assert_eq!(n.wake_count(tv.id), 0);
    }

    #[test]
    fn a_waiter_that_left_or_moved_is_indexed_where_it_is_now() {
        let n = Notifier::default();
        let mut f = friend(BERN, &[Category::Network]);
        let first = n.subscribe(f.id, Some(&f));
        drop(first);
        n.ring(1, &[], &[job(Category::Network, Place::OnSite, BERN)]);
        assert_eq!(n.wake_count(f.id), 0, "no longer waiting");
        assert_eq!(n.eligibility_checks(), 0, "and no longer a candidate");

        let _bern = n.subscribe(f.id, Some(&f));
        f.home = at(ZURICH);
        let _zurich = n.subscribe(f.id, Some(&f));
        n.ring(2, &[], &[job(Category::Network, Place::OnSite, BERN)]);
        assert_eq!(n.wake_count(f.id), 0, "moved away from Bern");
        n.ring(3, &[], &[job(Category::Network, Place::OnSite, ZURICH)]);
        assert_eq!(n.wake_count(f.id), 1, "found at the new home");
    }

    #[test]
    fn a_renewal_subscribes_with_the_profile_last_known_and_learns_when_it_is_stale() {
        let n = Notifier::default();
        let mut f = friend(ZURICH, &[Category::Network]);
        let first = n.subscribe(f.id, None).expect("subscribed");
        assert!(!first.indexed_by(&f), "nothing known yet: not indexed");
        drop(first);

        let read = n.subscribe(f.id, Some(&f)).expect("subscribed");
        assert!(read.indexed_by(&f));
        drop(read);
        // The next long-poll subscribes before reading: indexed by the profile kept.
        let renewal = n.subscribe(f.id, None).expect("subscribed");
        assert!(renewal.indexed_by(&f));
        n.ring(1, &[], &[job(Category::Network, Place::OnSite, ZURICH)]);
        assert_eq!(n.wake_count(f.id), 1, "woken as the kept profile says");

        // Another request of the account re-indexes it with a changed profile meanwhile: the
        // renewal was not indexed by the old one all along, nor by the new one.
        let old = f.clone();
        f.categories = vec![Category::Tv];
        let _other = n.subscribe(f.id, Some(&f));
        assert!(!renewal.indexed_by(&old));
        assert!(!renewal.indexed_by(&f));
    }

    #[test]
    fn accounts_that_stopped_long_polling_are_forgotten_after_a_while() {
        let n = Notifier::default();
        let gone = friend(ZURICH, &[Category::Network]);
        let here = friend(BERN, &[Category::Network]);
        drop(n.subscribe(gone.id, Some(&gone)));
        let _waiting = n.subscribe(here.id, Some(&here)).expect("subscribed");
        assert_eq!(n.waiting_accounts(), 1);

        let mut registry = n.registry.lock().expect("registry");
        registry.sweep(Instant::now());
        assert_eq!(
            registry.slots.len(),
            2,
            "a renewal soon after finds its profile"
        );
        registry.sweep(Instant::now() + KEEP_IDLE * 2);
        assert!(
            !registry.slots.contains_key(&gone.id),
            "gone for longer: forgotten"
        );
        assert!(registry.slots.contains_key(&here.id), "waiting: kept");
        drop(registry);
        assert_eq!(n.waiting_accounts(), 1);
    }
}
