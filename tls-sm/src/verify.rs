//! SM2-with-SM3 signature verification for webpki: certificate chains and TLS 1.3
//! `CertificateVerify`, with the distinguishing identifier each one needs.
//!
//! rustls' `WebPkiSupportedAlgorithms` keeps two lists, and that is what lets one scheme use
//! two IDs: `all` verifies certificate signatures (here SM2 with [`CERT_DISTID`]), and
//! `mapping` verifies handshake signatures per `SignatureScheme` (here `sm2sig_sm3` with
//! [`TLS13_DISTID`]). Both are keyed on the SPKI algorithm `id-ecPublicKey` + curve
//! `sm2p256v1` (1.2.156.10197.1.301) and the signature algorithm `SM2-with-SM3`
//! (1.2.156.10197.1.501), so an SM2 signature is never tried against a P-256 key.

use std::fmt;
use std::sync::LazyLock;

use rustls::SignatureScheme;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{AlgorithmIdentifier, InvalidSignature, SignatureVerificationAlgorithm};
use sm2::dsa::signature::Verifier;

use crate::sign::{CERT_DISTID, SM2SIG_SM3, TLS13_DISTID};

/// DER contents of the SPKI `AlgorithmIdentifier` of an SM2 key:
/// `id-ecPublicKey` (1.2.840.10045.2.1) with parameters `sm2p256v1` (1.2.156.10197.1.301).
pub const SM2_PUBLIC_KEY_ALG_ID: AlgorithmIdentifier = AlgorithmIdentifier::from_slice(&[
    0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, // id-ecPublicKey
    0x06, 0x08, 0x2a, 0x81, 0x1c, 0xcf, 0x55, 0x01, 0x82, 0x2d, // sm2p256v1
]);

/// DER contents of the `AlgorithmIdentifier` `SM2-with-SM3` (1.2.156.10197.1.501) with absent
/// parameters, as OpenSSL, Tongsuo, GmSSL and [`crate::certs`] write it.
pub const SM2_SM3_ALG_ID: AlgorithmIdentifier =
    AlgorithmIdentifier::from_slice(&[0x06, 0x08, 0x2a, 0x81, 0x1c, 0xcf, 0x55, 0x01, 0x83, 0x75]);

/// The same with explicit NULL parameters, which some Chinese CAs emit.
pub const SM2_SM3_NULL_ALG_ID: AlgorithmIdentifier =
    AlgorithmIdentifier::from_slice(&[0x06, 0x08, 0x2a, 0x81, 0x1c, 0xcf, 0x55, 0x01, 0x83, 0x75, 0x05, 0x00]);

/// SM2-with-SM3 verification with a fixed distinguishing identifier. Signatures are DER
/// `SEQUENCE { r, s }`; public keys are SEC1 points from the SPKI.
pub struct Sm2Sm3Verify {
    distid: &'static str,
    signature_alg_id: AlgorithmIdentifier,
}

impl fmt::Debug for Sm2Sm3Verify {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sm2Sm3Verify").field("distid", &self.distid).finish_non_exhaustive()
    }
}

impl SignatureVerificationAlgorithm for Sm2Sm3Verify {
    fn verify_signature(&self, public_key: &[u8], message: &[u8], signature: &[u8]) -> Result<(), InvalidSignature> {
        let key = sm2::dsa::VerifyingKey::from_sec1_bytes(self.distid, public_key).map_err(|_| InvalidSignature)?;
        let sig = sm2::dsa::Signature::from_der(signature).map_err(|_| InvalidSignature)?;
        key.verify(message, &sig).map_err(|_| InvalidSignature)
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        SM2_PUBLIC_KEY_ALG_ID
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        self.signature_alg_id
    }
}

/// Certificate signatures, SM2-with-SM3 with absent parameters, ID [`CERT_DISTID`].
pub static SM2_SM3_CERT: Sm2Sm3Verify = Sm2Sm3Verify { distid: CERT_DISTID, signature_alg_id: SM2_SM3_ALG_ID };

/// Certificate signatures, SM2-with-SM3 with NULL parameters, ID [`CERT_DISTID`].
pub static SM2_SM3_CERT_NULL_PARAMS: Sm2Sm3Verify =
    Sm2Sm3Verify { distid: CERT_DISTID, signature_alg_id: SM2_SM3_NULL_ALG_ID };

