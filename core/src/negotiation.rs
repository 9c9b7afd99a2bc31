//! On-site price negotiation on the device, for both parties: proposals and acceptances signed with
//! the device's Ed25519 key, exported as compact payloads (for a QR code) and imported and verified
//! offline against the other party's registered keys. Everything signed goes through the outbox, so
//! whichever device is online first brings it to the server, which stays the final authority.
//!
//! The local view of a negotiation is the server's (cached with the job) with this device's
//! unacknowledged steps applied on top, by the same state machine the server runs.

use crate::crypto::FieldCipher;
use crate::engine::Engine;
use crate::error::{CoreError, CoreResult};
use crate::outbox::Action;
use crate::outbox::delivery::enqueue_in;
use crate::store::{cache, meta, outbox as rows};
use base64::Engine as _;
use friend_protocol::consent::{self, ConsentAction, ConsentPayload};
use friend_protocol::negotiation::{self, Answer, Negotiation, NegotiationEvent, Party};
use friend_protocol::quote::{self, LineItem, PaymentMethod, Quote, QuotePolicy, Settlement};
use friend_protocol::{JobDetails, JobId, Money};
use ring::signature::{Ed25519KeyPair, KeyPair};
use rusqlite::Connection;

/// A quote as this device knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalQuote {
    /// The quote (job, version, items, total, reason).
    pub quote: Quote,
    /// Who proposed it.
    pub proposed_by: Party,
    /// Its answer so far.
    pub answer: Answer,
    /// The signed proposal (base64url payload).
    pub proposal: String,
    /// The signed acceptance, once accepted.
    pub acceptance: Option<String>,
}

/// The negotiation of one job as this device sees it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LocalNegotiation {
    /// The state machine's state, local steps included.
    pub state: Negotiation,
    /// The latest proposal.
    pub latest: Option<LocalQuote>,
    /// The quote in force, once agreed.
    pub agreed: Option<LocalQuote>,
    /// Steps signed or imported here that the server has not acknowledged yet.
    pub unsent_steps: u32,
}

impl LocalNegotiation {
    /// The pending proposal awaiting an answer, if any.
    pub fn pending(&self) -> Option<&LocalQuote> {
        self.latest.as_ref().filter(|q| q.answer == Answer::Pending)
    }
}

/// The policy both sides check quotes against (the backend uses the same default).
pub fn policy() -> QuotePolicy {
    QuotePolicy::default()
}

/// Fee and payout for a total (the Friend sees them before proposing): a total no quote may
/// carry — negative, or above the policy's maximum — is [`CoreError::InvalidQuote`]
/// (`negative_total`, `amount_too_large`), by the protocol's rule (`Settlement::preview`).
pub fn settlement(total: Money, method: PaymentMethod) -> CoreResult<Settlement> {
    Ok(Settlement::preview(total, method, &policy())?)
}

fn other(party: Party) -> Party {
    match party {
        Party::Friend => Party::Customer,
        _ => Party::Friend,
    }
}

fn record_to_local(r: &friend_protocol::QuoteRecord) -> LocalQuote {
    LocalQuote {
        quote: r.quote.clone(),
        proposed_by: r.proposed_by,
        answer: r.answer,
        proposal: r.proposal.clone(),
        acceptance: r.acceptance.clone(),
    }
}

/// The server's view of the job's negotiation plus this device's pending steps.
pub(crate) fn local_view(job: &JobDetails, pending: &[rows::ItemRow]) -> LocalNegotiation {
    let mut view = match &job.negotiation {
        Some(n) => LocalNegotiation {
            state: n.state,
            latest: n.latest.as_ref().map(record_to_local),
            agreed: n.agreed.as_ref().map(record_to_local),
            unsent_steps: 0,
        },
        None => LocalNegotiation::default(),
    };
    for item in pending.iter().filter(|i| i.job_id == job.id) {
        let Ok(action) = Action::from_payload(&item.payload) else {
            continue;
        };
        let step = match &action {
            Action::Consent { payload } => ConsentPayload::decode(payload)
                .ok()
                .map(|p| (Some(p), payload.clone())),
            Action::Reject { .. } => Some((None, String::new())),
            _ => None,
        };
        let Some((decoded, encoded)) = step else {
            continue;
        };
        let event = match (&decoded, &action) {
            (Some(p), _) if p.action() == ConsentAction::Propose => NegotiationEvent::Propose {
                by: p.signer(),
                version: p.quote().version,
                total: p.quote().total,
            },
            (Some(p), _) => NegotiationEvent::Accept {
                by: p.signer(),
                version: p.quote().version,
            },
            (None, Action::Reject { version }) => NegotiationEvent::Reject {
                by: view
                    .latest
                    .as_ref()
                    .map(|l| other(l.proposed_by))
                    .unwrap_or(Party::Unknown),
                version: *version,
            },
            _ => continue,
        };
        // A step the state machine refuses here will be refused by the server too; it is shown
        // by the outbox, not applied to the view.
        let Ok(next) = negotiation::apply(&view.state, &event) else {
            continue;
        };
        // Skip steps the server already has (the same payload may be pending and acknowledged).
        if next == view.state {
            continue;
        }
        view.state = next;
        view.unsent_steps += 1;
        match (decoded, event) {
            (Some(p), NegotiationEvent::Propose { .. }) => {
                view.latest = Some(LocalQuote {
                    quote: p.quote().clone(),
                    proposed_by: p.signer(),
                    answer: Answer::Pending,
                    proposal: encoded,
                    acceptance: None,
                });
            }
            (Some(_), NegotiationEvent::Accept { .. }) => {
                if let Some(latest) = view.latest.as_mut() {
                    latest.answer = Answer::Accepted;
                    latest.acceptance = Some(encoded);
                    view.agreed = Some(latest.clone());
                }
            }
            _ => {
                if let Some(latest) = view.latest.as_mut() {
                    latest.answer = Answer::Rejected;
                }
            }
        }
    }
    view
}

