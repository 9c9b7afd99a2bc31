//! Customers' ratings of completed jobs, one per job.

use crate::clock::to_ms;
use crate::sql::{Tx, params};
use chrono::{DateTime, Utc};
use friend_protocol::{AccountId, JobId};

/// Stores a rating. Returns `false` when the job was already rated (nothing is changed).
pub fn insert(
    tx: &Tx<'_>,
    job: JobId,
    customer: AccountId,
    friend: AccountId,
    stars: u8,
    comment: Option<&str>,
    now: DateTime<Utc>,
) -> crate::sql::Result<bool> {
    let n = tx.exec(
        "INSERT INTO ratings (job_id, customer_id, friend_id, stars, comment, rated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (job_id) DO NOTHING",
        params![
            job.to_string(),
            customer.to_string(),
            friend.to_string(),
            stars,
            comment,
            to_ms(now)
        ],
    )?;
    Ok(n == 1)
}
