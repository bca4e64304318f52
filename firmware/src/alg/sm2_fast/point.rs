//! SM2 curve points in Jacobian coordinates (x = X/Z², y = Y/Z³; Z = 0 is the identity)
//! over [`Fe`], with the a = −3 formulas of the Explicit-Formulas Database:
//! dbl-2001-b (3M + 5S), madd-2007-bl (7M + 4S), add-2007-bl (11M + 5S).
//!
//! [`Jacobian::add_affine_ct`] is constant time and reports, instead of handling, the one
//! case its formula gets wrong (adding a point to itself), so that the caller can redo the
//! whole multiplication another way; the `_vartime` functions branch on their (public)
//! inputs and handle every case.

use ::sm2::elliptic_curve::subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

use super::fe::Fe;

/// An affine point (x, y) in Montgomery form; never the identity.
pub type Affine = [Fe; 2];

#[derive(Clone, Copy, Debug)]
pub struct Jacobian {
    x: Fe,
    y: Fe,
    z: Fe,
}

impl Default for Jacobian {
    fn default() -> Self {
        Jacobian::IDENTITY
    }
}

impl zeroize::DefaultIsZeroes for Jacobian {}

impl ConditionallySelectable for Jacobian {
    fn conditional_select(a: &Self, b: &Self, c: Choice) -> Self {
        Jacobian {
            x: Fe::conditional_select(&a.x, &b.x, c),
            y: Fe::conditional_select(&a.y, &b.y, c),
            z: Fe::conditional_select(&a.z, &b.z, c),
        }
    }
}

impl Jacobian {
    pub const IDENTITY: Jacobian = Jacobian { x: Fe::ONE, y: Fe::ONE, z: Fe::ZERO };

    pub fn from_affine(p: &Affine) -> Jacobian {
        Jacobian { x: p[0], y: p[1], z: Fe::ONE }
    }

    /// From Jacobian coordinates in Montgomery form.
    pub fn from_xyz(x: Fe, y: Fe, z: Fe) -> Jacobian {
        Jacobian { x, y, z }
    }

    pub fn is_identity(&self) -> Choice {
        self.z.is_zero()
    }

    /// The Jacobian Z (its batch inversion gives the affine x of many points at once).
    pub fn z(&self) -> Fe {
        self.z
    }

    /// Affine (x, y) given Z^−1.
    pub fn affine_with_zinv(&self, zinv: &Fe) -> Affine {
        let zinv2 = zinv.square();
        [self.x.mul(&zinv2), self.y.mul(&zinv2.mul(zinv))]
    }

    /// Affine x given Z^−1.
    pub fn x_with_zinv(&self, zinv: &Fe) -> Fe {
        self.x.mul(&zinv.square())
    }

    /// Affine (x, y) as big-endian bytes, or `None` for the identity. Constant time
    /// apart from that outcome.
    pub fn to_affine_bytes(self) -> Option<([u8; 32], [u8; 32])> {
        if bool::from(self.is_identity()) {
            return None;
        }
        let zinv = self.z.invert();
        let zinv2 = zinv.square();
        Some((self.x.mul(&zinv2).to_bytes(), self.y.mul(&zinv2.mul(&zinv)).to_bytes()))
    }

    pub fn neg(&self) -> Jacobian {
        Jacobian { x: self.x, y: self.y.neg(), z: self.z }
    }

    /// 2P (dbl-2001-b, a = −3); the identity doubles to itself.
    pub fn double(&self) -> Jacobian {
        let delta = self.z.square();
        let gamma = self.y.square();
        let beta = self.x.mul(&gamma);
        let t = self.x.sub(&delta).mul(&self.x.add(&delta));
        let alpha = t.double().add(&t);
        let beta4 = beta.double().double();
        let x3 = alpha.square().sub(&beta4.double());
        let z3 = self.y.add(&self.z).square().sub(&gamma).sub(&delta);
        let gamma2_8 = gamma.square().double().double().double();
        let y3 = alpha.mul(&beta4.sub(&x3)).sub(&gamma2_8);
        Jacobian { x: x3, y: y3, z: z3 }
    }

