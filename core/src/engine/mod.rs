//! The machinery every session shares: the store, the API client, status and listeners, the cached
//! catalog and profile, and the background tasks. Its jobs live in parts: sync rounds
//! ([`sync`]), the inbox index ([`index`]), the accept race ([`accept`]); outbox delivery is in
//! `crate::outbox::delivery`. The public sessions (`crate::session`) are thin layers on top.

mod accept;
mod index;
mod sync;

use crate::api::Api;
use crate::crypto::FieldCipher;
use crate::error::{CoreError, CoreResult};
use crate::listeners::Listeners;
use crate::outbox::backoff;
use crate::outbox::delivery::{Due, outbox_timer};
use crate::secrets::SecretsProvider;
use crate::session::{SessionConfig, SyncReport, SyncStatus};
use crate::store::cache::{self, Applied};
use crate::store::{Store, meta, outbox as rows};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

/// Personal fields of a finished job are forgotten this long after it ended.
pub const PURGE_PERSONAL_AFTER: chrono::Duration = chrono::Duration::days(14);
/// Forgets what the privacy rules bound in time (SPEC §8): the personal fields of jobs that ended
/// [`PURGE_PERSONAL_AFTER`] ago, and outbox items settled longer ago than their retention.
pub(crate) fn purge(tx: &rusqlite::Transaction<'_>) -> CoreResult<()> {
    let now = now_ms();
    cache::purge_personal(tx, now - PURGE_PERSONAL_AFTER.num_milliseconds())?;
    rows::prune(tx, now)?;
    Ok(())
}

/// Page size asked for in sync requests.
pub const SYNC_PAGE_LIMIT: u32 = 500;
/// How long a foreground long-poll waits on the server.
pub const LONG_POLL_SECS: u32 = 25;

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The shared session machinery.
pub(crate) struct Engine {
    pub store: Store,
    pub api: Api,
    pub cipher: Arc<FieldCipher>,
    pub listeners: Listeners,
    pub(crate) status: Mutex<SyncStatus>,
    pub(crate) outbox_kick: Arc<Notify>,
    pub(crate) shutdown: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    foreground: Mutex<Option<JoinHandle<()>>>,
    sync_lock: tokio::sync::Mutex<()>,
    pub(crate) outbox_lock: tokio::sync::Mutex<()>,
    /// The database file, as the process-wide marks of accepts in flight name it (canonical, so
    /// two sessions opened on one file by different paths share them).
    db: std::path::PathBuf,
    page_limit: u32,
    inbox: Mutex<index::InboxCache>,
}

const KEY_CHECK_PLAINTEXT: &[u8] = b"friendcore key check v1";

impl Engine {
    /// Opens the database (checking the data key), builds the client and starts the outbox timer.
    pub async fn open(
        config: SessionConfig,
        secrets: Arc<dyn SecretsProvider>,
    ) -> CoreResult<Arc<Engine>> {
        let cipher = Arc::new(FieldCipher::new(&secrets.data_key()?)?);
        let api = Api::new(&config.api, secrets)?;
        let path = config.db_path.clone();
        let check = cipher.clone();
        let (store, recovery, db) = crate::store::blocking(move || {
            let (store, recovery) = Store::open_or_recover(&path)?;
            crate::store::purge_kept_aside(
                &path,
                now_ms() - PURGE_PERSONAL_AFTER.num_milliseconds(),
            );
            store.write(|tx| {
                match meta::get_blob(tx, meta::KEY_CHECK)? {
                    Some(sealed) => {
                        check.open("meta", "key_check", &sealed)?;
                    }
                    None => meta::set_blob(
                        tx,
                        meta::KEY_CHECK,
                        &check.seal("meta", "key_check", KEY_CHECK_PLAINTEXT)?,
                    )?,
                }
                rows::seal_legacy(tx, &check, now_ms())?;
                purge(tx)?;
                Ok(())
            })?;
            let db = std::fs::canonicalize(&path).unwrap_or(path);
            Ok((store, recovery, db))
        })
        .await?;
        let (shutdown, _) = watch::channel(false);
        let engine = Arc::new(Engine {
            store,
            api,
            cipher,
            listeners: Listeners::default(),
            status: Mutex::new(SyncStatus {
                cache_recovery: recovery,
                ..SyncStatus::default()
            }),
            outbox_kick: Arc::new(Notify::new()),
            shutdown,
            tasks: Mutex::new(Vec::new()),
            foreground: Mutex::new(None),
            sync_lock: tokio::sync::Mutex::new(()),
            outbox_lock: tokio::sync::Mutex::new(()),
            db,
            page_limit: config
                .sync_page_limit
                .clamp(1, friend_protocol::MAX_PAGE_LIMIT),
            inbox: Mutex::new(index::InboxCache::default()),
        });
        engine.refresh_status(|_| {}).await;
        let timer = tokio::spawn(outbox_timer(
            Arc::downgrade(&engine),
            engine.outbox_kick.clone(),
            engine.shutdown.subscribe(),
        ));
        if let Ok(mut t) = engine.tasks.lock() {
            t.push(timer);
        }
        Ok(engine)
    }

