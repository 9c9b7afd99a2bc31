//! How a job ends after check-in (SPEC §2, §3): completion at the agreed total with the payment
//! method and its ledger entry, the customer's rating, escalation to the field service and the
//! unsuccessful check-out — and the admin's moves of ledger entries. Decisions are the protocol's
//! (`Negotiation::can_complete`, `Settlement::for_total`, `lifecycle::transition`,
//! `LedgerStatus::may_move_to`); each operation is one write transaction that appends the change.

use crate::actions::{self, load};
use crate::error::AppError;
use crate::push::content::Update;
use crate::push::plan::News;
use crate::sql::Tx;
use crate::store::jobs::{self, JobRow};
use crate::store::{Effects, feed, ledger, outcomes, ratings};
use chrono::{DateTime, Utc};
use friend_protocol::lifecycle::{Actor, Event};
use friend_protocol::{
    AccountId, CompensationCause, CompleteRequest, ErrorCode, JobId, JobOutcome, JobState,
    LedgerEntry, LedgerStatus, QuotePolicy, RateRequest, Settlement, UnsuccessfulReason,
};

/// The job if `friend` holds (or last held) it; 404 otherwise, whether or not it exists.
fn friend_job(tx: &Tx<'_>, id: JobId, friend: AccountId) -> Result<JobRow, AppError> {
    match jobs::get(tx, id)? {
        Some(job) if job.friend_id() == Some(friend) => Ok(job),
        _ => Err(AppError::job_not_found()),
    }
}

/// Completes an agreed job at the agreed total and records its settlement in the ledger. The same
/// completion again is answered like the first time.
pub fn complete(
    tx: &Tx<'_>,
    friend: AccountId,
    job_id: JobId,
    req: &CompleteRequest,
    now: DateTime<Utc>,
) -> Result<(JobRow, Effects), AppError> {
    let job = friend_job(tx, job_id, friend)?;
    if job.state == JobState::Completed
        && job.onsite.payment == Some(req.payment)
        && job.onsite.final_total == Some(req.total)
    {
        return Ok((job, Effects::default()));
    }
    if job.state.is_terminal() {
        return Err(AppError::job_closed(job.state));
    }
    job.negotiation().can_complete(req.total)?;
    let settlement = Settlement::for_total(req.total, req.payment, &QuotePolicy::default())
        .map_err(|e| AppError::new(ErrorCode::InvalidInput, format!("total: {}: {e}", e.code())))?;
    ledger::insert(tx, job_id, friend, req.payment, req.total, &settlement, now)?;
    actions::apply(tx, job_id, Actor::Friend(friend), Event::Complete, now)
}

/// Ends the job unhappily (`Escalate` or `CheckOutUnsuccessful`) with the Friend's outcome. The
/// same request again is answered like the first time.
pub fn end_unhappily(
    tx: &Tx<'_>,
    friend: AccountId,
    job_id: JobId,
    event: Event,
    outcome: &JobOutcome,
    now: DateTime<Utc>,
) -> Result<(JobRow, Effects), AppError> {
    let job = friend_job(tx, job_id, friend)?;
    let target = match event {
        Event::Escalate => JobState::Escalated,
        _ => JobState::Unsuccessful,
    };
    if job.state == target && job.onsite.outcome.as_ref() == Some(outcome) {
        return Ok((job, Effects::default()));
    }
    if job.state.is_terminal() {
        return Err(AppError::job_closed(job.state));
    }
    outcomes::insert(tx, job_id, outcome, now)?;
    if let JobOutcome::Unsuccessful {
        reason: UnsuccessfulReason::CustomerAbsent,
        ..
    } = outcome
    {
        actions::compensate(tx, &job, friend, CompensationCause::NoShow, now)?;
    }
    actions::apply(tx, job_id, Actor::Friend(friend), event, now)
}

/// The customer rates a completed job, once.
pub fn rate(
    tx: &Tx<'_>,
    customer: AccountId,
    job_id: JobId,
    req: &RateRequest,
    now: DateTime<Utc>,
) -> Result<(JobRow, Effects), AppError> {
    let job = load(tx, job_id)?;
    if job.customer_id != customer {
        return Err(AppError::job_not_found());
    }
    let already = || AppError::new(ErrorCode::AlreadyRated, "this job was already rated");
    if job.onsite.rating.is_some() {
        return Err(already());
    }
    let friend = match (job.state, job.friend_id()) {
        (JobState::Completed, Some(f)) => f,
        (state, _) => {
            return Err(AppError::new(
                ErrorCode::InvalidTransition,
                format!(
                    "only completed jobs can be rated; this one is {}",
                    state.as_str()
                ),
            ));
        }
    };
    let comment = req
        .comment
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty());
    if !ratings::insert(tx, job_id, customer, friend, req.stars, comment, now)? {
        return Err(already());
    }
    jobs::touch(tx, job_id, now)?;
    let after = load(tx, job_id)?;
    let effects = feed::record(tx, &after, None, false, &[News::Friend(Update::Rated)], now)?;
    Ok((after, effects))
}

/// The admin moves a job's ledger entry forward (staying put is a no-op; backwards is refused).
pub fn move_ledger(
    tx: &Tx<'_>,
    job_id: JobId,
    status: LedgerStatus,
    now: DateTime<Utc>,
) -> Result<LedgerEntry, AppError> {
    if status == LedgerStatus::Unknown {
        return Err(AppError::new(
            ErrorCode::InvalidInput,
            "status: unknown value",
        ));
    }
    let entry = ledger::get(tx, job_id)?
        .ok_or_else(|| AppError::new(ErrorCode::NotFound, "no ledger entry for this job"))?;
    if !entry.status.may_move_to(status) {
        return Err(AppError::new(
            ErrorCode::InvalidTransition,
            format!(
                "a ledger entry moves forward only, not from {} to {}",
                entry.status.as_str(),
                status.as_str()
            ),
        ));
    }
    if entry.status == status {
        return Ok(entry);
    }
    ledger::set_status(tx, job_id, status, now)?;
    ledger::get(tx, job_id)?
        .ok_or_else(|| AppError::new(ErrorCode::NotFound, "no ledger entry for this job"))
}
