//! SM2 key exchange (GB/T 32918.3 §6), initiator and responder, with the optional key
//! confirmation hashes S1 / SB and S2 / SA.
//!
//! No crate implements it; it is written here on `sm2::ProjectivePoint` / `Scalar` and the
//! SM3 KDF ([`super::sm3::kdf`]). The cofactor of the SM2 curve is 1, so [h]·t = t.
//!
//! The exchange is two state machines advanced by value, so a state cannot be reused:
//! * initiator A: [`Initiator::start`] (A1–A3: rA, RA = [rA]G; send RA) → keep the
//!   `Initiator` until B answers → [`Initiator::finish`] (A4–A9: check SB if B sent one,
//!   derive KA, produce SA);
//! * responder B: [`respond`] (B1–B8: rB, RB, derive KB, produce SB) → [`ResponderKey`],
//!   from which the key is released either after checking SA ([`ResponderKey::confirm`],
//!   B10) or, when the protocol has no confirmation (GM/T 0018 SDF), at once
//!   ([`ResponderKey::without_confirmation`]).
//!
//! Z_A is always the initiator's user hash and Z_B the responder's, on both sides.

use ::sm2::elliptic_curve::ff::PrimeField;
use ::sm2::elliptic_curve::group::Group;
use ::sm2::elliptic_curve::{Generate, NonZeroScalar};
use ::sm2::{AffinePoint, ProjectivePoint, PublicKey, Scalar, SecretKey};
use ::sm3::{Digest, Sm3};
use alloc::vec::Vec;
use rand_core::TryCryptoRng;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use super::sm2::{public_xy, z_hash};
use super::{AlgError, sm3};

/// Longest shared key that may be derived, in bytes.
pub const MAX_KEY_LEN: usize = 1024;

/// A party's static identity: distinguishing ID and public key.
#[derive(Clone, Copy)]
pub struct Party<'a> {
    pub id: &'a [u8],
    pub public: &'a PublicKey,
}

/// Initiator A between sending RA and receiving B's answer. Holds rA (zeroized on drop).
pub struct Initiator {
    secret: SecretKey,
    z: [u8; 32],
    r: Scalar,
    ephemeral: PublicKey,
}

/// What the initiator ends with.
pub struct InitiatorOutput {
    /// K_A, `klen` bytes.
    pub key: Zeroizing<Vec<u8>>,
    /// S_A = SM3(0x03 ‖ yU ‖ inner), to send to B when the protocol confirms keys.
    pub sa: [u8; 32],
}

/// What the responder sends back to A.
pub struct ResponderReply {
    /// R_B = [rB]G.
    pub ephemeral: PublicKey,
    /// S_B = SM3(0x02 ‖ yV ‖ inner): A checks it to confirm B holds the same key.
    pub sb: [u8; 32],
}

/// The responder's derived key K_B, released by checking S_A or explicitly without.
pub struct ResponderKey {
    key: Zeroizing<Vec<u8>>,
    s2: [u8; 32],
}

impl Drop for Initiator {
    fn drop(&mut self) {
        self.r.zeroize();
    }
}

impl Initiator {
    /// A1–A3: draw rA and compute R_A = [rA]G. `secret` is A's static key, `id` its ID.
    pub fn start<R: TryCryptoRng + ?Sized>(rng: &mut R, secret: &SecretKey, id: &[u8]) -> Result<Self, AlgError> {
        let z = z_hash(id, &secret.public_key())?;
        let (r, ephemeral) = ephemeral_pair(rng)?;
        Ok(Self { secret: secret.clone(), z, r, ephemeral })
    }

    /// R_A, to send to B.
    pub fn ephemeral(&self) -> &PublicKey {
        &self.ephemeral
    }

