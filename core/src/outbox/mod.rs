//! The durable outbox, in one module: the actions and what each one sends (route, body, stored
//! payload), how a queued item looks to the app ([`OutboxItem`]), the retry [`backoff`], the table
//! with its sealed rows ([`table`], also reachable as `store::outbox`) and delivery
//! ([`delivery`]), the local echo of queued actions on the jobs the app is shown ([`echo`]), and
//! the device's push-token registration, queued like the rest ([`push`]).

pub(crate) mod delivery;
pub(crate) mod echo;
pub mod push;
pub mod table;

use crate::error::{CoreError, CoreResult};
use chrono::{DateTime, Utc};
use friend_protocol::push::{PushPlatform, PushTokenRemoval, PushTokenRequest};
use friend_protocol::{
    Appointment, AppointmentRequest, BookRequest, DeclineReason, JobId, Money, OnMyWayRequest,
    PaymentMethod, ReleaseReason, ReleaseRequest, UnsuccessfulReason,
};
use push::DeviceToken;
use serde::{Deserialize, Serialize};

/// An on-site action queued for delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    /// Decline an open offer.
    Decline {
        /// Why.
        reason: DeclineReason,
    },
    /// Give an assigned job back before arriving, saying why (items queued by older versions
    /// carry neither field).
    Release {
        /// Why (`None`: not said).
        #[serde(default)]
        reason: Option<ReleaseReason>,
        /// A short note for the platform (never shown to the customer).
        #[serde(default)]
        note: Option<String>,
    },
    /// Record the agreed visit (the Friend holding the job). The whole appointment is kept, as the
    /// protocol's rule computed it when queued (`moved` included), for the local echo; the request
    /// sends `start` and `end`.
    Appointment {
        /// The agreed visit.
        appointment: Appointment,
    },
    /// "On my way", with the estimated arrival (the Friend holding the job). A newer one
    /// supersedes an older one still waiting in the outbox (see `FriendSession::on_my_way`).
    OnMyWay {
        /// Estimated arrival (server clock).
        eta: DateTime<Utc>,
    },
    /// Decline the visit the Friend moved away from the booked slot (customer): the job is
    /// offered again.
    DeclineAppointment,
    /// Arrive on site.
    CheckIn,
    /// Upload a signed proposal or acceptance (either party's; the server verifies it).
    Consent {
        /// The base64url consent payload.
        payload: String,
    },
    /// Reject the pending proposal.
    Reject {
        /// Its version.
        version: u32,
    },
    /// Complete at the agreed total.
    Complete {
        /// Online or cash.
        payment: PaymentMethod,
        /// The agreed total.
        total: Money,
    },
    /// Hand the job to the field service.
    Escalate {
        /// Note for the field service.
        note: Option<String>,
    },
    /// Check out without success.
    Unsuccessful {
        /// Why.
        reason: UnsuccessfulReason,
        /// Note.
        note: Option<String>,
    },
    /// Book a job (customer). The outbox item's job id is a local id until the server answers.
    Book {
        /// The booking.
        request: Box<BookRequest>,
    },
    /// Cancel a job (customer).
    Cancel,
    /// Rate a completed job (customer).
    Rate {
        /// 1–5.
        stars: u8,
        /// Optional comment.
        comment: Option<String>,
    },
    /// Register this device's push token (either role). Queued on [`push::DEVICE_QUEUE`], not on a
    /// job.
    PushToken {
        /// Where the token is delivered through.
        platform: PushPlatform,
        /// The device token.
        token: DeviceToken,
        /// The token this device registered before, forgotten by the backend.
        replaces: Option<DeviceToken>,
    },
    /// Forget one of this device's push tokens (either role; [`push::DEVICE_QUEUE`]).
    PushTokenRemoval {
        /// The device token.
        token: DeviceToken,
    },
}

/// What an outbox item does, without its data: how queued actions are compared, shown and stored
/// (as [`ActionKind::as_str`]; the FFI shows the same stable strings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// [`Action::Decline`].
    Decline,
    /// [`Action::Release`].
    Release,
    /// [`Action::CheckIn`].
    CheckIn,
    /// [`Action::Consent`].
    Consent,
    /// [`Action::Reject`].
    Reject,
    /// [`Action::Complete`].
    Complete,
    /// [`Action::Escalate`].
    Escalate,
    /// [`Action::Unsuccessful`].
    Unsuccessful,
    /// [`Action::Book`].
    Book,
    /// [`Action::Cancel`].
    Cancel,
    /// [`Action::Rate`].
    Rate,
    /// [`Action::PushToken`].
    PushToken,
    /// [`Action::PushTokenRemoval`].
    PushTokenRemoval,
    /// [`Action::Appointment`].
    Appointment,
    /// [`Action::OnMyWay`].
    OnMyWay,
    /// [`Action::DeclineAppointment`].
    DeclineAppointment,
}

