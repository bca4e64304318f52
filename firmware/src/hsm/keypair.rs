//! `GenerateKeyPair`: fresh key pairs handed to the caller, never stored (GM/T 0018
//! `SDF_GenerateKeyPair_ECC`), and the key-export policy that decides whether their private
//! keys may leave the card in the clear.
//!
//! Nothing here writes to the store on success: no key record, no fsync, and no audit record
//! per pair (like `Sign`, a request that changes no persistent state is not audited; refusals
//! are, as everywhere). SM2 pairs take the card's fast path: d from the card's DRBG, \[d\]G
//! through the fixed-base table the signer and the nonce pool share, the point checked on the
//! curve before it is used. Other algorithms go through [`keys::generate`].
//!
//! The private key leaves as PKCS#8 DER, either wrapped — `nonce (12) ‖ SM4-GCM(KEK, nonce,
//! AAD = SPKI DER, PKCS#8) ‖ tag (16)`, the same bytes the card's own `Decrypt` with
//! `Sm4Gcm { nonce, aad: spki }` opens — or in the clear when the policy allows it.
//!
//! The policy switch is stored under [`META_EXPORT_PLAIN`] as a blob wrapped under the device
//! master key: it reads as "allowed" only if it opens under the current DMK, so a zeroize (new
//! DMK at the next init) or a value written to the flash from outside reads as "refused".

use alloc::vec::Vec;
use gmhsm_platform::Platform;
use gmhsm_proto::admin::{AdminAction, AdminOp};
use gmhsm_proto::request::KeyPairProtection;
use gmhsm_proto::response::{PrivateKeyOut, SecretBytes};
use gmhsm_proto::{AuditEvent, Capabilities as C, KeyAlg, Principal, Response};
use rand_core::TryCryptoRng;
use zeroize::Zeroizing;

use super::plan::{KeyUse, NewKey, Step};
use super::{Hsm, State};
use crate::alg::sm2_fast::BaseTable;
use crate::alg::sm2_fast::pairs::{KeyPoint, PairJob};
use crate::error::Error;
use crate::keys::{self, LoadedKey};

/// Present, wrapped under the DMK, while plaintext export of generated private keys is allowed.
pub(super) const META_EXPORT_PLAIN: &[u8] = b"m:export-plain";
/// Associated data of the policy blob.
const EXPORT_PLAIN_AAD: &[u8] = b"gmhsm/v1/policy/export-plaintext";
/// SM4-GCM nonce and tag lengths of the wrapped form.
const GCM_NONCE: usize = 12;

/// DER of id-ecPublicKey (1.2.840.10045.2.1).
const OID_EC_PUBLIC_KEY: [u8; 9] = [0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// DER of the SM2 curve (1.2.156.10197.1.301).
pub(crate) const OID_SM2: [u8; 10] = [0x06, 0x08, 0x2a, 0x81, 0x1c, 0xcf, 0x55, 0x01, 0x82, 0x2d];
/// DER of NIST P-256 (1.2.840.10045.3.1.7).
pub(crate) const OID_P256: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// `AlgorithmIdentifier { id-ecPublicKey, curve }` (21 bytes).
fn ec_alg_id(curve: &[u8; 10], out: &mut Vec<u8>) {
    out.extend_from_slice(&[0x30, 0x13]);
    out.extend_from_slice(&OID_EC_PUBLIC_KEY);
    out.extend_from_slice(curve);
}

/// SubjectPublicKeyInfo of an uncompressed point on a 256-bit curve (91 bytes), as OpenSSL
/// and the `sm2` / `p256` crates write it.
pub(crate) fn ec_spki(curve: &[u8; 10], sec1: &[u8; 65]) -> Vec<u8> {
    let mut out = Vec::with_capacity(91);
    out.extend_from_slice(&[0x30, 0x59]);
    ec_alg_id(curve, &mut out);
    out.extend_from_slice(&[0x03, 0x42, 0x00]);
    out.extend_from_slice(sec1);
    out
}

/// PKCS#8 `PrivateKeyInfo` (RFC 5208) holding an RFC 5915 `ECPrivateKey` with its public key
/// and without parameters (they are in the algorithm identifier), as OpenSSL writes it; 138
/// bytes for a 256-bit curve.
pub(crate) fn ec_pkcs8(curve: &[u8; 10], d: &[u8; 32], sec1: &[u8; 65]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(138));
    out.extend_from_slice(&[0x30, 0x81, 0x87, 0x02, 0x01, 0x00]);
    ec_alg_id(curve, &mut out);
    // OCTET STRING { ECPrivateKey: SEQUENCE { 1, OCTET STRING d, [1] BIT STRING point } }
    out.extend_from_slice(&[0x04, 0x6d, 0x30, 0x6b, 0x02, 0x01, 0x01, 0x04, 0x20]);
    out.extend_from_slice(d);
    out.extend_from_slice(&[0xa1, 0x44, 0x03, 0x42, 0x00]);
    out.extend_from_slice(sec1);
    out
}

