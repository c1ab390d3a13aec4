//! Cluster authentication: every node derives the same Ed25519 key pair from the cluster secret
//! and uses it for mutual TLS 1.3 inside QUIC. Each side accepts the peer only if the peer's
//! handshake signature verifies under the secret-derived public key, i.e. only if the peer holds
//! the private key, i.e. the secret. A node without it fails the handshake, so it can neither
//! join, gossip, claim slots nor open data streams.
//!
//! Limits (also in docs/membership.md): every member holds the same key, so members are not
//! told apart cryptographically (any member can speak for any node id); the public key is sent
//! to anyone who connects, so a low-entropy secret can be guessed offline (the PBKDF2 stretch
//! below only slows that down); rotating the secret means restarting every node.

use std::fmt;
use std::num::NonZeroU32;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};

/// TLS server name and ALPN used between nodes.
pub const SERVER_NAME: &str = "autocache-cluster";
pub const ALPN: &[u8] = b"autocache-cluster/1";

/// PBKDF2 rounds for the secret; a constant because every node must derive the same key.
const KDF_ROUNDS: u32 = 20_000;
const KDF_SALT: &[u8] = b"autocache cluster key v1";

/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410), followed by the 32-byte key.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];
/// DER prefix of an Ed25519 PKCS#8 v1 private key, followed by the 32-byte seed.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cluster secret is empty")]
    EmptySecret,
    #[error("key derivation failed")]
    Key,
    #[error("certificate: {0}")]
    Cert(#[from] rcgen::Error),
    #[error("tls: {0}")]
    Tls(#[from] rustls::Error),
    #[error("quic crypto: {0}")]
    Quic(String),
}

/// The secret-derived key and certificate of a cluster.
#[derive(Clone)]
pub struct ClusterCredential {
    public_key: [u8; 32],
    pkcs8: Vec<u8>,
    cert: CertificateDer<'static>,
}

impl fmt::Debug for ClusterCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterCredential")
            .field("public_key", &hex(&self.public_key))
            .finish_non_exhaustive()
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

impl ClusterCredential {
    pub fn from_secret(secret: &str) -> Result<ClusterCredential, AuthError> {
        if secret.is_empty() {
            return Err(AuthError::EmptySecret);
        }
        let mut seed = [0u8; 32];
        ring::pbkdf2::derive(
            ring::pbkdf2::PBKDF2_HMAC_SHA256,
            NonZeroU32::new(KDF_ROUNDS).ok_or(AuthError::Key)?,
            KDF_SALT,
            secret.as_bytes(),
            &mut seed,
        );
        let pair = ring::signature::Ed25519KeyPair::from_seed_unchecked(&seed)
            .map_err(|_| AuthError::Key)?;
        let mut public_key = [0u8; 32];
        public_key.copy_from_slice(ring::signature::KeyPair::public_key(&pair).as_ref());
        let mut pkcs8 = ED25519_PKCS8_PREFIX.to_vec();
        pkcs8.extend_from_slice(&seed);
        let key = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(
            &PrivatePkcs8KeyDer::from(pkcs8.clone()),
            &rcgen::PKCS_ED25519,
        )?;
        let params = rcgen::CertificateParams::new(vec![SERVER_NAME.to_string()])?;
        let cert = params.self_signed(&key)?.der().clone();
        Ok(ClusterCredential {
            public_key,
            pkcs8,
            cert,
        })
    }

    fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.pkcs8.clone()))
    }

    fn verifier(&self) -> Arc<PinnedKey> {
        Arc::new(PinnedKey {
            public_key: self.public_key,
        })
    }

    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    /// QUIC server side: requires a client certificate proven by the cluster key.
    pub fn server_config(&self) -> Result<quinn::ServerConfig, AuthError> {
        let mut tls = rustls::ServerConfig::builder_with_provider(Self::provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(self.verifier())
            .with_single_cert(vec![self.cert.clone()], self.key())?;
        tls.alpn_protocols = vec![ALPN.to_vec()];
        let quic = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
            .map_err(|e| AuthError::Quic(e.to_string()))?;
        Ok(quinn::ServerConfig::with_crypto(Arc::new(quic)))
    }

    /// QUIC client side: presents the cluster certificate, accepts only a server proven by the
    /// cluster key.
    pub fn client_config(&self) -> Result<quinn::ClientConfig, AuthError> {
        let mut tls = rustls::ClientConfig::builder_with_provider(Self::provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(self.verifier())
            .with_client_auth_cert(vec![self.cert.clone()], self.key())?;
        tls.alpn_protocols = vec![ALPN.to_vec()];
        let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
            .map_err(|e| AuthError::Quic(e.to_string()))?;
        Ok(quinn::ClientConfig::new(Arc::new(quic)))
    }
}

/// Accepts a peer iff its TLS 1.3 handshake signature verifies under the cluster public key.
/// The certificate itself is only checked to carry that key: the signature is what proves
/// possession, and it is verified against the pinned key, never against the presented cert.
#[derive(Debug)]
struct PinnedKey {
    public_key: [u8; 32],
}

impl PinnedKey {
    fn check_cert(&self, cert: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        let mut spki = ED25519_SPKI_PREFIX.to_vec();
        spki.extend_from_slice(&self.public_key);
        if cert
            .as_ref()
            .windows(spki.len())
            .any(|w| w == spki.as_slice())
        {
            Ok(())
        } else {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify(
        &self,
        message: &[u8],
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verify_raw(message, dss.scheme, dss.signature())
    }

    fn verify_raw(
        &self,
        message: &[u8],
        scheme: SignatureScheme,
        signature: &[u8],
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        if scheme != SignatureScheme::ED25519 {
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::BadSignature,
            ));
        }
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &self.public_key)
            .verify(message, signature)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadSignature))?;
        Ok(HandshakeSignatureValid::assertion())
    }

    fn no_tls12() -> rustls::Error {
        rustls::Error::General("the cluster transport uses TLS 1.3 only".into())
    }
}

