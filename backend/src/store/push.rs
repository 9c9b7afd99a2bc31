//! Push devices and the push queue (migration 004). Registration, the Friends an open job may be
//! pushed to (read by home tile), and the queue the dispatcher drains: one row per device and
//! collapse key, written in the transaction of the change it announces.

use super::accounts;
use crate::clock::{from_ms, to_ms};
use crate::push::PushMessage;
use crate::sql::{OptionalExtension, Param, Row, Tx, params};
use chrono::{DateTime, Utc};
use friend_protocol::push::MAX_PUSH_DEVICES;
use friend_protocol::{AccountId, FriendProfile, PushPlatform};
use std::collections::BTreeMap;
use std::time::Duration;

/// A device registered for pushes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// The account it belongs to.
    pub account: AccountId,
    /// Where its token is delivered through.
    pub platform: PushPlatform,
    /// The platform's device token.
    pub token: String,
}

/// Registers `token` for `account`, forgetting `replaces` when it is the account's. A token another
/// account registered moves (and the pushes still queued for it, which were the other account's,
/// are dropped). Beyond [`MAX_PUSH_DEVICES`] the least recently registered devices are forgotten.
/// Returns the account's device count.
pub fn register(
    tx: &Tx<'_>,
    account: AccountId,
    platform: PushPlatform,
    token: &str,
    replaces: Option<&str>,
    now: DateTime<Utc>,
) -> crate::sql::Result<u32> {
    let id = account.to_string();
    if let Some(old) = replaces.filter(|old| *old != token) {
        remove(tx, account, old)?;
    }
    let owner: Option<String> = tx
        .row(
            "SELECT account_id FROM push_devices WHERE token = ?1",
            params![token],
            |r| r.get(0),
        )
        .optional()?;
    if owner.as_deref().is_some_and(|o| o != id) {
        tx.exec("DELETE FROM push_queue WHERE token = ?1", params![token])?;
    }
    tx.exec(
        "INSERT INTO push_devices (token, account_id, platform, registered_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (token) DO UPDATE SET account_id = excluded.account_id,
             platform = excluded.platform, registered_at = excluded.registered_at",
        params![token, id, platform.as_str(), to_ms(now)],
    )?;
    let extra: Vec<String> = tx.rows(
        "SELECT token FROM push_devices WHERE account_id = ?1
         ORDER BY registered_at DESC, token LIMIT ?3 OFFSET ?2",
        params![id, MAX_PUSH_DEVICES as i64, i64::MAX],
        |r| r.get(0),
    )?;
    for old in &extra {
        forget(tx, old)?;
    }
    count(tx, account)
}

/// Forgets `token` when it is `account`'s; returns the account's device count.
pub fn remove(tx: &Tx<'_>, account: AccountId, token: &str) -> crate::sql::Result<u32> {
    let n = tx.exec(
        "DELETE FROM push_devices WHERE token = ?1 AND account_id = ?2",
        params![token, account.to_string()],
    )?;
    if n > 0 {
        tx.exec("DELETE FROM push_queue WHERE token = ?1", params![token])?;
    }
    count(tx, account)
}

/// Forgets a token whatever its account (the gateway said it is dead), with its queued pushes.
pub fn forget(tx: &Tx<'_>, token: &str) -> crate::sql::Result<()> {
    tx.exec("DELETE FROM push_devices WHERE token = ?1", params![token])?;
    tx.exec("DELETE FROM push_queue WHERE token = ?1", params![token])?;
    Ok(())
}

/// How many devices `account` registered.
pub fn count(tx: &Tx<'_>, account: AccountId) -> crate::sql::Result<u32> {
    tx.row(
        "SELECT COUNT(*) FROM push_devices WHERE account_id = ?1",
        params![account.to_string()],
        |r| r.get(0),
    )
}