    /// A4–A9: from B's identity, R_B and (when B sent one) S_B, derive `klen` bytes of key.
    pub fn finish(
        self,
        responder: Party<'_>,
        responder_ephemeral: &PublicKey,
        klen: usize,
        sb: Option<&[u8]>,
    ) -> Result<InitiatorOutput, AlgError> {
        let zb = z_hash(responder.id, responder.public)?;
        let shared = shared_point(&self.secret, &self.r, &self.ephemeral, responder.public, responder_ephemeral)?;
        let t = Transcript { shared: &shared, za: &self.z, zb: &zb, ra: &self.ephemeral, rb: responder_ephemeral };
        let key = t.key(klen)?;
        if let Some(sb) = sb
            && !bool::from(t.confirm(0x02).ct_eq(sb))
        {
            return Err(AlgError::VerifyFailed);
        }
        Ok(InitiatorOutput { key, sa: t.confirm(0x03) })
    }
}

/// B1–B8: answer A's R_A. `secret` / `id` are B's static key and ID.
pub fn respond<R: TryCryptoRng + ?Sized>(
    rng: &mut R,
    secret: &SecretKey,
    id: &[u8],
    initiator: Party<'_>,
    initiator_ephemeral: &PublicKey,
    klen: usize,
) -> Result<(ResponderReply, ResponderKey), AlgError> {
    let za = z_hash(initiator.id, initiator.public)?;
    let zb = z_hash(id, &secret.public_key())?;
    let (mut r, ephemeral) = ephemeral_pair(rng)?;
    let shared = shared_point(secret, &r, &ephemeral, initiator.public, initiator_ephemeral);
    r.zeroize();
    let shared = shared?;
    let t = Transcript { shared: &shared, za: &za, zb: &zb, ra: initiator_ephemeral, rb: &ephemeral };
    let key = t.key(klen)?;
    let reply = ResponderReply { ephemeral, sb: t.confirm(0x02) };
    Ok((reply, ResponderKey { key, s2: t.confirm(0x03) }))
}

impl ResponderKey {
    /// B10: release K_B only if A's S_A matches S_2.
    pub fn confirm(self, sa: &[u8]) -> Result<Zeroizing<Vec<u8>>, AlgError> {
        if bool::from(self.s2.ct_eq(sa)) { Ok(self.key) } else { Err(AlgError::VerifyFailed) }
    }

    /// Release K_B without key confirmation (SDF_GenerateAgreementDataAndKeyWithECC).
    pub fn without_confirmation(self) -> Zeroizing<Vec<u8>> {
        self.key
    }
}

fn ephemeral_pair<R: TryCryptoRng + ?Sized>(rng: &mut R) -> Result<(Scalar, PublicKey), AlgError> {
    let r = NonZeroScalar::<::sm2::Sm2>::try_generate_from_rng(rng).map_err(|_| AlgError::Rng)?;
    let point = PublicKey::from_secret_scalar(&r);
    Ok((*r, point))
}

/// x̄ = 2^w + (x mod 2^w), w = ⌈⌈log2 n⌉ / 2⌉ − 1 = 127.
fn x_bar(point: &PublicKey) -> Scalar {
    let xy = public_xy(point);
    let mut repr = [0u8; 32];
    repr[16..].copy_from_slice(&xy[16..32]);
    repr[16] = (repr[16] & 0x7f) | 0x80;
    // A 128-bit value is below n, so it is a canonical scalar.
    Scalar::from_repr(repr.into()).unwrap_or(Scalar::ONE)
}

/// U = [t](P_peer + [x̄_peer] R_peer) with t = (d + x̄_own · r) mod n; the point at infinity
/// fails the exchange (A6 / B6). The peer's points were checked on the curve when parsed.
fn shared_point(
    secret: &SecretKey,
    r: &Scalar,
    own_ephemeral: &PublicKey,
    peer_public: &PublicKey,
    peer_ephemeral: &PublicKey,
) -> Result<Zeroizing<[u8; 64]>, AlgError> {
    let mut t = *secret.to_nonzero_scalar() + x_bar(own_ephemeral) * r;
    let sum = ProjectivePoint::from(*peer_public.as_affine())
        + ProjectivePoint::from(*peer_ephemeral.as_affine()) * x_bar(peer_ephemeral);
    let u = sum * t;
    t.zeroize();
    if bool::from(u.is_identity()) {
        return Err(AlgError::InvalidKey);
    }
    let affine: AffinePoint = u.into();
    let public = PublicKey::from_affine(affine).map_err(|_| AlgError::InvalidKey)?;
    Ok(Zeroizing::new(public_xy(&public)))
}

