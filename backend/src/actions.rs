//! State-changing operations on jobs. Each runs inside the caller's single write transaction, asks
//! the protocol's state machine whether the change is allowed, applies it with a conditional update
//! and appends the change-log entries — so the accept race is decided by the database.

use crate::error::AppError;
use crate::push::content::Update;
use crate::push::plan::News;
use crate::sql::Tx;
use crate::store::jobs::{self, JobRow};
use crate::store::{Effects, accounts, catalog, feed, ledger};
use chrono::{DateTime, Utc};
use friend_protocol::lifecycle::{self, Actor, Event, transition};
use friend_protocol::visit;
use friend_protocol::{
    AcceptOutcome, AccountId, BookRequest, CompensationCause, CompensationPolicy, ErrorCode,
    JobDetails, JobId, JobState, NotEligibleReason, QuotePolicy, Role, eligibility, slots_conflict,
    validate,
};

/// A job by id, or 404.
pub(crate) fn load(tx: &Tx<'_>, id: JobId) -> Result<JobRow, AppError> {
    jobs::get(tx, id)?.ok_or_else(AppError::job_not_found)
}

/// Books a job for `customer` and offers it to every eligible Friend.
pub fn book(
    tx: &Tx<'_>,
    customer: AccountId,
    req: &BookRequest,
    now: DateTime<Utc>,
) -> Result<(JobDetails, Effects), AppError> {
    validate::book_request(req, now)?;
    let service = catalog::service(tx, &req.service_id)?.ok_or_else(|| {
        AppError::new(
            ErrorCode::UnknownService,
            format!("no service {}", req.service_id),
        )
    })?;
    let row = JobRow {
        seq: 0,
        id: JobId::random(),
        version: 1,
        state: JobState::Open,
        customer_id: customer,
        friend: None,
        service_id: service.id,
        category: service.category,
        title: service.title,
        description: req.description.clone(),
        timing: req.timing,
        place: req.place,
        location: req.location,
        approx_location: req.location.map(|p| p.approximate()),
        district: req.address.as_ref().map(|a| a.district()),
        address: req.address.clone(),
        contact: req.contact.clone(),
        access_notes: req.access_notes.clone(),
        orientation_price: service.orientation_price,
        brand: req.brand.clone(),
        min_tier: service.min_tier,
        radius_km: req
            .radius_km
            .unwrap_or(friend_protocol::DEFAULT_JOB_RADIUS_KM),
        cancelled_by: None,
        visit: Default::default(),
        created_at: now,
        expires_at: req.timing.expires_at(now),
        updated_at: now,
        onsite: Default::default(),
    };
    jobs::insert(tx, &row)?;
    let effects = feed::record(tx, &row, None, true, &[News::Offered], now)?;
    Ok((row.details(), effects))
}

/// A Friend's accept: the first one wins. Every outcome is typed; refusals that depend on the job's
/// state are outcomes, not errors, so they can be stored under the idempotency key.
pub fn accept(
    tx: &Tx<'_>,
    friend: AccountId,
    job_id: JobId,
    now: DateTime<Utc>,
) -> Result<(AcceptOutcome, Effects), AppError> {
    let job = load(tx, job_id)?;
    if job.friend_id() == Some(friend) && job.state.is_held() {
        return Ok((
            AcceptOutcome::Won {
                job: Box::new(job.details()),
            },
            Effects::default(),
        ));
    }
    match job.state {
        JobState::Open => {}
        JobState::Cancelled => return Ok((AcceptOutcome::Cancelled, Effects::default())),
        JobState::Expired => return Ok((AcceptOutcome::Expired, Effects::default())),
        _ => return Ok((AcceptOutcome::Taken, Effects::default())),
    }
    if job.expires_at <= now {
        let (_, effects) = apply(tx, job_id, Actor::Server, Event::Expire, now)?;
        return Ok((AcceptOutcome::Expired, effects));
    }
    let profile = accounts::friend(tx, friend)?
        .ok_or_else(|| AppError::new(ErrorCode::Unauthorized, "no such Friend"))?;
    if let Err(reason) = eligibility::check(&profile, &job.reach()) {
        return Ok((AcceptOutcome::NotEligible { reason }, Effects::default()));
    }
    if let Some(wanted) = job.slot_use() {
        for held in jobs::held_slots(tx, friend)? {
            if held.slot_use().is_some_and(|h| slots_conflict(&wanted, &h)) {
                let reason = NotEligibleReason::OverlappingJob;
                return Ok((AcceptOutcome::NotEligible { reason }, Effects::default()));
            }
        }
    }
    let next = transition(&job.facts(), &Actor::Friend(friend), Event::Accept)?;
    if !jobs::update_state(tx, job_id, JobState::Open, &next, None, now)? {
        return Ok((AcceptOutcome::Taken, Effects::default()));
    }
    jobs::delete_decline(tx, job_id, friend)?;
    let won = load(tx, job_id)?;
    let effects = feed::record(
        tx,
        &won,
        None,
        true,
        &[News::Customer(Update::Accepted)],
        now,
    )?;
    Ok((
        AcceptOutcome::Won {
            job: Box::new(won.details()),
        },
        effects,
    ))
}