/// The devices of `account`.
pub fn devices_of(tx: &Tx<'_>, account: AccountId) -> crate::sql::Result<Vec<Device>> {
    tx.rows(
        "SELECT token, platform FROM push_devices WHERE account_id = ?1 ORDER BY registered_at",
        params![account.to_string()],
        |r| {
            Ok(Device {
                account,
                platform: PushPlatform::parse(&r.get::<String>(1)?),
                token: r.get(0)?,
            })
        },
    )
}

fn friend_device(r: &Row<'_>) -> crate::sql::Result<(FriendProfile, Device)> {
    let profile = accounts::friend_from_row(r)?;
    let device = Device {
        account: profile.id,
        platform: PushPlatform::parse(&r.get::<String>(10)?),
        token: r.get(9)?,
    };
    Ok((profile, device))
}

/// Friends living in `tiles` with their push devices (one entry per device). `None`: every Friend
/// with a device (remote jobs reach everyone qualified).
pub fn friend_devices(
    tx: &Tx<'_>,
    tiles: Option<&[i64]>,
) -> crate::sql::Result<Vec<(FriendProfile, Device)>> {
    let select = format!(
        "SELECT {}, d.token, d.platform FROM friends f JOIN accounts a ON a.id = f.account_id \
         JOIN push_devices d ON d.account_id = f.account_id",
        accounts::FRIEND_COLUMNS
    );
    let Some(tiles) = tiles else {
        return tx.rows(&select, params![], friend_device);
    };
    if tiles.is_empty() {
        return Ok(Vec::new());
    }
    // One statement for every tile (a round trip each on PostgreSQL, inside the booking's write).
    let (list, bound) = crate::sql::in_list(1, tiles);
    tx.rows(
        &format!("{select} WHERE f.home_tile IN ({list})"),
        &bound,
        friend_device,
    )
}

/// Most rows of one `INSERT` into the queue (4 parameters each, plus 2 shared).
const ENQUEUE_ROWS: usize = 64;

/// Queues each push for its device until `expires_at`; how many were queued. A push with the same
/// collapse key still waiting for its device is replaced (its retry time is kept, so a gateway's
/// back-off holds). Up to 64 pushes are one statement — an offer is pushed to every eligible
/// Friend's devices inside the booking's transaction, a round trip per statement on PostgreSQL —
/// in chunks of a power of two, so that the statement takes a few shapes (see `sql::in_list`).
pub fn enqueue(
    tx: &Tx<'_>,
    pushes: &[(&Device, PushMessage)],
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> crate::sql::Result<usize> {
    // One row per device and collapse key: a later push for the same pair replaces an earlier
    // one (PostgreSQL refuses to upsert one row twice in a statement).
    let mut seen = std::collections::HashSet::new();
    let mut rows = Vec::with_capacity(pushes.len());
    for (device, message) in pushes.iter().rev() {
        if !seen.insert((device.token.as_str(), message.collapse_key.as_str())) {
            continue;
        }
        let stored = Stored {
            title: message.title.clone(),
            body: message.body.clone(),
            data: message.data.clone(),
        };
        let json = serde_json::to_string(&stored)
            .map_err(|e| crate::sql::SqlError::Corrupt(e.to_string()))?;
        rows.push((
            &device.token,
            device.platform.as_str(),
            &message.collapse_key,
            json,
        ));
    }
    rows.reverse();
    let (expires_at, now) = (to_ms(expires_at), to_ms(now));
    let mut rest = &rows[..];
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(1 << rest.len().min(ENQUEUE_ROWS).ilog2());
        rest = tail;
        let values: Vec<String> = (0..chunk.len())
            .map(|i| {
                let b = 3 + 4 * i;
                format!("(?{b}, ?{}, ?{}, ?{}, 1, ?1, ?2, ?2)", b + 1, b + 2, b + 3)
            })
            .collect();
        let mut bound: Vec<&dyn Param> = vec![&expires_at, &now];
        for (token, platform, key, json) in chunk {
            bound.extend([token as &dyn Param, platform, key, json]);
        }
        tx.exec(
            &format!(
                "INSERT INTO push_queue (token, platform, collapse_key, message, rev, expires_at, due_at, created_at)
                 VALUES {}
                 ON CONFLICT (token, collapse_key) DO UPDATE SET message = excluded.message,
                     platform = excluded.platform, rev = push_queue.rev + 1,
                     expires_at = excluded.expires_at",
                values.join(", ")
            ),
            &bound,
        )?;
    }
    Ok(rows.len())
}

