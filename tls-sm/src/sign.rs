//! SM2 signing for TLS 1.3 `CertificateVerify` (`sm2sig_sm3`, 0x0708) and the key provider
//! that loads SM2 keys beside ring's.
//!
//! The signature is SM2 with SM3 (GB/T 32918.2) over the RFC 8446 §4.4.3 content, with the
//! distinguishing identifier [`TLS13_DISTID`] (RFC 8998 §3.2.1), DER-encoded as
//! `SEQUENCE { r INTEGER, s INTEGER }`. Nonces are hedged: RFC 6979 with SM3, mixed with
//! fresh bytes from the operating system.

use std::fmt;
use std::sync::Arc;

use getrandom::SysRng;
use rustls::crypto::KeyProvider;
use rustls::pki_types::{PrivateKeyDer, SubjectPublicKeyInfoDer};
use rustls::sign::{Signer, SigningKey};
use rustls::{Error, SignatureAlgorithm, SignatureScheme};
use sm2::dsa::signature::RandomizedSigner;
use sm2::pkcs8::{DecodePrivateKey, EncodePublicKey};

/// `sm2sig_sm3` in the TLS SignatureScheme registry (RFC 8998 §3.2).
pub const SM2SIG_SM3: SignatureScheme = SignatureScheme::Unknown(0x0708);

/// The SM2 distinguishing identifier of TLS 1.3 handshake signatures (`CertificateVerify`),
/// fixed by RFC 8998 §3.2.1. Tongsuo (`HANDSHAKE_SM2_ID`), GmSSL (`TLS13_SM2_ID`) and
/// OpenSSL's TLS stack use the same string.
pub const TLS13_DISTID: &str = "TLSv1.3+GM+Cipher+Suite";

/// The SM2 distinguishing identifier of certificate signatures: the default ID of
/// GB/T 35276 / GM/T 0009, which OpenSSL, Tongsuo (`CERTVRIFY_SM2_ID`) and GmSSL use when
/// signing and verifying X.509 certificates.
pub const CERT_DISTID: &str = "1234567812345678";

/// SM2 has no TLS 1.2 `SignatureAlgorithm`. rustls asks a key for one only to match it
/// against TLS 1.2 suites; this value from the private-use range (224–255, RFC 5246 §12)
/// matches none, so an SM2 key is never chosen for TLS 1.2.
pub const SM2_SIGNATURE_ALGORITHM: SignatureAlgorithm = SignatureAlgorithm::Unknown(0xE0);

/// An SM2 private key that signs TLS 1.3 handshakes with `sm2sig_sm3`.
///
/// The `sm2` crate's `SigningKey` caches `Z` (about 45 µs to compute) but does not zeroize its
/// scalar on drop; the key lives as long as the TLS configuration that holds it.
pub struct Sm2SigningKey {
    key: Arc<sm2::dsa::SigningKey>,
    spki: Vec<u8>,
}

impl Sm2SigningKey {
    /// Wraps an SM2 secret key for TLS 1.3 signing.
    pub fn new(secret: &sm2::SecretKey) -> Result<Self, Error> {
        let key = sm2::dsa::SigningKey::new(TLS13_DISTID, secret)
            .map_err(|_| Error::General("SM2 signing key rejected".into()))?;
        let spki = secret
            .public_key()
            .to_public_key_der()
            .map_err(|_| Error::General("SM2 public key does not encode".into()))?
            .into_vec();
        Ok(Self { key: Arc::new(key), spki })
    }
}

impl fmt::Debug for Sm2SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sm2SigningKey").finish_non_exhaustive()
    }
}

impl SigningKey for Sm2SigningKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        offered.contains(&SM2SIG_SM3).then(|| Box::new(Sm2Signer { key: Arc::clone(&self.key) }) as Box<dyn Signer>)
    }

    fn public_key(&self) -> Option<SubjectPublicKeyInfoDer<'_>> {
        Some(SubjectPublicKeyInfoDer::from(&self.spki[..]))
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        SM2_SIGNATURE_ALGORITHM
    }
}

/// One `sm2sig_sm3` signature operation.
struct Sm2Signer {
    key: Arc<sm2::dsa::SigningKey>,
}

impl fmt::Debug for Sm2Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sm2Signer").finish_non_exhaustive()
    }
}

impl Signer for Sm2Signer {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        let sig: sm2::dsa::Signature = self
            .key
            .try_sign_with_rng(&mut SysRng, message)
            .map_err(|_| Error::General("SM2 signing failed".into()))?;
        Ok(sig.to_der().to_vec())
    }

    fn scheme(&self) -> SignatureScheme {
        SM2SIG_SM3
    }
}

