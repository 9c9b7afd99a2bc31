//! The machinery every session shares: store, API client, sync rounds, outbox delivery, pending
//! accepts, listeners and background tasks. Friend and customer sessions are thin layers on top.

use crate::api::{Api, ApiConfig};
use crate::crypto::FieldCipher;
use crate::error::{CoreError, CoreResult};
use crate::listeners::Listeners;
use crate::outbox::{Action, backoff};
use crate::secrets::SecretsProvider;
use crate::store::cache::{self, Applied};
use crate::store::{Store, accepts, meta, outbox as rows};
use friend_protocol::{AcceptOutcome, ErrorCode, JobDetails, JobId, JobResponse};
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

/// Personal fields of a finished job are forgotten this long after it ended.
pub const PURGE_PERSONAL_AFTER: chrono::Duration = chrono::Duration::days(14);
/// Forgets what the privacy rules bound in time (SPEC §8): the personal fields of jobs that ended
/// [`PURGE_PERSONAL_AFTER`] ago, and outbox items settled longer ago than their retention.
fn purge(tx: &rusqlite::Transaction<'_>) -> CoreResult<()> {
    let now = now_ms();
    cache::purge_personal(tx, now - PURGE_PERSONAL_AFTER.num_milliseconds())?;
    rows::prune(tx, now)?;
    Ok(())
}

/// Page size asked for in sync requests.
pub const SYNC_PAGE_LIMIT: u32 = 500;
/// How long a foreground long-poll waits on the server.
pub const LONG_POLL_SECS: u32 = 25;

/// Where a session keeps its data and how it reaches the backend.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The account database file, chosen by the host app (one per account).
    pub db_path: PathBuf,
    /// The backend.
    pub api: ApiConfig,
    /// Most changes per sync page (1…1000).
    pub sync_page_limit: u32,
}

impl SessionConfig {
    /// A config with default timeouts and no pins.
    pub fn new(db_path: impl Into<PathBuf>, base_url: impl Into<String>) -> SessionConfig {
        SessionConfig {
            db_path: db_path.into(),
            api: ApiConfig::new(base_url),
            sync_page_limit: SYNC_PAGE_LIMIT,
        }
    }
}

/// The observable sync state (SPEC §5).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncStatus {
    /// The last request reached the backend.
    pub connected: bool,
    /// Device time (ms) of the last successful sync.
    pub last_success_ms: Option<i64>,
    /// Outbox items waiting for delivery.
    pub pending_outbox: u32,
    /// Outbox items the server refused (set aside; the app can show them).
    pub refused_outbox: u32,
    /// The last failure: code and message.
    pub last_error: Option<(String, String)>,
    /// A snapshot (first sync or full resync) is in progress.
    pub snapshot_in_progress: bool,
    /// Items received by the snapshot in progress so far.
    pub snapshot_items: u64,
    /// Server clock minus device clock, ms.
    pub clock_offset_ms: i64,
    /// Response bytes received from the backend since the session opened (bodies as sent, gzip
    /// decoded): what the app's data-usage screen or a sync-efficiency check needs.
    pub bytes_received: u64,
    /// Set when this session found its database corrupt at open and rebuilt it (the damaged file
    /// kept aside, the undelivered outbox carried over): the app may tell the user or report it.
    pub cache_recovery: Option<crate::store::Recovery>,
}

/// What a sync run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncReport {
    /// Pages applied.
    pub pages: u32,
    /// Changes applied.
    pub changes: u64,
    /// The run ended with a full snapshot replacing the cache.
    pub replaced_cache: bool,
}

/// How an accept ended (SPEC §4).
#[derive(Debug, Clone, PartialEq)]
pub enum AcceptResult {
    /// The caller won; the job with full details is now in their jobs.
    Won(Box<JobDetails>),
    /// Another Friend was first.
    Lost,
    /// The job is gone.
    Gone(GoneReason),
    /// The caller may not take it.
    NotEligible(friend_protocol::NotEligibleReason),
    /// The backend could not be reached. Never queued: the Friend must not believe they hold a job
    /// they do not. If the request may have arrived, the outcome is looked up at the next sync and
    /// reported through the job and inbox listeners.
    Offline,
}

