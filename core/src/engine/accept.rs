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
use std::collections::HashSet;
use std::sync::Mutex;
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
        let _inflight = Inflight::new(&self.inflight_accepts, job);
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
                .map(|s| s.contains(&job))
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

/// Marks a job's accept as in flight in this process for as long as the accept future lives, so a
/// concurrent resolution does not race it; an abandoned future unmarks it on drop.
struct Inflight<'a> {
    set: &'a Mutex<HashSet<JobId>>,
    job: JobId,
}

impl<'a> Inflight<'a> {
    fn new(set: &'a Mutex<HashSet<JobId>>, job: JobId) -> Inflight<'a> {
        if let Ok(mut s) = set.lock() {
            s.insert(job);
        }
        Inflight { set, job }
    }
}

impl Drop for Inflight<'_> {
    fn drop(&mut self) {
        if let Ok(mut s) = self.set.lock() {
            s.remove(&self.job);
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
            e.inflight_accepts.lock().unwrap().is_empty(),
            "the in-flight mark goes with the call"
        );
    }
}
