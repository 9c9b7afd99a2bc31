//! Platform push (SPEC §5): how a device registers its push token, and the small data payload every
//! push carries — one place for both the backend that writes it and the core that reads it.
//!
//! A push carries no personal data (it crosses Google's and Apple's servers): its data names only
//! what to sync. The app hands whatever it received to the core's `on_push`; [`PushPayload::parse`]
//! reads it and never fails — anything it cannot read is a plain sync.

use crate::JobId;
use crate::validate::Invalid;
use serde::{Deserialize, Serialize};

/// Longest device token accepted, in bytes (FCM tokens are ~160 bytes, APNs tokens 64 hex digits).
pub const MAX_PUSH_TOKEN_BYTES: usize = 4096;
/// Most push devices an account keeps; registering one more forgets the least recently registered.
pub const MAX_PUSH_DEVICES: usize = 10;

/// The data key naming what a push is about: [`PushKind`].
pub const PUSH_KIND_KEY: &str = "kind";
/// The data key naming the job a push is about.
pub const PUSH_JOB_KEY: &str = "job_id";

/// Where a device token is delivered through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PushPlatform {
    /// Firebase Cloud Messaging (Android).
    Fcm,
    /// Apple Push Notification service, production environment (App Store and TestFlight builds).
    Apns,
    /// APNs sandbox environment (development builds).
    ApnsSandbox,
    /// A platform this build does not know (refused by validation).
    #[serde(other)]
    Unknown,
}

impl PushPlatform {
    /// The stable name on the wire and in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            PushPlatform::Fcm => "fcm",
            PushPlatform::Apns => "apns",
            PushPlatform::ApnsSandbox => "apns_sandbox",
            PushPlatform::Unknown => "unknown",
        }
    }

    /// Reads a stable name; unknown names are [`PushPlatform::Unknown`].
    pub fn parse(s: &str) -> PushPlatform {
        match s {
            "fcm" => PushPlatform::Fcm,
            "apns" => PushPlatform::Apns,
            "apns_sandbox" => PushPlatform::ApnsSandbox,
            _ => PushPlatform::Unknown,
        }
    }

    /// Whether the token goes through APNs (either environment).
    pub fn is_apns(self) -> bool {
        matches!(self, PushPlatform::Apns | PushPlatform::ApnsSandbox)
    }
}

/// Registers the caller's device for pushes (`POST /v1/push-tokens`). The same token registered by
/// another account moves to the caller (a shared phone, a new login).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PushTokenRequest {
    /// Where the token is delivered through.
    pub platform: PushPlatform,
    /// The device token the platform issued (FCM registration token, APNs device token in hex).
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 4096))]
    pub token: String,
    /// The token this device registered before (a rotated token): forgotten when it is the caller's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 4096))]
    pub replaces: Option<String>,
}

/// Forgets one of the caller's push tokens (`POST /v1/push-tokens/remove`), e.g. at sign-out.
/// Forgetting a token that is not (or no longer) registered is not an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PushTokenRemoval {
    /// The device token.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 4096))]
    pub token: String,
}

/// The caller's push devices after a registration or removal. Tokens are never echoed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PushDevices {
    /// How many devices the account has registered for pushes.
    pub devices: u32,
}

/// Checks a device token before it is queued or stored: not empty, at most
/// [`MAX_PUSH_TOKEN_BYTES`], visible ASCII only; an APNs token is an even number of hex digits
/// (at least 64).
pub fn validate_token(
    field: &'static str,
    platform: PushPlatform,
    token: &str,
) -> Result<(), Invalid> {
    let bad = |problem: &str| Invalid {
        field,
        problem: problem.to_string(),
    };
    if token.is_empty() {
        return Err(bad("must not be empty"));
    }
    if token.len() > MAX_PUSH_TOKEN_BYTES {
        return Err(bad(&format!("longer than {MAX_PUSH_TOKEN_BYTES} bytes")));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad("must be visible ASCII without spaces"));
    }
    if platform.is_apns()
        && (token.len() < 64
            || !token.len().is_multiple_of(2)
            || !token.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(bad(
            "an APNs device token is an even number of hex digits, at least 64",
        ));
    }
    Ok(())
}

/// Validates a registration.
pub fn validate_registration(req: &PushTokenRequest) -> Result<(), Invalid> {
    if req.platform == PushPlatform::Unknown {
        return Err(Invalid {
            field: "platform",
            problem: "must be fcm, apns or apns_sandbox".into(),
        });
    }
    validate_token("token", req.platform, &req.token)?;
    if let Some(old) = &req.replaces {
        // The old token may be of the other APNs environment; its shape is only checked loosely.
        validate_token("replaces", PushPlatform::Fcm, old)?;
    }
    Ok(())
}

