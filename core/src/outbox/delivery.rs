//! Outbox delivery: in order per job, each item with its own idempotency key; a refused item is
//! set aside and the job's next item goes on; a transient failure schedules a retry with backoff
//! and holds back that job's later items. A timer delivers whenever an item falls due.

use super::push::DEVICE_QUEUE;
use super::table as rows;
use super::{Action, backoff};
use crate::crypto::FieldCipher;
use crate::engine::{Engine, now_ms, purge};
use crate::error::{CoreError, CoreResult};
use crate::store::cache::{self, Applied};
use friend_protocol::{JobId, JobResponse};
use rusqlite::Transaction;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// Which pending items a delivery round sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Due {
    /// Only those whose retry time has come (the timer, an explicit `deliver_outbox`).
    WhenScheduled,
    /// All of them, ignoring backoff: a sync the app asked for or a push — a reason to believe the
    /// network is back. Applies to the first pass; failures in it are retried on schedule.
    Now,
}

impl Engine {
    /// Queues an action for `job` and wakes the delivery timer.
    pub async fn enqueue(&self, job: JobId, action: Action) -> CoreResult<i64> {
        self.enqueue_with(job, action, false).await
    }

    /// Queues an action for `job` that replaces the items of the same kind still waiting for the
    /// job: they are deleted in the same transaction. Only items behind the job's first pending
    /// item are replaced — delivery sends a job's items one after the other, and only its first
    /// one can be on its way (or have reached the backend with the answer lost), so that one is
    /// sent as it is; every item behind it has certainly not left the device. So at most two items
    /// of the kind wait for a job: the one perhaps in flight and the newest. For actions where only
    /// the latest counts ("on my way" with a new estimate).
    pub(crate) async fn enqueue_superseding(&self, job: JobId, action: Action) -> CoreResult<i64> {
        self.enqueue_with(job, action, true).await
    }

    async fn enqueue_with(&self, job: JobId, action: Action, supersede: bool) -> CoreResult<i64> {
        let cipher = self.cipher.clone();
        let kind = action.kind();
        let id = self
            .store
            .write_async(move |tx| {
                if supersede {
                    let waiting = rows::pending_for_job(tx, &cipher, job)?;
                    for older in waiting.iter().skip(1).filter(|i| i.kind == kind) {
                        rows::forget(tx, older.id)?;
                    }
                }
                enqueue_in(tx, &cipher, job, &action)
            })
            .await?;
        self.queued(job).await;
        Ok(id)
    }

    /// After a commit that queued an item for `job` (with [`enqueue_in`]): tells the listeners,
    /// refreshes the status and wakes the delivery timer.
    pub(crate) async fn queued(&self, job: JobId) {
        self.notify(&Applied {
            inbox_changed: true,
            jobs_changed: vec![job],
            ..Applied::default()
        });
        self.refresh_status(|_| {}).await;
        self.outbox_kick.notify_one();
    }

    /// Delivers every due outbox item: in order per job, each with its own idempotency key. A
    /// refused item is set aside and the job's next item goes on; a transient failure schedules a
    /// retry with backoff and holds back that job's later items.
    pub async fn deliver_outbox(&self) -> CoreResult<u32> {
        self.deliver(Due::WhenScheduled).await
    }

    /// Delivers pending items that are due — or all of them with [`Due::Now`].
    pub(crate) async fn deliver(&self, mut due_now: Due) -> CoreResult<u32> {
        if self.closed() {
            return Err(CoreError::Closed);
        }
        let _one_at_a_time = self.outbox_lock.lock().await;
        let mut delivered = 0;
        loop {
            let now = now_ms();
            let cipher = self.cipher.clone();
            let heads = self
                .store
                .read_async(move |c| rows::heads(c, &cipher))
                .await?;
            // An item this version cannot read can never be sent: it is set aside (refused, never
            // retried) at once, due or not, and the others go on — its job's next item included.
            let mut unreadable = Vec::new();
            let mut due = Vec::new();
            for head in heads {
                match head.map(|item| (Action::from_payload(&item.payload), item)) {
                    Err(u) => unreadable.push(u),
                    Ok((Err(_), item)) => unreadable.push(rows::Unreadable::action_of(&item)),
                    Ok((Ok(action), item)) => {
                        if due_now == Due::Now || item.next_attempt_at_ms <= now {
                            due.push((item, action));
                        }
                    }
                }
            }
            if !unreadable.is_empty() {
                self.set_aside(unreadable).await?;
                continue;
            }
            if due.is_empty() {
                break;
            }
            let mut progressed = false;
            for (item, action) in due {
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
                        let index = self.guard_index();
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
                        index.notify(&applied);
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
                            jobs_changed: job_changed(item.job_id),
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
                    inbox_changed: item.job_id != DEVICE_QUEUE,
                    jobs_changed: job_changed(item.job_id),
                    ..Applied::default()
                });
            }
            if progressed {
                self.store.write_async(purge).await?;
            }
            self.refresh_status(|s| s.connected = true).await;
            // Forcing applies to the first pass; a failure in it is retried by the timer.
            due_now = Due::WhenScheduled;
            if !progressed {
                break;
            }
        }
        Ok(delivered)
    }
}

