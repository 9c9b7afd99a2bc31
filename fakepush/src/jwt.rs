//! Verifying compact JWS (JWT) signatures with the public halves of the test-only keys, as the
//! gateways do: RS256 for the FCM service-account assertion, ES256 for the APNs provider token.
//! Public so tests can check a token they captured themselves (e.g. that a tampered one fails).

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::signature::{ECDSA_P256_SHA256_FIXED, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
use serde_json::Value;

use crate::{apns, fcm};

/// Verifies an RS256 JWT against the test FCM key's public half ([`fcm::PUBLIC_KEY_PEM`]);
/// returns its (header, claims). Checks the signature only, not the claims.
pub fn verify_rs256(jwt: &str) -> Result<(Value, Value), String> {
    let public = pem_decode(fcm::PUBLIC_KEY_PEM, "RSA PUBLIC KEY")?;
    verify(jwt, |input, sig| {
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &public)
            .verify(input, sig)
            .is_ok()
    })
}

/// Verifies an ES256 JWT against the test APNs key's public half ([`apns::PUBLIC_KEY_PEM`]);
/// returns its (header, claims). Checks the signature only, not the claims.
pub fn verify_es256(jwt: &str) -> Result<(Value, Value), String> {
    let spki = pem_decode(apns::PUBLIC_KEY_PEM, "PUBLIC KEY")?;
    // A P-256 SubjectPublicKeyInfo is 91 bytes and ends with the 65-byte uncompressed point
    // (0x04 ‖ x ‖ y) that ring verifies with.
    let point = match spki.len().checked_sub(65) {
        Some(26) if spki[26] == 0x04 => &spki[26..],
        _ => return Err("the test APNs public key is not a P-256 SubjectPublicKeyInfo".into()),
    };
    verify(jwt, |input, sig| {
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
            .verify(input, sig)
            .is_ok()
    })
}

/// Splits a compact JWS, checks its signature with `valid(signing input, signature)`, and parses
/// header and claims.
fn verify(jwt: &str, valid: impl Fn(&[u8], &[u8]) -> bool) -> Result<(Value, Value), String> {
    let mut parts = jwt.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("not a compact JWS (three dot-separated parts)".into());
    };
    let sig = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| "signature is not base64url")?;
    if !valid(format!("{h}.{c}").as_bytes(), &sig) {
        return Err("signature does not verify".into());
    }
    let part = |name: &str, b64: &str| -> Result<Value, String> {
        let bytes = URL_SAFE_NO_PAD
            .decode(b64)
            .map_err(|_| format!("{name} is not base64url"))?;
        serde_json::from_slice(&bytes).map_err(|_| format!("{name} is not JSON"))
    };
    Ok((part("header", h)?, part("claims", c)?))
}

/// The DER bytes of the first `-----BEGIN {label}-----` block in `pem`.
pub(crate) fn pem_decode(pem: &str, label: &str) -> Result<Vec<u8>, String> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem
        .find(&begin)
        .ok_or_else(|| format!("no {label} block"))?
        + begin.len();
    let stop = pem[start..]
        .find(&end)
        .ok_or_else(|| format!("unterminated {label} block"))?
        + start;
    let body: String = pem[start..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    STANDARD
        .decode(body)
        .map_err(|_| format!("{label} block is not base64"))
}