impl ActionKind {
    /// Every kind.
    pub const ALL: [ActionKind; 16] = [
        ActionKind::Decline,
        ActionKind::Release,
        ActionKind::CheckIn,
        ActionKind::Consent,
        ActionKind::Reject,
        ActionKind::Complete,
        ActionKind::Escalate,
        ActionKind::Unsuccessful,
        ActionKind::Book,
        ActionKind::Cancel,
        ActionKind::Rate,
        ActionKind::PushToken,
        ActionKind::PushTokenRemoval,
        ActionKind::Appointment,
        ActionKind::OnMyWay,
        ActionKind::DeclineAppointment,
    ];

    /// The stable name stored in the outbox and shown to apps.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Decline => "decline",
            ActionKind::Release => "release",
            ActionKind::CheckIn => "check_in",
            ActionKind::Consent => "consent",
            ActionKind::Reject => "reject",
            ActionKind::Complete => "complete",
            ActionKind::Escalate => "escalate",
            ActionKind::Unsuccessful => "unsuccessful",
            ActionKind::Book => "book",
            ActionKind::Cancel => "cancel",
            ActionKind::Rate => "rate",
            ActionKind::PushToken => "push_token",
            ActionKind::PushTokenRemoval => "push_token_removal",
            ActionKind::Appointment => "appointment",
            ActionKind::OnMyWay => "on_my_way",
            ActionKind::DeclineAppointment => "decline_appointment",
        }
    }

    /// The kind of a stored name.
    pub fn parse(s: &str) -> Option<ActionKind> {
        ActionKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for ActionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Action {
    /// What the action does.
    pub fn kind(&self) -> ActionKind {
        match self {
            Action::Decline { .. } => ActionKind::Decline,
            Action::Release { .. } => ActionKind::Release,
            Action::CheckIn => ActionKind::CheckIn,
            Action::Consent { .. } => ActionKind::Consent,
            Action::Reject { .. } => ActionKind::Reject,
            Action::Complete { .. } => ActionKind::Complete,
            Action::Escalate { .. } => ActionKind::Escalate,
            Action::Unsuccessful { .. } => ActionKind::Unsuccessful,
            Action::Book { .. } => ActionKind::Book,
            Action::Cancel => ActionKind::Cancel,
            Action::Rate { .. } => ActionKind::Rate,
            Action::PushToken { .. } => ActionKind::PushToken,
            Action::PushTokenRemoval { .. } => ActionKind::PushTokenRemoval,
            Action::Appointment { .. } => ActionKind::Appointment,
            Action::OnMyWay { .. } => ActionKind::OnMyWay,
            Action::DeclineAppointment => ActionKind::DeclineAppointment,
        }
    }

    /// The route the action is sent to (`job` is ignored by the device's own actions).
    pub fn path(&self, job: JobId) -> String {
        match self {
            Action::Decline { .. } => format!("v1/friend/jobs/{job}/decline"),
            Action::Release { .. } => format!("v1/friend/jobs/{job}/release"),
            Action::CheckIn => format!("v1/friend/jobs/{job}/check-in"),
            Action::Consent { .. } => format!("v1/jobs/{job}/consent"),
            Action::Reject { .. } => format!("v1/jobs/{job}/reject"),
            Action::Complete { .. } => format!("v1/friend/jobs/{job}/complete"),
            Action::Escalate { .. } => format!("v1/friend/jobs/{job}/escalate"),
            Action::Unsuccessful { .. } => format!("v1/friend/jobs/{job}/unsuccessful"),
            Action::Book { .. } => "v1/customer/jobs".to_owned(),
            Action::Cancel => format!("v1/customer/jobs/{job}/cancel"),
            Action::Rate { .. } => format!("v1/customer/jobs/{job}/rate"),
            Action::PushToken { .. } => "v1/push-tokens".to_owned(),
            Action::PushTokenRemoval { .. } => "v1/push-tokens/remove".to_owned(),
            Action::Appointment { .. } => format!("v1/friend/jobs/{job}/appointment"),
            Action::OnMyWay { .. } => format!("v1/friend/jobs/{job}/on-my-way"),
            Action::DeclineAppointment => format!("v1/customer/jobs/{job}/appointment/decline"),
        }
    }

    /// The request body.
    pub fn body(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            Action::Decline { reason } => json!({ "reason": reason }),
            Action::CheckIn | Action::Cancel | Action::DeclineAppointment => json!({}),
            Action::Release { reason, note } => to_body(&ReleaseRequest {
                reason: *reason,
                note: note.clone(),
            }),
            Action::Appointment { appointment } => to_body(&AppointmentRequest {
                start: appointment.start,
                end: appointment.end,
            }),
            Action::OnMyWay { eta } => to_body(&OnMyWayRequest { eta: *eta }),
            Action::Consent { payload } => json!({ "payload": payload }),
            Action::Reject { version } => json!({ "version": version }),
            Action::Complete { payment, total } => json!({ "payment": payment, "total": total }),
            Action::Escalate { note } => json!({ "note": note }),
            Action::Unsuccessful { reason, note } => json!({ "reason": reason, "note": note }),
            Action::Book { request } => {
                serde_json::to_value(request).unwrap_or(serde_json::Value::Null)
            }
            Action::Rate { stars, comment } => json!({ "stars": stars, "comment": comment }),
            Action::PushToken {
                platform,
                token,
                replaces,
            } => serde_json::to_value(PushTokenRequest {
                platform: *platform,
                token: token.as_str().to_owned(),
                replaces: replaces.as_ref().map(|t| t.as_str().to_owned()),
            })
            .unwrap_or(serde_json::Value::Null),
            Action::PushTokenRemoval { token } => serde_json::to_value(PushTokenRemoval {
                token: token.as_str().to_owned(),
            })
            .unwrap_or(serde_json::Value::Null),
        }
    }

    /// The stored payload: the action itself as JSON (it is also the request body).
    pub fn to_payload(&self) -> CoreResult<String> {
        Ok(serde_json::to_string(self)?)
    }

    /// Reads a stored payload back.
    pub fn from_payload(payload: &str) -> CoreResult<Action> {
        serde_json::from_str(payload)
            .map_err(|e| CoreError::Corrupt(format!("outbox payload: {e}")))
    }
}