/// The uncompressed point at the end of a 91-byte EC SubjectPublicKeyInfo.
fn spki_point(spki: &[u8]) -> Result<[u8; 65], Error> {
    if spki.len() != 91 || spki[26] != 0x04 {
        return Err(Error::Internal("EC SPKI layout"));
    }
    spki[26..].try_into().map_err(|_| Error::Internal("EC SPKI layout"))
}

/// A pair as it leaves the card: SPKI and PKCS#8 (zeroized on drop).
pub struct Pair {
    pub spki_der: Vec<u8>,
    pub pkcs8: Zeroizing<Vec<u8>>,
}

impl core::fmt::Debug for Pair {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Pair").field("spki_der", &self.spki_der).finish_non_exhaustive()
    }
}

/// An SM2 pair on the fast path: d uniform in [1, n−2] from `rng` (GB/T 32918.1 excludes
/// n − 1), \[d\]G through the fixed-base `table` in constant time. Public so that the load
/// generator measures the same code in process; the card takes its pairs from the pool
/// of its nonce engine ([`sm2_pair_from`]).
pub fn sm2_pair<R: TryCryptoRng + ?Sized>(table: &BaseTable, rng: &mut R) -> Result<Pair, Error> {
    let mut pairs = PairJob::draw(rng, 1)?.compute(table);
    sm2_pair_from(pairs.pop().ok_or(Error::Internal("no pair computed"))?)
}

/// The encodings of a precomputed pair: the point parsed (on-curve check) by the `sm2` crate,
/// the SPKI and the PKCS#8.
pub fn sm2_pair_from(kp: KeyPoint) -> Result<Pair, Error> {
    let d_bytes = kp.secret_bytes();
    let sec1 = kp.public_sec1();
    drop(kp);
    sm2::PublicKey::from_sec1_bytes(&sec1).map_err(|_| Error::Internal("pair off the curve"))?;
    Ok(Pair { spki_der: ec_spki(&OID_SM2, &sec1), pkcs8: ec_pkcs8(&OID_SM2, &d_bytes, &sec1) })
}

impl<P: Platform> Hsm<P> {
    /// `GenerateKeyPair`: check the protection first (KEK access, or the policy), then make
    /// the pair (SM2 here from the nonce engine's pool; others by the plan's compute step)
    /// and protect its private key. Leaves the store untouched unless refused (the refusal's
    /// audit record).
    pub(super) fn generate_key_pair(
        &mut self,
        principal: &Principal,
        session: u64,
        kind: u8,
        alg: KeyAlg,
        protection: KeyPairProtection,
    ) -> Result<Step, Error> {
        if !alg.is_asymmetric() {
            return Err(Error::Invalid("symmetric key pair"));
        }
        let kek = match protection {
            KeyPairProtection::Wrapped { kek } => {
                let rec = self.use_key(principal, session, &kek, C::WRAP)?;
                if rec.alg != KeyAlg::Sm4 {
                    return Err(Error::WrongKeyType);
                }
                match self.cache.get(&kek) {
                    Some(LoadedKey::Sm4(k)) => Some(Zeroizing::new(**k)),
                    _ => return Err(Error::Internal("KEK not in cache after use_key")),
                }
            }
            KeyPairProtection::Plaintext => {
                if !self.plaintext_export_allowed() {
                    return Err(self.deny(principal, kind, Error::AccessDenied));
                }
                None
            }
            _ => return Err(Error::Invalid("key pair protection")),
        };
        if alg != KeyAlg::Sm2 {
            return self.key_step(NewKey { alg, then: KeyUse::HandOut { kek } });
        }
        let pair = sm2_pair_from(self.fast.take_pair(&mut self.rng)?)?;
        self.hand_out_pair(alg, pair, kek).map(Step::Answer)
    }

    /// A generated pair as it leaves: its private key wrapped under `kek`, or in the clear.
    pub(super) fn hand_out_pair(
        &mut self,
        alg: KeyAlg,
        pair: Pair,
        kek: Option<Zeroizing<[u8; 16]>>,
    ) -> Result<Response, Error> {
        let private = match kek {
            Some(kek) => {
                let mut nonce = [0u8; GCM_NONCE];
                self.rng.fill(&mut nonce)?;
                let sealed = crate::alg::sm4::gcm_encrypt(&kek[..], &nonce, &pair.spki_der, &pair.pkcs8)
                    .map_err(|_| Error::Internal("SM4-GCM wrap"))?;
                let mut blob = Vec::with_capacity(GCM_NONCE + sealed.len());
                blob.extend_from_slice(&nonce);
                blob.extend_from_slice(&sealed);
                PrivateKeyOut::Wrapped(blob)
            }
            None => PrivateKeyOut::Plaintext(SecretBytes::new(pair.pkcs8.to_vec())),
        };
        Ok(Response::KeyPair { alg, spki_der: pair.spki_der, private })
    }

