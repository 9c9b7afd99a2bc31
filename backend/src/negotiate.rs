//! The on-site price negotiation on the server (SPEC §7): device keys, signed consent uploads and
//! rejections. The server is the final authority, but not a second rule book: every decision is the
//! protocol's — [`consent::verify`] for authenticity, [`validate_quote`] for the guardrails,
//! [`negotiation::apply`] for the negotiation, [`transition`] for the job's state. Each operation
//! runs inside the caller's single write transaction and appends the change to the feed, so both
//! parties' syncs deliver the new job details.

use crate::actions::load;
use crate::auth::Caller;
use crate::error::AppError;
use crate::push::content::Update;
use crate::push::plan::News;
use crate::sql::Tx;
use crate::store::jobs::{self, JobRow};
use crate::store::{Effects, feed, keys, quotes};
use chrono::{DateTime, Utc};
use friend_protocol::consent::{self, ConsentAction, ConsentPayload};
use friend_protocol::lifecycle::{Actor, Event, Refusal, transition};
use friend_protocol::negotiation::{self, Answer};
use friend_protocol::{
    AccountId, DeviceKeys, ErrorCode, JobId, JobState, MAX_DEVICE_KEYS, NegotiationEvent, Party,
    QuotePolicy, Role, encode_public_key, validate_quote,
};

/// The job if `caller` is one of its parties — its customer, or the Friend holding (or who last
/// held) it — and the party they act as. Everyone else gets 404, whether or not the job exists.
pub fn party_job(tx: &Tx<'_>, id: JobId, caller: Caller) -> Result<(JobRow, Party), AppError> {
    let job = jobs::get(tx, id)?.ok_or_else(AppError::job_not_found)?;
    let party = match caller.role {
        Role::Customer if job.customer_id == caller.id => Party::Customer,
        Role::Friend if job.friend_id() == Some(caller.id) => Party::Friend,
        _ => return Err(AppError::job_not_found()),
    };
    Ok((job, party))
}

/// The account acting as `party` on `job`, as a state-machine actor.
fn party_actor(job: &JobRow, party: Party) -> Option<(AccountId, Actor)> {
    match party {
        Party::Customer => Some((job.customer_id, Actor::Customer(job.customer_id))),
        Party::Friend => job.friend_id().map(|f| (f, Actor::Friend(f))),
        Party::Unknown => None,
    }
}

/// Negotiating happens where a price can be agreed: on site, or after agreement (amendments). The
/// state machine's `AgreePrice` rule says where that is.
fn may_negotiate(job: &JobRow, actor: Actor) -> Result<(), AppError> {
    if job.state.is_terminal() {
        return Err(AppError::job_closed(job.state));
    }
    match transition(&job.facts(), &actor, Event::AgreePrice) {
        Ok(_) => Ok(()),
        Err(Refusal::InvalidState { state, .. }) => Err(AppError::new(
            ErrorCode::InvalidTransition,
            format!("cannot negotiate a job that is {state}: the Friend checks in first"),
        )),
        Err(other) => Err(other.into()),
    }
}

/// Registers the caller's device key. Registering it again changes nothing; a new key reaches the
/// other party of every job the caller is negotiating (their job details carry the keys).
pub fn register_key(
    tx: &Tx<'_>,
    caller: Caller,
    key: &[u8; consent::PUBLIC_KEY_LEN],
    now: DateTime<Utc>,
) -> Result<(DeviceKeys, Effects), AppError> {
    let key = encode_public_key(key);
    let mut effects = Effects::default();
    if !keys::is_registered(tx, caller.id, &key)? {
        if keys::list(tx, caller.id)?.len() >= MAX_DEVICE_KEYS {
            return Err(AppError::new(
                ErrorCode::InvalidInput,
                format!(
                    "public_key: an account may register at most {MAX_DEVICE_KEYS} device keys"
                ),
            ));
        }
        keys::register(tx, caller.id, &key, now)?;
        for job in jobs::held_with(tx, caller.id)? {
            jobs::touch(tx, job.id, now)?;
            let after = load(tx, job.id)?;
            effects.merge(feed::record(tx, &after, None, false, &[], now)?);
        }
    }
    Ok((
        DeviceKeys {
            keys: keys::list(tx, caller.id)?,
        },
        effects,
    ))
}