struct Transcript<'a> {
    shared: &'a [u8; 64],
    za: &'a [u8; 32],
    zb: &'a [u8; 32],
    ra: &'a PublicKey,
    rb: &'a PublicKey,
}

impl Transcript<'_> {
    /// K = KDF(xU ‖ yU ‖ Z_A ‖ Z_B, klen).
    fn key(&self, klen: usize) -> Result<Zeroizing<Vec<u8>>, AlgError> {
        if klen == 0 || klen > MAX_KEY_LEN {
            return Err(AlgError::InvalidInput);
        }
        let mut key = Zeroizing::new(alloc::vec![0u8; klen]);
        sm3::kdf(&[&self.shared[..], self.za, self.zb], &mut key)?;
        Ok(key)
    }

    /// SM3(tag ‖ yU ‖ SM3(xU ‖ Z_A ‖ Z_B ‖ x1 ‖ y1 ‖ x2 ‖ y2)); tag 2 gives S_B / S_1,
    /// tag 3 gives S_A / S_2.
    fn confirm(&self, tag: u8) -> [u8; 32] {
        let mut inner = Sm3::new();
        inner.update(&self.shared[..32]);
        inner.update(self.za);
        inner.update(self.zb);
        inner.update(public_xy(self.ra));
        inner.update(public_xy(self.rb));
        let mut outer = Sm3::new();
        outer.update([tag]);
        outer.update(&self.shared[32..]);
        outer.update(inner.finalize());
        outer.finalize().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alg::sm2::{DEFAULT_ID, generate, secret_from_bytes};
    use crate::alg::testrng::{CounterRng, FailingRng, FixedRng, h};

    // GB/T 32918.5-2017 Appendix: key exchange example on the recommended curve, both IDs
    // "1234567812345678", klen = 128 bits.
    const DA: &str = "81EB26E941BB5AF16DF116495F90695272AE2CD63D6C4AE1678418BE48230029";
    const PA: &str = "160E12897DF4EDB61DD812FEB96748FBD3CCF4FFE26AA6F6DB9540AF49C94232\
                      4A7DAD08BB9A459531694BEB20AA489D6649975E1BFCF8C4741B78B4B223007F";
    const RA_K: &str = "D4DE15474DB74D06491C440D305E012400990F3E390C7E87153C12DB2EA60BB3";
    const RA: &str = "64CED1BDBC99D590049B434D0FD73428CF608A5DB8FE5CE07F15026940BAE40E\
                      376629C7AB21E7DB260922499DDB118F07CE8EAAE3E7720AFEF6A5CC062070C0";
    const DB: &str = "785129917D45A9EA5437A59356B82338EAADDA6CEB199088F14AE10DEFA229B5";
    const PB: &str = "6AE848C57C53C7B1B5FA99EB2286AF078BA64C64591B8B566F7357D576F16DFB\
                      EE489D771621A27B36C5C7992062E9CD09A9264386F3FBEA54DFF69305621C4D";
    const RB_K: &str = "7E07124814B309489125EAED101113164EBF0F3458C5BD88335C1F9D596243D6";
    const RB: &str = "ACC27688A6F7B706098BC91FF3AD1BFF7DC2802CDB14CCCCDB0A90471F9BD707\
                      2FEDAC0494B2FFC4D6853876C79B8F301C6573AD0AA50F39FC87181E1A1B46FE";
    const ZA: &str = "3B85A57179E11E7E513AA622991F2CA74D1807A0BD4D4B38F90987A17AC245B1";
    const ZB: &str = "79C988D63229D97EF19FE02CA1056E01E6A7411ED24694AA8F834F4A4AB022F7";
    const K: &str = "6C89347354DE2484C60B4AB1FDE4C6E5";
    const SB: &str = "D3A0FE15DEE185CEAE907A6B595CC32A266ED7B3367E9983A896DC32FA20F8EB";
    const SA: &str = "18C7894B3816DF16CF07B05C5EC0BEF5D655D58F779CC1B400A4F3884644DB88";

    #[test]
    fn gbt32918_5_key_exchange_example() {
        let da = secret_from_bytes(&h(DA)).unwrap();
        let db = secret_from_bytes(&h(DB)).unwrap();
        let (pa, pb) = (da.public_key(), db.public_key());
        assert_eq!(public_xy(&pa).to_vec(), h(PA));
        assert_eq!(public_xy(&pb).to_vec(), h(PB));
        assert_eq!(z_hash(DEFAULT_ID, &pa).unwrap().to_vec(), h(ZA));
        assert_eq!(z_hash(DEFAULT_ID, &pb).unwrap().to_vec(), h(ZB));

        let a = Initiator::start(&mut FixedRng(alloc::vec![h(RA_K)]), &da, DEFAULT_ID).unwrap();
        assert_eq!(public_xy(a.ephemeral()).to_vec(), h(RA));
        let (reply, b_key) = respond(
            &mut FixedRng(alloc::vec![h(RB_K)]),
            &db,
            DEFAULT_ID,
            Party { id: DEFAULT_ID, public: &pa },
            a.ephemeral(),
            16,
        )
        .unwrap();
        assert_eq!(public_xy(&reply.ephemeral).to_vec(), h(RB));
        assert_eq!(reply.sb.to_vec(), h(SB));
        let out = a.finish(Party { id: DEFAULT_ID, public: &pb }, &reply.ephemeral, 16, Some(&reply.sb)).unwrap();
        assert_eq!(out.key.to_vec(), h(K));
        assert_eq!(out.sa.to_vec(), h(SA));
        assert_eq!(b_key.confirm(&out.sa).unwrap().to_vec(), h(K));
    }

    #[test]
    fn round_trip_binary_ids_odd_length_and_failed_confirmations() {
        let mut rng = CounterRng::new(b"sm2 kex");
        let (da, db) = (generate(&mut rng).unwrap(), generate(&mut rng).unwrap());
        let (ida, idb) = (&[0u8, 0xff, 1][..], &b"responder"[..]);
        let a = Initiator::start(&mut rng, &da, ida).unwrap();
        let pa = da.public_key();
        let initiator = Party { id: ida, public: &pa };
        let (reply, b_key) = respond(&mut rng, &db, idb, initiator, a.ephemeral(), 37).unwrap();
        let pb = db.public_key();
        let out = a.finish(Party { id: idb, public: &pb }, &reply.ephemeral, 37, Some(&reply.sb)).unwrap();
        assert_eq!(out.key.len(), 37);
        assert_eq!(b_key.without_confirmation(), out.key);

        // A wrong S_B (or a wrong responder ID) fails at the initiator; a wrong S_A at B.
        let a = Initiator::start(&mut rng, &da, ida).unwrap();
        let (reply, b_key) = respond(&mut rng, &db, idb, initiator, a.ephemeral(), 16).unwrap();
        let wrong = Party { id: b"someone else", public: &pb };
        assert_eq!(a.finish(wrong, &reply.ephemeral, 16, Some(&reply.sb)).err(), Some(AlgError::VerifyFailed));
        assert_eq!(b_key.confirm(&[0u8; 32]).err(), Some(AlgError::VerifyFailed));
    }

    #[test]
    fn bad_lengths_and_rng_failure() {
        let mut rng = CounterRng::new(b"sm2 kex 2");
        let (da, db) = (generate(&mut rng).unwrap(), generate(&mut rng).unwrap());
        let pa = da.public_key();
        let a = Initiator::start(&mut rng, &da, DEFAULT_ID).unwrap();
        let p = Party { id: DEFAULT_ID, public: &pa };
        assert_eq!(respond(&mut rng, &db, DEFAULT_ID, p, a.ephemeral(), 0).err().unwrap(), AlgError::InvalidInput);
        assert_eq!(
            respond(&mut rng, &db, DEFAULT_ID, p, a.ephemeral(), MAX_KEY_LEN + 1).err().unwrap(),
            AlgError::InvalidInput
        );
        assert_eq!(Initiator::start(&mut FailingRng, &da, DEFAULT_ID).err().unwrap(), AlgError::Rng);
    }
}
