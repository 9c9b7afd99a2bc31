//! The accept race on the device: the pending accept and its key are durable before the request
//! leaves, transport failures are retried with the same key for a bounded time, and an outcome
//! that was never learned is looked up at the next sync — resolved only by a final answer. An
//! accept is never queued in the outbox (docs/adr/0003).

use super::{Engine, now_ms};
use crate::error::{CoreError, CoreResult};
use crate::friend::{AcceptResult, GoneReason};
use crate::store::accepts;
use crate::store::cache::{self, Applied};
use friend_protocol::{AcceptOutcome, JobId};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

/// How long an accept keeps retrying a transport failure with the same key before it answers
/// [`AcceptResult::Offline`] (the next sync then looks the key up).
const ACCEPT_RETRY_WINDOW: Duration = Duration::from_secs(8);
/// The first pause between accept retries; it doubles up to [`ACCEPT_MAX_DOUBLINGS`] times.
const ACCEPT_FIRST_PAUSE: Duration = Duration::from_millis(100);
/// How often the pause between accept retries doubles at most (100 ms → 3.2 s).
const ACCEPT_MAX_DOUBLINGS: u32 = 5;

impl Engine {
    /// Accepts a job: the pending accept and its key are written before the request leaves; a
    /// double tap reuses the key; transport failures are retried with the same key for a few
    /// seconds; the outcome is applied to the cache in one transaction.
    pub async fn accept(&self, job: JobId) -> CoreResult<AcceptResult> {
        if self.closed() {
            return Err(CoreError::Closed);
        }
        // In flight before the pending row exists: a sync in between must not look the key up
        // (the server's 404 would fence it and this accept would be refused as a reused key).
        let _inflight = Inflight::new(&self.db, job);
        let key = self
            .store
            .write_async(move |tx| accepts::key_for(tx, job, now_ms()))
            .await?;
        let deadline = tokio::time::Instant::now() + ACCEPT_RETRY_WINDOW;
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
                    let pause = ACCEPT_FIRST_PAUSE * (1u32 << attempt.min(ACCEPT_MAX_DOUBLINGS));
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
        let stored = outcome.clone();
        let result = match outcome {
            AcceptOutcome::Won { job } => AcceptResult::Won(job),
            AcceptOutcome::Taken => AcceptResult::Lost,
            AcceptOutcome::Cancelled => AcceptResult::Gone(GoneReason::Cancelled),
            AcceptOutcome::Expired => AcceptResult::Gone(GoneReason::Expired),
            AcceptOutcome::NotEligible { reason } => AcceptResult::NotEligible(reason),
            // Not an answer this version can act on: the pending accept is kept (a later version,
            // or a later lookup, learns the outcome), and nothing else changes.
            AcceptOutcome::Unknown => {
                return Err(CoreError::InvalidResponse(
                    "accept outcome unknown to this version".into(),
                ));
            }
        };
        let cipher = self.cipher.clone();
        let index = self.guard_index();
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
        index.notify(&applied);
        Ok(result)
    }

    /// Looks up accepts whose outcome was never learned (app killed, answer lost) and applies it.
    /// Each key on its own: one that cannot be resolved now (a lookup failing, an outcome this
    /// version does not know) stays pending for the next round, is logged (codes only) and holds
    /// back neither the other keys nor the sync that follows. Returns how many were resolved; only
    /// a failure to read the pending accepts is an error.
    pub async fn resolve_pending_accepts(&self) -> CoreResult<u32> {
        let pending = self.store.read_async(accepts::all).await?;
        let mut resolved = 0;
        for (job, key) in pending {
            if Inflight::contains(&self.db, job) {
                continue; // this process is still waiting for it
            }
            match self.resolve_pending_accept(job, &key).await {
                Ok(()) => resolved += 1,
                Err(e) => {
                    tracing::warn!(
                        code = e.code(),
                        "pending accept not resolved; kept for the next sync"
                    );
                    // The connection or the token, not this key: the others would fail alike.
                    if e.is_token_problem() || matches!(e, CoreError::Offline { .. }) {
                        break;
                    }
                }
            }
        }
        Ok(resolved)
    }

