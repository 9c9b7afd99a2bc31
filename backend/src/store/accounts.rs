//! Accounts and Friend profiles.

use super::parse_id;
use crate::auth::{Caller, TokenHash};
use crate::clock::to_ms;
use crate::sql::{OptionalExtension, Row, Tx, params};
use chrono::{DateTime, Utc};
use friend_protocol::{
    AccountId, Category, CustomerProfile, FriendProfile, GeoPoint, NewCustomer, NewFriend, Role,
    Tier,
};

/// The caller owning a token hash.
pub fn by_token_hash(tx: &Tx<'_>, hash: &TokenHash) -> crate::sql::Result<Option<Caller>> {
    tx.row(
        "SELECT id, role FROM accounts WHERE token_hash = ?1",
        params![&hash[..]],
        |r| {
            let id: String = r.get(0)?;
            let role: String = r.get(1)?;
            Ok(Caller {
                id: parse_id(&id)?,
                role: if role == "friend" {
                    Role::Friend
                } else {
                    Role::Customer
                },
            })
        },
    )
    .optional()
}

/// Creates a Friend account.
pub fn insert_friend(
    tx: &Tx<'_>,
    id: AccountId,
    f: &NewFriend,
    token: &TokenHash,
    now: DateTime<Utc>,
) -> crate::sql::Result<()> {
    tx.exec(
        "INSERT INTO accounts (id, role, name, token_hash, created_at) VALUES (?1, 'friend', ?2, ?3, ?4)",
        params![id.to_string(), f.name, &token[..], to_ms(now)],
    )?;
    let categories: Vec<&str> = f.categories.iter().map(|c| c.as_str()).collect();
    tx.exec(
        "INSERT INTO friends (account_id, home_lat, home_lon, radius_km, categories, communities, tier, home_tile)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            id.to_string(),
            f.home.lat(),
            f.home.lon(),
            f.radius_km,
            serde_json::to_string(&categories).unwrap_or_default(),
            serde_json::to_string(&f.communities).unwrap_or_default(),
            f.tier.as_str(),
            crate::area::tile_of(&f.home),
        ],
    )?;
    Ok(())
}

/// Fills in the home tile of Friends created before the column existed (migration 004).
pub fn fill_home_tiles(tx: &Tx<'_>) -> crate::sql::Result<usize> {
    let missing: Vec<(String, f64, f64)> = tx.rows(
        "SELECT account_id, home_lat, home_lon FROM friends WHERE home_tile IS NULL",
        params![],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    for (id, lat, lon) in &missing {
        let home =
            GeoPoint::new(*lat, *lon).map_err(|_| crate::sql::SqlError::Corrupt("home".into()))?;
        tx.exec(
            "UPDATE friends SET home_tile = ?1 WHERE account_id = ?2",
            params![crate::area::tile_of(&home), id],
        )?;
    }
    Ok(missing.len())
}

/// Creates a customer account.
pub fn insert_customer(
    tx: &Tx<'_>,
    id: AccountId,
    c: &NewCustomer,
    token: &TokenHash,
    now: DateTime<Utc>,
) -> crate::sql::Result<()> {
    tx.exec(
        "INSERT INTO accounts (id, role, name, token_hash, created_at) VALUES (?1, 'customer', ?2, ?3, ?4)",
        params![id.to_string(), c.name, &token[..], to_ms(now)],
    )?;
    Ok(())
}

/// The columns [`friend_from_row`] reads, in its order (`a`: accounts, `f`: friends).
pub(crate) const FRIEND_COLUMNS: &str = "a.id, a.name, f.home_lat, f.home_lon, f.radius_km, f.categories, f.communities, f.tier, \
     a.suspended_at IS NOT NULL";

/// A Friend's profile from the first columns of a row selected with [`FRIEND_COLUMNS`].
pub(crate) fn friend_from_row(r: &Row<'_>) -> crate::sql::Result<FriendProfile> {
    let id: String = r.get(0)?;
    let categories: String = r.get(5)?;
    let communities: String = r.get(6)?;
    let tier: String = r.get(7)?;
    let bad = |what: &str| crate::sql::SqlError::Corrupt(what.into());
    let names: Vec<String> = serde_json::from_str(&categories).map_err(|_| bad("categories"))?;
    Ok(FriendProfile {
        id: parse_id(&id)?,
        name: r.get(1)?,
        home: GeoPoint::new(r.get(2)?, r.get(3)?).map_err(|_| bad("home"))?,
        radius_km: r.get(4)?,
        categories: names.iter().map(|n| Category::parse(n)).collect(),
        communities: serde_json::from_str(&communities).map_err(|_| bad("communities"))?,
        tier: Tier::parse(&tier),
        suspended: r.get(8)?,
    })
}

/// A Friend's profile.
pub fn friend(tx: &Tx<'_>, id: AccountId) -> crate::sql::Result<Option<FriendProfile>> {
    tx.row(
        &format!("SELECT {FRIEND_COLUMNS} FROM friends f JOIN accounts a ON a.id = f.account_id WHERE a.id = ?1"),
        params![id.to_string()],
        friend_from_row,
    )
    .optional()
}

/// A customer's profile.
pub fn customer(tx: &Tx<'_>, id: AccountId) -> crate::sql::Result<Option<CustomerProfile>> {
    tx.row(
        "SELECT name FROM accounts WHERE id = ?1 AND role = 'customer'",
        params![id.to_string()],
        |r| {
            Ok(CustomerProfile {
                id,
                name: r.get(0)?,
            })
        },
    )
    .optional()
}

/// Whether any account exists (a fresh database gets the dev seed).
pub fn is_empty(tx: &Tx<'_>) -> crate::sql::Result<bool> {
    tx.row(
        "SELECT NOT EXISTS (SELECT 1 FROM accounts)",
        params![],
        |r| r.get(0),
    )
}

/// Suspends (`true`) or reactivates a Friend; whether there is such a Friend. Suspending twice
/// keeps the first time.
pub fn set_suspended(
    tx: &Tx<'_>,
    id: AccountId,
    suspended: bool,
    now: DateTime<Utc>,
) -> crate::sql::Result<bool> {
    let n = tx.exec(
        "UPDATE accounts SET suspended_at = CASE WHEN ?2 THEN COALESCE(suspended_at, ?3) ELSE NULL END
         WHERE id = ?1 AND role = 'friend'",
        params![id.to_string(), suspended, to_ms(now)],
    )?;
    Ok(n == 1)
}

/// Replaces an account's token (by its hash); the account's role, if there is such an account.
pub fn set_token_hash(
    tx: &Tx<'_>,
    id: AccountId,
    hash: &TokenHash,
) -> crate::sql::Result<Option<Role>> {
    let role: Option<String> = tx
        .row(
            "UPDATE accounts SET token_hash = ?2 WHERE id = ?1 RETURNING role",
            params![id.to_string(), &hash[..]],
            |r| r.get(0),
        )
        .optional()?;
    if role.is_some() && matches!(tx, Tx::Postgres(_)) {
        // The other instances hear of it at commit and forget the old token (crate::cluster).
        tx.exec(
            "SELECT pg_notify(?1, ?2)",
            params![crate::pg::wakeups::TOKENS_CHANNEL, id.to_string()],
        )?;
    }
    Ok(role.map(|r| {
        if r == "friend" {
            Role::Friend
        } else {
            Role::Customer
        }
    }))
}

/// One recorded admin change (also what `GET /v1/admin/audit` lists).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct AuditRow {
    /// When.
    pub at: DateTime<Utc>,
    /// Who: the admin credential that made it.
    pub actor: String,
    /// What: `suspend`, `reactivate`, `rotate_token`.
    pub action: String,
    /// The account changed.
    pub account_id: Option<AccountId>,
    /// Details (a reason; never a token).
    pub detail: String,
}