/// Applies an uploaded consent payload (a proposal or an acceptance, signed by either party of the
/// job, uploaded by either party). The same payload again is answered like the first time.
pub fn consent(
    tx: &Tx<'_>,
    caller: Caller,
    job_id: JobId,
    encoded: &str,
    now: DateTime<Utc>,
) -> Result<(JobRow, Effects), AppError> {
    let (job, _) = party_job(tx, job_id, caller)?;
    let payload = ConsentPayload::decode(encoded)?;
    // Decoding is strict, so this is the one encoding of the payload.
    let canonical = payload.encode();
    if quotes::has_payload(tx, job_id, &canonical)? {
        return Ok((job, Effects::default()));
    }
    if job.state.is_terminal() {
        return Err(AppError::job_closed(job.state));
    }

    let signer = payload.signer();
    let (account, actor) = party_actor(&job, signer).ok_or_else(|| {
        AppError::consent(
            "signer_not_a_party",
            format!("no {} is a party of this job", signer.as_str()),
        )
    })?;
    let key = encode_public_key(payload.public_key());
    if !keys::is_registered(tx, account, &key)? {
        return Err(AppError::consent(
            "key_not_registered",
            format!(
                "the signing key is not registered for the job's {}",
                signer.as_str()
            ),
        ));
    }
    let latest = job.negotiation().latest.map(|p| p.version);
    let verified = consent::verify(&payload, job_id, signer, payload.public_key(), latest)?;
    let job = if job.state == JobState::Assigned
        && caller.role == Role::Customer
        && signer == Party::Friend
        && verified.action == ConsentAction::Propose
    {
        // The holder signed a proposal on site while their check-in still waits in their offline
        // outbox, and the customer, handed it on site, uploaded it first: both attest the arrival.
        crate::actions::apply(tx, job_id, actor, Event::CheckIn, now)?.0
    } else {
        job
    };
    let state = job.negotiation();
    let quote = verified.quote;
    let stored = quotes::quote(tx, job_id, quote.version)?;
    if let (Some(p), Some(s)) = (state.latest, &stored)
        && p.version == quote.version
        && *s == quote
    {
        // The same consent signed on another device of the same party: already applied.
        let same = match verified.action {
            ConsentAction::Propose => p.by == signer,
            _ => p.by != signer && p.answer == Answer::Accepted,
        };
        if same {
            return Ok((job, Effects::default()));
        }
    }
    may_negotiate(&job, actor)?;

    match verified.action {
        ConsentAction::Propose => {
            validate_quote(
                &quote,
                job.orientation_price.currency,
                job.orientation_price,
                &QuotePolicy::default(),
            )?;
            negotiation::apply(
                &state,
                &NegotiationEvent::Propose {
                    by: signer,
                    version: quote.version,
                    total: quote.total,
                },
            )?;
            quotes::propose(tx, &quote, signer, &canonical, now)?;
            jobs::touch(tx, job_id, now)?;
        }
        ConsentAction::Accept => {
            if stored.as_ref().is_some_and(|s| *s != quote) {
                return Err(AppError::consent(
                    "quote_mismatch",
                    format!(
                        "the accepted quote differs from proposal version {}",
                        quote.version
                    ),
                ));
            }
            negotiation::apply(
                &state,
                &NegotiationEvent::Accept {
                    by: signer,
                    version: quote.version,
                },
            )?;
            let next = transition(&job.facts(), &actor, Event::AgreePrice)?;
            quotes::accept(tx, job_id, quote.version, &canonical, now)?;
            if !jobs::update_state(tx, job_id, job.state, &next, None, now)? {
                return Err(AppError::new(
                    ErrorCode::InvalidTransition,
                    "the job changed meanwhile",
                ));
            }
        }
        ConsentAction::Unknown => {
            return Err(AppError::consent(
                "unknown_action",
                "unknown consent action",
            ));
        }
    }
    let after = load(tx, job_id)?;
    let update = match verified.action {
        ConsentAction::Propose => Update::QuoteWaits,
        _ => Update::PriceAgreed,
    };
    let news = News::to_other_than(signer, update);
    let effects = feed::record(tx, &after, None, false, &[news], now)?;
    Ok((after, effects))
}

/// The caller (the other party) rejects the pending proposal `version`. Rejecting it again is
/// answered like the first time.
pub fn reject(
    tx: &Tx<'_>,
    caller: Caller,
    job_id: JobId,
    version: u32,
    now: DateTime<Utc>,
) -> Result<(JobRow, Effects), AppError> {
    let (job, party) = party_job(tx, job_id, caller)?;
    let state = job.negotiation();
    if state
        .latest
        .is_some_and(|p| p.version == version && p.answer == Answer::Rejected && p.by != party)
    {
        return Ok((job, Effects::default()));
    }
    if job.state.is_terminal() {
        return Err(AppError::job_closed(job.state));
    }
    negotiation::apply(&state, &NegotiationEvent::Reject { by: party, version })?;
    quotes::reject(tx, job_id, version, now)?;
    jobs::touch(tx, job_id, now)?;
    let after = load(tx, job_id)?;
    let news = News::to_other_than(party, Update::QuoteRejected);
    let effects = feed::record(tx, &after, None, false, &[news], now)?;
    Ok((after, effects))
}
