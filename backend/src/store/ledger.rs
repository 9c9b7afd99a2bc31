//! The Friends' ledger: one entry per completed job with what it settled at, and its status
//! (pending → to pay → paid, forward only — the rule is [`LedgerStatus::may_move_to`]).

use super::onsite::{currency, payment, payment_name};
use super::parse_id;
use crate::clock::{from_ms, to_ms};
use crate::sql::{OptionalExtension, Row, Tx, params};
use chrono::{DateTime, Utc};
use friend_protocol::{
    AccountId, JobId, LedgerDirection, LedgerEntry, LedgerStatus, Money, PaymentMethod, Settlement,
};

/// Records what a late cancellation or a no-show owes the Friend: charged online, settled as a
/// completed job would be.
pub fn insert_compensation(
    tx: &Tx<'_>,
    job: JobId,
    friend: AccountId,
    c: &friend_protocol::Compensation,
    now: DateTime<Utc>,
) -> crate::sql::Result<()> {
    let s = &c.settlement;
    tx.exec(
        "INSERT INTO ledger (job_id, friend_id, method, currency, total_minor, charged_minor, fee_minor,
            payout_minor, status, created_at, updated_at, kind)
         VALUES (?1, ?2, 'online', ?3, ?4, ?4, ?5, ?6, 'pending', ?7, ?7, ?8)",
        params![
            job.to_string(),
            friend.to_string(),
            s.charged.currency.code(),
            s.charged.minor,
            s.fee.minor,
            s.payout.minor,
            to_ms(now),
            c.cause.as_str(),
        ],
    )?;
    Ok(())
}

/// Records a completed job.
pub fn insert(
    tx: &Tx<'_>,
    job: JobId,
    friend: AccountId,
    method: PaymentMethod,
    total: Money,
    s: &Settlement,
    now: DateTime<Utc>,
) -> crate::sql::Result<()> {
    tx.exec(
        "INSERT INTO ledger (job_id, friend_id, method, currency, total_minor, charged_minor, fee_minor,
            payout_minor, status, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'pending', ?9, ?9)",
        params![
            job.to_string(),
            friend.to_string(),
            payment_name(method),
            total.currency.code(),
            total.minor,
            s.charged.minor,
            s.fee.minor,
            s.payout.minor,
            to_ms(now)
        ],
    )?;
    Ok(())
}

const COLUMNS: &str =
    "job_id, method, currency, total_minor, charged_minor, fee_minor, payout_minor,
    status, created_at, updated_at, to_pay_at, paid_at, kind";

fn from_row(r: &Row<'_>) -> crate::sql::Result<LedgerEntry> {
    let method = payment(&r.get::<String>(1)?);
    let cur = currency(&r.get::<String>(2)?);
    let money = |i: usize| -> crate::sql::Result<Money> { Ok(Money::new(r.get(i)?, cur)) };
    Ok(LedgerEntry {
        job_id: parse_id(&r.get::<String>(0)?)?,
        method,
        direction: LedgerDirection::for_method(method),
        total: money(3)?,
        charged: money(4)?,
        fee: money(5)?,
        payout: money(6)?,
        status: LedgerStatus::parse(&r.get::<String>(7)?),
        created_at: from_ms(r.get(8)?),
        updated_at: from_ms(r.get(9)?),
        to_pay_at: r.get::<Option<i64>>(10)?.map(from_ms),
        paid_at: r.get::<Option<i64>>(11)?.map(from_ms),
        compensation: match r.get::<String>(12)?.as_str() {
            "completion" => None,
            kind => Some(friend_protocol::CompensationCause::parse(kind)),
        },
    })
}

/// A Friend's entries, newest first.
pub fn for_friend(
    tx: &Tx<'_>,
    friend: AccountId,
    limit: u32,
) -> crate::sql::Result<Vec<LedgerEntry>> {
    tx.rows(
        &format!(
        "SELECT {COLUMNS} FROM ledger WHERE friend_id = ?1 ORDER BY created_at DESC, job_id LIMIT ?2"
    ),
        params![friend.to_string(), limit], from_row,
    )
}

/// One job's entry.
pub fn get(tx: &Tx<'_>, job: JobId) -> crate::sql::Result<Option<LedgerEntry>> {
    tx.row(
        &format!("SELECT {COLUMNS} FROM ledger WHERE job_id = ?1"),
        params![job.to_string()],
        from_row,
    )
    .optional()
}

/// Sets an entry's status (the caller checked the move), stamping when it became due or paid.
pub fn set_status(
    tx: &Tx<'_>,
    job: JobId,
    status: LedgerStatus,
    now: DateTime<Utc>,
) -> crate::sql::Result<()> {
    let now = to_ms(now);
    tx.exec(
        "UPDATE ledger SET status = ?1, updated_at = ?2,
            to_pay_at = CASE WHEN ?1 IN ('to_pay', 'paid') THEN COALESCE(to_pay_at, ?2) END,
            paid_at = CASE WHEN ?1 = 'paid' THEN COALESCE(paid_at, ?2) END
         WHERE job_id = ?3",
        params![status.as_str(), now, job.to_string()],
    )?;
    Ok(())
}