/// What a push is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushKind {
    /// An open job offered to a Friend.
    Offer,
    /// A change of a job the recipient is a party of.
    Job,
}

impl PushKind {
    /// The stable name in the payload.
    pub fn as_str(self) -> &'static str {
        match self {
            PushKind::Offer => "offer",
            PushKind::Job => "job",
        }
    }
}

/// What the core reads from a push: its kind and the job it names, when it can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PushPayload {
    /// The kind, when the payload names a known one.
    pub kind: Option<PushKind>,
    /// The job, when the payload names one.
    pub job: Option<JobId>,
}

impl PushPayload {
    /// Reads what the app received: a JSON object holding the push's data — FCM's data map, or
    /// APNs' `userInfo` with the data keys at the top level — or that object under `data`.
    /// Anything unreadable (not JSON, wrong types, unknown kind, a bad id) yields the fields it
    /// could read, possibly none; it never fails.
    pub fn parse(payload: &str) -> PushPayload {
        let Ok(value) = serde_json::from_str::<serde_json::Value>(payload) else {
            return PushPayload::default();
        };
        let data = match value.get(PUSH_KIND_KEY).or_else(|| value.get(PUSH_JOB_KEY)) {
            Some(_) => &value,
            None => value.get("data").unwrap_or(&value),
        };
        let text = |key: &str| data.get(key).and_then(|v| v.as_str());
        PushPayload {
            kind: match text(PUSH_KIND_KEY) {
                Some("offer") => Some(PushKind::Offer),
                Some("job") => Some(PushKind::Job),
                _ => None,
            },
            job: text(PUSH_JOB_KEY).and_then(|s| s.parse().ok()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const APNS: &str = "a0b1c2d3e4f5a0b1c2d3e4f5a0b1c2d3e4f5a0b1c2d3e4f5a0b1c2d3e4f5a0b1";

    #[test]
    fn reads_fcm_data_apns_user_info_and_nested_data() {
        let id = JobId::random();
        let fcm = format!(r#"{{"kind":"offer","job_id":"{id}","price":"CHF 89.00"}}"#);
        let apns = format!(r#"{{"aps":{{"alert":{{"title":"t"}}}},"kind":"job","job_id":"{id}"}}"#);
        let nested = format!(r#"{{"data":{{"kind":"offer","job_id":"{id}"}}}}"#);
        assert_eq!(
            PushPayload::parse(&fcm),
            PushPayload {
                kind: Some(PushKind::Offer),
                job: Some(id)
            }
        );
        assert_eq!(PushPayload::parse(&apns).kind, Some(PushKind::Job));
        assert_eq!(PushPayload::parse(&nested).job, Some(id));
    }

    #[test]
    fn garbage_reads_as_nothing() {
        for junk in [
            "",
            "null",
            "[]",
            "{",
            "\"offer\"",
            r#"{"kind":7}"#,
            r#"{"job_id":"x"}"#,
        ] {
            let p = PushPayload::parse(junk);
            assert_eq!(p.job, None, "{junk}");
        }
        assert_eq!(PushPayload::parse(r#"{"kind":"party"}"#).kind, None);
    }

    #[test]
    fn token_rules() {
        assert!(validate_token("token", PushPlatform::Apns, APNS).is_ok());
        assert!(validate_token("token", PushPlatform::ApnsSandbox, &APNS[..62]).is_err());
        assert!(validate_token("token", PushPlatform::Apns, &APNS.replace('a', "x")).is_err());
        assert!(validate_token("token", PushPlatform::Fcm, "fcm:APA91b-x_y").is_ok());
        assert!(validate_token("token", PushPlatform::Fcm, "").is_err());
        assert!(validate_token("token", PushPlatform::Fcm, "with space").is_err());
        assert!(validate_token("token", PushPlatform::Fcm, &"a".repeat(4097)).is_err());
        let unknown = PushTokenRequest {
            platform: PushPlatform::Unknown,
            token: "t".into(),
            replaces: None,
        };
        assert_eq!(
            validate_registration(&unknown).unwrap_err().field,
            "platform"
        );
        let platform: PushPlatform = serde_json::from_str("\"web\"").unwrap();
        assert_eq!(platform, PushPlatform::Unknown);
        for p in [
            PushPlatform::Fcm,
            PushPlatform::Apns,
            PushPlatform::ApnsSandbox,
        ] {
            assert_eq!(PushPlatform::parse(p.as_str()), p);
        }
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in ".{0,300}") {
            let _ = PushPayload::parse(&s);
        }
    }
}
