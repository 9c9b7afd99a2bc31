//! The inbox index: offers held in memory for fast geo queries, loaded from the cache on first use
//! and kept in step with every applied change (see `Engine::notify`).

use super::Engine;
use crate::error::{CoreError, CoreResult};
use crate::store::cache;
use friend_protocol::JobId;
use std::collections::HashSet;

/// The in-memory inbox index and a counter of offer changes, so an index loaded while a change
/// was being applied is not kept.
#[derive(Default)]
pub(super) struct InboxCache {
    pub(super) index: Option<crate::inbox::InboxIndex>,
    pub(super) generation: u64,
}

/// Armed around a write that may change offers, until its changes are applied to the index
/// ([`IndexGuard::notify`]). Dropped armed — the call was cancelled between the write's commit and
/// `notify` (the app cancelled the coroutine, the foreground loop was stopped) — it forgets the
/// index, which is then loaded again from the cache: never an index that misses a committed change.
pub(crate) struct IndexGuard<'a> {
    engine: &'a Engine,
    armed: bool,
}

impl IndexGuard<'_> {
    /// Applies `applied` to the index and tells the listeners ([`Engine::notify`]); disarms.
    pub(crate) fn notify(mut self, applied: &crate::store::cache::Applied) {
        self.engine.notify(applied);
        self.armed = false;
    }
}

impl Drop for IndexGuard<'_> {
    fn drop(&mut self) {
        if self.armed
            && let Ok(mut cache) = self.engine.inbox.lock()
        {
            cache.generation += 1;
            cache.index = None;
        }
    }
}

impl Engine {
    /// A guard for a write that may change offers (see [`IndexGuard`]).
    pub(crate) fn guard_index(&self) -> IndexGuard<'_> {
        IndexGuard {
            engine: self,
            armed: true,
        }
    }

    /// The inbox query on the in-memory index, loading it from the cache first when needed.
    pub async fn inbox_items(
        &self,
        position: friend_protocol::GeoPoint,
        radius_km: f64,
        filter: crate::inbox::InboxFilter,
        hidden: HashSet<JobId>,
    ) -> CoreResult<Vec<crate::inbox::InboxItem>> {
        let server_now = self.server_now_ms();
        let generation = {
            let cache = self
                .inbox
                .lock()
                .map_err(|_| CoreError::Storage("inbox lock poisoned".into()))?;
            if let Some(index) = &cache.index {
                return index.query(&position, radius_km, &filter, server_now, &hidden);
            }
            cache.generation
        };
        let index = crate::inbox::InboxIndex::new(self.store.read_async(cache::all_offers).await?);
        let items = index.query(&position, radius_km, &filter, server_now, &hidden);
        if let Ok(mut cache) = self.inbox.lock()
            && cache.generation == generation
            && cache.index.is_none()
        {
            cache.index = Some(index);
        }
        items
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::StaticSecrets;
    use crate::session::SessionConfig;
    use std::sync::Arc;

    fn loaded(e: &Engine) -> bool {
        e.inbox.lock().map(|c| c.index.is_some()).unwrap_or(false)
    }

    #[tokio::test]
    async fn a_write_cancelled_before_its_notify_leaves_no_index_behind() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let secrets = Arc::new(StaticSecrets::new("dev-friend-x", [7u8; 32]));
        // Nothing is asked of the server here: its address only has to be well-formed.
        let config = SessionConfig::new(dir.path().join("a.db"), "http://127.0.0.1:9");
        let e = Engine::open(config, secrets).await.unwrap();
        e.shutdown_timer_for_test();
        let here = friend_protocol::GeoPoint::new(47.37, 8.54).unwrap();
        let query = || e.inbox_items(here, 10.0, Default::default(), HashSet::new());
        query().await.unwrap();
        assert!(loaded(&e), "the first query loads the index");

        // Notified: the index is kept (and kept in step).
        e.guard_index().notify(&Default::default());
        assert!(loaded(&e));
        // Dropped before its notify (the future was cancelled after the commit): forgotten.
        drop(e.guard_index());
        assert!(
            !loaded(&e),
            "an index that may miss a committed change is not kept"
        );
        query().await.unwrap();
        assert!(loaded(&e), "loaded again from the cache");
    }
}
