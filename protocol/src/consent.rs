//! Signed consent that works offline (SPEC §7): a proposal or an acceptance signed with the
//! party's Ed25519 device key, handed device to device as a compact string (a QR code), verified
//! offline by the receiving app and later by the server, which stays the final authority.
//!
//! # Encoding
//!
//! One deterministic, length-prefixed binary layout — not JSON, whose field order, whitespace and
//! number forms are not canonical, and which would not fit a QR code. Integers are big-endian.
//!
//! ```text
//! payload   = format:u8 (= 1) ‖ body ‖ public_key:[u8; 32] ‖ signature:[u8; 64]
//! signed    = "friendcore/consent/v1" ‖ body          (the message the signature covers)
//! body      = action:u8 ‖ signer:u8 ‖ job_id:[u8; 16] ‖ version:u32 ‖ total:money
//!             ‖ item_count:u8 ‖ item × item_count ‖ reason
//! item      = kind:u8 ‖ quantity:u32 ‖ unit_price:money ‖ description:text
//! money     = currency:u8 ‖ minor:i64
//! text      = length:u16 ‖ UTF-8 bytes
//! reason    = 0x00 (none) | 0x01 ‖ text
//!
//! action    1 propose, 2 accept          signer    1 friend, 2 customer
//! currency  1 CHF, 2 EUR                 kind      1 service, 2 adjustment, 3 extra_service,
//!                                                  4 time_unit, 5 material, 6 discount
//! ```
//!
//! The string form is the payload in base64url without padding. Both the binary and the base64
//! decoding are strict (no unknown codes, no trailing bytes, no non-canonical base64), so a payload
//! has exactly one encoding: what is verified is exactly what was read. The domain tag keeps a
//! consent signature from ever being valid for another message the same key signs, and carries the
//! format version into the signed bytes.
//!
//! An acceptance carries the full quote too, so the receiver can check offline what exactly was
//! accepted without having stored the proposal.

use crate::negotiation::Party;
use crate::quote::{LineItem, LineItemKind, Quote};
use crate::{Currency, JobId, Money};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use uuid::Uuid;

/// The binary layout's version, the payload's first byte.
pub const FORMAT_VERSION: u8 = 1;
/// Domain-separation tag prefixed to every signed message.
pub const DOMAIN_TAG: &[u8] = b"friendcore/consent/v1";
/// Longest encoded payload accepted, in characters; longer input is refused before decoding.
pub const MAX_ENCODED_LEN: usize = 4096;
/// Length of an Ed25519 public key.
pub const PUBLIC_KEY_LEN: usize = 32;
/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

/// What the signer consents to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ConsentAction {
    /// The signer proposes the quote.
    Propose,
    /// The signer accepts the quote (the other party's proposal).
    Accept,
    /// An action this build does not know; cannot be signed or decoded.
    #[serde(other)]
    Unknown,
}

/// Why a consent was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConsentError {
    /// The encoded input exceeds [`MAX_ENCODED_LEN`] (also refused when signing, so every signed
    /// payload can be decoded).
    #[error("payload of {len} characters exceeds {max}")]
    TooLarge {
        /// The input's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The input is not a well-formed payload.
    #[error("malformed payload: {0}")]
    Malformed(&'static str),
    /// The payload's format version is not one this build reads.
    #[error("unsupported consent format version {0}")]
    UnsupportedFormat(u8),
    /// The quote or the arguments cannot be put in a payload (unknown kinds, texts too long).
    #[error("cannot encode consent: {0}")]
    Unencodable(&'static str),
    /// The payload was signed by another key than the expected one.
    #[error("signed by an unexpected key")]
    WrongKey,
    /// The signature does not match the content: the payload was altered.
    #[error("signature does not match the content")]
    BadSignature,
    /// The payload names another signer party than expected.
    #[error("signed as {found}, expected {expected}")]
    WrongSigner {
        /// The party expected.
        expected: &'static str,
        /// The party the payload names.
        found: &'static str,
    },
    /// The payload is for another job.
    #[error("the consent is for another job")]
    WrongJob,
    /// The payload's quote version is older than the latest one known: it was superseded.
    #[error("quote version {version} is superseded by version {latest}")]
    StaleVersion {
        /// The payload's version.
        version: u32,
        /// The latest version known.
        latest: u32,
    },
}

impl ConsentError {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            ConsentError::TooLarge { .. } => "payload_too_large",
            ConsentError::Malformed(_) => "malformed_payload",
            ConsentError::UnsupportedFormat(_) => "unsupported_format",
            ConsentError::Unencodable(_) => "unencodable",
            ConsentError::WrongKey => "wrong_key",
            ConsentError::BadSignature => "bad_signature",
            ConsentError::WrongSigner { .. } => "wrong_signer",
            ConsentError::WrongJob => "wrong_job",
            ConsentError::StaleVersion { .. } => "stale_version",
        }
    }
}

