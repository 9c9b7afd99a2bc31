//! This device's push token (SPEC §5, issue 13): registered with the backend through the outbox,
//! so a registration made offline, or just before the app is killed, is delivered when the device
//! is next online, in order and with its own idempotency key, like every other action.
//!
//! - The token is device-identifying: the outbox row holding it is sealed like every row
//!   ([`super::table`]), the token this device registered last is kept sealed in `meta`
//!   ([`crate::store::meta::PUSH_TOKEN`]), and [`DeviceToken`]'s `Debug` shows only a short tag.
//! - Push-token actions belong to the device, not to a job: they share one queue, the job id
//!   [`DEVICE_QUEUE`], so they are delivered strictly in order, and a refused one is set aside
//!   without holding back anything else.
//! - A registration names the token registered before as `replaces`, so a rotated token replaces
//!   the old one on the backend; registering the token already registered queues nothing.
//! - Closing a session does not unregister: a phone keeps receiving pushes for the account it is
//!   signed in to while the app is closed — that is what pushes are for. An app calls
//!   `unregister_push_token()` at sign-out (before it closes the session and deletes the account's
//!   database; the removal is queued, so it goes out even when the device is offline then, as soon
//!   as a session of that account is next online — or the backend forgets the token when the
//!   platform reports it dead).

use super::Action;
use super::table as rows;
use crate::crypto::FieldCipher;
use crate::engine::{Engine, now_ms};
use crate::error::{CoreError, CoreResult};
use crate::store::meta;
use friend_protocol::JobId;
use friend_protocol::push::{PushPlatform, PushTokenRequest, validate_registration};
use rusqlite::Transaction;
use serde::{Deserialize, Serialize};

/// The queue (the outbox's job id) of the actions that concern this device rather than a job: the
/// push-token registrations and removals. The nil id, which no job has.
pub const DEVICE_QUEUE: JobId = JobId(uuid::Uuid::nil());

/// A platform push token. Device-identifying, so `Debug` shows only [`token_tag`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeviceToken(String);

impl DeviceToken {
    /// Wraps a token (not validated here; see [`validate_registration`]).
    pub fn new(token: impl Into<String>) -> DeviceToken {
        DeviceToken(token.into())
    }

    /// The token itself, for the request body.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A short tag to show or log instead of the token: [`token_tag`].
    pub fn tag(&self) -> String {
        token_tag(&self.0)
    }
}

impl std::fmt::Debug for DeviceToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeviceToken({})", self.tag())
    }
}