/// Why a job is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GoneReason {
    /// The customer cancelled.
    Cancelled,
    /// Nobody accepted in time.
    Expired,
}

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The shared session machinery.
pub(crate) struct Engine {
    pub store: Store,
    pub api: Api,
    pub cipher: Arc<FieldCipher>,
    pub listeners: Listeners,
    status: Mutex<SyncStatus>,
    outbox_kick: Arc<Notify>,
    shutdown: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    foreground: Mutex<Option<JoinHandle<()>>>,
    sync_lock: tokio::sync::Mutex<()>,
    outbox_lock: tokio::sync::Mutex<()>,
    inflight_accepts: Mutex<HashSet<String>>,
    page_limit: u32,
    inbox: Mutex<InboxCache>,
}

/// The in-memory inbox index and a counter of offer changes, so an index loaded while a change
/// was being applied is not kept.
#[derive(Default)]
struct InboxCache {
    index: Option<crate::inbox::InboxIndex>,
    generation: u64,
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
        let (store, recovery) = crate::store::blocking(move || {
            let (store, recovery) = Store::open_or_recover(&path)?;
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
                rows::seal_legacy(tx, &check)?;
                purge(tx)?;
                Ok(())
            })?;
            Ok((store, recovery))
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
            inflight_accepts: Mutex::new(HashSet::new()),
            page_limit: config
                .sync_page_limit
                .clamp(1, friend_protocol::MAX_PAGE_LIMIT),
            inbox: Mutex::new(InboxCache::default()),
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