/// A signed consent. Built only by [`sign_payload`] or [`ConsentPayload::decode`], so every value
/// is encodable and within [`MAX_ENCODED_LEN`]; it is *not* trusted until [`verify`] says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentPayload {
    action: ConsentAction,
    signer: Party,
    quote: Quote,
    public_key: [u8; PUBLIC_KEY_LEN],
    signature: [u8; SIGNATURE_LEN],
    /// The binary encoding, kept so [`ConsentPayload::encode`] cannot fail.
    bytes: Vec<u8>,
}

impl ConsentPayload {
    /// The binary layout's version.
    pub fn format_version(&self) -> u8 {
        FORMAT_VERSION
    }

    /// What the signer consents to.
    pub fn action(&self) -> ConsentAction {
        self.action
    }

    /// The job (the quote's job id).
    pub fn job_id(&self) -> JobId {
        self.quote.job_id
    }

    /// The party the payload claims signed it.
    pub fn signer(&self) -> Party {
        self.signer
    }

    /// The quote consented to.
    pub fn quote(&self) -> &Quote {
        &self.quote
    }

    /// The signer's Ed25519 public key.
    pub fn public_key(&self) -> &[u8; PUBLIC_KEY_LEN] {
        &self.public_key
    }

    /// The Ed25519 signature over the signed message.
    pub fn signature(&self) -> &[u8; SIGNATURE_LEN] {
        &self.signature
    }

    /// The payload as base64url without padding (see the module docs for the layout).
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(&self.bytes)
    }

    /// Parses an encoded payload, strictly. Does not verify it: call [`verify`].
    pub fn decode(encoded: &str) -> Result<ConsentPayload, ConsentError> {
        if encoded.len() > MAX_ENCODED_LEN {
            return Err(ConsentError::TooLarge {
                len: encoded.len(),
                max: MAX_ENCODED_LEN,
            });
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(encoded)
            .map_err(|_| ConsentError::Malformed("not base64url without padding"))?;
        let mut r = Reader {
            buf: &bytes,
            pos: 0,
        };
        let format = r.u8()?;
        if format != FORMAT_VERSION {
            return Err(ConsentError::UnsupportedFormat(format));
        }
        let (action, signer, quote) = read_body(&mut r)?;
        let public_key = r.array::<PUBLIC_KEY_LEN>()?;
        let signature = r.array::<SIGNATURE_LEN>()?;
        if r.pos != bytes.len() {
            return Err(ConsentError::Malformed("trailing bytes"));
        }
        Ok(ConsentPayload {
            action,
            signer,
            quote,
            public_key,
            signature,
            bytes,
        })
    }
}

/// What a successful [`verify`] vouches for: this party, holding the expected key, consented to
/// this quote. Whether the quote is acceptable is [`crate::quote::validate_quote`]'s call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedConsent {
    /// Propose or accept.
    pub action: ConsentAction,
    /// Who signed.
    pub signer: Party,
    /// The quote consented to, job id and version included.
    pub quote: Quote,
}

/// The message a consent signature covers: [`DOMAIN_TAG`] followed by the body (module docs).
/// Public so other implementations can be tested against it.
pub fn signed_message(
    action: ConsentAction,
    signer: Party,
    quote: &Quote,
) -> Result<Vec<u8>, ConsentError> {
    let mut out = Vec::with_capacity(DOMAIN_TAG.len() + 64 + quote.items.len() * 48);
    out.extend_from_slice(DOMAIN_TAG);
    write_body(&mut out, action, signer, quote)?;
    Ok(out)
}