/// Applies one state-machine event to a job and records the change.
pub fn apply(
    tx: &Tx<'_>,
    job_id: JobId,
    actor: Actor,
    event: Event,
    now: DateTime<Utc>,
) -> Result<(JobRow, Effects), AppError> {
    let job = load(tx, job_id)?;
    if lifecycle::already_done(&job.facts(), &actor, event) {
        return Ok((job, Effects::default()));
    }
    let next = transition(&job.facts(), &actor, event)?;
    let cancelled_by = match (event, actor) {
        (Event::Cancel, Actor::Customer(_)) => Some(Role::Customer),
        _ => None,
    };
    if !jobs::update_state(tx, job_id, job.state, &next, cancelled_by, now)? {
        return Err(AppError::new(
            ErrorCode::InvalidTransition,
            "the job changed meanwhile",
        ));
    }
    match (event, job.friend_id()) {
        (Event::Release | Event::DeclineAppointment, Some(f)) => {
            // The job goes back to the crowd, not back into the released Friend's inbox.
            let why = match event {
                Event::Release => "released",
                _ => "visit_declined",
            };
            jobs::insert_decline(tx, job_id, f, why, now)?;
            jobs::reopen(tx, job_id, now)?;
        }
        (Event::Cancel, Some(f)) if job.state == JobState::Assigned => {
            compensate(tx, &job, f, CompensationCause::LateCancellation, now)?;
        }
        _ => {}
    }
    let after = load(tx, job_id)?;
    let effects = feed::record(
        tx,
        &after,
        job.friend_id(),
        job.state == JobState::Open,
        News::of(event, &actor),
        now,
    )?;
    Ok((after, effects))
}

/// Records the compensation `friend` is owed for `job`, when the rule says one is owed: a
/// cancellation of a held job late before the visit (SPEC §3), or a no-show.
pub(crate) fn compensate(
    tx: &Tx<'_>,
    job: &JobRow,
    friend: AccountId,
    cause: CompensationCause,
    now: DateTime<Utc>,
) -> Result<(), AppError> {
    let policy = CompensationPolicy::default();
    let owed = match cause {
        CompensationCause::LateCancellation => visit::cancel_preview(
            true,
            &job.timing,
            job.visit.appointment.as_ref(),
            now,
            &policy,
        )
        .fee
        .is_some(),
        CompensationCause::NoShow => true,
        CompensationCause::Unknown => false,
    };
    if let Some(c) = policy
        .compensation(cause, &QuotePolicy::default())
        .filter(|_| owed)
    {
        ledger::insert_compensation(tx, job.id, friend, &c, now)?;
    }
    Ok(())
}

/// A Friend declines an open offer: it leaves their inbox (and only theirs).
pub fn decline(
    tx: &Tx<'_>,
    friend: AccountId,
    job_id: JobId,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<Effects, AppError> {
    let job = load(tx, job_id)?;
    if job.state != JobState::Open {
        let e = transition(&job.facts(), &Actor::Friend(friend), Event::Accept).err();
        return Err(e.map(AppError::from).unwrap_or_else(|| {
            AppError::new(
                ErrorCode::InvalidTransition,
                "only open offers can be declined",
            )
        }));
    }
    jobs::insert_decline(tx, job_id, friend, reason, now)?;
    // Only the decliner's feed gets the change; the job itself did not change for anyone else.
    Ok(feed::record_for(tx, job_id, friend, now)?)
}

/// Expires up to `limit` open jobs whose time is up. Returns how many and what to wake.
pub fn expire_due(
    tx: &Tx<'_>,
    now: DateTime<Utc>,
    limit: u32,
) -> Result<(usize, Effects), AppError> {
    let mut effects = Effects::default();
    let due = jobs::due_for_expiry(tx, now, limit)?;
    for id in &due {
        let (_, e) = apply(tx, *id, Actor::Server, Event::Expire, now)?;
        effects.merge(e);
    }
    Ok((due.len(), effects))
}