/// Queues `action` for `job` in `tx`, with its own idempotency key; returns the item's id. For a
/// call whose check decides whether (or what) to queue: the check reads in the same transaction,
/// so two concurrent calls cannot both pass it (a double tap queues once). After the commit the
/// caller calls [`Engine::queued`].
pub(crate) fn enqueue_in(
    tx: &Transaction<'_>,
    cipher: &FieldCipher,
    job: JobId,
    action: &Action,
) -> CoreResult<i64> {
    let key = uuid::Uuid::new_v4().to_string();
    rows::enqueue(
        tx,
        cipher,
        job,
        action.kind(),
        &action.to_payload()?,
        &key,
        now_ms(),
    )
}

impl Engine {
    /// Sets aside items this version cannot read ([`rows::UNREADABLE_ITEM`]), in one
    /// transaction, and tells the listeners of their jobs. Logged with codes and ids only.
    async fn set_aside(&self, unreadable: Vec<rows::Unreadable>) -> CoreResult<()> {
        for u in &unreadable {
            tracing::warn!(
                item = u.id,
                code = rows::UNREADABLE_ITEM,
                problem = u.problem,
                "outbox item cannot be read; set aside"
            );
        }
        let cipher = self.cipher.clone();
        let jobs: Vec<JobId> = unreadable.iter().filter_map(|u| u.job_id).collect();
        self.store
            .write_async(move |tx| {
                for u in &unreadable {
                    rows::mark_unreadable(tx, &cipher, u, now_ms())?;
                }
                Ok(())
            })
            .await?;
        for job in jobs {
            self.notify(&Applied {
                inbox_changed: job != DEVICE_QUEUE,
                jobs_changed: job_changed(job),
                ..Applied::default()
            });
        }
        self.refresh_status(|_| {}).await;
        Ok(())
    }
}

/// The job listeners' news of an item's outcome: none for the device's own queue
/// ([`DEVICE_QUEUE`], the push token), which is no job.
fn job_changed(job: JobId) -> Vec<JobId> {
    if job == DEVICE_QUEUE {
        Vec::new()
    } else {
        vec![job]
    }
}

/// Delivers the outbox whenever an item is due or one was queued, until shutdown. Holds the engine
/// only while working, so a dropped session is not kept alive by its timer.
pub(crate) async fn outbox_timer(
    engine: std::sync::Weak<Engine>,
    kick: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    // Rounds that failed in a row: the next one waits at least `backoff(failures)`, so a round
    // that keeps failing (the database, a row it cannot settle) never makes the timer spin.
    let mut failures = 0u32;
    loop {
        let next_due = {
            let Some(e) = engine.upgrade() else { return };
            match e.store.read_async(rows::next_due_ms).await {
                Ok(due) => due,
                Err(err) => {
                    // Retry within the hour rather than spin on a failing database.
                    e.record_error(&err).await;
                    None
                }
            }
        };
        let wait = timer_wait(next_due, now_ms(), failures);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = kick.notified() => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
        let Some(e) = engine.upgrade() else { return };
        // Failures of single items are kept on them; a storage failure shows in the status.
        match e.deliver_outbox().await {
            Ok(_) => failures = 0,
            Err(err) => {
                failures = failures.saturating_add(1);
                e.record_error(&err).await;
            }
        }
    }
}