/// Signs `quote` as `signer` with the device key. Refuses what cannot be encoded and payloads
/// longer than [`MAX_ENCODED_LEN`], so every payload it returns can be decoded by the other side.
pub fn sign_payload(
    action: ConsentAction,
    signer: Party,
    quote: &Quote,
    key: &Ed25519KeyPair,
) -> Result<ConsentPayload, ConsentError> {
    let message = signed_message(action, signer, quote)?;
    let public_key: [u8; PUBLIC_KEY_LEN] = key
        .public_key()
        .as_ref()
        .try_into()
        .map_err(|_| ConsentError::Unencodable("public key length"))?;
    let signature: [u8; SIGNATURE_LEN] = key
        .sign(&message)
        .as_ref()
        .try_into()
        .map_err(|_| ConsentError::Unencodable("signature length"))?;

    let body = &message[DOMAIN_TAG.len()..];
    let mut bytes = Vec::with_capacity(1 + body.len() + PUBLIC_KEY_LEN + SIGNATURE_LEN);
    bytes.push(FORMAT_VERSION);
    bytes.extend_from_slice(body);
    bytes.extend_from_slice(&public_key);
    bytes.extend_from_slice(&signature);
    let len = encoded_len(bytes.len());
    if len > MAX_ENCODED_LEN {
        return Err(ConsentError::TooLarge {
            len,
            max: MAX_ENCODED_LEN,
        });
    }
    Ok(ConsentPayload {
        action,
        signer,
        quote: quote.clone(),
        public_key,
        signature,
        bytes,
    })
}

/// Verifies a consent offline: signed by `expected_public_key` (the key the signer registered),
/// untampered, claimed by `expected_signer`, for `expected_job_id`, and not older than
/// `latest_known_version` (the latest quote version the verifier has seen, if any).
///
/// The key is checked before the signature and the claims after it, so a refusal about the
/// content (wrong job, stale version) is only ever given for authentic payloads; any alteration
/// shows as [`ConsentError::BadSignature`]. Whether the version is the *next* one, or answers the
/// right proposal, is [`crate::negotiation::apply`]'s rule.
pub fn verify(
    payload: &ConsentPayload,
    expected_job_id: JobId,
    expected_signer: Party,
    expected_public_key: &[u8],
    latest_known_version: Option<u32>,
) -> Result<VerifiedConsent, ConsentError> {
    // Public keys are public: a plain comparison leaks nothing.
    if payload.public_key.as_slice() != expected_public_key {
        return Err(ConsentError::WrongKey);
    }
    let message = signed_message(payload.action, payload.signer, &payload.quote)?;
    UnparsedPublicKey::new(&ED25519, &payload.public_key)
        .verify(&message, &payload.signature)
        .map_err(|_| ConsentError::BadSignature)?;
    if payload.signer != expected_signer {
        return Err(ConsentError::WrongSigner {
            expected: expected_signer.as_str(),
            found: payload.signer.as_str(),
        });
    }
    if payload.quote.job_id != expected_job_id {
        return Err(ConsentError::WrongJob);
    }
    if let Some(latest) = latest_known_version.filter(|&l| payload.quote.version < l) {
        return Err(ConsentError::StaleVersion {
            version: payload.quote.version,
            latest,
        });
    }
    Ok(VerifiedConsent {
        action: payload.action,
        signer: payload.signer,
        quote: payload.quote.clone(),
    })
}

/// Length of `n` bytes in base64 without padding.
fn encoded_len(n: usize) -> usize {
    n / 3 * 4 + (n % 3 * 4).div_ceil(3)
}

// ---- codes ---------------------------------------------------------------------------------

fn action_code(a: ConsentAction) -> Result<u8, ConsentError> {
    match a {
        ConsentAction::Propose => Ok(1),
        ConsentAction::Accept => Ok(2),
        ConsentAction::Unknown => Err(ConsentError::Unencodable("unknown action")),
    }
}

fn action_from(code: u8) -> Result<ConsentAction, ConsentError> {
    match code {
        1 => Ok(ConsentAction::Propose),
        2 => Ok(ConsentAction::Accept),
        _ => Err(ConsentError::Malformed("unknown action")),
    }
}

fn party_code(p: Party) -> Result<u8, ConsentError> {
    match p {
        Party::Friend => Ok(1),
        Party::Customer => Ok(2),
        Party::Unknown => Err(ConsentError::Unencodable("unknown party")),
    }
}

