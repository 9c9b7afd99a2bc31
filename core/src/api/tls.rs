//! TLS policy: rustls with the ring provider only (no OpenSSL, no aws-lc), trusting the bundled
//! Mozilla root set (`webpki-roots`), optionally pinned to the backend's public key.
//!
//! Why bundled roots rather than the platform store: on Android, rustls-platform-verifier needs a
//! JNI initialisation with an app `Context` that uniffi cannot give us without an extra JNI export,
//! and iOS and Android both already ignore user-installed CAs for apps by default. Bundled roots
//! behave the same on every platform and in host tests. The cost: roots are updated with the app,
//! and an enterprise proxy CA installed on the device is not trusted — use a pin or ship the CA.
//!
//! Pins are base64 SHA-256 digests of the server certificate's SubjectPublicKeyInfo (as in HPKP),
//! checked after normal chain validation, so a pin narrows trust and never widens it.

use crate::error::CoreError;
use base64::Engine;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, DigitallySignedStruct, Error as TlsError, RootCertStore, SignatureScheme,
};
use std::sync::Arc;

/// Builds the client TLS configuration.
pub fn client_config(pins: &[String]) -> Result<ClientConfig, CoreError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let roots = Arc::new(roots);
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| CoreError::Tls(e.to_string()))?;
    if pins.is_empty() {
        return Ok(builder.with_root_certificates(roots).with_no_client_auth());
    }
    let inner = WebPkiServerVerifier::builder_with_provider(roots, provider)
        .build()
        .map_err(|e| CoreError::Tls(e.to_string()))?;
    let pins = pins
        .iter()
        .map(|p| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(p.trim())
                .map_err(|_| CoreError::InvalidInput(format!("pin {p:?} is not base64")))?;
            <[u8; 32]>::try_from(bytes.as_slice())
                .map_err(|_| CoreError::InvalidInput(format!("pin {p:?} is not a SHA-256 digest")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(builder
        .dangerous() // a verifier that adds a check on top of the standard one
        .with_custom_certificate_verifier(Arc::new(PinningVerifier { inner, pins }))
        .with_no_client_auth())
}

/// The base64 SHA-256 pin of a DER certificate's public key (for configuration and tests).
pub fn spki_pin(cert_der: &[u8]) -> Result<String, CoreError> {
    let der = CertificateDer::from(cert_der.to_vec());
    let cert = webpki::EndEntityCert::try_from(&der)
        .map_err(|e| CoreError::Tls(format!("certificate: {e}")))?;
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        cert.subject_public_key_info().as_ref(),
    );
    Ok(base64::engine::general_purpose::STANDARD.encode(digest.as_ref()))
}

#[derive(Debug)]
struct PinningVerifier {
    inner: Arc<WebPkiServerVerifier>,
    pins: Vec<[u8; 32]>,
}

impl ServerCertVerifier for PinningVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        let verified = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        let cert = webpki::EndEntityCert::try_from(end_entity)
            .map_err(|_| TlsError::General("unparsable server certificate".into()))?;
        let digest = ring::digest::digest(
            &ring::digest::SHA256,
            cert.subject_public_key_info().as_ref(),
        );
        if self.pins.iter().any(|p| p.as_slice() == digest.as_ref()) {
            Ok(verified)
        } else {
            Err(TlsError::General(
                "server key does not match the configured pin".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_build_and_bad_pins_are_refused() {
        client_config(&[]).unwrap();
        client_config(&[base64::engine::general_purpose::STANDARD.encode([1u8; 32])]).unwrap();
        assert!(matches!(
            client_config(&["not base64!".into()]),
            Err(CoreError::InvalidInput(_))
        ));
        assert!(matches!(
            client_config(&["AAAA".into()]),
            Err(CoreError::InvalidInput(_))
        ));
    }
}
