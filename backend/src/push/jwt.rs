//! Compact JWS (JWT) signing with ring, and reading PEM — the few lines both clients need.
//!
//! PEM is decoded here rather than with a crate: it is a base64 body between two marker lines,
//! `base64` is already a dependency, and the keys we read (Google's service-account
//! `private_key`, Apple's `.p8`) are a single PKCS#8 `PRIVATE KEY` block.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, RSA_PKCS1_SHA256, RsaKeyPair};

use super::PushError;

/// The DER bytes of the first `-----BEGIN {label}-----` block in `pem`.
pub(crate) fn pem_decode(pem: &str, label: &str) -> Result<Vec<u8>, PushError> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem
        .find(&begin)
        .ok_or_else(|| PushError::Key(format!("no {label} block")))?
        + begin.len();
    let stop = pem[start..]
        .find(&end)
        .ok_or_else(|| PushError::Key(format!("unterminated {label} block")))?
        + start;
    let body: String = pem[start..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    STANDARD
        .decode(body)
        .map_err(|_| PushError::Key(format!("{label} block is not base64")))
}

/// base64url without padding, as JWTs use.
pub(crate) fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn signing_input(header: &serde_json::Value, claims: &serde_json::Value) -> String {
    format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    )
}

/// An RS256 JWT (RSASSA-PKCS1-v1_5 with SHA-256).
pub(crate) fn sign_rs256(
    key: &RsaKeyPair,
    header: &serde_json::Value,
    claims: &serde_json::Value,
) -> Result<String, PushError> {
    let input = signing_input(header, claims);
    let mut sig = vec![0u8; key.public().modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        input.as_bytes(),
        &mut sig,
    )
    .map_err(|_| PushError::Signing)?;
    Ok(format!("{input}.{}", b64url(&sig)))
}

/// An ES256 JWT (ECDSA P-256 with SHA-256, the 64-byte r‖s signature JWTs use); the key must have
/// been loaded with `ECDSA_P256_SHA256_FIXED_SIGNING`.
pub(crate) fn sign_es256(
    key: &EcdsaKeyPair,
    header: &serde_json::Value,
    claims: &serde_json::Value,
) -> Result<String, PushError> {
    let input = signing_input(header, claims);
    let sig = key
        .sign(&SystemRandom::new(), input.as_bytes())
        .map_err(|_| PushError::Signing)?;
    Ok(format!("{input}.{}", b64url(sig.as_ref())))
}