fn party_from(code: u8) -> Result<Party, ConsentError> {
    match code {
        1 => Ok(Party::Friend),
        2 => Ok(Party::Customer),
        _ => Err(ConsentError::Malformed("unknown party")),
    }
}

fn currency_code(c: Currency) -> Result<u8, ConsentError> {
    match c {
        Currency::Chf => Ok(1),
        Currency::Eur => Ok(2),
        Currency::Unknown => Err(ConsentError::Unencodable("unknown currency")),
    }
}

fn currency_from(code: u8) -> Result<Currency, ConsentError> {
    match code {
        1 => Ok(Currency::Chf),
        2 => Ok(Currency::Eur),
        _ => Err(ConsentError::Malformed("unknown currency")),
    }
}

fn kind_code(k: LineItemKind) -> Result<u8, ConsentError> {
    match k {
        LineItemKind::Service => Ok(1),
        LineItemKind::Adjustment => Ok(2),
        LineItemKind::ExtraService => Ok(3),
        LineItemKind::TimeUnit => Ok(4),
        LineItemKind::Material => Ok(5),
        LineItemKind::Discount => Ok(6),
        LineItemKind::Unknown => Err(ConsentError::Unencodable("unknown line item kind")),
    }
}

fn kind_from(code: u8) -> Result<LineItemKind, ConsentError> {
    match code {
        1 => Ok(LineItemKind::Service),
        2 => Ok(LineItemKind::Adjustment),
        3 => Ok(LineItemKind::ExtraService),
        4 => Ok(LineItemKind::TimeUnit),
        5 => Ok(LineItemKind::Material),
        6 => Ok(LineItemKind::Discount),
        _ => Err(ConsentError::Malformed("unknown line item kind")),
    }
}

// ---- writing -------------------------------------------------------------------------------

fn write_body(
    out: &mut Vec<u8>,
    action: ConsentAction,
    signer: Party,
    quote: &Quote,
) -> Result<(), ConsentError> {
    out.push(action_code(action)?);
    out.push(party_code(signer)?);
    out.extend_from_slice(quote.job_id.0.as_bytes());
    out.extend_from_slice(&quote.version.to_be_bytes());
    write_money(out, quote.total)?;
    let count = u8::try_from(quote.items.len())
        .map_err(|_| ConsentError::Unencodable("more than 255 line items"))?;
    out.push(count);
    for item in &quote.items {
        out.push(kind_code(item.kind)?);
        out.extend_from_slice(&item.quantity.to_be_bytes());
        write_money(out, item.unit_price)?;
        write_text(out, &item.description)?;
    }
    match &quote.reason {
        None => out.push(0),
        Some(reason) => {
            out.push(1);
            write_text(out, reason)?;
        }
    }
    Ok(())
}

fn write_money(out: &mut Vec<u8>, m: Money) -> Result<(), ConsentError> {
    out.push(currency_code(m.currency)?);
    out.extend_from_slice(&m.minor.to_be_bytes());
    Ok(())
}

fn write_text(out: &mut Vec<u8>, s: &str) -> Result<(), ConsentError> {
    let len = u16::try_from(s.len()).map_err(|_| ConsentError::Unencodable("text too long"))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

// ---- reading -------------------------------------------------------------------------------

/// A bounds-checked cursor: every read either succeeds or reports truncation, never panics.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ConsentError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.buf.len())
            .ok_or(ConsentError::Malformed("truncated"))?;
        let bytes = &self.buf[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], ConsentError> {
        self.take(N)?
            .try_into()
            .map_err(|_| ConsentError::Malformed("truncated"))
    }

    fn u8(&mut self) -> Result<u8, ConsentError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, ConsentError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, ConsentError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn money(&mut self) -> Result<Money, ConsentError> {
        let currency = currency_from(self.u8()?)?;
        let minor = i64::from_be_bytes(self.array()?);
        Ok(Money { minor, currency })
    }

    fn text(&mut self) -> Result<String, ConsentError> {
        let len = usize::from(self.u16()?);
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| ConsentError::Malformed("text not UTF-8"))
    }
}

