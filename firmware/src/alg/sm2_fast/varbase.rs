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

use alloc::vec::Vec;
use gmhsm_ec_ifma::VARBASE_ENTRIES;

use super::fe::Fe;
use super::point::{Affine, Jacobian, select_signed};
use super::pool::batch_invert_z;
use super::table::from_crate;

/// Digits of k: 64 windows of 4 bits and the final carry (the IFMA kernel's shape too).
const DIGITS: usize = gmhsm_ec_ifma::VARBASE_DIGITS;

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
    multiples_many(core::slice::from_ref(p)).pop().unwrap_or([*p; 8])
}

/// P … 8P in affine form for every point, with one inversion for all their Z (Montgomery's
/// trick). Variable time: the points are public. No multiple is the identity: every point
/// has prime order n > 8.
fn multiples_many(points: &[Affine]) -> Vec<[Affine; 8]> {
    let mut jac = Vec::with_capacity(points.len() * 8);
    for p in points {
        let mut m = Jacobian::from_affine(p);
        jac.push(m);
        for _ in 1..8 {
            m = m.add_affine_vartime(p);
            jac.push(m);
        }
    }
    let zinv = batch_invert_z(&jac);
    jac.chunks_exact(8)
        .zip(zinv.chunks_exact(8))
        .map(|(ms, zs)| core::array::from_fn(|j| ms[j].affine_with_zinv(&zs[j])))
        .collect()
}

/// \[k\]P for every point of `points` and one secret k (SM2 decryption's \[dB\]C1 for a
/// batch of ciphertexts), constant time in k. With AVX-512 IFMA, eight points at a time in
/// the lanes of `gmhsm_ec_ifma::varbase_mul8` — the same signed 4-bit digits, the same
/// formulas, each lane with its own table of multiples (the eight tables built with one
/// inversion); a lane that reports the exceptional case (Z = 0) is redone by [`mul`].
/// Without IFMA, or for a single point, [`mul`] one at a time. The results are secret (the
/// caller wipes them).
pub(crate) fn mul_many(points: &[Affine], k: &Scalar) -> Vec<Jacobian> {
    const L: usize = gmhsm_ec_ifma::LANES;
    if points.len() < 2 || !gmhsm_ec_ifma::is_available() {
        return points.iter().map(|p| mul(p, k)).collect();
    }
    let mut digits = recode(k);
    let mut out = Vec::with_capacity(points.len());
    for chunk in points.chunks(L) {
        let tables: Vec<[[[u8; 32]; 2]; VARBASE_ENTRIES]> = multiples_many(chunk)
            .iter()
            .map(|m| core::array::from_fn(|j| [m[j][0].to_bytes(), m[j][1].to_bytes()]))
            .collect();
        let mut lanes = [digits; L];
        let result = gmhsm_ec_ifma::varbase_mul8::<gmhsm_ec_ifma::Sm2>(&tables, &lanes[..chunk.len()]);
        lanes.zeroize();
        let Some(result) = result else {
            out.extend(chunk.iter().map(|p| mul(p, k)));
            continue;
        };
        for (p, r) in chunk.iter().zip(&result) {
            match (Fe::from_bytes(&r.x), Fe::from_bytes(&r.y), Fe::from_bytes(&r.z)) {
                (Some(x), Some(y), Some(z)) if !r.z_is_zero() => out.push(Jacobian::from_xyz(x, y, z)),
                // The exceptional case (argued impossible above) or a bad lane: the portable way.
                _ => out.push(mul(p, k)),
            }
        }
    }
    digits.zeroize();
    out
}

/// Affine (x, y) as big-endian bytes of every point, `None` for the identity, with one
/// inversion for all (Montgomery's trick over the points that are not the identity). The
/// caller wipes the result when the points are secret.
pub(crate) fn affine_many(points: &[Jacobian]) -> Vec<Option<([u8; 32], [u8; 32])>> {
    let mut finite: Vec<Jacobian> = points.iter().filter(|p| !bool::from(p.is_identity())).copied().collect();
    let mut zinv = batch_invert_z(&finite);
    let mut next = 0;
    let out = points
        .iter()
        .map(|p| {
            if bool::from(p.is_identity()) {
                return None;
            }
            let z = zinv.get(next)?;
            next += 1;
            let [mut x, mut y] = p.affine_with_zinv(z);
            let bytes = (x.to_bytes(), y.to_bytes());
            x.zeroize();
            y.zeroize();
            Some(bytes)
        })
        .collect();
    // The points may be secret (\[dB\]C1): the copies made here are wiped.
    finite.zeroize();
    zinv.zeroize();
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

    /// Many points times one scalar (eight per IFMA call where the CPU has it) give what
    /// [`mul`] gives for each, across lane groups; `affine_many` agrees with the crate and
    /// keeps the identity in its place.
    #[test]
    fn many_points_agree_with_one_at_a_time_and_the_crate() {
        let mut rng = CounterRng::new(b"varbase many");
        if !gmhsm_ec_ifma::is_available() {
            extern crate std;
            std::eprintln!("!!! no AVX-512 IFMA on this CPU: mul_many's IFMA path is NOT TESTED here !!!");
            assert!(std::env::var_os("GMHSM_REQUIRE_IFMA").is_none(), "GMHSM_REQUIRE_IFMA set but no IFMA");
        }
        for n in [1usize, 2, 8, 9, 19] {
            let bases: Vec<ProjectivePoint> =
                (0..n).map(|_| ProjectivePoint::GENERATOR * Scalar::try_random(&mut rng).unwrap()).collect();
            let points: Vec<Affine> = bases.iter().map(|b| from_crate(&b.to_affine())).collect();
            // n − 6 recodes with a last digit −3 after a running −3P: the doubling case of the
            // mixed addition, which a lane reports with Z = 0 and `mul` redoes.
            for k in [
                Scalar::ONE,
                -Scalar::ONE,
                -Scalar::from(6u64),
                Scalar::from(16u64),
                Scalar::try_random(&mut rng).unwrap(),
            ] {
                let mut many = mul_many(&points, &k);
                many.insert(n / 2, Jacobian::IDENTITY);
                let affine = affine_many(&many);
                assert_eq!(affine.len(), n + 1);
                assert_eq!(affine[n / 2], None, "the identity keeps its place");
                let affine: Vec<_> =
                    affine.into_iter().enumerate().filter(|(i, _)| *i != n / 2).map(|(_, a)| a).collect();
                for ((b, p), got) in bases.iter().zip(&points).zip(affine) {
                    let want = (*b * k).to_affine();
                    assert_eq!(got, Some((want.x().into(), want.y().into())), "{n} points");
                    assert_eq!(got, mul(p, &k).to_affine_bytes());
                }
            }
        }
        assert!(mul_many(&[], &Scalar::ONE).is_empty() && affine_many(&[]).is_empty());
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
