//! Quote versions of a job's negotiation and the signed payloads that carried them. The
//! negotiation's state is derived from these rows (see [`super::onsite`]); the decisions are the
//! protocol's ([`friend_protocol::negotiation::apply`]), taken before anything is written here.

use crate::clock::to_ms;
use crate::sql::{OptionalExtension, Tx, params};
use chrono::{DateTime, Utc};
use friend_protocol::{JobId, Party, Quote};

fn party_name(p: Party) -> &'static str {
    match p {
        Party::Friend => "friend",
        Party::Customer => "customer",
        Party::Unknown => "unknown",
    }
}

/// Whether `payload` was already stored for `job`, as a proposal or an acceptance.
pub fn has_payload(tx: &Tx<'_>, job: JobId, payload: &str) -> crate::sql::Result<bool> {
    tx.row(
        "SELECT EXISTS (SELECT 1 FROM quotes WHERE job_id = ?1 AND (proposal = ?2 OR acceptance = ?2))",
        params![job.to_string(), payload], |r| r.get(0),
    )
}

/// The quote stored for `version`, if any.
pub fn quote(tx: &Tx<'_>, job: JobId, version: u32) -> crate::sql::Result<Option<Quote>> {
    let json: Option<String> = tx
        .row(
            "SELECT quote FROM quotes WHERE job_id = ?1 AND version = ?2",
            params![job.to_string(), version],
            |r| r.get(0),
        )
        .optional()?;
    json.map(|j| {
        serde_json::from_str(&j).map_err(|_| crate::sql::SqlError::Corrupt("corrupt quote".into()))
    })
    .transpose()
}

/// Stores a new proposal; a proposal still pending is superseded by it.
pub fn propose(
    tx: &Tx<'_>,
    quote: &Quote,
    by: Party,
    payload: &str,
    now: DateTime<Utc>,
) -> crate::sql::Result<()> {
    let job = quote.job_id.to_string();
    tx.exec(
        "UPDATE quotes SET answer = 'superseded', answered_at = ?1 WHERE job_id = ?2 AND answer = 'pending'",
        params![to_ms(now), job],
    )?;
    let json =
        serde_json::to_string(quote).map_err(|e| crate::sql::SqlError::Corrupt(e.to_string()))?;
    tx.exec(
        "INSERT INTO quotes (job_id, version, proposed_by, quote, total_minor, currency, proposal, answer, proposed_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending', ?8)",
        params![
            job,
            quote.version,
            party_name(by),
            json,
            quote.total.minor,
            quote.total.currency.code(),
            payload,
            to_ms(now)
        ],
    )?;
    Ok(())
}

/// Records the acceptance of `version` with its signed payload.
pub fn accept(
    tx: &Tx<'_>,
    job: JobId,
    version: u32,
    payload: &str,
    now: DateTime<Utc>,
) -> crate::sql::Result<()> {
    tx.exec(
        "UPDATE quotes SET answer = 'accepted', acceptance = ?1, answered_at = ?2
         WHERE job_id = ?3 AND version = ?4 AND answer = 'pending'",
        params![payload, to_ms(now), job.to_string(), version],
    )?;
    Ok(())
}

/// Records the rejection of `version`.
pub fn reject(tx: &Tx<'_>, job: JobId, version: u32, now: DateTime<Utc>) -> crate::sql::Result<()> {
    tx.exec(
        "UPDATE quotes SET answer = 'rejected', answered_at = ?1
         WHERE job_id = ?2 AND version = ?3 AND answer = 'pending'",
        params![to_ms(now), job.to_string(), version],
    )?;
    Ok(())
}