    fn closed(&self) -> bool {
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
    async fn refresh_status(&self, change: impl FnOnce(&mut SyncStatus)) {
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

    fn notify(&self, applied: &Applied) {
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

    async fn record_error(&self, e: &CoreError) {
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

    /// Pulls every page of changes (the first one long-polling up to `wait_secs`) and applies each
    /// page together with its cursor in one transaction.
    pub async fn sync_pages(&self, wait_secs: u32) -> CoreResult<SyncReport> {
        if self.closed() {
            return Err(CoreError::Closed);
        }
        let _one_at_a_time = self.sync_lock.lock().await;
        // The other party verifies our signatures offline with this key: register it early.
        if let Err(e) = self.ensure_key_registered().await
            && !e.is_transient()
        {
            tracing::warn!(code = e.code(), "device key registration failed");
        }
        let mut report = SyncReport::default();
        let mut wait = wait_secs;
        let mut resets = 0;
        loop {
            let (cursor, snapshot_cursor) = self
                .store
                .read_async(|c| {
                    Ok((
                        meta::get_text(c, meta::CURSOR)?,
                        meta::get_text(c, meta::SNAPSHOT_CURSOR)?,
                    ))
                })
                .await?;
            let sent_cursor = snapshot_cursor.clone().or(cursor);
            let started = now_ms();
            let page = match self
                .api
                .sync(sent_cursor.as_deref(), wait, self.page_limit)
                .await
            {
                Ok(p) => p,
                Err(e) if e.server_code() == Some(ErrorCode::CursorTooOld) && resets == 0 => {
                    // The server no longer serves our cursor: start a snapshot that will replace the cache.
                    resets += 1;
                    self.store
                        .write_async(|tx| {
                            meta::delete(tx, meta::CURSOR)?;
                            meta::delete(tx, meta::SNAPSHOT_CURSOR)
                        })
                        .await?;
                    continue;
                }
                Err(e) => {
                    self.record_error(&e).await;
                    return Err(e);
                }
            };
            let arrived = now_ms();
            // A long-poll's answer left the server just before it arrived; a short request's midway.
            let local_at = if wait > 0 {
                arrived
            } else {
                (started + arrived) / 2
            };
            let offset = page.server_time.timestamp_millis() - local_at;
            let cipher = self.cipher.clone();
            let page_changes = page.changes.len() as u64;
            let starts_snapshot = page.reset && sent_cursor.is_none();
            let (applied, finished_snapshot) = self
                .store
                .write_async(move |tx| {
                    let staged = page.reset;
                    if starts_snapshot {
                        cache::begin_snapshot(tx)?;
                    }
                    let applied =
                        cache::apply_changes(tx, &cipher, &page.changes, staged, arrived)?;
                    let mut finished = false;
                    if staged && page.more {
                        meta::set_text(tx, meta::SNAPSHOT_CURSOR, &page.cursor)?;
                    } else {
                        if staged {
                            cache::finish_snapshot(tx)?;
                            meta::delete(tx, meta::SNAPSHOT_CURSOR)?;
                            finished = true;
                        }
                        meta::set_text(tx, meta::CURSOR, &page.cursor)?;
                    }
                    meta::set_text(tx, meta::CLOCK_OFFSET_MS, &offset.to_string())?;
                    meta::set_text(tx, meta::LAST_SYNC_MS, &arrived.to_string())?;
                    Ok((applied, finished))
                })
                .await?;
            report.pages += 1;
            report.changes += page_changes;
            if finished_snapshot {
                report.replaced_cache = true;
                // A replaced cache changes everything the app shows.
                let all_jobs = self.store.read_async(cache::jobs_ids).await?;
                self.notify(&Applied {
                    inbox_changed: true,
                    jobs_changed: all_jobs,
                    inbox_replaced: true,
                    ..Applied::default()
                });
            } else {
                self.notify(&applied);
            }
            let more = page.more;
            self.refresh_status(|s| {
                s.connected = true;
                s.last_error = None;
                if s.snapshot_in_progress {
                    s.snapshot_items += page_changes;
                } else {
                    s.snapshot_items = 0;
                }
            })
            .await;
            wait = 0;
            if !more {
                return Ok(report);
            }
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

    /// Queues an action for `job` and wakes the delivery timer.
    pub async fn enqueue(&self, job: JobId, action: Action) -> CoreResult<i64> {
        let payload = action.to_payload()?;
        let key = uuid::Uuid::new_v4().to_string();
        let cipher = self.cipher.clone();
        let id = self
            .store
            .write_async(move |tx| {
                rows::enqueue(tx, &cipher, job, action.kind(), &payload, &key, now_ms())
            })
            .await?;
        self.notify(&Applied {
            inbox_changed: true,
            jobs_changed: vec![job],
            ..Applied::default()
        });
        self.refresh_status(|_| {}).await;
        self.outbox_kick.notify_one();
        Ok(id)
    }

    /// Delivers every due outbox item: in order per job, each with its own idempotency key. A
    /// refused item is set aside and the job's next item goes on; a transient failure schedules a
    /// retry with backoff and holds back that job's later items.
    pub async fn deliver_outbox(&self) -> CoreResult<u32> {
        self.deliver(false).await
    }

    /// Delivers pending items; `now_all` ignores their backoff (an explicit sync or a push: the app
    /// has a reason to believe the network is back).
    async fn deliver(&self, mut now_all: bool) -> CoreResult<u32> {
        if self.closed() {
            return Err(CoreError::Closed);
        }
        let _one_at_a_time = self.outbox_lock.lock().await;
        let mut delivered = 0;
        loop {
            let now = now_ms();
            let cipher = self.cipher.clone();
            let due: Vec<_> = self
                .store
                .read_async(move |c| rows::heads(c, &cipher))
                .await?
                .into_iter()
                .filter(|i| now_all || i.next_attempt_at_ms <= now)
                .collect();
            if due.is_empty() {
                break;
            }
            let mut progressed = false;
            for item in due {
                let action = Action::from_payload(&item.payload)?;
                let body = action.body();
                let result = self
                    .api
                    .post(&action.path(item.job_id), &body, &item.key)
                    .await;
                let id = item.id;
                match result {
                    Ok(answer) => {
                        let job = serde_json::from_value::<JobResponse>(answer)
                            .ok()
                            .map(|r| r.job);
                        let cipher = self.cipher.clone();
                        let (server_id, applied) = self
                            .store
                            .write_async(move |tx| {
                                rows::mark_applied(tx, id, job.as_ref().map(|j| j.id), now_ms())?;
                                match job {
                                    Some(job) => Ok((
                                        Some(job.id),
                                        cache::store_job(tx, &cipher, &job, now_ms())?,
                                    )),
                                    None => Ok((None, Applied::default())),
                                }
                            })
                            .await?;
                        self.notify(&applied);
                        if let Some(server_id) = server_id.filter(|j| *j != item.job_id) {
                            // A booking: the server named the job.
                            self.notify(&Applied {
                                jobs_changed: vec![server_id],
                                ..Applied::default()
                            });
                        }
                        delivered += 1;
                        progressed = true;
                    }
                    // A token problem is not the item's fault: it stays queued for a good token.
                    Err(e)
                        if e.is_transient()
                            || e.is_token_problem()
                            || matches!(e, CoreError::Secrets(_)) =>
                    {
                        let next = now_ms() + backoff(item.attempts + 1).as_millis() as i64;
                        let error = format!("{}: {e}", e.code());
                        let (cipher, failed) = (self.cipher.clone(), item.clone());
                        self.store
                            .write_async(move |tx| {
                                rows::mark_retry(tx, &cipher, &failed, next, &error, now_ms())
                            })
                            .await?;
                        self.record_error(&e).await;
                        self.notify(&Applied {
                            inbox_changed: false,
                            jobs_changed: vec![item.job_id],
                            ..Applied::default()
                        });
                        if e.is_token_problem()
                            || matches!(
                                e,
                                CoreError::Offline {
                                    maybe_delivered: false,
                                    ..
                                }
                            )
                        {
                            // Nothing else will get through now; the timer retries when due. (A lost
                            // answer is different: other jobs' items may well get through.)
                            return Ok(delivered);
                        }
                        continue;
                    }
                    Err(e) => {
                        let code = e
                            .server_code()
                            .map(|c| c.as_str().to_owned())
                            .unwrap_or_else(|| e.code().to_owned());
                        let message = e.to_string();
                        let (cipher, refused) = (self.cipher.clone(), item.clone());
                        self.store
                            .write_async(move |tx| {
                                rows::mark_refused(tx, &cipher, &refused, &code, &message, now_ms())
                            })
                            .await?;
                        progressed = true;
                    }
                }
                self.notify(&Applied {
                    inbox_changed: true,
                    jobs_changed: vec![item.job_id],
                    ..Applied::default()
                });
            }
            if progressed {
                self.store.write_async(purge).await?;
            }
            self.refresh_status(|s| s.connected = true).await;
            // Forcing applies to the first pass; a failure in it is retried by the timer.
            now_all = false;
            if !progressed {
                break;
            }
        }
        Ok(delivered)
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

    /// One push wake-up: deliver the outbox, then pull.
    pub async fn on_push(&self) -> CoreResult<SyncReport> {
        self.deliver(true).await?;
        self.resolve_pending_accepts().await?;
        self.sync_pages(0).await
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
                    engine.resolve_pending_accepts().await?;
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

    /// Accepts a job: the pending accept and its key are written before the request leaves; a
    /// double tap reuses the key; transport failures are retried with the same key for a few
    /// seconds; the outcome is applied to the cache in one transaction.
    pub async fn accept(&self, job: JobId) -> CoreResult<AcceptResult> {
        if self.closed() {
            return Err(CoreError::Closed);
        }
        let key = self
            .store
            .write_async(move |tx| accepts::key_for(tx, job, now_ms()))
            .await?;
        let _inflight = Inflight::new(&self.inflight_accepts, &key);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
        let mut maybe_delivered = false;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            match self.api.accept(job, &key).await {
                Ok(outcome) => return self.resolve_accept(job, outcome).await,
                Err(CoreError::Offline {
                    maybe_delivered: false,
                    ..
                }) if !maybe_delivered => {
                    // It never left: nothing to resolve later, and an accept is never queued.
                    self.store
                        .write_async(move |tx| accepts::resolve(tx, job))
                        .await?;
                    self.refresh_status(|s| s.connected = false).await;
                    return Ok(AcceptResult::Offline);
                }
                Err(e) if e.is_transient() => {
                    maybe_delivered |= matches!(
                        e,
                        CoreError::Offline {
                            maybe_delivered: true,
                            ..
                        }
                    ) || matches!(
                        e,
                        CoreError::ServerUnavailable(_) | CoreError::InvalidResponse(_)
                    );
                    let pause = Duration::from_millis(100u64 << attempt.min(5));
                    if tokio::time::Instant::now() + pause >= deadline {
                        // Keep the pending accept: the next sync looks its outcome up.
                        self.record_error(&e).await;
                        return Ok(AcceptResult::Offline);
                    }
                    tokio::time::sleep(pause).await;
                }
                Err(e) => {
                    self.store
                        .write_async(move |tx| accepts::resolve(tx, job))
                        .await?;
                    return Err(e);
                }
            }
        }
    }

    async fn resolve_accept(&self, job: JobId, outcome: AcceptOutcome) -> CoreResult<AcceptResult> {
        let cipher = self.cipher.clone();
        let stored = outcome.clone();
        let applied = self
            .store
            .write_async(move |tx| {
                accepts::resolve(tx, job)?;
                let mut applied = Applied::default();
                if let AcceptOutcome::Won { job: details } = &stored {
                    applied.merge(cache::store_job(tx, &cipher, details, now_ms())?);
                    applied.jobs_changed.push(job);
                }
                cache::remove_offer(tx, job, &mut applied)?;
                Ok(applied)
            })
            .await?;
        self.notify(&applied);
        Ok(match outcome {
            AcceptOutcome::Won { job } => AcceptResult::Won(job),
            AcceptOutcome::Taken => AcceptResult::Lost,
            AcceptOutcome::Cancelled => AcceptResult::Gone(GoneReason::Cancelled),
            AcceptOutcome::Expired => AcceptResult::Gone(GoneReason::Expired),
            AcceptOutcome::NotEligible { reason } => AcceptResult::NotEligible(reason),
            AcceptOutcome::Unknown => {
                return Err(CoreError::InvalidResponse(
                    "accept outcome unknown to this version".into(),
                ));
            }
        })
    }

    /// Looks up accepts whose outcome was never learned (app killed, answer lost) and applies it.
    pub async fn resolve_pending_accepts(&self) -> CoreResult<u32> {
        let pending = self.store.read_async(accepts::all).await?;
        let mut resolved = 0;
        for (job, key) in pending {
            if self
                .inflight_accepts
                .lock()
                .map(|s| s.contains(&key))
                .unwrap_or(true)
            {
                continue; // this process is still waiting for it
            }
            // Only a final answer resolves it: a transport failure returns here and the accept stays
            // pending for the next round (the server's 404 is final: the lookup fenced the key).
            match self.api.accept_outcome(&key).await? {
                Some(outcome) => {
                    self.resolve_accept(job, outcome).await?;
                }
                None => {
                    // Never applied on the server, and never will be: the Friend did not get it.
                    self.store
                        .write_async(move |tx| accepts::resolve(tx, job))
                        .await?;
                }
            }
            resolved += 1;
        }
        Ok(resolved)
    }
}

/// Marks an accept key as in flight in this process for as long as the accept future lives, so a
/// concurrent resolution does not race it; an abandoned future unmarks it on drop.
struct Inflight<'a> {
    set: &'a Mutex<HashSet<String>>,
    key: String,
}

impl<'a> Inflight<'a> {
    fn new(set: &'a Mutex<HashSet<String>>, key: &str) -> Inflight<'a> {
        if let Ok(mut s) = set.lock() {
            s.insert(key.to_owned());
        }
        Inflight {
            set,
            key: key.to_owned(),
        }
    }
}

impl Drop for Inflight<'_> {
    fn drop(&mut self) {
        if let Ok(mut s) = self.set.lock() {
            s.remove(&self.key);
        }
    }
}

/// Delivers the outbox whenever an item is due or one was queued, until shutdown. Holds the engine
/// only while working, so a dropped session is not kept alive by its timer.
async fn outbox_timer(
    engine: std::sync::Weak<Engine>,
    kick: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let next_due = {
            let Some(e) = engine.upgrade() else { return };
            e.store.read_async(rows::next_due_ms).await.ok().flatten()
        };
        let wait = match next_due {
            Some(t) => Duration::from_millis((t - now_ms()).max(0) as u64),
            None => Duration::from_secs(3600),
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = kick.notified() => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
        let Some(e) = engine.upgrade() else { return };
        let _ = e.deliver_outbox().await;
    }
}