/// Loads an SM2 private key (PKCS#8 `PrivateKeyInfo` with `id-ecPublicKey` and the SM2 curve
/// OID 1.2.156.10197.1.301, as OpenSSL 3 and [`crate::certs`] write it) for TLS 1.3 signing.
///
/// SEC1 and PKCS#1 keys are refused: a SEC1 key may omit its curve, and an SM2 key must not be
/// confused with a P-256 one.
pub fn sm2_signing_key(key_der: &PrivateKeyDer<'_>) -> Result<Arc<dyn SigningKey>, Error> {
    let PrivateKeyDer::Pkcs8(pkcs8) = key_der else {
        return Err(Error::General("SM2 keys are read from PKCS#8 only".into()));
    };
    let secret = sm2::SecretKey::from_pkcs8_der(pkcs8.secret_pkcs8_der())
        .map_err(|_| Error::General("not an SM2 PKCS#8 private key".into()))?;
    Ok(Arc::new(Sm2SigningKey::new(&secret)?))
}

/// Loads SM2 keys itself and hands every other key to ring's provider, so one
/// `CryptoProvider` serves SM2 and ECDSA/RSA/Ed25519 certificates alike.
#[derive(Debug)]
pub struct SmKeyProvider;

/// The one key provider of [`crate::provider`].
pub static SM_KEY_PROVIDER: SmKeyProvider = SmKeyProvider;

impl KeyProvider for SmKeyProvider {
    fn load_private_key(&self, key_der: PrivateKeyDer<'static>) -> Result<Arc<dyn SigningKey>, Error> {
        match sm2_signing_key(&key_der) {
            Ok(key) => Ok(key),
            Err(_) => rustls::crypto::ring::sign::any_supported_type(&key_der),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use elliptic_curve::Generate;
    use rustls::pki_types::PrivatePkcs8KeyDer;
    use sm2::dsa::signature::Verifier;
    use sm2::elliptic_curve;
    use sm2::pkcs8::EncodePrivateKey;

    fn fresh() -> sm2::SecretKey {
        sm2::SecretKey::try_generate_from_rng(&mut SysRng).expect("rng")
    }

    #[test]
    fn signs_with_the_tls13_distid_only() {
        let secret = fresh();
        let der = secret.to_pkcs8_der().expect("pkcs8");
        let key =
            sm2_signing_key(&PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der.as_bytes().to_vec()))).expect("load");
        assert!(key.choose_scheme(&[SignatureScheme::ED25519]).is_none());
        let signer = key.choose_scheme(&[SignatureScheme::ED25519, SM2SIG_SM3]).expect("sm2sig_sm3 offered");
        assert_eq!(signer.scheme(), SM2SIG_SM3);
        let sig_der = signer.sign(b"transcript").expect("sign");
        let sig = sm2::dsa::Signature::from_der(&sig_der).expect("DER signature");

        let tls = sm2::dsa::VerifyingKey::new(TLS13_DISTID, secret.public_key()).expect("vk");
        let cert = sm2::dsa::VerifyingKey::new(CERT_DISTID, secret.public_key()).expect("vk");
        assert!(tls.verify(b"transcript", &sig).is_ok());
        assert!(tls.verify(b"transcripT", &sig).is_err());
        assert!(cert.verify(b"transcript", &sig).is_err());
        assert_eq!(
            key.public_key().expect("spki").as_ref(),
            secret.public_key().to_public_key_der().expect("spki").as_bytes()
        );
    }

    #[test]
    fn provider_loads_sm2_and_falls_back_to_ring() {
        let sm2_der = fresh().to_pkcs8_der().expect("pkcs8");
        let sm2_key =
            SM_KEY_PROVIDER.load_private_key(PrivateKeyDer::Pkcs8(sm2_der.as_bytes().to_vec().into())).expect("sm2");
        assert_eq!(sm2_key.algorithm(), SM2_SIGNATURE_ALGORITHM);

        let p256 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("p256");
        let p256_key =
            SM_KEY_PROVIDER.load_private_key(PrivateKeyDer::Pkcs8(p256.serialize_der().into())).expect("p256 via ring");
        assert_eq!(p256_key.algorithm(), SignatureAlgorithm::ECDSA);
        assert!(sm2_signing_key(&PrivateKeyDer::Pkcs8(p256.serialize_der().into())).is_err());

        assert!(SM_KEY_PROVIDER.load_private_key(PrivateKeyDer::Pkcs8(vec![0x30, 0x00].into())).is_err());
    }
}