    /// Looks one pending accept up and applies the outcome. Only a final answer resolves it: a
    /// failed lookup leaves it pending (the server's 404 is final: the lookup fenced the key).
    async fn resolve_pending_accept(&self, job: JobId, key: &str) -> CoreResult<()> {
        match self.api.accept_outcome(key).await? {
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
        Ok(())
    }
}

/// The accepts in flight in this process, by database file and job, counted: every session on one
/// file sees them (an app that opened a second session on the same account — a push handler beside
/// the UI — would otherwise look up, and so fence, the key of the first one's accept still on its
/// way), and a second accept of the same job keeps the mark while the first ends.
static IN_FLIGHT: LazyLock<Mutex<HashMap<(PathBuf, JobId), usize>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// Marks a job's accept as in flight for as long as the accept future lives, so a concurrent
/// resolution does not race it; an abandoned future unmarks it on drop.
pub(super) struct Inflight {
    key: (PathBuf, JobId),
}

impl Inflight {
    pub(super) fn new(db: &Path, job: JobId) -> Inflight {
        let key = (db.to_owned(), job);
        if let Ok(mut all) = IN_FLIGHT.lock() {
            *all.entry(key.clone()).or_default() += 1;
        }
        Inflight { key }
    }

    /// Whether an accept of `job` on the database `db` is in flight in this process (when the
    /// marks cannot be read, it is assumed to be: a lookup can wait for the next sync).
    pub(super) fn contains(db: &Path, job: JobId) -> bool {
        IN_FLIGHT
            .lock()
            .map(|all| all.contains_key(&(db.to_owned(), job)))
            .unwrap_or(true)
    }
}

impl Drop for Inflight {
    fn drop(&mut self) {
        if let Ok(mut all) = IN_FLIGHT.lock()
            && let Some(n) = all.get_mut(&self.key)
        {
            *n -= 1;
            if *n == 0 {
                all.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::StaticSecrets;
    use crate::session::SessionConfig;
    use std::sync::Arc;

    #[tokio::test]
    async fn a_pending_accept_that_cannot_be_resolved_never_stops_the_sync() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (url, seen) = crate::testing::fake_backend(|_, path| {
            let page = r#"{"server_time":"2030-01-01T00:00:00Z","cursor":"c-1","more":false,"reset":false,"changes":[]}"#;
            match path {
                "/v1/friend/accepts/k-broken" => (
                    "503 Service Unavailable",
                    r#"{"code":"unavailable","message":"lookup down"}"#.into(),
                ),
                "/v1/friend/accepts/k-newer" => ("200 OK", r#"{"outcome":"teleported"}"#.into()),
                "/v1/friend/accepts/k-taken" => ("200 OK", r#"{"outcome":"taken"}"#.into()),
                p if p.starts_with("/v1/sync") => ("200 OK", page.into()),
                _ => ("200 OK", "{}".into()),
            }
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        let secrets = Arc::new(StaticSecrets::new("dev-friend-x", [6u8; 32]));
        let e = Engine::open(SessionConfig::new(dir.path().join("a.db"), url), secrets)
            .await
            .unwrap();
        e.shutdown_timer_for_test();
        let (broken, newer, taken) = (JobId::random(), JobId::random(), JobId::random());
        e.store
            .write_async(move |tx| {
                for (at, (job, key)) in
                    [(broken, "k-broken"), (newer, "k-newer"), (taken, "k-taken")]
                        .into_iter()
                        .enumerate()
                {
                    tx.execute(
                        "INSERT INTO pending_accepts (job_id, key, created_at) VALUES (?1, ?2, ?3)",
                        rusqlite::params![job.to_string(), key, at as i64],
                    )?;
                }
                Ok(())
            })
            .await
            .unwrap();

        // A 5xx for one key and an outcome this version does not know for another: the third is
        // resolved, and the page is pulled.
        let report = e.on_push().await.unwrap();
        assert_eq!(report.pages, 1);
        let cursor = e
            .store
            .read_async(|c| crate::store::meta::get_text(c, crate::store::meta::CURSOR))
            .await
            .unwrap();
        assert_eq!(cursor.as_deref(), Some("c-1"), "the page was applied");
        let kept: Vec<_> = e.store.read_async(accepts::all).await.unwrap();
        assert_eq!(
            kept,
            [
                (broken, "k-broken".to_owned()),
                (newer, "k-newer".to_owned())
            ],
            "kept for the next sync"
        );
        let sent = seen.lock().unwrap().clone();
        assert!(
            sent.iter().any(|r| r.starts_with("GET /v1/sync")),
            "{sent:?}"
        );
        // The next round asks again for the kept ones, and pulls again.
        assert_eq!(e.on_push().await.unwrap().pages, 1);
        assert_eq!(e.store.read_async(accepts::all).await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_second_session_on_the_same_file_leaves_the_first_one_s_accept_alone() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (url, seen) = crate::testing::fake_backend(|_, _| {
            (
                "404 Not Found",
                r#"{"code":"not_found","message":"no"}"#.into(),
            )
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        let open = |path: std::path::PathBuf| {
            let secrets = Arc::new(StaticSecrets::new("dev-friend-x", [6u8; 32]));
            Engine::open(SessionConfig::new(path, url.clone()), secrets)
        };
        // The UI's session, and a push handler's on the same file named another way.
        let ui = open(dir.path().join("a.db")).await.unwrap();
        let push = open(dir.path().join(".").join("a.db")).await.unwrap();
        ui.shutdown_timer_for_test();
        push.shutdown_timer_for_test();
        let job = JobId::random();
        let first = Inflight::new(&ui.db, job);
        let second = Inflight::new(&ui.db, job); // a double tap's second call
        ui.store
            .write_async(move |tx| accepts::key_for(tx, job, now_ms()).map(|_| ()))
            .await
            .unwrap();
        let looked_up = || {
            seen.lock()
                .unwrap()
                .iter()
                .any(|r| r.starts_with("GET /v1/friend/accepts/"))
        };

        // While either call is on its way, the other session does not look its key up (the
        // server's 404 would fence the key and the accept on its way would be refused).
        assert_eq!(push.resolve_pending_accepts().await.unwrap(), 0);
        drop(first);
        assert_eq!(push.resolve_pending_accepts().await.unwrap(), 0);
        assert!(!looked_up(), "{:?}", seen.lock().unwrap());
        // Both ended without learning the outcome: now the next sync looks it up.
        drop(second);
        assert_eq!(push.resolve_pending_accepts().await.unwrap(), 1);
        assert!(looked_up());
    }

    #[tokio::test]
    async fn an_accept_that_never_left_is_offline_and_leaves_nothing_pending() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let secrets = Arc::new(StaticSecrets::new("dev-friend-x", [6u8; 32]));
        // A closed loopback port: refused at once, so the request cannot have reached a server.
        let e = Engine::open(
            SessionConfig::new(dir.path().join("a.db"), "http://127.0.0.1:9"),
            secrets,
        )
        .await
        .unwrap();
        let result = e.accept(JobId::random()).await.unwrap();
        assert_eq!(result, AcceptResult::Offline);
        assert!(
            e.store.read_async(accepts::all).await.unwrap().is_empty(),
            "never queued, nothing to look up later"
        );
        assert!(
            !IN_FLIGHT.lock().unwrap().keys().any(|(db, _)| db == &e.db),
            "the in-flight mark goes with the call"
        );
    }
}