/// A short tag of a token — the first 8 hex digits of its SHA-256 — to show or log instead of the
/// token: two tags tell different tokens apart, and the token cannot be read from one.
pub fn token_tag(token: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref()[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The token this device registered last, as kept sealed in `meta`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registered {
    /// Where it is delivered through.
    pub platform: PushPlatform,
    /// The token.
    pub token: DeviceToken,
}

/// The token this device registered last (queued or delivered), if any.
pub fn registered(
    conn: &rusqlite::Connection,
    cipher: &FieldCipher,
) -> CoreResult<Option<Registered>> {
    // It only decides whether a registration is new and what it replaces: an unreadable value
    // counts as none (the next registration then names no token to replace).
    Ok(meta::get_sealed(conn, cipher, meta::PUSH_TOKEN)?
        .and_then(|json| serde_json::from_str(&json).ok()))
}

/// The token the backend holds for this device once `action` (a push-token action) is applied and
/// before it is: a registration replaces `replaces`, a removal forgets `token`.
fn before(action: &Action) -> Option<DeviceToken> {
    match action {
        Action::PushToken { replaces, .. } => replaces.clone(),
        Action::PushTokenRemoval { token } => Some(token.clone()),
        _ => None,
    }
}

/// Queues what takes this device from the token it registered last to `desired` (a registration,
/// or with `None` a removal), in one transaction with remembering `desired`. Returns the queued
/// item, or `None` when there is nothing to send (the same token again, no token to remove).
///
/// Superseding, kept simple: only the first pending item of [`DEVICE_QUEUE`] can be on its way
/// (delivery sends a queue's items one after the other, and an abandoned attempt may still have
/// reached the backend), so it is never touched and is sent as it is. Every item behind it has
/// certainly not left the device: the new item replaces them — they are deleted, and the new
/// item starts from where the first of them started (the token the backend holds once the first
/// item is applied). So no stale token is ever sent after a newer one, at most two push-token items
/// are pending at a time, and the backend ends with exactly the token registered last.
pub fn queue_change(
    tx: &Transaction<'_>,
    cipher: &FieldCipher,
    desired: Option<&Registered>,
    now_ms: i64,
) -> CoreResult<Option<i64>> {
    let current = registered(tx, cipher)?;
    if current.as_ref() == desired {
        return Ok(None);
    }
    let pending = rows::pending_for_job(tx, cipher, DEVICE_QUEUE)?;
    let superseded = pending.get(1..).unwrap_or_default();
    let from = match superseded.first() {
        Some(first) => before(&Action::from_payload(&first.payload)?),
        None => current.map(|r| r.token),
    };
    for item in superseded {
        rows::forget(tx, item.id)?;
    }
    let action = match desired {
        Some(r) => Some(Action::PushToken {
            platform: r.platform,
            token: r.token.clone(),
            replaces: from.filter(|old| *old != r.token),
        }),
        None => from.map(|token| Action::PushTokenRemoval { token }),
    };
    match desired {
        Some(r) => meta::set_sealed(tx, cipher, meta::PUSH_TOKEN, &serde_json::to_string(r)?)?,
        None => meta::delete(tx, meta::PUSH_TOKEN)?,
    }
    let Some(action) = action else {
        return Ok(None);
    };
    let key = uuid::Uuid::new_v4().to_string();
    rows::enqueue(
        tx,
        cipher,
        DEVICE_QUEUE,
        action.kind(),
        &action.to_payload()?,
        &key,
        now_ms,
    )
    .map(Some)
}

impl Engine {
    /// Validates and queues the registration of this device's push token (see [`queue_change`]).
    pub(crate) async fn register_push_token(
        &self,
        platform: PushPlatform,
        token: String,
    ) -> CoreResult<Option<i64>> {
        let request = PushTokenRequest {
            platform,
            token,
            replaces: None,
        };
        // The message names the field and the rule, never the token.
        validate_registration(&request).map_err(|e| CoreError::InvalidInput(e.to_string()))?;
        self.queue_push(Some(Registered {
            platform,
            token: DeviceToken(request.token),
        }))
        .await
    }

    /// Queues the removal of the token this device registered last, and forgets it.
    pub(crate) async fn unregister_push_token(&self) -> CoreResult<Option<i64>> {
        self.queue_push(None).await
    }

    async fn queue_push(&self, desired: Option<Registered>) -> CoreResult<Option<i64>> {
        let cipher = self.cipher.clone();
        let id = self
            .store
            .write_async(move |tx| queue_change(tx, &cipher, desired.as_ref(), now_ms()))
            .await?;
        // Superseded items may have left the outbox even when nothing new was queued.
        self.refresh_status(|_| {}).await;
        if id.is_some() {
            self.outbox_kick.notify_one();
        }
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use crate::store::outbox::ItemStatus;
    use std::sync::Arc;

    const APNS: &str = "a0b1c2d3e4f5a0b1c2d3e4f5a0b1c2d3e4f5a0b1c2d3e4f5a0b1c2d3e4f5a0b1";

    fn cipher() -> FieldCipher {
        FieldCipher::new(&[4u8; 32]).unwrap()
    }

    fn fcm(token: &str) -> Registered {
        Registered {
            platform: PushPlatform::Fcm,
            token: DeviceToken::new(token),
        }
    }

    fn change(store: &Store, c: &FieldCipher, desired: Option<Registered>) -> Option<i64> {
        store
            .write(|tx| queue_change(tx, c, desired.as_ref(), 1))
            .unwrap()
    }

    /// The pending push-token actions, oldest first.
    fn queued(store: &Store, c: &FieldCipher) -> Vec<Action> {
        store
            .read(|conn| rows::pending_for_job(conn, c, DEVICE_QUEUE))
            .unwrap()
            .iter()
            .map(|i| Action::from_payload(&i.payload).unwrap())
            .collect()
    }

    fn register(token: &str, replaces: Option<&str>) -> Action {
        Action::PushToken {
            platform: PushPlatform::Fcm,
            token: DeviceToken::new(token),
            replaces: replaces.map(DeviceToken::new),
        }
    }

    fn remove(token: &str) -> Action {
        Action::PushTokenRemoval {
            token: DeviceToken::new(token),
        }
    }

    fn settle_first(store: &Store, c: &FieldCipher) {
        let first = store
            .read(|conn| rows::pending_for_job(conn, c, DEVICE_QUEUE))
            .unwrap()[0]
            .id;
        store
            .write(|tx| rows::mark_applied(tx, first, None, 2))
            .unwrap();
    }

    #[test]
    fn a_new_token_replaces_the_old_one_and_the_same_token_again_queues_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("p.db")).unwrap();
        let c = cipher();
        assert!(change(&store, &c, Some(fcm("tok-a"))).is_some());
        assert_eq!(change(&store, &c, Some(fcm("tok-a"))), None, "no-op");
        assert_eq!(queued(&store, &c), [register("tok-a", None)]);
        settle_first(&store, &c);

        assert!(change(&store, &c, Some(fcm("tok-b"))).is_some());
        assert_eq!(queued(&store, &c), [register("tok-b", Some("tok-a"))]);
        assert_eq!(
            store.read(|conn| registered(conn, &c)).unwrap(),
            Some(fcm("tok-b"))
        );
        settle_first(&store, &c);

        // Unregistering removes the token registered last, once; then there is nothing to remove.
        assert!(change(&store, &c, None).is_some());
        assert_eq!(change(&store, &c, None), None);
        assert_eq!(queued(&store, &c), [remove("tok-b")]);
        assert_eq!(store.read(|conn| registered(conn, &c)).unwrap(), None);
    }

    #[test]
    fn a_newer_change_supersedes_what_waits_behind_the_first_pending_item() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("p.db")).unwrap();
        let c = cipher();
        change(&store, &c, Some(fcm("tok-a")));
        settle_first(&store, &c);
        // Offline: B may be on its way (first in the queue); C, D and the removal never left.
        change(&store, &c, Some(fcm("tok-b")));
        change(&store, &c, Some(fcm("tok-c")));
        change(&store, &c, Some(fcm("tok-d")));
        assert_eq!(
            queued(&store, &c),
            [
                register("tok-b", Some("tok-a")),
                register("tok-d", Some("tok-b"))
            ],
            "C never leaves the device; D replaces what B left"
        );
        change(&store, &c, None);
        assert_eq!(
            queued(&store, &c),
            [register("tok-b", Some("tok-a")), remove("tok-b")]
        );
        // Back to A: B is replaced by A again.
        change(&store, &c, Some(fcm("tok-a")));
        assert_eq!(
            queued(&store, &c),
            [
                register("tok-b", Some("tok-a")),
                register("tok-a", Some("tok-b"))
            ]
        );
        // With nothing registered before the first item, a removal cancels the rest.
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("q.db")).unwrap();
        change(&store, &c, Some(fcm("tok-a")));
        settle_first(&store, &c);
        change(&store, &c, None);
        change(&store, &c, Some(fcm("tok-b")));
        assert_eq!(
            queued(&store, &c),
            [remove("tok-a"), register("tok-b", None)]
        );
        assert_eq!(change(&store, &c, None), None, "B is cancelled, not sent");
        assert_eq!(queued(&store, &c), [remove("tok-a")]);
    }

    #[test]
    fn another_apns_environment_is_a_new_registration_of_the_same_token() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("p.db")).unwrap();
        let c = cipher();
        let sandbox = Registered {
            platform: PushPlatform::ApnsSandbox,
            token: DeviceToken::new(APNS),
        };
        let production = Registered {
            platform: PushPlatform::Apns,
            ..sandbox.clone()
        };
        change(&store, &c, Some(sandbox));
        settle_first(&store, &c);
        assert!(change(&store, &c, Some(production)).is_some());
        assert_eq!(
            queued(&store, &c),
            [Action::PushToken {
                platform: PushPlatform::Apns,
                token: DeviceToken::new(APNS),
                replaces: None,
            }]
        );
    }

    /// A loopback backend that refuses the first push-token registration (400 `invalid_input`)
    /// and applies everything else; returns its URL and the requests it was sent, in order.
    async fn refusing_backend() -> (String, crate::testing::Seen) {
        let registrations = std::sync::atomic::AtomicUsize::new(0);
        crate::testing::fake_backend(move |_, path| {
            let first_registration = path == "/v1/push-tokens"
                && registrations.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0;
            if first_registration {
                (
                    "400 Bad Request",
                    r#"{"code":"invalid_input","message":"token: refused"}"#.into(),
                )
            } else if path.starts_with("/v1/push-tokens") {
                ("200 OK", r#"{"devices":1}"#.into())
            } else {
                ("200 OK", "{}".into())
            }
        })
        .await
    }

    #[tokio::test]
    async fn a_refused_registration_is_set_aside_and_blocks_nothing() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (url, seen) = refusing_backend().await;
        let dir = tempfile::tempdir().unwrap();
        let secrets = Arc::new(crate::StaticSecrets::new("dev-friend-x", [6u8; 32]));
        let engine = Engine::open(
            crate::SessionConfig::new(dir.path().join("e.db"), url),
            secrets,
        )
        .await
        .unwrap();
        engine.shutdown_timer_for_test();
        let job = JobId::random();
        engine
            .register_push_token(PushPlatform::Fcm, "fcm-refused".into())
            .await
            .unwrap();
        engine.enqueue(job, Action::CheckIn).await.unwrap();
        engine
            .deliver(crate::outbox::delivery::Due::Now)
            .await
            .unwrap();
        let cipher = engine.cipher.clone();
        let items = engine
            .store
            .read_async(move |c| rows::all(c, &cipher))
            .await
            .unwrap();
        let status: Vec<_> = items
            .iter()
            .map(|i| (i.kind, i.status, i.outcome_code.as_deref()))
            .collect();
        assert_eq!(
            status,
            [
                (
                    crate::ActionKind::PushToken,
                    ItemStatus::Refused,
                    Some("invalid_input")
                ),
                (crate::ActionKind::CheckIn, ItemStatus::Applied, None),
            ]
        );
        // The next registration goes out (replacing the refused token is harmless).
        engine
            .register_push_token(PushPlatform::Fcm, "fcm-next".into())
            .await
            .unwrap()
            .unwrap();
        engine
            .deliver(crate::outbox::delivery::Due::Now)
            .await
            .unwrap();
        assert_eq!(engine.status().pending_outbox, 0);
        assert_eq!(engine.status().refused_outbox, 1);
        let paths = seen.lock().unwrap().clone();
        assert_eq!(
            paths,
            [
                "POST /v1/push-tokens",
                &*format!("POST /v1/friend/jobs/{job}/check-in"),
                "POST /v1/push-tokens"
            ]
        );
    }

    #[test]
    fn the_token_is_sealed_at_rest_and_never_in_debug_output() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.db");
        let store = Store::open(&path).unwrap();
        let c = cipher();
        let token = "fcm-Xylophonbus-Quarzhuhn-0123456789";
        change(&store, &c, Some(fcm(token)));
        change(&store, &c, Some(fcm("fcm-second-token")));
        let items = store.read(|conn| rows::all(conn, &c)).unwrap();
        assert!(items.iter().all(|i| i.status == ItemStatus::Pending));
        let shown = format!("{:?}", queued(&store, &c));
        assert!(!shown.contains(token), "{shown}");
        assert!(shown.contains(&token_tag(token)));
        store
            .read(|conn| Ok(conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?))
            .unwrap();
        drop(store);
        for suffix in ["", "-wal", "-shm"] {
            let file = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
            if let Ok(bytes) = std::fs::read(&file) {
                assert!(
                    !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
                    "{} holds the token in clear",
                    file.display()
                );
            }
        }
    }
}
