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

impl Engine {
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