fn read_body(r: &mut Reader<'_>) -> Result<(ConsentAction, Party, Quote), ConsentError> {
    let action = action_from(r.u8()?)?;
    let signer = party_from(r.u8()?)?;
    let job_id = JobId(Uuid::from_bytes(r.array()?));
    let version = r.u32()?;
    let total = r.money()?;
    let count = r.u8()?;
    let mut items = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        let kind = kind_from(r.u8()?)?;
        let quantity = r.u32()?;
        let unit_price = r.money()?;
        let description = r.text()?;
        items.push(LineItem {
            kind,
            description,
            quantity,
            unit_price,
        });
    }
    let reason = match r.u8()? {
        0 => None,
        1 => Some(r.text()?),
        _ => return Err(ConsentError::Malformed("reason flag")),
    };
    Ok((
        action,
        signer,
        Quote {
            job_id,
            version,
            items,
            total,
            reason,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quote::tests::item;
    use crate::quote::{QuotePolicy, validate_quote};
    use proptest::prelude::*;
    use ring::rand::SystemRandom;

    fn key() -> Ed25519KeyPair {
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        Ed25519KeyPair::from_pkcs8(doc.as_ref()).unwrap()
    }

    fn job() -> JobId {
        JobId(Uuid::from_u128(0x1234_5678_9abc_def0_1234_5678_9abc_def0))
    }

    fn quote(version: u32) -> Quote {
        Quote::new(
            job(),
            version,
            vec![
                item(LineItemKind::Service, "Router setup", 1, 8900),
                item(LineItemKind::Material, "LAN-Kabel 5 m, Cat. 6", 2, 1250),
                item(LineItemKind::Discount, "Stammkunde", 1, -500),
            ],
            Some("Zusätzliches Kabel im Keller".into()),
        )
        .unwrap()
    }

    /// Ten items with realistic ~30-character descriptions and a reason: the QR-code case.
    fn ten_item_quote() -> Quote {
        let descriptions = [
            "Router-Installation und Setup",
            "WLAN-Repeater im Obergeschoss",
            "LAN-Kabel Cat. 6, 10 m, weiss",
            "Zusätzliche Arbeitszeit 15 min",
            "TV-Box mit Netzwerk verbunden",
            "Drucker ins WLAN eingebunden",
            "Smartphone E-Mail eingerichtet",
            "Kabelkanal 2 m inkl. Montage",
            "Firmware-Update Mesh-System",
            "Rabatt Stammkundschaft 10 %",
        ];
        let items = descriptions
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let kind = if i == 9 {
                    LineItemKind::Discount
                } else if i == 0 {
                    LineItemKind::Service
                } else {
                    LineItemKind::ExtraService
                };
                let minor = if i == 9 {
                    -2_000
                } else {
                    2_500 + i as i64 * 100
                };
                item(kind, d, 1, minor)
            })
            .collect();
        Quote::new(
            job(),
            3,
            items,
            Some("Mehr Geräte als bei der Buchung angegeben".into()),
        )
        .unwrap()
    }

    fn pk(key: &Ed25519KeyPair) -> Vec<u8> {
        key.public_key().as_ref().to_vec()
    }

    #[test]
    fn round_trip_and_verify() {
        let k = key();
        let q = quote(2);
        for action in [ConsentAction::Propose, ConsentAction::Accept] {
            let p = sign_payload(action, Party::Friend, &q, &k).unwrap();
            let encoded = p.encode();
            let decoded = ConsentPayload::decode(&encoded).unwrap();
            assert_eq!(decoded, p);
            assert_eq!(decoded.encode(), encoded);
            let v = verify(&decoded, job(), Party::Friend, &pk(&k), Some(2)).unwrap();
            assert_eq!(
                v,
                VerifiedConsent {
                    action,
                    signer: Party::Friend,
                    quote: q.clone()
                }
            );
            assert_eq!(decoded.format_version(), FORMAT_VERSION);
            assert_eq!(decoded.job_id(), job());
        }
    }

    #[test]
    fn ten_items_fit_a_qr_code() {
        let q = ten_item_quote();
        assert_eq!(
            validate_quote(
                &q,
                Currency::Chf,
                Money::chf(2_500),
                &QuotePolicy::default()
            ),
            Ok(())
        );
        let k = key();
        let encoded = sign_payload(ConsentAction::Accept, Party::Customer, &q, &k)
            .unwrap()
            .encode();
        println!("10-item consent payload: {} characters", encoded.len());
        assert!(encoded.len() <= 1024, "{} characters", encoded.len());
        assert!(
            encoded
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
    }

    #[test]
    fn tampering_is_a_bad_signature() {
        let k = key();
        let p = sign_payload(ConsentAction::Propose, Party::Friend, &quote(1), &k).unwrap();
        let mut forged = p.clone();
        forged.quote.items[0].unit_price = Money::chf(99_900);
        forged.quote.total = crate::quote::sum_items(&forged.quote.items).unwrap();
        assert_eq!(
            verify(&forged, job(), Party::Friend, &pk(&k), None),
            Err(ConsentError::BadSignature)
        );
        // Turning the Friend's proposal into a customer's acceptance does not verify either.
        let mut forged = p;
        forged.action = ConsentAction::Accept;
        assert_eq!(
            verify(&forged, job(), Party::Friend, &pk(&k), None)
                .unwrap_err()
                .code(),
            "bad_signature"
        );
    }

    #[test]
    fn claims_are_checked() {
        let k = key();
        let p = sign_payload(ConsentAction::Propose, Party::Friend, &quote(2), &k).unwrap();
        let other_job = JobId(Uuid::from_u128(99));
        assert_eq!(
            verify(&p, other_job, Party::Friend, &pk(&k), None),
            Err(ConsentError::WrongJob)
        );
        assert_eq!(
            verify(&p, job(), Party::Friend, &pk(&key()), None),
            Err(ConsentError::WrongKey)
        );
        assert_eq!(
            verify(&p, job(), Party::Friend, &[0u8; 5], None),
            Err(ConsentError::WrongKey)
        );
        assert_eq!(
            verify(&p, job(), Party::Customer, &pk(&k), None)
                .unwrap_err()
                .code(),
            "wrong_signer"
        );
        assert_eq!(
            verify(&p, job(), Party::Friend, &pk(&k), Some(3)),
            Err(ConsentError::StaleVersion {
                version: 2,
                latest: 3
            })
        );
        assert!(verify(&p, job(), Party::Friend, &pk(&k), Some(1)).is_ok());
    }

    #[test]
    fn bad_input_is_typed() {
        let k = key();
        let p = sign_payload(ConsentAction::Propose, Party::Friend, &quote(1), &k).unwrap();
        let bytes = URL_SAFE_NO_PAD.decode(p.encode()).unwrap();
        let enc = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        let code = |s: &str| ConsentPayload::decode(s).unwrap_err().code();

        let mut v2 = bytes.clone();
        v2[0] = 2;
        assert_eq!(
            ConsentPayload::decode(&enc(&v2)),
            Err(ConsentError::UnsupportedFormat(2))
        );
        assert_eq!(code(&enc(&bytes[..bytes.len() - 1])), "malformed_payload");
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(
            ConsentPayload::decode(&enc(&long)),
            Err(ConsentError::Malformed("trailing bytes"))
        );
        assert_eq!(code(""), "malformed_payload");
        assert_eq!(code("not base64!"), "malformed_payload");
        assert_eq!(code(&format!("{}=", p.encode())), "malformed_payload");
        assert_eq!(
            ConsentPayload::decode(&"A".repeat(MAX_ENCODED_LEN + 1)),
            Err(ConsentError::TooLarge {
                len: MAX_ENCODED_LEN + 1,
                max: MAX_ENCODED_LEN
            })
        );
        // A length prefix pointing far past the end.
        let mut huge_len = vec![FORMAT_VERSION, 1, 1];
        huge_len.extend_from_slice(&[0; 16]);
        huge_len.extend_from_slice(&1u32.to_be_bytes());
        huge_len.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 1, 1]);
        huge_len.extend_from_slice(&[0; 8]);
        huge_len.extend_from_slice(&u16::MAX.to_be_bytes());
        assert_eq!(
            ConsentPayload::decode(&enc(&huge_len)),
            Err(ConsentError::Malformed("truncated"))
        );
    }

    #[test]
    fn unencodable_quotes_are_refused_when_signing() {
        let k = key();
        let mut q = quote(1);
        q.items[0].kind = LineItemKind::Unknown;
        assert_eq!(
            sign_payload(ConsentAction::Propose, Party::Friend, &q, &k)
                .unwrap_err()
                .code(),
            "unencodable"
        );
        let q = quote(1);
        assert_eq!(
            sign_payload(ConsentAction::Unknown, Party::Friend, &q, &k)
                .unwrap_err()
                .code(),
            "unencodable"
        );
        assert_eq!(
            sign_payload(ConsentAction::Propose, Party::Unknown, &q, &k)
                .unwrap_err()
                .code(),
            "unencodable"
        );
        let mut q = quote(1);
        q.items[0].description = "x".repeat(5_000);
        assert_eq!(
            sign_payload(ConsentAction::Propose, Party::Friend, &q, &k)
                .unwrap_err()
                .code(),
            "payload_too_large"
        );
        let mut q = quote(1);
        q.items[0].description = "x".repeat(70_000);
        assert_eq!(
            sign_payload(ConsentAction::Propose, Party::Friend, &q, &k)
                .unwrap_err()
                .code(),
            "unencodable"
        );
    }

    #[test]
    fn the_layout_is_stable() {
        // The signed message for a fixed quote is pinned: changing the layout must be a new
        // format version, never a silent change that breaks payloads already in outboxes.
        let q = Quote::new(
            JobId(Uuid::from_u128(1)),
            1,
            vec![item(LineItemKind::Service, "ab", 1, 8900)],
            None,
        )
        .unwrap();
        let msg = signed_message(ConsentAction::Propose, Party::Friend, &q).unwrap();
        let mut expected = DOMAIN_TAG.to_vec();
        expected.extend_from_slice(&[1, 1]);
        expected.extend_from_slice(&1u128.to_be_bytes());
        expected.extend_from_slice(&[0, 0, 0, 1]);
        expected.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0x22, 0xc4]);
        expected.push(1);
        expected.extend_from_slice(&[1, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0x22, 0xc4]);
        expected.extend_from_slice(&[0, 2, b'a', b'b', 0]);
        assert_eq!(msg, expected);
        for n in 0..10 {
            assert_eq!(encoded_len(n), URL_SAFE_NO_PAD.encode(vec![0; n]).len());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// No single-byte change to the binary content verifies.
        #[test]
        fn flipped_bytes_never_verify(
            pick in any::<prop::sample::Index>(),
            mask in 1u8..=255,
            accept in any::<bool>(),
        ) {
            let k = key();
            let action = if accept { ConsentAction::Accept } else { ConsentAction::Propose };
            let p = sign_payload(action, Party::Customer, &ten_item_quote(), &k).unwrap();
            let mut bytes = URL_SAFE_NO_PAD.decode(p.encode()).unwrap();
            let i = pick.index(bytes.len());
            bytes[i] ^= mask;
            let result = ConsentPayload::decode(&URL_SAFE_NO_PAD.encode(&bytes))
                .and_then(|p| verify(&p, job(), Party::Customer, &pk(&k), None));
            prop_assert!(result.is_err(), "byte {} ^ {:#x} verified", i, mask);
        }

        /// No single-character change to the string verifies.
        #[test]
        fn changed_characters_never_verify(
            pick in any::<prop::sample::Index>(),
            replacement in proptest::char::range('!', '~'),
        ) {
            let k = key();
            let encoded = sign_payload(ConsentAction::Accept, Party::Friend, &quote(4), &k)
                .unwrap()
                .encode();
            let mut chars: Vec<char> = encoded.chars().collect();
            let i = pick.index(chars.len());
            prop_assume!(chars[i] != replacement);
            chars[i] = replacement;
            let tampered: String = chars.into_iter().collect();
            let result = ConsentPayload::decode(&tampered)
                .and_then(|p| verify(&p, job(), Party::Friend, &pk(&k), None));
            prop_assert!(result.is_err(), "char {} -> {:?} verified", i, replacement);
        }

        /// Arbitrary input never panics the decoder.
        #[test]
        fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = ConsentPayload::decode(&URL_SAFE_NO_PAD.encode(&bytes));
            let mut versioned = bytes;
            versioned.insert(0, FORMAT_VERSION);
            let _ = ConsentPayload::decode(&URL_SAFE_NO_PAD.encode(&versioned));
        }
    }
}