/// How long the timer sleeps (unless kicked): until the next item is due (an hour when none is),
/// and after `failures` failed rounds in a row at least their backoff.
fn timer_wait(next_due_ms: Option<i64>, now_ms: i64, failures: u32) -> Duration {
    let due = match next_due_ms {
        Some(t) => Duration::from_millis(t.saturating_sub(now_ms).max(0) as u64),
        None => Duration::from_secs(3600),
    };
    if failures == 0 {
        due
    } else {
        due.max(backoff(failures))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::StaticSecrets;
    use crate::session::SessionConfig;
    use crate::store::outbox::ItemStatus;

    /// An engine whose backend is a closed loopback port: every request fails at once, not
    /// maybe delivered.
    async fn offline_engine(dir: &std::path::Path) -> Arc<Engine> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let secrets = Arc::new(StaticSecrets::new("dev-friend-x", [5u8; 32]));
        Engine::open(
            SessionConfig::new(dir.join("e.db"), "http://127.0.0.1:9"),
            secrets,
        )
        .await
        .unwrap()
    }

    async fn items(e: &Engine) -> Vec<rows::ItemRow> {
        let cipher = e.cipher.clone();
        e.store
            .read_async(move |c| rows::all(c, &cipher))
            .await
            .unwrap()
    }

    /// (job, kind, status, refusal code) of every item, read with plain SQL.
    async fn statuses(e: &Engine) -> Vec<(String, String, String, Option<String>)> {
        e.store
            .read_async(|c| {
                let mut stmt =
                    c.prepare("SELECT job_id, kind, status, outcome_code FROM outbox ORDER BY id")?;
                let rows = stmt
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(rows)
            })
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn an_unreadable_item_is_set_aside_and_the_others_are_delivered() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (url, seen) = crate::testing::fake_backend(|_, _| ("200 OK", "{}".into())).await;
        let dir = tempfile::tempdir().unwrap();
        let secrets = Arc::new(StaticSecrets::new("dev-friend-x", [5u8; 32]));
        let e = Engine::open(SessionConfig::new(dir.path().join("e.db"), url), secrets)
            .await
            .unwrap();
        e.shutdown_timer_for_test();
        let [good, sealed_bad, unknown_kind, bad_json] = [(); 4].map(|_| JobId::random());
        e.enqueue(good, Action::CheckIn).await.unwrap();
        let corrupt = e.enqueue(sealed_bad, Action::CheckIn).await.unwrap();
        // The same job's next item waits behind the unreadable one, and goes on once it is set
        // aside.
        e.enqueue(sealed_bad, Action::Cancel).await.unwrap();
        let renamed = e.enqueue(unknown_kind, Action::CheckIn).await.unwrap();
        let cipher = e.cipher.clone();
        e.store
            .write_async(move |tx| {
                // A sealed payload that no longer opens (one bit of its tag flipped).
                let mut sealed: Vec<u8> =
                    tx.query_row("SELECT payload FROM outbox WHERE id = ?1", [corrupt], |r| {
                        r.get(0)
                    })?;
                if let Some(last) = sealed.last_mut() {
                    *last ^= 1;
                }
                tx.execute(
                    "UPDATE outbox SET payload = ?2 WHERE id = ?1",
                    rusqlite::params![corrupt, sealed],
                )?;
                // A kind this version does not know.
                tx.execute(
                    "UPDATE outbox SET kind = 'teleport' WHERE id = ?1",
                    [renamed],
                )?;
                // A payload that opens but is not an action.
                rows::enqueue(
                    tx,
                    &cipher,
                    bad_json,
                    crate::ActionKind::CheckIn,
                    "{not json",
                    "key-bad-json",
                    now_ms(),
                )?;
                Ok(())
            })
            .await
            .unwrap();

        // The round returns, delivers what it can read and sets the rest aside.
        assert_eq!(e.deliver(Due::WhenScheduled).await.unwrap(), 2);
        let unreadable = Some(rows::UNREADABLE_ITEM.to_owned());
        let s = |job: JobId, kind: &str, status: &str, code: &Option<String>| {
            (
                job.to_string(),
                kind.to_owned(),
                status.to_owned(),
                code.clone(),
            )
        };
        assert_eq!(
            statuses(&e).await,
            [
                s(good, "check_in", "applied", &None),
                s(sealed_bad, "check_in", "refused", &unreadable),
                s(sealed_bad, "cancel", "applied", &None),
                s(unknown_kind, "teleport", "refused", &unreadable),
                s(bad_json, "check_in", "refused", &unreadable),
            ]
        );
        let sent = seen.lock().unwrap().clone();
        assert_eq!(
            sent,
            [
                format!("POST /v1/friend/jobs/{good}/check-in"),
                format!("POST /v1/customer/jobs/{sealed_bad}/cancel"),
            ],
            "nothing unreadable is sent"
        );
        // Nothing is left due: the timer sleeps instead of spinning on the unreadable rows.
        let next = e.store.read_async(rows::next_due_ms).await.unwrap();
        assert!(
            next.is_none_or(|t| t > now_ms()),
            "next wake-up in the past: {next:?}"
        );
        assert_eq!(e.deliver(Due::Now).await.unwrap(), 0, "nothing to retry");
        assert_eq!(
            (e.status().pending_outbox, e.status().refused_outbox),
            (0, 3)
        );
        // The outbox still reads: the rows it can open (the set-aside one whose action does not
        // parse among them).
        assert_eq!(items(&e).await.len(), 3);
    }

    #[tokio::test]
    async fn a_rescued_item_that_does_not_open_is_set_aside_at_open() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.db");
        let (damaged, fine) = (JobId::random(), JobId::random());
        {
            // As a rescue from a corrupt file leaves them: no digest yet; one payload damaged.
            let store = crate::store::Store::open(&path).unwrap();
            let cipher = crate::crypto::FieldCipher::new(&[5u8; 32]).unwrap();
            store
                .write(|tx| {
                    for (job, key) in [(damaged, "k-damaged"), (fine, "k-fine")] {
                        rows::enqueue(tx, &cipher, job, crate::ActionKind::CheckIn, r#"{"kind":"check_in"}"#, key, 1)?;
                    }
                    tx.execute_batch(
                        "UPDATE outbox SET digest = NULL;
                         UPDATE outbox SET payload = substr(payload, 1, 20) WHERE idempotency_key = 'k-damaged';",
                    )?;
                    Ok(())
                })
                .unwrap();
        }
        let e = offline_engine(dir.path()).await;
        e.shutdown_timer_for_test();
        assert_eq!(
            statuses(&e).await,
            [
                (
                    damaged.to_string(),
                    "check_in".into(),
                    "refused".into(),
                    Some(rows::UNREADABLE_ITEM.into())
                ),
                (fine.to_string(), "check_in".into(), "pending".into(), None),
            ]
        );
        // Once: a reopen does not look at it again, and opens.
        drop(e);
        let again = offline_engine(dir.path()).await;
        assert_eq!(again.status().refused_outbox, 1);
        assert_eq!(again.status().pending_outbox, 1);
    }

    #[test]
    fn a_failing_round_makes_the_timer_wait() {
        let now = 1_000_000;
        assert_eq!(timer_wait(Some(now - 5), now, 0), Duration::ZERO);
        assert_eq!(
            timer_wait(Some(now + 250), now, 0),
            Duration::from_millis(250)
        );
        assert_eq!(timer_wait(None, now, 0), Duration::from_secs(3600));
        // An item still due after a failed round does not wake the timer at once.
        assert!(timer_wait(Some(now - 5), now, 1) >= Duration::from_millis(500));
        assert!(timer_wait(Some(now - 5), now, 20) >= Duration::from_secs(150));
        assert_eq!(timer_wait(None, now, 3), Duration::from_secs(3600));
    }

    #[tokio::test]
    async fn an_offline_round_keeps_the_item_and_backs_off_until_asked_to_try_now() {
        let dir = tempfile::tempdir().unwrap();
        let e = offline_engine(dir.path()).await;
        e.shutdown_timer_for_test();
        let job = JobId::random();
        e.enqueue(job, Action::CheckIn).await.unwrap();

        assert_eq!(e.deliver(Due::Now).await.unwrap(), 0);
        let [item] = items(&e).await.try_into().unwrap();
        assert_eq!((item.status, item.attempts), (ItemStatus::Pending, 1));
        assert!(
            item.last_error
                .as_deref()
                .unwrap_or("")
                .starts_with("offline")
        );
        assert!(item.next_attempt_at_ms > now_ms(), "backed off");

        // Not due yet: a scheduled round leaves it alone; a round the app asked for tries again.
        e.deliver(Due::WhenScheduled).await.unwrap();
        assert_eq!(items(&e).await[0].attempts, 1);
        e.deliver(Due::Now).await.unwrap();
        assert_eq!(items(&e).await[0].attempts, 2);
        assert_eq!(
            e.status().last_error.map(|(code, _)| code).as_deref(),
            Some("offline"),
            "the status names the failure"
        );
    }
}