/// Drops the unsent pushes with `collapse_key` (a job's offers once it is taken, cancelled or
/// expired); a push already being sent is not recalled. Returns how many.
pub fn withdraw(tx: &Tx<'_>, collapse_key: &str) -> crate::sql::Result<usize> {
    tx.exec(
        "DELETE FROM push_queue WHERE collapse_key = ?1",
        params![collapse_key],
    )
}

/// The collapse keys of the offers still queued for `account`'s devices.
pub fn queued_offers_to(tx: &Tx<'_>, account: AccountId) -> crate::sql::Result<Vec<String>> {
    tx.rows(
        "SELECT DISTINCT collapse_key FROM push_queue WHERE collapse_key LIKE ?2
         AND token IN (SELECT token FROM push_devices WHERE account_id = ?1)",
        params![
            account.to_string(),
            format!("{}-%", friend_protocol::push::PushKind::Offer.as_str())
        ],
        |r| r.get(0),
    )
}

/// Drops what is queued under `collapse_key` for `account`'s devices; how many.
pub fn withdraw_from(
    tx: &Tx<'_>,
    account: AccountId,
    collapse_key: &str,
) -> crate::sql::Result<usize> {
    tx.exec(
        "DELETE FROM push_queue WHERE collapse_key = ?2
         AND token IN (SELECT token FROM push_devices WHERE account_id = ?1)",
        params![account.to_string(), collapse_key],
    )
}

/// A message as the queue keeps it (the collapse key and expiry are columns).
#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    title: String,
    body: String,
    data: BTreeMap<String, String>,
}

/// A queued push the dispatcher may send.
#[derive(Debug, Clone)]
pub struct Queued {
    /// Row id.
    pub id: i64,
    /// Revision: a replacement while it was being sent changes it.
    pub rev: i64,
    /// The device.
    pub token: String,
    /// Its platform.
    pub platform: PushPlatform,
    /// The message (TTL: what is left until `expires_at`, set when read).
    pub message: PushMessage,
    /// Dropped unsent after this.
    pub expires_at: DateTime<Utc>,
    /// Attempts so far.
    pub attempts: u32,
}

/// Up to `limit` pushes due at `now` for `platforms` (at most three: the platforms there are),
/// oldest due first, skipping `busy` rows (being sent).
pub fn due(
    tx: &Tx<'_>,
    now: DateTime<Utc>,
    platforms: &[PushPlatform],
    busy: &std::collections::HashSet<i64>,
    limit: usize,
) -> crate::sql::Result<Vec<Queued>> {
    let take = (limit + busy.len()) as i64;
    let name = |i: usize| platforms.get(i).map_or("", |p| p.as_str());
    let rows = tx.rows(
        "SELECT id, rev, token, platform, collapse_key, message, expires_at, attempts
         FROM push_queue WHERE due_at <= ?1 AND platform IN (?3, ?4, ?5)
         ORDER BY due_at, id LIMIT ?2",
        params![to_ms(now), take, name(0), name(1), name(2)],
        |r| {
            let message: String = r.get(5)?;
            let stored: Stored = serde_json::from_str(&message)
                .map_err(|_| crate::sql::SqlError::Corrupt("message".into()))?;
            let expires_at = from_ms(r.get(6)?);
            Ok(Queued {
                id: r.get(0)?,
                rev: r.get(1)?,
                token: r.get(2)?,
                platform: PushPlatform::parse(&r.get::<String>(3)?),
                message: PushMessage {
                    title: stored.title,
                    body: stored.body,
                    data: stored.data,
                    collapse_key: r.get(4)?,
                    ttl: (expires_at - now).to_std().unwrap_or(Duration::ZERO),
                },
                expires_at,
                attempts: r.get(7)?,
            })
        },
    )?;
    let mut out = Vec::new();
    for row in rows {
        if !busy.contains(&row.id) {
            out.push(row);
        }
        if out.len() == limit {
            break;
        }
    }
    Ok(out)
}

