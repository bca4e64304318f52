//! \[k\]P for a secret k and any point P of the curve, in constant time in k: what SM2
//! encryption (\[k\]PB) and decryption (\[dB\]C1) need, where P is public but the scalar is not.
//!
//! Signed 4-bit windows: a table of P, 2P, …, 8P (computed in variable time from the public P,
//! then made affine with one batch inversion), and for each of the 65 digits of k four
//! doublings and one mixed addition of the digit's multiple, read by scanning all eight
//! entries with masks and negated by a conditional select. About 260 doublings and 65 mixed
//! additions, against the crate's generic complete formulas.
//!
//! The mixed addition is wrong only when it adds a point to itself, i.e. when the running
//! multiple s·P equals the digit's d·P with s ≡ d (mod n). Below the top windows s is either 0
//! (the identity, handled) or of size at least 16 > |d|; in the top window the argument of
//! [`super::BaseTable::mul`] applies (it would need k within 16 of n). The case is detected
//! in constant time anyway and answered through the crate's arithmetic, so a flaw in the
//! argument costs speed, not correctness.

use ::sm2::elliptic_curve::ff::PrimeField;
use ::sm2::elliptic_curve::subtle::Choice;
use ::sm2::{ProjectivePoint, Scalar};
use zeroize::Zeroize;

use super::fe::Fe;
use super::point::{Affine, Jacobian, select_signed};
use super::table::from_crate;

/// Digits of k: 64 windows of 4 bits and the final carry.
const DIGITS: usize = 65;

/// \[k\]P, constant time in k (P public, on the curve, not the identity).
pub(crate) fn mul(p: &Affine, k: &Scalar) -> Jacobian {
    let table = multiples(p);
    let mut digits = recode(k);
    let mut acc = Jacobian::IDENTITY;
    let mut bad = Choice::from(0);
    for &d in digits.iter().rev() {
        acc = acc.double().double().double().double();
        let (q, zero) = select_signed(&table, d);
        let (sum, same) = acc.add_affine_ct(&q, zero);
        acc = sum;
        bad |= same;
    }
    digits.zeroize();
    if bool::from(bad) {
        // Our points are on the curve (from the crate, or our formulas on such); were one
        // not, the identity makes every caller fail rather than answer wrongly.
        return match super::table::to_crate(p) {
            Some(p) => match (ProjectivePoint::from(p) * k).to_affine() {
                q if bool::from(q.is_identity()) => Jacobian::IDENTITY,
                q => Jacobian::from_affine(&from_crate(&q)),
            },
            None => Jacobian::IDENTITY,
        };
    }
    acc
}

/// P … 8P in affine form (variable time: P is public).
fn multiples(p: &Affine) -> [Affine; 8] {
    let mut jac = [Jacobian::from_affine(p); 8];
    for j in 1..8 {
        jac[j] = jac[j - 1].add_affine_vartime(p);
    }
    // One inversion for all eight Z (Montgomery's trick). No multiple is the identity: P has
    // prime order n > 8.
    let mut prefix = [Fe::ONE; 8];
    let mut acc = Fe::ONE;
    for (j, point) in jac.iter().enumerate() {
        prefix[j] = acc;
        acc = acc.mul(&point.z());
    }
    let mut inv = acc.invert();
    let mut out = [*p; 8];
    for j in (0..8).rev() {
        let zinv = inv.mul(&prefix[j]);
        inv = inv.mul(&jac[j].z());
        out[j] = jac[j].affine_with_zinv(&zinv);
    }
    out
}

/// Signed base-16 digits of k in [−8, 8], least significant first; branch-free.
fn recode(k: &Scalar) -> [i8; DIGITS] {
    let mut repr = k.to_repr();
    let mut digits = [0i8; DIGITS];
    let mut carry: i32 = 0;
    for i in 0..64 {
        // Nibble i counted from the least significant end of the big-endian bytes.
        let byte = repr[31 - i / 2];
        let v = i32::from((byte >> (4 * (i % 2))) & 0xF) + carry; // 0 ..= 16
        let c = ((8 - v) >> 31) & 1; // v > 8
        digits[i] = (v - (c << 4)) as i8;
        carry = c;
    }
    digits[64] = carry as i8;
    repr.zeroize();
    digits
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alg::testrng::CounterRng;
    use ::sm2::elliptic_curve::Field;
    use ::sm2::elliptic_curve::point::AffineCoordinates;

    #[test]
    fn agrees_with_the_crate_on_random_and_edge_scalars() {
        let mut rng = CounterRng::new(b"varbase");
        for _ in 0..6 {
            let base = ProjectivePoint::GENERATOR * Scalar::try_random(&mut rng).unwrap();
            let p = from_crate(&base.to_affine());
            for k in [Scalar::ONE, -Scalar::ONE, Scalar::from(8u64), Scalar::from(9u64), -Scalar::from(8u64)]
                .into_iter()
                .chain((0..4).map(|_| Scalar::try_random(&mut rng).unwrap()))
            {
                let want = (base * k).to_affine();
                assert_eq!(mul(&p, &k).to_affine_bytes(), Some((want.x().into(), want.y().into())));
            }
            assert!(bool::from(mul(&p, &Scalar::ZERO).is_identity()));
        }
    }

    #[test]
    fn recoding_reconstructs_the_scalar() {
        let mut rng = CounterRng::new(b"recode4");
        for k in [Scalar::ZERO, Scalar::ONE, -Scalar::ONE]
            .into_iter()
            .chain((0..30).map(|_| Scalar::try_random(&mut rng).unwrap()))
        {
            let d = recode(&k);
            let mut acc = Scalar::ZERO;
            for &x in d.iter().rev() {
                assert!((-8..=8).contains(&x));
                let v = Scalar::from(u64::from(x.unsigned_abs()));
                acc = acc * Scalar::from(16u64) + if x < 0 { -v } else { v };
            }
            assert_eq!(acc, k);
        }
    }
}
