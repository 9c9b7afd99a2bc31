//! FriendCore's client library — the core both phone apps run (through the uniffi bindings) and the
//! host-side tests and CLI drive directly.
//!
//! A [`FriendSession`] is one account on one device: an SQLite cache that answers every read
//! offline ([`store`]), a backend client over rustls/ring ([`api`]), delta sync with long-poll and
//! push wake-ups, the inbox sorted by distance from the device's live position (which never leaves
//! the device), the durable accept race and a durable outbox for on-site actions.
//!
//! ```no_run
//! use friend_core::{FriendSession, SessionConfig, StaticSecrets, InboxFilter};
//! use friend_protocol::GeoPoint;
//! use std::sync::Arc;
//! # async fn demo() -> Result<(), friend_core::CoreError> {
//! let secrets = Arc::new(StaticSecrets::new("dev-friend-anna", [7u8; 32]));
//! let session = FriendSession::open(SessionConfig::new("anna.db", "http://127.0.0.1:8080"), secrets).await?;
//! session.sync_once().await?;
//! let here = GeoPoint::new(47.3769, 8.5417).map_err(|e| friend_core::CoreError::InvalidInput(e.to_string()))?;
//! let inbox = session.inbox(here, 10.0, InboxFilter::default()).await?;
//! if let Some(first) = inbox.items.first() {
//!     let outcome = session.accept(first.offer.id).await?;
//!     println!("{outcome:?}");
//! }
//! # Ok(()) }
//! ```

pub mod api;
pub mod crypto;
mod customer;
mod engine;
pub mod error;
mod friend;
pub mod inbox;
pub mod listeners;
pub mod negotiation;
pub mod outbox;
pub mod secrets;
mod session;
pub mod store;
#[cfg(test)]
mod testing;

pub use api::ApiConfig;
pub use customer::{BOOKING_DEDUP_WINDOW_MS, CustomerJob, CustomerSession, LiveStatus};
pub use engine::PURGE_PERSONAL_AFTER;
pub use error::{CoreError, CoreResult};
pub use friend::{AcceptResult, GoneReason};
pub use friend::{FriendSession, MyJob, QueuedEta};
pub use inbox::{Inbox, InboxFilter, InboxItem};
pub use listeners::{InboxListener, JobListener, Subscription, SyncStatusListener};
pub use negotiation::{LocalNegotiation, LocalQuote};
pub use outbox::{Action, ActionKind, OutboxItem};
pub use secrets::{MAX_TOKEN_BYTES, SecretsProvider, StaticSecrets, check_token};
pub use session::Session;
pub use session::{SessionConfig, SyncReport, SyncStatus};