impl ServerCertVerifier for PinnedKey {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check_cert(end_entity)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(Self::no_tls12())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        _cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verify(message, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

impl ClientCertVerifier for PinnedKey {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.check_cert(end_entity)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(Self::no_tls12())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        _cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verify(message, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_secret_same_key_different_secret_different_key() {
        let a = ClusterCredential::from_secret("correct horse").expect("cred");
        let b = ClusterCredential::from_secret("correct horse").expect("cred");
        let c = ClusterCredential::from_secret("battery staple").expect("cred");
        assert_eq!(a.public_key, b.public_key);
        assert_ne!(a.public_key, c.public_key);
        assert!(a.verifier().check_cert(&b.cert).is_ok());
        assert!(a.verifier().check_cert(&c.cert).is_err());
        assert!(ClusterCredential::from_secret("").is_err());
        assert!(a.server_config().is_ok());
        assert!(a.client_config().is_ok());
    }

    #[test]
    fn signatures_verify_only_under_the_cluster_key() {
        let a = ClusterCredential::from_secret("correct horse").expect("cred");
        let c = ClusterCredential::from_secret("battery staple").expect("cred");
        let sign = |cred: &ClusterCredential, msg: &[u8]| {
            let pair = ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&cred.pkcs8)
                .expect("pair");
            pair.sign(msg).as_ref().to_vec()
        };
        let v = a.verifier();
        let ed = SignatureScheme::ED25519;
        assert!(
            v.verify_raw(b"transcript", ed, &sign(&a, b"transcript"))
                .is_ok()
        );
        assert!(
            v.verify_raw(b"transcript", ed, &sign(&c, b"transcript"))
                .is_err()
        );
        assert!(
            v.verify_raw(b"other", ed, &sign(&a, b"transcript"))
                .is_err()
        );
        let sig = sign(&a, b"transcript");
        assert!(
            v.verify_raw(b"transcript", SignatureScheme::ECDSA_NISTP256_SHA256, &sig)
                .is_err()
        );
    }
}