/// When the earliest push not in `busy` falls due (`None`: nothing else is queued).
pub fn next_due(
    tx: &Tx<'_>,
    busy: &std::collections::HashSet<i64>,
) -> crate::sql::Result<Option<DateTime<Utc>>> {
    let rows = tx.rows(
        "SELECT id, due_at FROM push_queue ORDER BY due_at, id LIMIT ?1",
        params![(busy.len() + 1) as i64],
        |r| Ok((r.get::<i64>(0)?, r.get::<i64>(1)?)),
    )?;
    for (id, due) in rows {
        if !busy.contains(&id) {
            return Ok(Some(from_ms(due)));
        }
    }
    Ok(None)
}

/// A push was delivered (or given up on): remove it unless it was replaced meanwhile.
pub fn done(tx: &Tx<'_>, id: i64, rev: i64) -> crate::sql::Result<bool> {
    Ok(tx.exec(
        "DELETE FROM push_queue WHERE id = ?1 AND rev = ?2",
        params![id, rev],
    )? == 1)
}

/// A push failed transiently: try again at `due_at`.
pub fn retry_at(tx: &Tx<'_>, id: i64, due_at: DateTime<Utc>) -> crate::sql::Result<()> {
    tx.exec(
        "UPDATE push_queue SET attempts = attempts + 1, due_at = ?2 WHERE id = ?1",
        params![id, to_ms(due_at)],
    )?;
    Ok(())
}