/// A cached job and its pending outbox items.
fn job_and_pending(
    c: &Connection,
    cipher: &FieldCipher,
    job: JobId,
) -> CoreResult<(JobDetails, Vec<rows::ItemRow>)> {
    let details =
        cache::job(c, cipher, job)?.ok_or_else(|| CoreError::NotCached(job.to_string()))?;
    Ok((details, rows::pending_for_job(c, cipher, job)?))
}

impl Engine {
    /// The device's signing key, created (and stored sealed) on first use.
    pub(crate) async fn device_key(&self) -> CoreResult<Ed25519KeyPair> {
        let cipher = self.cipher.clone();
        let pkcs8 = self
            .store
            .write_async(move |tx| {
                if let Some(sealed) = meta::get_blob(tx, meta::DEVICE_KEY)? {
                    return cipher.open("meta", "device_key", &sealed);
                }
                let rng = ring::rand::SystemRandom::new();
                let doc = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| {
                    CoreError::Storage("no system randomness for the device key".into())
                })?;
                meta::set_blob(
                    tx,
                    meta::DEVICE_KEY,
                    &cipher.seal("meta", "device_key", doc.as_ref())?,
                )?;
                Ok(doc.as_ref().to_vec())
            })
            .await?;
        Ed25519KeyPair::from_pkcs8(&pkcs8).map_err(|_| CoreError::Corrupt("device key".into()))
    }

    /// Registers the device's public key with the backend once (best effort before every sync).
    pub(crate) async fn ensure_key_registered(&self) -> CoreResult<()> {
        let done = self
            .store
            .read_async(|c| meta::get_text(c, meta::KEY_REGISTERED))
            .await?
            .is_some();
        if done {
            return Ok(());
        }
        let key = self.device_key().await?;
        let public = base64::engine::general_purpose::STANDARD.encode(key.public_key().as_ref());
        let body = serde_json::json!({ "public_key": public });
        self.api
            .post("v1/keys", &body, &uuid::Uuid::new_v4().to_string())
            .await?;
        self.store
            .write_async(|tx| meta::set_text(tx, meta::KEY_REGISTERED, "1"))
            .await
    }

    async fn job_and_pending(&self, job: JobId) -> CoreResult<(JobDetails, Vec<rows::ItemRow>)> {
        let cipher = self.cipher.clone();
        self.store
            .read_async(move |c| job_and_pending(c, &cipher, job))
            .await
    }

    /// The job's negotiation with this device's unacknowledged steps applied.
    pub(crate) async fn negotiation(&self, job: JobId) -> CoreResult<LocalNegotiation> {
        let (details, pending) = self.job_and_pending(job).await?;
        Ok(local_view(&details, &pending))
    }

    /// Signs and queues a proposal (first quote, counter-proposal or amendment). Returns the payload
    /// to show as a QR code when the other party's device cannot be reached through the server.
    pub(crate) async fn propose(
        &self,
        job: JobId,
        me: Party,
        items: Vec<LineItem>,
        reason: Option<String>,
    ) -> CoreResult<String> {
        // The version is taken from the negotiation as it is when the proposal is queued, in the
        // same transaction: two concurrent proposals get two versions, never the same one twice.
        self.sign_and_queue(job, move |details, view| {
            let version = view.state.next_version().ok_or(CoreError::Negotiation {
                code: "version_overflow",
                message: "no further version".into(),
            })?;
            let quote = Quote::new(job, version, items, reason)?;
            quote::validate_quote(
                &quote,
                details.orientation_price.currency,
                details.orientation_price,
                &policy(),
            )?;
            negotiation::apply(
                &view.state,
                &NegotiationEvent::Propose {
                    by: me,
                    version,
                    total: quote.total,
                },
            )?;
            Ok((ConsentAction::Propose, me, quote))
        })
        .await
    }

    /// Signs and queues the acceptance of the pending proposal `version` (which the other party
    /// made). Returns the payload for the other device.
    pub(crate) async fn accept_quote(
        &self,
        job: JobId,
        me: Party,
        version: u32,
    ) -> CoreResult<String> {
        self.sign_and_queue(job, move |_, view| {
            let latest = view
                .pending()
                .filter(|q| q.quote.version == version)
                .ok_or(CoreError::Negotiation {
                    code: "not_latest",
                    message: format!("version {version} is not the pending proposal"),
                })?;
            negotiation::apply(&view.state, &NegotiationEvent::Accept { by: me, version })?;
            Ok((ConsentAction::Accept, me, latest.quote.clone()))
        })
        .await
    }

    /// Decides a step on the job's negotiation as the store holds it now (`decide` gets the job
    /// and the local view, and returns what to sign), signs it with this device's key and queues
    /// the consent — the reading, the checks and the queueing in one transaction, so two
    /// concurrent steps are decided one after the other. Returns the payload (for the other
    /// device, as a QR code, when either is offline).
    async fn sign_and_queue(
        &self,
        job: JobId,
        decide: impl FnOnce(&JobDetails, &LocalNegotiation) -> CoreResult<(ConsentAction, Party, Quote)>
        + Send
        + 'static,
    ) -> CoreResult<String> {
        let key = self.device_key().await?;
        let cipher = self.cipher.clone();
        let payload = self
            .store
            .write_async(move |tx| {
                let (details, pending) = job_and_pending(tx, &cipher, job)?;
                let view = local_view(&details, &pending);
                let (action, me, quote) = decide(&details, &view)?;
                let payload = consent::sign_payload(action, me, &quote, &key)?.encode();
                enqueue_in(
                    tx,
                    &cipher,
                    job,
                    &Action::Consent {
                        payload: payload.clone(),
                    },
                )?;
                Ok(payload)
            })
            .await?;
        self.queued(job).await;
        Ok(payload)
    }

    /// Queues the rejection of the pending proposal `version` (checked and queued in one
    /// transaction).
    pub(crate) async fn reject_quote(
        &self,
        job: JobId,
        me: Party,
        version: u32,
    ) -> CoreResult<i64> {
        let cipher = self.cipher.clone();
        let id = self
            .store
            .write_async(move |tx| {
                let (details, pending) = job_and_pending(tx, &cipher, job)?;
                let view = local_view(&details, &pending);
                negotiation::apply(&view.state, &NegotiationEvent::Reject { by: me, version })?;
                enqueue_in(tx, &cipher, job, &Action::Reject { version })
            })
            .await?;
        self.queued(job).await;
        Ok(id)
    }

    /// Imports a payload the other party's device showed: verified offline against their registered
    /// keys (tampering, another job, a superseded version, a wrong key or signer are refused and
    /// nothing is stored), applied to the local negotiation, and queued so the server gets it even if
    /// the other device stays offline.
    pub(crate) async fn import_consent(
        &self,
        job: JobId,
        me: Party,
        payload: &str,
    ) -> CoreResult<LocalNegotiation> {
        let decoded = ConsentPayload::decode(payload)?;
        let (details, pending) = self.job_and_pending(job).await?;
        let view = local_view(&details, &pending);
        let signer = other(me);
        let keys = details.keys.of(signer);
        let key = keys
            .iter()
            .find(|k| *k == decoded.public_key())
            .or(keys.first())
            .ok_or(CoreError::InvalidConsent {
                code: "wrong_key",
                message: "the other party has no registered key on this device yet: sync first"
                    .into(),
            })?;
        let latest_version = view.latest.as_ref().map(|l| l.quote.version);
        let verified = consent::verify(&decoded, job, signer, key, latest_version)?;
        let event = match verified.action {
            ConsentAction::Propose => {
                quote::validate_quote(
                    &verified.quote,
                    details.orientation_price.currency,
                    details.orientation_price,
                    &policy(),
                )?;
                NegotiationEvent::Propose {
                    by: signer,
                    version: verified.quote.version,
                    total: verified.quote.total,
                }
            }
            _ => {
                // An acceptance must be of exactly the quote this device proposed.
                let same = view.pending().is_some_and(|p| p.quote == verified.quote);
                if !same {
                    return Err(CoreError::InvalidConsent {
                        code: "quote_mismatch",
                        message: "the acceptance is not of the pending proposal".into(),
                    });
                }
                NegotiationEvent::Accept {
                    by: signer,
                    version: verified.quote.version,
                }
            }
        };
        negotiation::apply(&view.state, &event)?;
        self.enqueue(
            job,
            Action::Consent {
                payload: payload.to_owned(),
            },
        )
        .await?;
        self.negotiation(job).await
    }

    /// Queues completion at the agreed total with the payment method.
    pub(crate) async fn complete(
        &self,
        job: JobId,
        payment: PaymentMethod,
    ) -> CoreResult<Settlement> {
        if payment == PaymentMethod::Unknown {
            return Err(CoreError::InvalidInput("payment method".into()));
        }
        let view = self.negotiation(job).await?;
        let agreed = view.agreed.as_ref().ok_or(CoreError::Negotiation {
            code: "not_agreed",
            message: "no price is agreed yet".into(),
        })?;
        let total = agreed.quote.total;
        view.state.can_complete(total)?;
        let settled = settlement(total, payment)?;
        self.enqueue(job, Action::Complete { payment, total })
            .await?;
        Ok(settled)
    }
}