    /// Does the key-export policy allow plaintext private keys? Only a blob that opens under
    /// the current device master key says yes.
    pub(super) fn plaintext_export_allowed(&self) -> bool {
        let State::Operational(wrapper) = &self.state else { return false };
        let Some(blob) = self.sealed_peek(META_EXPORT_PLAIN) else {
            return false;
        };
        wrapper.unwrap(EXPORT_PLAIN_AAD, &blob).is_ok_and(|v| v.as_slice() == [1])
    }

    /// `KeyExportPolicy`: anyone may read it; only local tools may change it, with the
    /// policy-change quorum's authority on a ceremony-initialized device (audited as a policy
    /// change; refusals audited as denials).
    pub(super) fn key_export_policy(
        &mut self,
        principal: &Principal,
        session: u64,
        kind: u8,
        set: Option<bool>,
    ) -> Result<Response, Error> {
        if let Some(allow) = set {
            if *principal != Principal::Local || !self.may(session, AdminOp::PolicyChange) {
                return Err(self.deny(principal, kind, Error::AccessDenied));
            }
            if allow {
                let mut nonce = [0u8; crate::wrap::NONCE_LEN];
                self.rng.fill(&mut nonce)?;
                let State::Operational(wrapper) = &self.state else { return Err(Error::Device("not operational")) };
                let blob = wrapper.wrap(nonce, EXPORT_PLAIN_AAD, &[1]);
                self.sealed_put(META_EXPORT_PLAIN, Some(&blob))?;
            } else {
                self.sealed_put(META_EXPORT_PLAIN, None)?;
            }
            self.log(Some(Principal::Local), AuditEvent::Admin { action: AdminAction::PolicyChanged });
        }
        Ok(Response::KeyExportPolicy { allow_plaintext: self.plaintext_export_allowed() })
    }
}

/// SPKI and PKCS#8 of a pair made by [`keys::generate`] (whose EC private encoding is the raw
/// scalar, RSA's already PKCS#8).
pub(super) fn other_pair(alg: KeyAlg, generated: keys::Generated) -> Result<Pair, Error> {
    let pkcs8 = match (alg, &generated.key) {
        (KeyAlg::EcdsaP256, LoadedKey::P256(_)) => {
            let d: &[u8; 32] =
                generated.private_der.as_slice().try_into().map_err(|_| Error::Internal("P-256 scalar length"))?;
            ec_pkcs8(&OID_P256, d, &spki_point(&generated.spki_der)?)
        }
        (KeyAlg::Rsa2048 | KeyAlg::Rsa3072 | KeyAlg::Rsa4096, LoadedKey::Rsa(_)) => generated.private_der.clone(),
        _ => return Err(Error::Invalid("key pair algorithm")),
    };
    Ok(Pair { spki_der: generated.spki_der, pkcs8 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};

    /// The hand-built DER is what the crates write and read.
    #[test]
    fn templates_match_the_crates() {
        let mut rng = crate::alg::testrng::CounterRng::new(b"keypair templates");
        let sm2_secret = crate::alg::sm2::generate(&mut rng).unwrap();
        let spki = sm2_secret.public_key().to_public_key_der().unwrap();
        let point = spki_point(spki.as_bytes()).unwrap();
        assert_eq!(ec_spki(&OID_SM2, &point), spki.as_bytes());
        let d: [u8; 32] = sm2_secret.to_bytes().into();
        let back = sm2::SecretKey::from_pkcs8_der(&ec_pkcs8(&OID_SM2, &d, &point)).unwrap();
        assert_eq!(back.to_bytes(), sm2_secret.to_bytes());

        let p = crate::alg::ecdsa::generate(&mut rng).unwrap();
        let spki = p.public_key().to_public_key_der().unwrap();
        let point = spki_point(spki.as_bytes()).unwrap();
        assert_eq!(ec_spki(&OID_P256, &point), spki.as_bytes());
        let d: [u8; 32] = p.to_bytes().into();
        let back = p256::SecretKey::from_pkcs8_der(&ec_pkcs8(&OID_P256, &d, &point)).unwrap();
        assert_eq!(back.to_bytes(), p.to_bytes());
    }
}
