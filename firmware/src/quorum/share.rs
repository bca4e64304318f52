//! The crypto of administration: share blobs (SM4-GCM sealed share records), the DK check,
//! the domain signing key derived from DK, domain authorizations and card signatures.
//!
//! Share blob layout (version 1), opaque to the admin card and the daemon:
//!
//! ```text
//! "GQS1" ‖ epoch (4, BE) ‖ x (1) ‖ nonce (12) ‖ SM4-GCM(share key, nonce, AAD, y) (32 + 16)
//! AAD = "gmhsm/share/v1" ‖ domain id (16) ‖ epoch (4) ‖ x ‖ len(serial) ‖ serial
//! share key = SM3-KDF(DMK ‖ "gmhsm/share-key/v1")[..16]
//! ```

use alloc::vec::Vec;
use gmhsm_proto::admin_card as spec;
use rand_core::TryCryptoRng;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::QuorumError;
use crate::alg::{sm2, sm3, sm4};
use crate::shamir::Share;

const MAGIC: &[u8; 4] = b"GQS1";
const AAD_LABEL: &[u8] = b"gmhsm/share/v1";
const DK_CHECK_LABEL: &[u8] = b"gmhsm/dk-check/v1";
const SHARE_KEY_LABEL: &[u8] = b"gmhsm/share-key/v1";
const DOMAIN_KEY_LABEL: &[u8] = b"gmhsm/domain-sign/v1";
/// DK length.
pub const DK_LEN: usize = 32;
const HEADER: usize = 4 + 4 + 1 + 12;
/// Length of a version-1 blob.
pub const BLOB_LEN: usize = HEADER + DK_LEN + 16;

/// The share-wrapping key, derived from the device master key.
pub fn share_key(dmk: &[u8; 32]) -> Zeroizing<[u8; 16]> {
    let mut k = Zeroizing::new([0u8; 16]);
    // Output length 16 is far inside the KDF's bound; it cannot fail.
    let _ = sm3::kdf(&[dmk, SHARE_KEY_LABEL], &mut k[..]);
    k
}

fn aad(domain_id: &[u8; 16], epoch: u32, x: u8, serial: &[u8]) -> Vec<u8> {
    let mut a = Vec::with_capacity(AAD_LABEL.len() + 16 + 4 + 2 + serial.len());
    a.extend_from_slice(AAD_LABEL);
    a.extend_from_slice(domain_id);
    a.extend_from_slice(&epoch.to_be_bytes());
    a.push(x);
    a.push(serial.len() as u8);
    a.extend_from_slice(serial);
    a
}

/// Seal `share` for the card `serial`.
pub fn seal<R: TryCryptoRng + ?Sized>(
    key: &[u8; 16],
    domain_id: &[u8; 16],
    epoch: u32,
    serial: &[u8],
    share: &Share,
    rng: &mut R,
) -> Result<Vec<u8>, QuorumError> {
    let mut nonce = [0u8; 12];
    rng.try_fill_bytes(&mut nonce).map_err(|_| QuorumError::Rng)?;
    let sealed = sm4::gcm_encrypt(key, &nonce, &aad(domain_id, epoch, share.x, serial), &share.y)
        .map_err(|_| QuorumError::Internal)?;
    let mut blob = Vec::with_capacity(BLOB_LEN);
    blob.extend_from_slice(MAGIC);
    blob.extend_from_slice(&epoch.to_be_bytes());
    blob.push(share.x);
    blob.extend_from_slice(&nonce);
    blob.extend_from_slice(&sealed);
    Ok(blob)
}

/// Open a blob for card `serial` whose share must have x-coordinate `x` in epoch `epoch`.
pub fn open(
    key: &[u8; 16],
    domain_id: &[u8; 16],
    epoch: u32,
    x: u8,
    serial: &[u8],
    blob: &[u8],
) -> Result<Share, QuorumError> {
    if blob.len() != BLOB_LEN || &blob[..4] != MAGIC {
        return Err(QuorumError::BadShare);
    }
    let blob_epoch = u32::from_be_bytes([blob[4], blob[5], blob[6], blob[7]]);
    if blob_epoch != epoch || blob[8] != x || x == 0 {
        return Err(QuorumError::BadShare);
    }
    let y = sm4::gcm_decrypt(key, &blob[9..21], &aad(domain_id, epoch, x, serial), &blob[HEADER..])
        .map_err(|_| QuorumError::BadShare)?;
    if y.len() != DK_LEN {
        return Err(QuorumError::BadShare);
    }
    Ok(Share { x, y })
}

