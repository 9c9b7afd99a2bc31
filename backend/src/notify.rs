//! Targeted long-poll wake-ups. A waiting sync subscribes for its own account before it looks at
//! the feed (so no wake-up is lost between the look and the wait); a committed change wakes only the
//! accounts it names and, for an open job's change, the waiting Friends the eligibility rule lets
//! see it (a Friend subscribes with their profile). Idle waiters cost a channel each and no CPU.

use crate::store::Effects;
use friend_protocol::{AccountId, FriendProfile, eligibility};
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::watch;

#[derive(Default)]
struct Slot {
    sender: Option<watch::Sender<u64>>,
    /// The waiting Friend's profile (customers have none).
    friend: Option<FriendProfile>,
    wakes: u64,
}

/// Registry of waiting long-polls by account.
#[derive(Default)]
pub struct Notifier {
    slots: Mutex<HashMap<AccountId, Slot>>,
}

/// A subscription; dropping it unregisters when it was the account's last waiter.
pub struct Waiter<'a> {
    notifier: &'a Notifier,
    account: AccountId,
    rx: watch::Receiver<u64>,
}

impl Notifier {
    /// Subscribes `account` (with its Friend profile, if a Friend) to wake-ups from now on.
    pub fn subscribe(
        &self,
        account: AccountId,
        friend: Option<&FriendProfile>,
    ) -> Option<Waiter<'_>> {
        let mut slots = self.slots.lock().ok()?;
        let slot = slots.entry(account).or_default();
        if let Some(f) = friend {
            slot.friend = Some(f.clone());
        }
        let rx = match &slot.sender {
            Some(tx) => tx.subscribe(),
            None => {
                let (tx, rx) = watch::channel(0);
                slot.sender = Some(tx);
                rx
            }
        };
        Some(Waiter {
            notifier: self,
            account,
            rx,
        })
    }

    /// Wakes the waiting long-polls a committed write concerns.
    pub fn wake(&self, effects: &Effects) {
        let Ok(mut slots) = self.slots.lock() else {
            return;
        };
        let seq = effects.seq;
        if effects.broadcast.is_empty() {
            for a in &effects.wake {
                if let Some(slot) = slots.get_mut(a) {
                    slot.ring(seq);
                }
            }
            return;
        }
        // One pass over the waiting long-polls, so each is woken at most once.
        let reaches: Vec<_> = effects.broadcast.iter().map(|j| j.reach()).collect();
        for (account, slot) in slots.iter_mut().filter(|(_, s)| s.sender.is_some()) {
            let concerned = effects.wake.contains(account)
                || slot
                    .friend
                    .as_ref()
                    .is_some_and(|f| reaches.iter().any(|r| eligibility::check(f, r).is_ok()));
            if concerned {
                slot.ring(seq);
            }
        }
    }

    /// How many times a waiting long-poll of `account` was woken (for tests and benchmarks).
    pub fn wake_count(&self, account: AccountId) -> u64 {
        self.slots
            .lock()
            .ok()
            .and_then(|s| s.get(&account).map(|s| s.wakes))
            .unwrap_or(0)
    }

    /// Whether `account` has a long-poll waiting (its devices need no push).
    pub fn is_waiting(&self, account: AccountId) -> bool {
        self.slots
            .lock()
            .map(|s| s.get(&account).is_some_and(|s| s.sender.is_some()))
            .unwrap_or(false)
    }

    /// How many accounts have a waiting long-poll.
    pub fn waiting_accounts(&self) -> usize {
        self.slots
            .lock()
            .map(|s| s.values().filter(|s| s.sender.is_some()).count())
            .unwrap_or(0)
    }
}

impl Slot {
    fn ring(&mut self, seq: u64) {
        if let Some(tx) = &self.sender {
            tx.send_replace(seq);
            self.wakes += 1;
        }
    }
}

impl Waiter<'_> {
    /// Resolves at the next wake-up after subscribing.
    pub async fn changed(&mut self) {
        // An error means the sender is gone, which only happens when we are unregistering.
        let _ = self.rx.changed().await;
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        let Ok(mut slots) = self.notifier.slots.lock() else {
            return;
        };
        if let Some(slot) = slots.get_mut(&self.account)
            && let Some(tx) = &slot.sender
            // Our own receiver is still alive here, hence 1.
            && tx.receiver_count() <= 1
        {
            slot.sender = None;
        }
    }
}