/// Records an admin change.
pub fn audit(tx: &Tx<'_>, row: &AuditRow) -> crate::sql::Result<()> {
    tx.exec(
        "INSERT INTO admin_audit (at, actor, action, account_id, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            to_ms(row.at),
            row.actor,
            row.action,
            row.account_id.map(|a| a.to_string()),
            row.detail
        ],
    )?;
    Ok(())
}

/// The newest `limit` admin changes, newest first.
pub fn audit_log(tx: &Tx<'_>, limit: u32) -> crate::sql::Result<Vec<AuditRow>> {
    tx.rows(
        "SELECT at, actor, action, account_id, detail FROM admin_audit ORDER BY id DESC LIMIT ?1",
        params![limit],
        |r| {
            let account: Option<String> = r.get(3)?;
            Ok(AuditRow {
                at: crate::clock::from_ms(r.get(0)?),
                actor: r.get(1)?,
                action: r.get(2)?,
                account_id: account.as_deref().map(parse_id).transpose()?,
                detail: r.get(4)?,
            })
        },
    )
}

/// Writes a Friend's qualifications and reach (categories, communities, tier, radius).
pub fn update_friend(tx: &Tx<'_>, f: &FriendProfile) -> crate::sql::Result<()> {
    let categories: Vec<&str> = f.categories.iter().map(|c| c.as_str()).collect();
    tx.exec(
        "UPDATE friends SET categories = ?2, communities = ?3, tier = ?4, radius_km = ?5
         WHERE account_id = ?1",
        params![
            f.id.to_string(),
            serde_json::to_string(&categories).unwrap_or_default(),
            serde_json::to_string(&f.communities).unwrap_or_default(),
            f.tier.as_str(),
            f.radius_km
        ],
    )?;
    Ok(())
}

/// A Friend as operators list them: the profile, the ratings and the jobs completed.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct FriendRecord {
    /// The profile (suspension included).
    pub profile: FriendProfile,
    /// Ratings received.
    pub ratings: u64,
    /// Their mean, 1…5 (none without ratings).
    pub mean_stars: Option<f64>,
    /// Jobs completed.
    pub completed_jobs: u64,
}

/// Friends by name (then id), at most `limit`, with their ratings and completed jobs.
pub fn friend_records(tx: &Tx<'_>, limit: u32) -> crate::sql::Result<Vec<FriendRecord>> {
    tx.rows(
        &format!(
            "SELECT {FRIEND_COLUMNS},
            (SELECT COUNT(*) FROM ratings r WHERE r.friend_id = a.id),
            (SELECT CAST(AVG(stars) AS DOUBLE PRECISION) FROM ratings r WHERE r.friend_id = a.id),
            (SELECT COUNT(*) FROM jobs j WHERE j.friend_id = a.id AND j.state = 'completed')
         FROM friends f JOIN accounts a ON a.id = f.account_id
         ORDER BY a.name, a.id LIMIT ?1"
        ),
        params![limit],
        |r| {
            Ok(FriendRecord {
                profile: friend_from_row(r)?,
                ratings: r.get::<i64>(9)? as u64,
                mean_stars: r.get(10)?,
                completed_jobs: r.get::<i64>(11)? as u64,
            })
        },
    )
}