    pub(crate) fn closed(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Stops background work; later calls that need the network fail with [`CoreError::Closed`].
    pub fn shutdown(&self) {
        self.shutdown.send_replace(true);
        if let Ok(mut f) = self.foreground.lock()
            && let Some(h) = f.take()
        {
            h.abort();
        }
        if let Ok(mut t) = self.tasks.lock() {
            for h in t.drain(..) {
                h.abort();
            }
        }
    }

    /// Stops the background tasks (the outbox timer) but leaves the engine open, so a test drives
    /// delivery rounds itself.
    #[cfg(test)]
    pub(crate) fn shutdown_timer_for_test(&self) {
        if let Ok(mut t) = self.tasks.lock() {
            for h in t.drain(..) {
                h.abort();
            }
        }
    }

    /// Server time now, from the last measured clock offset.
    pub fn server_now_ms(&self) -> i64 {
        now_ms() + self.status().clock_offset_ms
    }

    /// The current sync status.
    pub fn status(&self) -> SyncStatus {
        let mut status = self.status.lock().map(|s| s.clone()).unwrap_or_default();
        status.bytes_received = self.api.bytes_received();
        status
    }

    /// Updates the status (outbox counts and stored sync times are re-read) and tells listeners.
    pub(crate) async fn refresh_status(&self, change: impl FnOnce(&mut SyncStatus)) {
        let counts = self
            .store
            .read_async(|c| {
                Ok((
                    rows::counts(c)?,
                    meta::get_i64(c, meta::LAST_SYNC_MS)?,
                    meta::get_i64(c, meta::CLOCK_OFFSET_MS)?,
                    meta::get_text(c, meta::SNAPSHOT_CURSOR)?.is_some(),
                ))
            })
            .await;
        let snapshot = {
            let Ok(mut s) = self.status.lock() else {
                return;
            };
            if let Ok(((pending, refused), last, offset, in_snapshot)) = counts {
                s.pending_outbox = pending;
                s.refused_outbox = refused;
                s.last_success_ms = last;
                s.clock_offset_ms = offset.unwrap_or(0);
                s.snapshot_in_progress = in_snapshot;
            }
            change(&mut s);
            s.bytes_received = self.api.bytes_received();
            s.clone()
        };
        for l in self.listeners.status.current() {
            l.on_sync_status(snapshot.clone());
        }
    }

    pub(crate) fn notify(&self, applied: &Applied) {
        if (applied.inbox_replaced
            || !applied.offers_upserted.is_empty()
            || !applied.offers_removed.is_empty())
            && let Ok(mut cache) = self.inbox.lock()
        {
            cache.generation += 1;
            if applied.inbox_replaced {
                cache.index = None;
            } else if let Some(index) = cache.index.as_mut() {
                for o in &applied.offers_upserted {
                    index.upsert(o.clone());
                }
                for id in &applied.offers_removed {
                    index.remove(*id);
                }
            }
        }
        if applied.inbox_changed {
            for l in self.listeners.inbox.current() {
                l.on_inbox_changed();
            }
        }
        for job in &applied.jobs_changed {
            for l in self.listeners.jobs.current() {
                l.on_job_changed(*job);
            }
        }
    }

    pub(crate) async fn record_error(&self, e: &CoreError) {
        let offline = matches!(e, CoreError::Offline { .. });
        let (code, message) = (e.code().to_owned(), e.to_string());
        self.refresh_status(|s| {
            if offline {
                s.connected = false;
            }
            s.last_error = Some((code, message));
        })
        .await;
    }

    /// The catalog: fetched when online (and cached), the cached copy otherwise.
    pub async fn catalog(&self) -> CoreResult<friend_protocol::Catalog> {
        self.fetch_or_cached(meta::CATALOG, self.api.catalog())
            .await
    }

    /// The account's profile: fetched when online (and cached), the cached copy otherwise.
    pub async fn profile(&self) -> CoreResult<friend_protocol::Me> {
        self.fetch_or_cached(meta::PROFILE, self.api.me()).await
    }

    async fn fetch_or_cached<T>(
        &self,
        key: &'static str,
        fetch: impl std::future::Future<Output = CoreResult<T>>,
    ) -> CoreResult<T>
    where
        T: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
    {
        match fetch.await {
            Ok(value) => {
                let json = serde_json::to_string(&value)?;
                let cipher = self.cipher.clone();
                self.store
                    .write_async(move |tx| meta::set_sealed(tx, &cipher, key, &json))
                    .await?;
                Ok(value)
            }
            Err(e) if e.is_transient() => {
                let cipher = self.cipher.clone();
                let cached = self
                    .store
                    .read_async(move |c| meta::get_sealed(c, &cipher, key))
                    .await?
                    .map(|j| serde_json::from_str(&j))
                    .transpose()?;
                cached.ok_or(e)
            }
            Err(e) => Err(e),
        }
    }

    /// One push wake-up: deliver the outbox, then pull. Pending accepts are looked up in between;
    /// one that cannot be resolved now never holds back the pull.
    pub async fn on_push(&self) -> CoreResult<SyncReport> {
        self.deliver(Due::Now).await?;
        self.resolve_accepts_then_go_on().await;
        self.sync_pages(0).await
    }

    /// [`Engine::resolve_pending_accepts`] before a pull: its failure (reading the store) is shown
    /// in the status, and the pull goes on.
    async fn resolve_accepts_then_go_on(&self) {
        if let Err(e) = self.resolve_pending_accepts().await {
            self.record_error(&e).await;
        }
    }

    /// Starts the foreground loop: deliver, long-poll, repeat; backoff with jitter on failure.
    pub fn start_foreground(self: &Arc<Self>) {
        let Ok(mut slot) = self.foreground.lock() else {
            return;
        };
        if slot.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        let weak = Arc::downgrade(self);
        let mut shutdown = self.shutdown.subscribe();
        *slot = Some(tokio::spawn(async move {
            let mut failures = 0u32;
            loop {
                let Some(engine) = weak.upgrade() else { return };
                if engine.closed() {
                    return;
                }
                let round = async {
                    // A failed item is already recorded by delivery itself; what reaches here (a
                    // storage failure) is shown in the status, and the pull goes on.
                    if let Err(e) = engine.deliver_outbox().await {
                        engine.record_error(&e).await;
                    }
                    engine.resolve_accepts_then_go_on().await;
                    engine.sync_pages(LONG_POLL_SECS).await
                };
                let pause = match round.await {
                    Ok(_) => {
                        failures = 0;
                        None
                    }
                    Err(_) => {
                        failures += 1;
                        Some(backoff(failures).min(Duration::from_secs(60)))
                    }
                };
                drop(engine);
                if let Some(p) = pause {
                    tokio::select! {
                        _ = tokio::time::sleep(p) => {}
                        _ = shutdown.changed() => return,
                    }
                }
            }
        }));
    }

    /// Stops the foreground loop (an in-flight long-poll is abandoned; nothing durable is lost).
    pub fn stop_foreground(&self) {
        if let Ok(mut slot) = self.foreground.lock()
            && let Some(h) = slot.take()
        {
            h.abort();
        }
    }
}