/// The queue's depth and the creation time of its oldest push.
pub fn depth(tx: &Tx<'_>) -> crate::sql::Result<(u64, Option<DateTime<Utc>>)> {
    tx.row(
        "SELECT COUNT(*), MIN(created_at) FROM push_queue",
        params![],
        |r| {
            Ok((
                r.get::<i64>(0)? as u64,
                r.get::<Option<i64>>(1)?.map(from_ms),
            ))
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{Db, DbError};
    use std::collections::HashSet;

    fn message(body: &str) -> PushMessage {
        PushMessage {
            title: "t".into(),
            body: body.into(),
            data: BTreeMap::new(),
            collapse_key: "offer-1".into(),
            ttl: Duration::from_secs(60),
        }
    }

    fn with_db<T>(f: impl FnOnce(&Tx<'_>) -> crate::sql::Result<T> + Send + 'static) -> T
    where
        T: Send + 'static,
    {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("p.db")).unwrap();
        db.write_now(move |tx| f(&Tx::Sqlite(tx)).map_err(DbError::from))
            .unwrap()
    }

    fn account(tx: &Tx<'_>) -> crate::sql::Result<AccountId> {
        let id = AccountId::random();
        tx.exec(
            "INSERT INTO accounts (id, role, name, token_hash, created_at) VALUES (?1, 'customer', 'c', ?2, 0)",
            params![id.to_string(), id.to_string().into_bytes()],
        )?;
        Ok(id)
    }

    /// A newer push with the same collapse key replaces the waiting one; the sent older revision
    /// does not remove it, so the newer one is sent next.
    #[test]
    fn a_replacement_survives_the_removal_of_the_revision_in_flight() {
        let (first, second, left) = with_db(|tx| {
            let now = Utc::now();
            let device = Device {
                account: account(tx)?,
                platform: PushPlatform::Fcm,
                token: "t1".into(),
            };
            enqueue(
                tx,
                &[(&device, message("old"))],
                now + chrono::Duration::minutes(5),
                now,
            )?;
            let first = due(tx, now, &[PushPlatform::Fcm], &HashSet::new(), 10)?;
            enqueue(
                tx,
                &[(&device, message("new"))],
                now + chrono::Duration::minutes(5),
                now,
            )?;
            let removed = done(tx, first[0].id, first[0].rev)?;
            let second = due(tx, now, &[PushPlatform::Fcm], &HashSet::new(), 10)?;
            assert!(!removed);
            done(tx, second[0].id, second[0].rev)?;
            Ok((first, second, depth(tx)?.0))
        });
        assert_eq!((first.len(), second.len()), (1, 1));
        assert_eq!(first[0].message.body, "old");
        assert_eq!(second[0].message.body, "new");
        assert_eq!(left, 0);
    }

    /// A token moves to the account that registered it last, its old account's pushes dropped;
    /// an account keeps at most MAX_PUSH_DEVICES devices; a withdrawn offer is not sent.
    #[test]
    fn tokens_move_are_bounded_and_offers_withdraw() {
        let (a_after_move, b_count, kept, withdrawn) = with_db(|tx| {
            let now = Utc::now();
            let (a, b) = (account(tx)?, account(tx)?);
            register(tx, a, PushPlatform::Fcm, "phone", None, now)?;
            let device = Device {
                account: a,
                platform: PushPlatform::Fcm,
                token: "phone".into(),
            };
            enqueue(
                tx,
                &[(&device, message("for a"))],
                now + chrono::Duration::minutes(5),
                now,
            )?;
            let b_count = register(tx, b, PushPlatform::Fcm, "phone", None, now)?;
            let a_after_move = count(tx, a)?;
            let queued_after_move = depth(tx)?.0;
            assert_eq!(queued_after_move, 0, "a's push does not reach b");
            for i in 0..MAX_PUSH_DEVICES + 3 {
                let at = now + chrono::Duration::seconds(i as i64);
                register(tx, a, PushPlatform::Fcm, &format!("d{i}"), None, at)?;
            }
            let kept: Vec<String> = devices_of(tx, a)?.into_iter().map(|d| d.token).collect();
            enqueue(
                tx,
                &[(&device, message("offer"))],
                now + chrono::Duration::minutes(5),
                now,
            )?;
            let withdrawn = withdraw(tx, "offer-1")?;
            Ok((a_after_move, b_count, kept, withdrawn))
        });
        assert_eq!((a_after_move, b_count), (0, 1));
        assert_eq!(kept.len(), MAX_PUSH_DEVICES);
        assert!(
            !kept.contains(&"d0".to_string()),
            "the oldest is forgotten: {kept:?}"
        );
        assert_eq!(withdrawn, 1);
    }

    /// More pushes than one statement's rows are all queued, each device once; a second push for
    /// the same device and collapse key in the same call replaces the first.
    #[test]
    fn pushes_are_queued_in_chunks_and_each_device_once() {
        let (queued, depth, bodies) = with_db(|tx| {
            let now = Utc::now();
            let a = account(tx)?;
            let devices: Vec<Device> = (0..ENQUEUE_ROWS * 2 + 7)
                .map(|i| Device {
                    account: a,
                    platform: PushPlatform::Fcm,
                    token: format!("t{i}"),
                })
                .collect();
            let mut pushes: Vec<_> = devices.iter().map(|d| (d, message("first"))).collect();
            pushes.push((&devices[3], message("again")));
            let queued = enqueue(tx, &pushes, now + chrono::Duration::minutes(5), now)?;
            let due = due(tx, now, &[PushPlatform::Fcm], &HashSet::new(), 1_000)?;
            let bodies: Vec<(String, String)> =
                due.into_iter().map(|q| (q.token, q.message.body)).collect();
            Ok((queued, depth(tx)?.0, bodies))
        });
        assert_eq!(queued, ENQUEUE_ROWS * 2 + 7);
        assert_eq!(depth as usize, queued);
        let t3: Vec<_> = bodies.iter().filter(|(t, _)| t == "t3").collect();
        assert_eq!(t3.len(), 1);
        assert_eq!(t3[0].1, "again", "the later push for the device wins");
    }
}
