//! Between the accept and the arrival (SPEC §3, issue 15): the holding Friend records the agreed
//! visit and taps "on my way"; the customer may decline a moved visit (the job is offered again);
//! a Friend gives a job back with a reason; and what a cancellation would cost, previewed. The rules
//! are the protocol's (`friend_protocol::visit`, `lifecycle::transition`); each operation is one
//! write transaction that appends the change.

use crate::actions::{self, load};
use crate::error::AppError;
use crate::push::plan::News;
use crate::sql::Tx;
use crate::store::jobs::{self, JobRow};
use crate::store::{Effects, feed};
use chrono::{DateTime, Utc};
use friend_protocol::lifecycle::{Actor, Event, transition};
use friend_protocol::visit::{self, AppointmentRequest, OnMyWayRequest};
use friend_protocol::{
    AccountId, CancelPreview, CompensationPolicy, ErrorCode, JobId, JobState, ReleaseReason,
    ReleaseRequest,
};

/// Writes an annotation event (`SetAppointment`, `OnMyWay`) the caller already checked against the
/// state machine and the protocol's rule, then records and announces the change.
fn annotate(
    tx: &Tx<'_>,
    job: &JobRow,
    friend: AccountId,
    event: Event,
    now: DateTime<Utc>,
    change: impl FnOnce() -> crate::sql::Result<()>,
) -> Result<(JobRow, Effects), AppError> {
    change()?;
    let after = load(tx, job.id)?;
    let effects = feed::record(
        tx,
        &after,
        None,
        false,
        News::of(event, &Actor::Friend(friend)),
        now,
    )?;
    Ok((after, effects))
}

/// The holding Friend records the agreed visit. The same visit again changes nothing.
pub fn set_appointment(
    tx: &Tx<'_>,
    friend: AccountId,
    job_id: JobId,
    req: &AppointmentRequest,
    now: DateTime<Utc>,
) -> Result<(JobRow, Effects), AppError> {
    let job = load(tx, job_id)?;
    transition(&job.facts(), &Actor::Friend(friend), Event::SetAppointment)?;
    let appointment = visit::appointment(&job.timing, req, now)?;
    if job.visit.appointment == Some(appointment) {
        return Ok((job, Effects::default()));
    }
    annotate(tx, &job, friend, Event::SetAppointment, now, || {
        jobs::set_appointment(tx, job_id, &appointment, now)
    })
}

/// The holding Friend is on the way, arriving about `req.eta`. The same estimate again changes
/// nothing.
pub fn on_my_way(
    tx: &Tx<'_>,
    friend: AccountId,
    job_id: JobId,
    req: &OnMyWayRequest,
    now: DateTime<Utc>,
) -> Result<(JobRow, Effects), AppError> {
    let job = load(tx, job_id)?;
    transition(&job.facts(), &Actor::Friend(friend), Event::OnMyWay)?;
    visit::on_my_way(req, now)?;
    let eta = visit::to_millis(req.eta);
    if job.visit.en_route.is_some_and(|r| r.eta == eta) {
        return Ok((job, Effects::default()));
    }
    annotate(tx, &job, friend, Event::OnMyWay, now, || {
        jobs::set_en_route(tx, job_id, eta, now)
    })
}

/// The customer declines the moved visit: the Friend is released without penalty and the job is
/// offered again (not to that Friend).
pub fn decline_appointment(
    tx: &Tx<'_>,
    customer: AccountId,
    job_id: JobId,
    now: DateTime<Utc>,
) -> Result<(JobRow, Effects), AppError> {
    let job = customer_job(tx, job_id, customer)?;
    transition(
        &job.facts(),
        &Actor::Customer(customer),
        Event::DeclineAppointment,
    )?;
    if !job.visit.appointment.is_some_and(|a| a.moved) {
        return Err(AppError::new(
            ErrorCode::InvalidTransition,
            "only a visit the Friend moved away from the booked slot can be declined",
        ));
    }
    actions::apply(
        tx,
        job_id,
        Actor::Customer(customer),
        Event::DeclineAppointment,
        now,
    )
}

/// The holding Friend gives the job back before arriving, saying why; it is offered again to the
/// eligible Friends (not to them) and the customer hears "looking for another Friend".
pub fn release(
    tx: &Tx<'_>,
    friend: AccountId,
    job_id: JobId,
    req: &ReleaseRequest,
    now: DateTime<Utc>,
) -> Result<(JobRow, Effects), AppError> {
    if req.reason == Some(ReleaseReason::Unknown) {
        return Err(AppError::new(
            ErrorCode::InvalidInput,
            "reason: must be customer_unreachable, no_matching_time, cannot_come or other",
        ));
    }
    friend_protocol::validate::note("note", req.note.as_deref())?;
    let (job, effects) = actions::apply(tx, job_id, Actor::Friend(friend), Event::Release, now)?;
    let reason = req.reason.map_or("unspecified", |r| r.as_str());
    jobs::insert_decline(tx, job_id, friend, &format!("released:{reason}"), now)?;
    Ok((job, effects))
}

/// What cancelling the customer's job now would cost.
pub fn cancel_preview(
    tx: &Tx<'_>,
    customer: AccountId,
    job_id: JobId,
    now: DateTime<Utc>,
) -> Result<CancelPreview, AppError> {
    let job = customer_job(tx, job_id, customer)?;
    transition(&job.facts(), &Actor::Customer(customer), Event::Cancel)?;
    Ok(visit::cancel_preview(
        job.state == JobState::Assigned,
        &job.timing,
        job.visit.appointment.as_ref(),
        now,
        &CompensationPolicy::default(),
    ))
}

/// The job if `customer` booked it; 404 otherwise, whether or not it exists.
fn customer_job(tx: &Tx<'_>, id: JobId, customer: AccountId) -> Result<JobRow, AppError> {
    match jobs::get(tx, id)? {
        Some(job) if job.customer_id == customer => Ok(job),
        _ => Err(AppError::job_not_found()),
    }
}
