//! Sync rounds: pulling every page of changes (the first one long-polling) and applying each page
//! together with its cursor in one transaction.

use super::{Engine, now_ms};
use crate::error::{CoreError, CoreResult};
use crate::session::SyncReport;
use crate::store::cache::{self, Applied};
use crate::store::meta;
use friend_protocol::ErrorCode;

impl Engine {
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
                Err(e)
                    if matches!(
                        e.server_code(),
                        Some(ErrorCode::CursorTooOld | ErrorCode::InvalidCursor)
                    ) && resets == 0 =>
                {
                    // The server no longer serves our cursor (too old, or one it does not read —
                    // a rollback to a build with another cursor format): start a snapshot that
                    // will replace the cache, instead of sending the same cursor for ever.
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
            let index = self.guard_index();
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
                index.notify(&Applied {
                    inbox_changed: true,
                    jobs_changed: all_jobs,
                    inbox_replaced: true,
                    ..Applied::default()
                });
            } else {
                index.notify(&applied);
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::StaticSecrets;
    use crate::session::SessionConfig;
    use std::sync::Arc;

    #[tokio::test]
    async fn a_cursor_the_server_cannot_read_starts_a_snapshot() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (url, seen) = crate::testing::fake_backend(|_, path| {
            if path.contains("cursor=from-another-build") {
                let refused = r#"{"code":"invalid_cursor","message":"malformed cursor"}"#;
                return ("400 Bad Request", refused.into());
            }
            let page = r#"{"server_time":"2030-01-01T00:00:00Z","cursor":"c-new","more":false,"reset":true,"changes":[]}"#;
            ("200 OK", page.into())
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        let secrets = Arc::new(StaticSecrets::new("dev-friend-x", [8u8; 32]));
        let e = Engine::open(SessionConfig::new(dir.path().join("a.db"), url), secrets)
            .await
            .unwrap();
        e.shutdown_timer_for_test();
        e.store
            .write_async(|tx| meta::set_text(tx, meta::CURSOR, "from-another-build"))
            .await
            .unwrap();

        let report = e.sync_pages(0).await.unwrap();
        assert!(report.replaced_cache, "{report:?}");
        let cursor = e
            .store
            .read_async(|c| meta::get_text(c, meta::CURSOR))
            .await
            .unwrap();
        assert_eq!(cursor.as_deref(), Some("c-new"));
        // Once refused, then a snapshot (no cursor): not the same cursor again and again.
        let sent: Vec<_> = seen.lock().unwrap().clone();
        let syncs: Vec<_> = sent.iter().filter(|r| r.contains("/v1/sync")).collect();
        assert_eq!(syncs.len(), 2, "{sent:?}");
        assert!(!syncs[1].contains("cursor="), "{sent:?}");
    }
}
