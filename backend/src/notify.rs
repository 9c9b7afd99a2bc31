//! Targeted long-poll wake-ups. A waiting sync subscribes for its own account before it looks at
//! the feed (so no wake-up is lost between the look and the wait); a committed change wakes only the
//! accounts it added feed rows for. Idle waiters cost a channel each and no CPU.

use friend_protocol::AccountId;
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::watch;

#[derive(Default)]
struct Slot {
    sender: Option<watch::Sender<u64>>,
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
    /// Subscribes `account` to wake-ups from now on.
    pub fn subscribe(&self, account: AccountId) -> Option<Waiter<'_>> {
        let mut slots = self.slots.lock().ok()?;
        let slot = slots.entry(account).or_default();
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

    /// Wakes the waiting long-polls of these accounts.
    pub fn wake(&self, accounts: &[AccountId], seq: u64) {
        let Ok(mut slots) = self.slots.lock() else {
            return;
        };
        for a in accounts {
            if let Some(slot) = slots.get_mut(a)
                && let Some(tx) = &slot.sender
            {
                tx.send_replace(seq);
                slot.wakes += 1;
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

    /// How many accounts have a waiting long-poll.
    pub fn waiting_accounts(&self) -> usize {
        self.slots
            .lock()
            .map(|s| s.values().filter(|s| s.sender.is_some()).count())
            .unwrap_or(0)
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