/// `HMAC-SM3(DK, label ‖ domain id)`.
pub fn dk_check(dk: &[u8], domain_id: &[u8; 16]) -> [u8; 32] {
    let mut m = Vec::with_capacity(DK_CHECK_LABEL.len() + 16);
    m.extend_from_slice(DK_CHECK_LABEL);
    m.extend_from_slice(domain_id);
    sm3::hmac_sm3(dk, &m).unwrap_or([0; 32])
}

/// Constant-time comparison of a recombined DK's check value with the stored one.
pub fn dk_matches(dk: &[u8], domain_id: &[u8; 16], stored: &[u8; 32]) -> bool {
    bool::from(dk_check(dk, domain_id).ct_eq(stored))
}

/// The domain signing key: the first valid SM2 scalar of `SM3-KDF(DK ‖ label ‖ counter)`.
pub fn domain_key(dk: &[u8]) -> Result<::sm2::SecretKey, QuorumError> {
    for ctr in 0u32..16 {
        let mut d = Zeroizing::new([0u8; 32]);
        sm3::kdf(&[dk, DOMAIN_KEY_LABEL, &ctr.to_be_bytes()], &mut d[..]).map_err(|_| QuorumError::Internal)?;
        if let Ok(sk) = sm2::secret_from_bytes(&d[..]) {
            return Ok(sk);
        }
    }
    Err(QuorumError::Internal)
}

/// A public key as the 65-byte uncompressed point cards bind.
pub fn point(public: &::sm2::PublicKey) -> gmhsm_proto::admin::CardKey {
    let mut p = gmhsm_proto::admin::CardKey::new();
    let _ = p.push(4);
    let _ = p.extend_from_slice(&sm2::public_xy(public));
    p
}

/// Sign a domain authorization: `domain_message(purpose, serial, card challenge, payload)`.
pub fn authorize<R: TryCryptoRng + ?Sized>(
    rng: &mut R,
    domain: &::sm2::SecretKey,
    purpose: &[u8],
    serial: &[u8],
    card_challenge: &[u8; 16],
    payload: &[u8],
) -> Result<gmhsm_proto::admin::CardSignature, QuorumError> {
    let msg = spec::domain_message(purpose, serial, card_challenge, payload);
    let sig = sm2::sign(rng, domain, spec::DOMAIN_DISTID.as_bytes(), &msg).map_err(|_| QuorumError::Rng)?;
    let mut out = gmhsm_proto::admin::CardSignature::new();
    out.extend_from_slice(&sig.to_bytes()).map_err(|_| QuorumError::Internal)?;
    Ok(out)
}

/// Check a card's INTERNAL AUTHENTICATE signature over `auth_message(serial, nonce)`.
pub fn verify_card(public_key: &[u8], serial: &[u8], nonce: &[u8], signature: &[u8]) -> Result<(), QuorumError> {
    let pk = sm2::public_from_sec1(public_key).map_err(|_| QuorumError::BadInput)?;
    if signature.len() != spec::SM2_SIGNATURE_LEN {
        return Err(QuorumError::BadSignature);
    }
    let sig = sm2::signature_from_bytes(signature).map_err(|_| QuorumError::BadSignature)?;
    sm2::verify(&pk, spec::CARD_DISTID.as_bytes(), &spec::auth_message(serial, nonce), &sig)
        .map_err(|_| QuorumError::BadSignature)
}

/// A valid uncompressed SM2 point of 65 bytes?
pub fn valid_point(p: &[u8]) -> bool {
    p.len() == spec::SM2_POINT_LEN && p[0] == 4 && sm2::public_from_sec1(p).is_ok()
}