/// TLS 1.3 `CertificateVerify` under `sm2sig_sm3`, ID [`TLS13_DISTID`].
pub static SM2_SM3_TLS13: Sm2Sm3Verify = Sm2Sm3Verify { distid: TLS13_DISTID, signature_alg_id: SM2_SM3_ALG_ID };

static SM2_TLS13_ONLY: [&dyn SignatureVerificationAlgorithm; 1] = [&SM2_SM3_TLS13];

static ALL: LazyLock<Vec<&'static dyn SignatureVerificationAlgorithm>> = LazyLock::new(|| {
    let ring = rustls::crypto::ring::default_provider().signature_verification_algorithms;
    let mut all: Vec<&'static dyn SignatureVerificationAlgorithm> = vec![&SM2_SM3_CERT, &SM2_SM3_CERT_NULL_PARAMS];
    all.extend_from_slice(ring.all);
    all
});

type Mapping = (SignatureScheme, &'static [&'static dyn SignatureVerificationAlgorithm]);

static MAPPING: LazyLock<Vec<Mapping>> = LazyLock::new(|| {
    let ring = rustls::crypto::ring::default_provider().signature_verification_algorithms;
    let mut mapping: Vec<Mapping> = vec![(SM2SIG_SM3, &SM2_TLS13_ONLY[..])];
    mapping.extend_from_slice(ring.mapping);
    mapping
});

/// ring's `SUPPORTED_SIG_ALGS` with SM2 added: SM2-with-SM3 certificate signatures in `all`,
/// and `sm2sig_sm3` first in `mapping` (the order of `mapping` is the order in which a peer
/// is offered signature schemes).
pub fn supported_sig_algs() -> WebPkiSupportedAlgorithms {
    WebPkiSupportedAlgorithms { all: &ALL, mapping: &MAPPING }
}

#[cfg(test)]
mod tests {
    use super::*;
    use elliptic_curve::Generate;
    use getrandom::SysRng;
    use sm2::dsa::signature::RandomizedSigner;
    use sm2::elliptic_curve;

    fn signed(distid: &str, msg: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let secret = sm2::SecretKey::try_generate_from_rng(&mut SysRng).expect("rng");
        let key = sm2::dsa::SigningKey::new(distid, &secret).expect("key");
        let sig: sm2::dsa::Signature = key.try_sign_with_rng(&mut SysRng, msg).expect("sign");
        (secret.public_key().to_sec1_bytes().to_vec(), sig.to_der().to_vec())
    }

    #[test]
    fn each_verifier_takes_its_own_distid() {
        let (pk, sig) = signed(CERT_DISTID, b"tbs");
        assert!(SM2_SM3_CERT.verify_signature(&pk, b"tbs", &sig).is_ok());
        assert!(SM2_SM3_CERT_NULL_PARAMS.verify_signature(&pk, b"tbs", &sig).is_ok());
        assert!(SM2_SM3_TLS13.verify_signature(&pk, b"tbs", &sig).is_err());

        let (pk, sig) = signed(TLS13_DISTID, b"cv");
        assert!(SM2_SM3_TLS13.verify_signature(&pk, b"cv", &sig).is_ok());
        assert!(SM2_SM3_CERT.verify_signature(&pk, b"cv", &sig).is_err());
    }

    #[test]
    fn garbage_is_an_invalid_signature_not_a_panic() {
        let (pk, sig) = signed(TLS13_DISTID, b"m");
        for (k, s) in [
            (&pk[..], &sig[..sig.len() - 1]),
            (&pk[..], &[][..]),
            (&pk[..1], &sig[..]),
            (&[][..], &sig[..]),
            (&pk[..], &[0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00][..]),
        ] {
            assert!(SM2_SM3_TLS13.verify_signature(k, b"m", s).is_err());
        }
    }

    #[test]
    fn tables_hold_ring_and_sm2() {
        let algs = supported_sig_algs();
        assert_eq!(algs.mapping[0].0, SM2SIG_SM3);
        assert!(algs.supported_schemes().contains(&SignatureScheme::ECDSA_NISTP256_SHA256));
        assert!(algs.supported_schemes().contains(&SignatureScheme::ED25519));
        assert_eq!(algs.all.iter().filter(|a| a.public_key_alg_id() == SM2_PUBLIC_KEY_ALG_ID).count(), 2);
    }
}