    /// The madd-2007-bl formula, and whether its exceptional case (H = 0 and r = 0, i.e.
    /// self = q) was hit.
    fn madd(&self, q: &Affine) -> (Jacobian, Choice) {
        let z1z1 = self.z.square();
        let u2 = q[0].mul(&z1z1);
        let s2 = q[1].mul(&self.z).mul(&z1z1);
        let h = u2.sub(&self.x);
        let hh = h.square();
        let i = hh.double().double();
        let j = h.mul(&i);
        let r = s2.sub(&self.y).double();
        let v = self.x.mul(&i);
        let x3 = r.square().sub(&j).sub(&v.double());
        let y3 = r.mul(&v.sub(&x3)).sub(&self.y.mul(&j).double());
        let z3 = self.z.add(&h).square().sub(&z1z1).sub(&hh);
        (Jacobian { x: x3, y: y3, z: z3 }, h.is_zero() & r.is_zero())
    }

    /// self + q, where q is skipped if `q_identity`; constant time. The returned `Choice`
    /// is set when self = q (both not the identity): the sum is then wrong.
    pub fn add_affine_ct(&self, q: &Affine, q_identity: Choice) -> (Jacobian, Choice) {
        let (sum, same) = self.madd(q);
        let p_identity = self.is_identity();
        let mut out = Jacobian::conditional_select(&sum, &Jacobian::from_affine(q), p_identity);
        out.conditional_assign(self, q_identity);
        (out, same & !p_identity & !q_identity)
    }

    /// self + q for public points, every case handled.
    pub fn add_affine_vartime(&self, q: &Affine) -> Jacobian {
        if bool::from(self.is_identity()) {
            return Jacobian::from_affine(q);
        }
        let (sum, same) = self.madd(q);
        if bool::from(same) { self.double() } else { sum }
    }

    /// self + q for public points (add-2007-bl), every case handled.
    pub fn add_vartime(&self, q: &Jacobian) -> Jacobian {
        if bool::from(self.is_identity()) {
            return *q;
        }
        if bool::from(q.is_identity()) {
            return *self;
        }
        let z1z1 = self.z.square();
        let z2z2 = q.z.square();
        let u1 = self.x.mul(&z2z2);
        let u2 = q.x.mul(&z1z1);
        let s1 = self.y.mul(&q.z).mul(&z2z2);
        let s2 = q.y.mul(&self.z).mul(&z1z1);
        let h = u2.sub(&u1);
        let r = s2.sub(&s1).double();
        if bool::from(h.is_zero()) {
            return if bool::from(r.is_zero()) { self.double() } else { Jacobian::IDENTITY };
        }
        let i = h.double().square();
        let j = h.mul(&i);
        let v = u1.mul(&i);
        let x3 = r.square().sub(&j).sub(&v.double());
        let y3 = r.mul(&v.sub(&x3)).sub(&s1.mul(&j).double());
        let z3 = self.z.add(&q.z).square().sub(&z1z1).sub(&z2z2).mul(&h);
        Jacobian { x: x3, y: y3, z: z3 }
    }

    /// Whether the affine x of self (not the identity) equals `x` (canonical, < p),
    /// without an inversion: X = x·Z².
    pub fn x_equals(&self, x: &Fe) -> bool {
        bool::from(self.x.ct_eq(&x.mul(&self.z.square())))
    }

    /// \[k\]P for a public k given as big-endian bytes: width-5 wNAF, variable time.
    pub fn mul_vartime(&self, k: &[u8; 32]) -> Jacobian {
        // Odd multiples P, 3P, …, 15P.
        let mut odd = [*self; 8];
        let p2 = self.double();
        for i in 1..8 {
            odd[i] = odd[i - 1].add_vartime(&p2);
        }
        let digits = wnaf5(k);
        let mut acc = Jacobian::IDENTITY;
        for &d in digits.iter().rev() {
            acc = acc.double();
            if d > 0 {
                acc = acc.add_vartime(&odd[(d as usize) / 2]);
            } else if d < 0 {
                acc = acc.add_vartime(&odd[(d.unsigned_abs() as usize) / 2].neg());
            }
        }
        acc
    }
}

/// (|d| · entries\[0\] with the sign of d, d = 0) from `entries` = P, 2P, …, reading every
/// entry and keeping one with a mask, negating by a conditional select: constant time in d
/// (|d| ≤ `entries.len()`). The table lookups of [`super::BaseTable`] and of the windowed
/// multiplication both go through here.
pub fn select_signed(entries: &[Affine], d: i8) -> (Affine, Choice) {
    let sign = d >> 7; // 0 or −1
    let abs = ((d ^ sign) - sign) as u8;
    let mut t = [Fe::ONE, Fe::ONE];
    for (j, p) in entries.iter().enumerate() {
        // All ones iff abs = j + 1: x | −x has its top bit set iff x ≠ 0.
        let x = u64::from(abs) ^ (j as u64 + 1);
        let mask = ((x | x.wrapping_neg()) >> 63).wrapping_sub(1);
        t[0].cmov(&p[0], mask);
        t[1].cmov(&p[1], mask);
    }
    let neg = t[1].neg();
    t[1].conditional_assign(&neg, Choice::from((sign & 1) as u8));
    (t, abs.ct_eq(&0))
}

