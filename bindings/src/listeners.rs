//! Listener callbacks (foreign traits) and the [`Subscription`] handle subscribing returns.
//!
//! The core calls listeners after a change is committed, on its own threads, never while holding a
//! lock. A callback that throws (or panics) is contained here and logged: it must not unwind into
//! the sync engine. Callbacks should return quickly (post to the app's own dispatcher).

use crate::status::SyncStatus;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};

/// Told when the inbox changed; read it again with `inbox(…)`.
#[uniffi::export(foreign)]
pub trait InboxListener: Send + Sync {
    /// The inbox changed.
    fn on_inbox_changed(&self);
}

/// Told when one of the account's jobs changed (state, details, or an outbox outcome).
#[uniffi::export(foreign)]
pub trait JobListener: Send + Sync {
    /// The job with this id changed; read it again with `job(…)`.
    fn on_job_changed(&self, job_id: String);
}

/// Told when the sync status changed.
#[uniffi::export(foreign)]
pub trait SyncStatusListener: Send + Sync {
    /// The new status.
    fn on_sync_status(&self, status: SyncStatus);
}

/// A listener registration. `cancel()` stops the callbacks (a callback already running may still
/// finish); closing or dropping the handle cancels too. Keep it as long as you want updates.
#[derive(uniffi::Object)]
pub struct Subscription {
    inner: Mutex<Option<friend_core::Subscription>>,
}

impl Subscription {
    pub(crate) fn new(inner: friend_core::Subscription) -> Arc<Subscription> {
        Arc::new(Subscription {
            inner: Mutex::new(Some(inner)),
        })
    }
}

#[uniffi::export]
impl Subscription {
    /// Stops the callbacks. Calling it again does nothing.
    pub fn cancel(&self) {
        let taken = self.inner.lock().ok().and_then(|mut s| s.take());
        if let Some(s) = taken {
            s.cancel();
        }
    }

    /// Whether callbacks are still delivered.
    pub fn is_active(&self) -> bool {
        self.inner.lock().map(|s| s.is_some()).unwrap_or(false)
    }
}

/// Forwards the core's callbacks to a foreign listener.
pub(crate) struct Forward<T: ?Sized>(pub Arc<T>);

fn contained(what: &'static str, f: impl FnOnce()) {
    if catch_unwind(AssertUnwindSafe(f)).is_err() {
        tracing::warn!(listener = what, "a listener callback failed; ignored");
    }
}

impl friend_core::InboxListener for Forward<dyn InboxListener> {
    fn on_inbox_changed(&self) {
        contained("inbox", || self.0.on_inbox_changed());
    }
}

impl friend_core::JobListener for Forward<dyn JobListener> {
    fn on_job_changed(&self, job_id: friend_protocol::JobId) {
        contained("job", || self.0.on_job_changed(job_id.to_string()));
    }
}

impl friend_core::SyncStatusListener for Forward<dyn SyncStatusListener> {
    fn on_sync_status(&self, status: friend_core::SyncStatus) {
        contained("sync_status", || self.0.on_sync_status(status.into()));
    }
}