/// A wire request as a JSON body (these plain records always serialize).
fn to_body<T: Serialize>(request: &T) -> serde_json::Value {
    serde_json::to_value(request).unwrap_or(serde_json::Value::Null)
}

/// An outbox item as the app sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxItem {
    /// Queue position.
    pub id: i64,
    /// The job.
    pub job_id: JobId,
    /// The action.
    pub action: Action,
    /// Delivery state.
    pub status: table::ItemStatus,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Last transient failure.
    pub last_error: Option<String>,
    /// The server's refusal code, for refused items.
    pub refusal_code: Option<String>,
    /// The server's refusal message, for refused items.
    pub refusal_message: Option<String>,
}

impl OutboxItem {
    pub(crate) fn from_row(row: table::ItemRow) -> CoreResult<OutboxItem> {
        Ok(OutboxItem {
            id: row.id,
            job_id: row.job_id,
            action: Action::from_payload(&row.payload)?,
            status: row.status,
            attempts: row.attempts,
            last_error: row.last_error,
            refusal_code: row.outcome_code,
            refusal_message: row.outcome_message,
        })
    }
}

/// Delay before retry number `attempt` (1-based): 1 s doubling to 5 min, with ±50 % jitter so a
/// crowd of devices coming back online does not retry in lockstep.
pub fn backoff(attempt: u32) -> std::time::Duration {
    let base_ms = 1000u64
        .saturating_mul(1u64 << attempt.saturating_sub(1).min(9))
        .min(300_000);
    let jitter = 0.5 + fastrand::f64();
    std::time::Duration::from_millis((base_ms as f64 * jitter) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip() {
        for a in [
            Action::Decline {
                reason: DeclineReason::NoTime,
            },
            Action::Release {
                reason: Some(ReleaseReason::CannotCome),
                note: Some("fever".into()),
            },
            Action::CheckIn,
            Action::OnMyWay {
                eta: DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
            },
            Action::DeclineAppointment,
        ] {
            assert_eq!(Action::from_payload(&a.to_payload().unwrap()).unwrap(), a);
        }
    }

    #[test]
    fn a_release_queued_by_an_older_version_still_reads_and_sends_an_empty_reason() {
        let old = Action::from_payload(r#"{"kind":"release"}"#).unwrap();
        assert_eq!(
            old,
            Action::Release {
                reason: None,
                note: None
            }
        );
        assert_eq!(
            old.body(),
            serde_json::json!({"reason": null, "note": null})
        );
        let new = Action::Release {
            reason: Some(ReleaseReason::NoMatchingTime),
            note: None,
        };
        assert_eq!(new.body()["reason"], "no_matching_time");
    }

    #[test]
    fn visit_actions_send_the_wire_requests() {
        let t = |min: i64| {
            DateTime::from_timestamp(1_800_000_000, 0).unwrap() + chrono::Duration::minutes(min)
        };
        let job = JobId::random();
        let a = Action::Appointment {
            appointment: Appointment {
                start: t(20),
                end: t(50),
                moved: true,
            },
        };
        assert_eq!(a.path(job), format!("v1/friend/jobs/{job}/appointment"));
        let sent: AppointmentRequest = serde_json::from_value(a.body()).unwrap();
        assert_eq!((sent.start, sent.end), (t(20), t(50)));
        assert!(
            a.body().get("moved").is_none(),
            "moved is the server's to decide"
        );
        let w = Action::OnMyWay { eta: t(25) };
        assert_eq!(w.path(job), format!("v1/friend/jobs/{job}/on-my-way"));
        let sent: OnMyWayRequest = serde_json::from_value(w.body()).unwrap();
        assert_eq!(sent.eta, t(25));
        assert_eq!(
            Action::DeclineAppointment.path(job),
            format!("v1/customer/jobs/{job}/appointment/decline")
        );
    }

    #[test]
    fn kinds_round_trip_through_their_stable_names() {
        for k in ActionKind::ALL {
            assert_eq!(ActionKind::parse(k.as_str()), Some(k));
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
        assert_eq!(ActionKind::parse("teleport"), None);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(1) <= std::time::Duration::from_millis(1500));
        assert!(backoff(30) <= std::time::Duration::from_secs(450));
        assert!(backoff(30) >= std::time::Duration::from_secs(150));
    }
}
