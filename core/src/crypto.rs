//! Field encryption at rest: AES-256-GCM (ring) under the host-supplied key, with the record id and
//! field name bound as associated data, so a ciphertext copied to another row or column fails to
//! open instead of showing someone else's data.
//!
//! Layout of a sealed field: `[format version 1][12-byte random nonce][ciphertext ‖ 16-byte tag]`.

use crate::error::CoreError;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

const FORMAT: u8 = 1;

/// Seals and opens personal fields.
pub struct FieldCipher {
    key: LessSafeKey,
    /// Keyed digests (HMAC-SHA256 under a key derived from the data key): equality of sealed
    /// values without opening them, and no dictionary attack on low-entropy fields.
    mac: hmac::Key,
    rng: SystemRandom,
}

fn aad(record: &str, field: &str) -> Vec<u8> {
    let mut a = Vec::with_capacity(record.len() + field.len() + 16);
    a.extend_from_slice(b"friendcore/v1\0");
    a.extend_from_slice(record.as_bytes());
    a.push(0);
    a.extend_from_slice(field.as_bytes());
    a
}

impl FieldCipher {
    /// A cipher for a 32-byte key.
    pub fn new(key: &[u8]) -> Result<FieldCipher, CoreError> {
        if key.len() != 32 {
            return Err(CoreError::InvalidInput(format!(
                "data key must be 32 bytes, got {}",
                key.len()
            )));
        }
        let unbound = UnboundKey::new(&AES_256_GCM, key)
            .map_err(|_| CoreError::InvalidInput("data key".into()))?;
        let derived = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, key),
            b"friendcore/v1 digest key",
        );
        Ok(FieldCipher {
            key: LessSafeKey::new(unbound),
            mac: hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()),
            rng: SystemRandom::new(),
        })
    }

    /// A keyed digest of `value` for `field`: equal inputs give equal digests under the same data
    /// key, and nothing about the input can be learned from it without the key.
    pub fn digest(&self, field: &str, value: &[u8]) -> Vec<u8> {
        let mut ctx = hmac::Context::with_key(&self.mac);
        ctx.update(field.as_bytes());
        ctx.update(&[0]);
        ctx.update(value);
        ctx.sign().as_ref().to_vec()
    }

    /// [`FieldCipher::seal`] for text.
    pub fn seal_text(&self, record: &str, field: &str, text: &str) -> Result<Vec<u8>, CoreError> {
        self.seal(record, field, text.as_bytes())
    }

    /// [`FieldCipher::open`] for text sealed with [`FieldCipher::seal_text`].
    pub fn open_text(&self, record: &str, field: &str, sealed: &[u8]) -> Result<String, CoreError> {
        String::from_utf8(self.open(record, field, sealed)?)
            .map_err(|_| CoreError::Corrupt(format!("sealed {field} is not text")))
    }

    /// Encrypts `plaintext` for `field` of `record`.
    pub fn seal(&self, record: &str, field: &str, plaintext: &[u8]) -> Result<Vec<u8>, CoreError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| CoreError::Storage("no system randomness".into()))?;
        let mut buf = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(record, field)),
                &mut buf,
            )
            .map_err(|_| CoreError::Storage("encryption failed".into()))?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + buf.len());
        out.push(FORMAT);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        Ok(out)
    }

    /// Decrypts a sealed field. A wrong key, another record's or field's ciphertext, or tampering
    /// all give [`CoreError::WrongKey`] — never garbage.
    pub fn open(&self, record: &str, field: &str, sealed: &[u8]) -> Result<Vec<u8>, CoreError> {
        if sealed.len() < 1 + NONCE_LEN + AES_256_GCM.tag_len() || sealed[0] != FORMAT {
            return Err(CoreError::Corrupt(format!("sealed {field} malformed")));
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&sealed[1..1 + NONCE_LEN]);
        let mut buf = sealed[1 + NONCE_LEN..].to_vec();
        let plain = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(record, field)),
                &mut buf,
            )
            .map_err(|_| CoreError::WrongKey)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_binding() {
        let c = FieldCipher::new(&[7u8; 32]).unwrap();
        let sealed = c.seal("job-1", "address", b"Langstrasse 1").unwrap();
        assert_eq!(
            c.open("job-1", "address", &sealed).unwrap(),
            b"Langstrasse 1"
        );
        assert!(!sealed.windows(5).any(|w| w == b"Langs"));
        // Another record, another field, another key, a flipped bit: all refused.
        assert!(matches!(
            c.open("job-2", "address", &sealed),
            Err(CoreError::WrongKey)
        ));
        assert!(matches!(
            c.open("job-1", "contact", &sealed),
            Err(CoreError::WrongKey)
        ));
        let other = FieldCipher::new(&[8u8; 32]).unwrap();
        assert!(matches!(
            other.open("job-1", "address", &sealed),
            Err(CoreError::WrongKey)
        ));
        let mut flipped = sealed.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(matches!(
            c.open("job-1", "address", &flipped),
            Err(CoreError::WrongKey)
        ));
        assert!(matches!(
            c.open("job-1", "address", &sealed[..10]),
            Err(CoreError::Corrupt(_))
        ));
    }

    #[test]
    fn nonces_differ() {
        let c = FieldCipher::new(&[7u8; 32]).unwrap();
        assert_ne!(
            c.seal("r", "f", b"x").unwrap(),
            c.seal("r", "f", b"x").unwrap()
        );
    }

    #[test]
    fn key_length_is_checked() {
        assert!(matches!(
            FieldCipher::new(&[0u8; 16]),
            Err(CoreError::InvalidInput(_))
        ));
    }
}
