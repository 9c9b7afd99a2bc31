//! Listener registries. Subscribing returns a [`Subscription`] that unsubscribes when dropped (or
//! cancelled). Listeners are called after the change is committed, never while a lock is held.

use friend_protocol::JobId;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// Told when the inbox changed; read it again with `inbox(…)`.
pub trait InboxListener: Send + Sync {
    /// The inbox changed.
    fn on_inbox_changed(&self);
}

/// Told when one of the account's jobs changed.
pub trait JobListener: Send + Sync {
    /// The job changed (state, details, or an outbox item about it got its outcome).
    fn on_job_changed(&self, job_id: JobId);
}

/// Told when the sync status changed.
pub trait SyncStatusListener: Send + Sync {
    /// The new status.
    fn on_sync_status(&self, status: crate::SyncStatus);
}

type Entries<T> = Mutex<Vec<(u64, Arc<T>)>>;

/// One registry of listeners of a kind.
pub struct Registry<T: ?Sized> {
    next: AtomicU64,
    entries: Arc<Entries<T>>,
}

impl<T: ?Sized + Send + Sync + 'static> Registry<T> {
    /// An empty registry.
    pub fn new() -> Self {
        Registry {
            next: AtomicU64::new(1),
            entries: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Adds a listener until the returned handle is dropped.
    pub fn add(&self, listener: Arc<T>) -> Subscription {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut e) = self.entries.lock() {
            e.push((id, listener));
        }
        let weak: Weak<Entries<T>> = Arc::downgrade(&self.entries);
        Subscription {
            remove: Some(Box::new(move || {
                if let Some(entries) = weak.upgrade()
                    && let Ok(mut e) = entries.lock()
                {
                    e.retain(|(i, _)| *i != id);
                }
            })),
        }
    }

    /// The current listeners (a copy, so callbacks run without the lock).
    pub fn current(&self) -> Vec<Arc<T>> {
        self.entries
            .lock()
            .map(|e| e.iter().map(|(_, l)| l.clone()).collect())
            .unwrap_or_default()
    }
}

impl<T: ?Sized + Send + Sync + 'static> Default for Registry<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// A listener registration; dropping it (or [`Subscription::cancel`]) unsubscribes.
pub struct Subscription {
    remove: Option<Box<dyn FnOnce() + Send + Sync>>,
}

impl Subscription {
    /// Unsubscribes now.
    pub fn cancel(mut self) {
        if let Some(r) = self.remove.take() {
            r();
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(r) = self.remove.take() {
            r();
        }
    }
}

/// All listener registries of a session.
#[derive(Default)]
pub struct Listeners {
    /// Inbox listeners.
    pub inbox: Registry<dyn InboxListener>,
    /// Job listeners.
    pub jobs: Registry<dyn JobListener>,
    /// Sync-status listeners.
    pub status: Registry<dyn SyncStatusListener>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    struct Count(AtomicUsize);
    impl InboxListener for Count {
        fn on_inbox_changed(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn dropping_the_subscription_unsubscribes() {
        let reg: Registry<dyn InboxListener> = Registry::new();
        let c = Arc::new(Count(AtomicUsize::new(0)));
        let sub = reg.add(c.clone());
        let other = reg.add(c.clone());
        assert_eq!(reg.current().len(), 2);
        drop(sub);
        assert_eq!(reg.current().len(), 1);
        other.cancel();
        assert!(reg.current().is_empty());
    }
}