/// L independent lanes of field operations side by side: each lane's operation is one
/// serial chain of dependent instructions, and putting L of them next to each other lets the
/// processor overlap them (latency-bound → throughput-bound). Constant time like [`Fe`].
mod lanes {
    use super::Fe;

    #[inline(always)]
    pub fn mul<const L: usize>(a: &[Fe; L], b: &[Fe; L]) -> [Fe; L] {
        core::array::from_fn(|i| a[i].mul(&b[i]))
    }
    #[inline(always)]
    pub fn sq<const L: usize>(a: &[Fe; L]) -> [Fe; L] {
        core::array::from_fn(|i| a[i].square())
    }
    #[inline(always)]
    pub fn add<const L: usize>(a: &[Fe; L], b: &[Fe; L]) -> [Fe; L] {
        core::array::from_fn(|i| a[i].add(&b[i]))
    }
    #[inline(always)]
    pub fn sub<const L: usize>(a: &[Fe; L], b: &[Fe; L]) -> [Fe; L] {
        core::array::from_fn(|i| a[i].sub(&b[i]))
    }
    #[inline(always)]
    pub fn dbl<const L: usize>(a: &[Fe; L]) -> [Fe; L] {
        core::array::from_fn(|i| a[i].double())
    }
}

/// `acc[l] += q[l]` for L lanes at once (q\[l\] skipped where `q_identity[l]`), constant
/// time: the madd-2007-bl formula of [`Jacobian::add_affine_ct`] evaluated lane-parallel.
/// Returns, as in the single-lane function, whether any lane added a point to itself (its sum
/// is then wrong).
pub fn add_affine_ct_lanes<const L: usize>(
    acc: &mut [Jacobian; L],
    q: &[Affine; L],
    q_identity: &[Choice; L],
) -> Choice {
    use lanes::*;
    let x1: [Fe; L] = core::array::from_fn(|l| acc[l].x);
    let y1: [Fe; L] = core::array::from_fn(|l| acc[l].y);
    let z1: [Fe; L] = core::array::from_fn(|l| acc[l].z);
    let qx: [Fe; L] = core::array::from_fn(|l| q[l][0]);
    let qy: [Fe; L] = core::array::from_fn(|l| q[l][1]);
    let z1z1 = sq(&z1);
    let u2 = mul(&qx, &z1z1);
    let s2 = mul(&mul(&qy, &z1), &z1z1);
    let h = sub(&u2, &x1);
    let hh = sq(&h);
    let i = dbl(&dbl(&hh));
    let j = mul(&h, &i);
    let r = dbl(&sub(&s2, &y1));
    let v = mul(&x1, &i);
    let x3 = sub(&sub(&sq(&r), &j), &dbl(&v));
    let y3 = sub(&mul(&r, &sub(&v, &x3)), &dbl(&mul(&y1, &j)));
    let z3 = sub(&sub(&sq(&add(&z1, &h)), &z1z1), &hh);
    let mut bad = Choice::from(0);
    for l in 0..L {
        let sum = Jacobian { x: x3[l], y: y3[l], z: z3[l] };
        let same = h[l].is_zero() & r[l].is_zero();
        let p_identity = acc[l].is_identity();
        let mut out = Jacobian::conditional_select(&sum, &Jacobian::from_affine(&q[l]), p_identity);
        out.conditional_assign(&acc[l], q_identity[l]);
        bad |= same & !p_identity & !q_identity[l];
        acc[l] = out;
    }
    bad
}

