//! Cross-instance wake-ups (docs/adr/0014): a changing transaction announces the last change
//! number it wrote with `NOTIFY` — delivered at its commit, never for a rollback, one per
//! transaction — and every instance follows the committed head on a dedicated connection that
//! `LISTEN`s. A lost notification (the connection dropped, the server restarted) costs latency,
//! never a change: the follower reads the counter when it (re)connects and every `poll` interval.
//! An instance wakes its own waiting long-polls when the head moves; they re-read from their
//! cursors, so what they get never depends on which notification arrived.

use super::{Pg, PgError};
use friend_protocol::AccountId;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_postgres::{AsyncMessage, Transaction};

/// The channel changes are announced on.
pub const CHANNEL: &str = "friend_changes";
/// The channel a rotated token's account is announced on (every instance forgets what its token
/// cache knew of the account; a lost notification is covered by the cache's time to live).
pub const TOKENS_CHANNEL: &str = "friend_tokens";
/// The follower's connection shows this `application_name` (operators can find it).
pub const APPLICATION_NAME: &str = "friend-backend listener";
/// The longest pause between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Announces inside `tx` that change `last_seq` was written; listeners hear of it at commit.
pub async fn announce(tx: &Transaction<'_>, last_seq: i64) -> Result<(), PgError> {
    tx.execute(
        "SELECT pg_notify($1, $2)",
        &[&CHANNEL, &last_seq.to_string()],
    )
    .await?;
    Ok(())
}

/// The newest committed change number as this instance knows it, and the accounts whose token was
/// rotated; follows the database until every receiver of the head is dropped.
pub struct Follower {
    head: watch::Receiver<i64>,
    rotated: Option<mpsc::UnboundedReceiver<AccountId>>,
    task: JoinHandle<()>,
}

impl Follower {
    /// Starts following `pg`'s change head: notifications as they come, the counter at each
    /// (re)connection and every `poll`.
    pub fn start(pg: &Pg, poll: Duration) -> Follower {
        let (tx, head) = watch::channel(0);
        let (heard, rotated) = mpsc::unbounded_channel();
        let pg = pg.clone();
        let task = tokio::spawn(async move { follow(pg, tx, heard, poll).await });
        Follower {
            head,
            rotated: Some(rotated),
            task,
        }
    }

    /// A receiver of the head: `changed()` resolves when a newer change committed.
    pub fn head(&self) -> watch::Receiver<i64> {
        self.head.clone()
    }

    /// The accounts whose token any instance rotated, as heard (taken once).
    pub fn rotated_tokens(&mut self) -> Option<mpsc::UnboundedReceiver<AccountId>> {
        self.rotated.take()
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reconnects with back-off until nobody follows any more.
async fn follow(
    pg: Pg,
    head: watch::Sender<i64>,
    rotated: mpsc::UnboundedSender<AccountId>,
    poll: Duration,
) {
    let mut backoff = Duration::from_millis(100);
    while !head.is_closed() {
        match session(&pg, &head, &rotated, poll).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, code = e.code(), "change listener lost its connection; reconnecting");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// One connection's life: LISTEN, catch up, then notifications and polls until it fails.
async fn session(
    pg: &Pg,
    head: &watch::Sender<i64>,
    rotated: &mpsc::UnboundedSender<AccountId>,
    poll: Duration,
) -> Result<(), PgError> {
    let mut settings = (*pg.settings).clone();
    settings.application_name(APPLICATION_NAME);
    let (client, mut connection) = settings.connect(super::tls()?).await?;
    let (notes, mut heard) = mpsc::unbounded_channel::<(String, String)>();
    // The connection is driven here: it carries the client's requests and the notifications.
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    if notes
                        .send((n.channel().to_owned(), n.payload().to_owned()))
                        .is_err()
                    {
                        return;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "listener connection failed");
                    return;
                }
                None => return,
            }
        }
    });
    let result = async {
        client
            .batch_execute(&format!("LISTEN {CHANNEL}; LISTEN {TOKENS_CHANNEL}"))
            .await?;
        let mut tick = tokio::time::interval(poll);
        loop {
            tokio::select! {
                note = heard.recv() => match note {
                    Some((channel, payload)) if channel == TOKENS_CHANNEL => {
                        if let Ok(account) = payload.parse::<AccountId>() {
                            // Nobody listening (the instance is stopping): nothing to forget.
                            let _ = rotated.send(account);
                        }
                    }
                    Some((_, payload)) => {
                        if let Ok(seq) = payload.parse::<i64>() {
                            raise(head, seq);
                        }
                    }
                    None => return Err(PgError::Pool("the listener connection closed".into())),
                },
                // The first tick is at once: catch up with what was missed while disconnected.
                _ = tick.tick() => raise(head, counter(&client).await?),
                () = head.closed() => return Ok(()),
            }
        }
    }
    .await;
    driver.abort();
    result
}

/// The committed head: the counter's value as a fresh statement sees it.
async fn counter(client: &tokio_postgres::Client) -> Result<i64, PgError> {
    Ok(client
        .query_one("SELECT seq FROM change_counter WHERE id = 1", &[])
        .await?
        .get(0))
}

fn raise(head: &watch::Sender<i64>, seq: i64) {
    head.send_if_modified(|h| {
        let newer = seq > *h;
        if newer {
            *h = seq;
        }
        newer
    });
}
