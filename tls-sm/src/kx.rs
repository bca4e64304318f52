//! ECDHE on the SM2 curve: the `curveSM2` (41) key-exchange group of RFC 8998 §3.2.
//!
//! RFC 8998 uses plain ECDHE as in RFC 8446 §7.4.2, not the SM2 key-agreement protocol of
//! GB/T 32918.3: each side sends an ephemeral public key as an uncompressed SEC1 point
//! (`04 ‖ X ‖ Y`, 65 bytes) and the shared secret is the X coordinate of `d·Q`. Peer shares are
//! decoded with full validation (on the curve, not the identity; the SM2 curve has cofactor 1,
//! so that is the whole subgroup check); compressed points are refused.

use elliptic_curve::Generate;
use elliptic_curve::point::AffineCoordinates;
use elliptic_curve::sec1::ToSec1Point;
use getrandom::SysRng;
use rustls::crypto::{ActiveKeyExchange, SharedSecret, SupportedKxGroup};
use rustls::{Error, NamedGroup, PeerMisbehaved};
use sm2::elliptic_curve;

/// `curveSM2` in the TLS supported-groups registry (RFC 8998 §3.2).
pub const CURVE_SM2_GROUP: NamedGroup = NamedGroup::Unknown(41);

/// Length of an uncompressed SM2 point on the wire.
pub const SHARE_LEN: usize = 65;

/// The `curveSM2` key-exchange group.
#[derive(Debug)]
pub struct CurveSm2;

/// The one `curveSM2` group.
pub static CURVE_SM2: CurveSm2 = CurveSm2;

impl SupportedKxGroup for CurveSm2 {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, Error> {
        let secret = sm2::SecretKey::try_generate_from_rng(&mut SysRng).map_err(|_| Error::FailedToGetRandomBytes)?;
        let pub_key = secret.public_key().to_sec1_point(false).as_bytes().to_vec();
        Ok(Box::new(Sm2KeyExchange { secret, pub_key }))
    }

    fn name(&self) -> NamedGroup {
        CURVE_SM2_GROUP
    }
}

/// One side of a `curveSM2` exchange in progress. The secret scalar is zeroized on drop by
/// `sm2::SecretKey`.
struct Sm2KeyExchange {
    secret: sm2::SecretKey,
    pub_key: Vec<u8>,
}

impl ActiveKeyExchange for Sm2KeyExchange {
    fn complete(self: Box<Self>, peer_pub_key: &[u8]) -> Result<SharedSecret, Error> {
        let shared = agree(&self.secret, peer_pub_key)?;
        Ok(SharedSecret::from(&shared[..]))
    }

    fn pub_key(&self) -> &[u8] {
        &self.pub_key
    }

    fn group(&self) -> NamedGroup {
        CURVE_SM2_GROUP
    }
}

/// ECDH on the SM2 curve: the X coordinate of `secret · peer`, after checking that `peer` is
/// a valid uncompressed point. The result is secret; the caller hands it to rustls, which
/// zeroizes `SharedSecret` on drop.
fn agree(secret: &sm2::SecretKey, peer: &[u8]) -> Result<zeroize::Zeroizing<[u8; 32]>, Error> {
    if peer.len() != SHARE_LEN || peer.first() != Some(&0x04) {
        return Err(PeerMisbehaved::InvalidKeyShare.into());
    }
    let peer = sm2::PublicKey::from_sec1_bytes(peer).map_err(|_| PeerMisbehaved::InvalidKeyShare)?;
    let point = (peer.to_projective() * *secret.to_nonzero_scalar()).to_affine();
    let mut out = zeroize::Zeroizing::new([0u8; 32]);
    out.copy_from_slice(&point.x());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_agree_and_shares_are_uncompressed() {
        let a = CURVE_SM2.start().expect("start a");
        let b = CURVE_SM2.start().expect("start b");
        assert_eq!(a.pub_key().len(), SHARE_LEN);
        assert_eq!(a.pub_key()[0], 0x04);
        assert_eq!(a.group(), NamedGroup::from(41u16));
        let b_pub = b.pub_key().to_vec();
        let s1 = a.complete(&b_pub).map_err(|_| "a").unwrap();
        let a2 = CURVE_SM2.start().expect("start");
        let a2_pub = a2.pub_key().to_vec();
        let s2 = b.complete(&a2_pub).map_err(|_| "b").unwrap();
        let s3 = a2.complete(&b_pub).map_err(|_| "a2").unwrap();
        assert_eq!(s2.secret_bytes(), s3.secret_bytes());
        assert_eq!(s1.secret_bytes().len(), 32);
        assert_ne!(s1.secret_bytes(), s3.secret_bytes());
    }

    #[test]
    fn bad_peer_shares_are_refused() {
        let secret = sm2::SecretKey::try_generate_from_rng(&mut SysRng).expect("rng");
        let good = secret.public_key().to_sec1_point(false).as_bytes().to_vec();
        let compressed = secret.public_key().to_sec1_point(true).as_bytes().to_vec();
        let mut off_curve = good.clone();
        off_curve[64] ^= 1;
        let mut identity = vec![0u8; SHARE_LEN];
        identity[0] = 4;
        for bad in [&compressed[..], &off_curve, &identity, &good[..64], &[][..], &[0u8][..]] {
            let Err(err) = agree(&secret, bad) else {
                panic!("a bad share was accepted");
            };
            assert_eq!(err, Error::PeerMisbehaved(PeerMisbehaved::InvalidKeyShare));
        }
        assert!(agree(&secret, &good).is_ok());
    }
}