/// Width-5 non-adjacent form of a 256-bit big-endian integer: digits odd in [−15, 15] or 0,
/// least significant first. Variable time (public scalars only).
fn wnaf5(k: &[u8; 32]) -> [i8; 257] {
    let mut l = [0u64; 5];
    for (i, limb) in l.iter_mut().take(4).enumerate() {
        let mut b = [0u8; 8];
        b.copy_from_slice(&k[32 - 8 * (i + 1)..32 - 8 * i]);
        *limb = u64::from_be_bytes(b);
    }
    let mut out = [0i8; 257];
    let mut i = 0;
    while l.iter().any(|&x| x != 0) {
        if l[0] & 1 == 1 {
            let mut d = (l[0] & 31) as i64;
            if d >= 16 {
                d -= 32;
            }
            out[i] = d as i8;
            // l −= d
            if d > 0 {
                let mut borrow = d as u64;
                for x in l.iter_mut() {
                    let (v, b) = x.overflowing_sub(borrow);
                    *x = v;
                    borrow = b as u64;
                }
            } else {
                let mut carry = (-d) as u64;
                for x in l.iter_mut() {
                    let (v, c) = x.overflowing_add(carry);
                    *x = v;
                    carry = c as u64;
                }
            }
        }
        for j in 0..4 {
            l[j] = (l[j] >> 1) | (l[j + 1] << 63);
        }
        l[4] >>= 1;
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alg::sm2_fast::table::from_crate;
    use crate::alg::testrng::CounterRng;
    use ::sm2::elliptic_curve::Field;
    use ::sm2::elliptic_curve::ff::PrimeField;
    use ::sm2::elliptic_curve::point::AffineCoordinates;
    use ::sm2::{ProjectivePoint, Scalar};

    fn ours(k: &Scalar) -> Jacobian {
        Jacobian::from_affine(&from_crate(&(ProjectivePoint::GENERATOR * k).to_affine()))
    }

    fn bytes(k: &Scalar) -> Option<([u8; 32], [u8; 32])> {
        let p = (ProjectivePoint::GENERATOR * k).to_affine();
        if bool::from(p.is_identity()) { None } else { Some((p.x().into(), p.y().into())) }
    }

    #[test]
    fn formulas_agree_with_the_crate_including_edge_cases() {
        let mut rng = CounterRng::new(b"point");
        for _ in 0..10 {
            let a = Scalar::try_random(&mut rng).unwrap();
            let b = Scalar::try_random(&mut rng).unwrap();
            let (pa, pb) = (ours(&a), ours(&b));
            let qb = from_crate(&(ProjectivePoint::GENERATOR * b).to_affine());
            assert_eq!(pa.double().to_affine_bytes(), bytes(&a.double()));
            assert_eq!(pa.double().add_vartime(&pb).to_affine_bytes(), bytes(&(a.double() + b)));
            assert_eq!(pa.double().add_affine_vartime(&qb).to_affine_bytes(), bytes(&(a.double() + b)));
            let (sum, same) = pa.double().add_affine_ct(&qb, Choice::from(0));
            assert_eq!((sum.to_affine_bytes(), bool::from(same)), (bytes(&(a.double() + b)), false));
            // P + P, P + (−P), identity on either side.
            assert_eq!(pb.add_vartime(&pb).to_affine_bytes(), bytes(&b.double()));
            assert_eq!(pb.add_affine_vartime(&qb).to_affine_bytes(), bytes(&b.double()));
            assert_eq!(pb.add_vartime(&pb.neg()).to_affine_bytes(), None);
            assert!(bool::from(pb.add_affine_ct(&qb, Choice::from(0)).1), "self-addition is reported");
            let (s, bad) = Jacobian::IDENTITY.add_affine_ct(&qb, Choice::from(0));
            assert_eq!((s.to_affine_bytes(), bool::from(bad)), (bytes(&b), false));
            let (s, bad) = pa.add_affine_ct(&qb, Choice::from(1));
            assert_eq!((s.to_affine_bytes(), bool::from(bad)), (bytes(&a), false));
            // wNAF variable-base multiplication.
            let k: [u8; 32] = b.to_repr().into();
            assert_eq!(pa.mul_vartime(&k).to_affine_bytes(), bytes(&(a * b)));
        }
        let one: [u8; 32] = Scalar::ONE.to_repr().into();
        assert_eq!(ours(&Scalar::ONE).mul_vartime(&one).to_affine_bytes(), bytes(&Scalar::ONE));
        let m1: [u8; 32] = (-Scalar::ONE).to_repr().into();
        assert_eq!(ours(&Scalar::ONE).mul_vartime(&m1).to_affine_bytes(), bytes(&-Scalar::ONE));
        assert_eq!(ours(&Scalar::ONE).mul_vartime(&[0; 32]).to_affine_bytes(), None);
    }
}
