//! The RSA private operation by the Chinese remainder theorem, on [`monty`](super::monty)
//! arithmetic, with everything that depends only on the key computed once when it is loaded.
//!
//! For a key with two primes of L limbs each (n of N = 2L limbs), [`Crt`] caches the
//! Montgomery constants of p, q and n (−m^−1 mod 2^64, R mod m, R² mod m, R³ mod m), dp, dq,
//! qinv = q^−1 mod p and e. One operation on c < n:
//!
//! 1. blinding (optional): c ← c·r^e mod n, with (r^e, r^−1) the key's cached pair squared,
//!    or a fresh random r < n every 32 operations;
//! 2. m1 = (c mod p)^dp mod p and m2 = (c mod q)^dq mod q, each a constant-time fixed-window
//!    exponentiation over all 64·L bits; c mod p is one Montgomery reduction of c (c < n < p·R)
//!    and one multiplication by R³. For a 2048-, 3072- or 4096-bit key on a CPU with AVX-512
//!    IFMA (detected when the key is loaded) the two exponentiations run together on
//!    [`gmhsm_ifma::ModExp::pow2`] ([`ModExp1024`], [`ModExp1536`], [`ModExp2048`]: 52-bit
//!    limbs, interleaved; for 2048 bits about 3.5 times faster than the two portable ones),
//!    which takes and returns ordinary values: a Montgomery multiplication converts c mod p,
//!    c mod q and m1;
//! 3. Garner: h = (m1 − m2)·qinv mod p, m = m2 + q·h (< n, no reduction needed);
//! 4. unblinding: m ← m·r^−1 mod n;
//! 5. fault check: m^e mod n must equal the input, else nothing is returned (a fault in one
//!    CRT half would otherwise give away a factor of n: gcd(m^e − c, n)).
//!
//! Every step is constant time in c, m, r and the key: the inversion of a fresh r is
//! crypto-bigint's constant-time `invert_odd_mod`; the loop that draws r retries only on
//! r ≥ n or r = 0, events that depend on the fresh random r alone.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use rand_core::TryCryptoRng;
use rsa::BoxedUint;
use rsa::traits::{PrivateKeyParts, PublicKeyParts};
use zeroize::{Zeroize, Zeroizing};

use gmhsm_ifma::{ModExp, ModExp1024, ModExp1536, ModExp2048};

use super::monty::{self, Field};

/// Cached CRT constants for a key of two L-limb primes and an N = 2L-limb modulus.
pub struct Crt<const L: usize, const N: usize> {
    p: Field<L>,
    q: Field<L>,
    dp: [u64; L],
    dq: [u64; L],
    /// q^−1 mod p.
    qinv: [u64; L],
    n: Field<N>,
    /// The public exponent, little-endian limbs.
    e: Vec<u64>,
    blinding: BlindingCache<N>,
    /// The IFMA exponentiations mod p and q, if this CPU has IFMA and the primes are 1024-,
    /// 1536- or 2048-bit (L = 16, 24, 32).
    ifma: Option<Ifma>,
}

/// The IFMA exponentiations mod p and q, one variant per prime size (the larger ones boxed so
/// that a 2048-bit key's `Crt` does not carry their size; `ModExp` zeroizes itself on drop,
/// wherever it lives). The 1024-bit pair stays inline, as before.
#[allow(clippy::large_enum_variant)]
enum Ifma {
    L16([ModExp1024; 2]),
    L24(Box<[ModExp1536; 2]>),
    L32(Box<[ModExp2048; 2]>),
}

impl Ifma {
    /// The pair for primes p, q of L limbs, if L is 16, 24 or 32, the CPU has IFMA and both
    /// are odd and above 1.
    fn new<const L: usize>(p: &[u64; L], q: &[u64; L]) -> Option<Self> {
        fn pair<const W: usize, const LL: usize, const Z: usize>(
            p: &[u64],
            q: &[u64],
        ) -> Option<[ModExp<W, LL, Z>; 2]> {
            let (p, q) = (<&[u64; W]>::try_from(p).ok()?, <&[u64; W]>::try_from(q).ok()?);
            ModExp::new(p).zip(ModExp::new(q)).map(|(p, q)| [p, q])
        }
        match L {
            16 => pair(p, q).map(Ifma::L16),
            24 => pair(p, q).map(|e| Ifma::L24(Box::new(e))),
            32 => pair(p, q).map(|e| Ifma::L32(Box::new(e))),
            _ => None,
        }
    }
}

/// A blinding pair (r^e, r^−1), Montgomery form mod n.
type Pair<const N: usize> = (Zeroizing<[u64; N]>, Zeroizing<[u64; N]>);

/// Operations served by one blinding pair (squared after each) before a fresh r is drawn,
/// as OpenSSL's `BN_BLINDING` does.
const BLINDING_USES: u8 = 32;

/// The current blinding pair (r^e, r^−1), both in Montgomery form mod n, shared by the
/// operations on this key. Atomics make it usable through `&self` without `unsafe`: `busy` is
/// a try-lock; an operation that finds it taken draws a fresh pair of its own.
struct BlindingCache<const N: usize> {
    busy: AtomicBool,
    /// Operations left on the stored pair; 0 = none stored.
    uses_left: AtomicU8,
    re: [AtomicU64; N],
    rinv: [AtomicU64; N],
}

impl<const N: usize> BlindingCache<N> {
    fn new() -> Self {
        BlindingCache {
            busy: AtomicBool::new(false),
            uses_left: AtomicU8::new(0),
            re: core::array::from_fn(|_| AtomicU64::new(0)),
            rinv: core::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    fn load(limbs: &[AtomicU64; N]) -> Zeroizing<[u64; N]> {
        Zeroizing::new(core::array::from_fn(|i| limbs[i].load(Ordering::Relaxed)))
    }

    fn store(limbs: &[AtomicU64; N], v: &[u64; N]) {
        for (l, v) in limbs.iter().zip(v) {
            l.store(*v, Ordering::Relaxed);
        }
    }
}

impl<const N: usize> Drop for BlindingCache<N> {
    fn drop(&mut self) {
        for l in self.re.iter_mut().chain(self.rinv.iter_mut()) {
            *l.get_mut() = 0;
        }
        core::sync::atomic::compiler_fence(Ordering::SeqCst);
    }
}

impl<const L: usize, const N: usize> Drop for Crt<L, N> {
    fn drop(&mut self) {
        self.dp.zeroize();
        self.dq.zeroize();
        self.qinv.zeroize();
    }
}

/// A secret `BoxedUint` as L limbs, if it fits.
fn limbs<const L: usize>(v: &BoxedUint) -> Option<[u64; L]> {
    let bytes = Zeroizing::new(v.to_be_bytes().into_vec());
    monty::from_be::<L>(&bytes)
}

/// Why a private operation produced nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrtError {
    /// The input is not k bytes or not below n.
    Input,
    /// The random number generator failed.
    Rng,
    /// The result failed the re-encryption check (a fault, or an inconsistent key).
    Fault,
}

impl<const L: usize, const N: usize> Crt<L, N> {
    /// The constants for `key`, or `None` if it does not have exactly two primes of at most
    /// 64·L bits, an N-limb modulus and precomputed dp, dq. Uses IFMA when it can.
    pub fn new(key: &rsa::PrivateKey) -> Option<Self> {
        Self::new_with(key, true)
    }

    /// As [`Self::new`]; `allow_ifma: false` keeps the exponentiations on the portable path
    /// whatever the CPU (tests compare the two).
    pub fn new_with(key: &rsa::PrivateKey, allow_ifma: bool) -> Option<Self> {
        const { assert!(N == 2 * L) };
        let [p, q] = key.primes() else { return None };
        let p = limbs::<L>(p.as_ref())?;
        let q = limbs::<L>(q.as_ref())?;
        let n = monty::from_be::<N>(&key.n().as_ref().to_be_bytes())?;
        if key.size() != 8 * N || p[0] & q[0] & 1 == 0 {
            return None;
        }
        let dp = limbs::<L>(key.dp()?)?;
        let dq = limbs::<L>(key.dq()?)?;
        let qinv = limbs::<L>(&Zeroizing::new(key.crt_coefficient()?))?;
        let e_bytes = key.e().to_be_bytes();
        let e = e_bytes.rchunks(8).map(|c| c.iter().fold(0u64, |a, &b| a << 8 | b as u64)).collect();
        let ifma = if allow_ifma { Ifma::new(&p, &q) } else { None };
        Some(Crt {
            p: Field::new(&p),
            q: Field::new(&q),
            dp,
            dq,
            qinv,
            n: Field::new(&n),
            e,
            blinding: BlindingCache::new(),
            ifma,
        })
    }

    /// Whether the exponentiations run on AVX-512 IFMA.
    #[cfg(test)]
    pub fn uses_ifma(&self) -> bool {
        self.ifma.is_some()
    }

    /// c^d mod n for c < n (big-endian k bytes in `input`), into `out` (k bytes), blinded
    /// with `rng` if one is given, checked by re-encryption.
    pub fn private_op<R: TryCryptoRng + ?Sized>(
        &self,
        rng: Option<&mut R>,
        key_n: &rsa::PublicKey,
        input: &[u8],
        out: &mut [u8],
    ) -> Result<(), CrtError> {
        if input.len() != 8 * N || out.len() != 8 * N {
            return Err(CrtError::Input);
        }
        let c = monty::from_be::<N>(input).ok_or(CrtError::Input)?;
        if !monty::lt_public(&c, self.n.modulus()) {
            return Err(CrtError::Input);
        }
        let mut m = Zeroizing::new([0u64; N]);
        match rng {
            Some(rng) => {
                let (re, rinv) = self.blinding_pair(rng, key_n)?;
                // c·r^e·R·R^−1 = c·r^e mod n; c < n and re < n.
                let blinded = Zeroizing::new(self.n.mul(&c, &re));
                self.crt(&blinded, &mut m);
                *m = self.n.mul(&m, &rinv);
            }
            None => self.crt(&c, &mut m),
        }
        // Fault check: m^e = c.
        let mut check = self.n.retrieve(&self.n.pow_public(&self.n.to_mont(&m), &self.e));
        let diff = check.iter().zip(&c).fold(0, |acc, (a, b)| acc | (a ^ b));
        check.zeroize();
        if diff != 0 {
            return Err(CrtError::Fault);
        }
        monty::to_be(&m[..], out);
        Ok(())
    }

    /// The next blinding pair: the cached one squared ((r²)^e = (r^e)², (r²)^−1 = (r^−1)²),
    /// or a fresh one every [`BLINDING_USES`] operations and whenever the cache is busy.
    fn blinding_pair<R: TryCryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        key_n: &rsa::PublicKey,
    ) -> Result<Pair<N>, CrtError> {
        let cache = &self.blinding;
        if cache.busy.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
            return self.fresh_blinding(rng, key_n);
        }
        let left = cache.uses_left.load(Ordering::Relaxed);
        let pair = if left == 0 {
            self.fresh_blinding(rng, key_n).inspect(|_| cache.uses_left.store(BLINDING_USES, Ordering::Relaxed))
        } else {
            cache.uses_left.store(left - 1, Ordering::Relaxed);
            let re = BlindingCache::load(&cache.re);
            let rinv = BlindingCache::load(&cache.rinv);
            Ok((Zeroizing::new(self.n.sqr(&re)), Zeroizing::new(self.n.sqr(&rinv))))
        };
        if let Ok((re, rinv)) = &pair {
            BlindingCache::store(&cache.re, re);
            BlindingCache::store(&cache.rinv, rinv);
        }
        cache.busy.store(false, Ordering::Release);
        pair
    }

    /// (r^e in Montgomery form, r^−1 in Montgomery form) for a fresh random r in [1, n).
    fn fresh_blinding<R: TryCryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        key_n: &rsa::PublicKey,
    ) -> Result<Pair<N>, CrtError> {
        let n = self.n.modulus();
        let top_bits = 64 - n[N - 1].leading_zeros();
        let mut bytes = Zeroizing::new([[0u8; N]; 8]);
        loop {
            rng.try_fill_bytes(bytes.as_flattened_mut()).map_err(|_| CrtError::Rng)?;
            let mut r = Zeroizing::new(monty::from_be::<N>(bytes.as_flattened()).ok_or(CrtError::Rng)?);
            // Keep r below 2^bits(n): then r < n with probability at least 1/2.
            r[N - 1] &= u64::MAX >> (64 - top_bits);
            if !monty::lt_public(&r[..], n) || r.iter().all(|&l| l == 0) {
                continue;
            }
            monty::to_be(&r[..], bytes.as_flattened_mut());
            let big = Zeroizing::new(
                BoxedUint::from_be_slice(bytes.as_flattened(), key_n.n_bits_precision()).map_err(|_| CrtError::Rng)?,
            );
            let Some(inv) = Option::<BoxedUint>::from(big.invert_odd_mod(key_n.n_params().modulus())) else {
                continue;
            };
            let inv = Zeroizing::new(inv);
            let inv = Zeroizing::new(limbs::<N>(&inv).ok_or(CrtError::Rng)?);
            let rm = Zeroizing::new(self.n.to_mont(&r));
            let re = Zeroizing::new(self.n.pow_public(&rm, &self.e));
            return Ok((re, Zeroizing::new(self.n.to_mont(&inv))));
        }
    }

    /// Flip a bit of dp, as a fault would.
    #[cfg(test)]
    pub fn corrupt_dp(&mut self) {
        self.dp[3] ^= 1 << 17;
    }

    /// m = c^d mod n by the CRT, for c < n; constant time.
    fn crt(&self, c: &[u64; N], m: &mut [u64; N]) {
        let (p, q) = (&self.p, &self.q);
        let mut cp = Zeroizing::new(p.to_mont_wide(c));
        let mut cq = Zeroizing::new(q.to_mont_wide(c));
        // m1 in Montgomery form, m2 ordinary.
        let (m1, m2) = match &self.ifma {
            Some(Ifma::L16(ifma)) => ifma_halves(ifma, p, q, &cp, &cq, &self.dp, &self.dq),
            Some(Ifma::L24(ifma)) => ifma_halves(ifma, p, q, &cp, &cq, &self.dp, &self.dq),
            Some(Ifma::L32(ifma)) => ifma_halves(ifma, p, q, &cp, &cq, &self.dp, &self.dq),
            None => (Zeroizing::new(p.pow(&cp, &self.dp)), Zeroizing::new(q.retrieve(&q.pow(&cq, &self.dq)))),
        };
        cp.zeroize();
        cq.zeroize();
        // (m1 − m2)·R mod p, then times qinv·R^−1: h = (m1 − m2)·qinv mod p.
        let m2p = Zeroizing::new(p.to_mont(&m2));
        let diff = Zeroizing::new(p.sub(&m1, &m2p));
        let h = Zeroizing::new(p.mul(&diff, &self.qinv));
        // m = m2 + q·h < q + q·(p − 1) = n.
        monty::mul_wide(q.modulus(), &h, &mut m[..]);
        monty::add_into(&mut m[..], &m2[..]);
    }
}

/// (m1 = cp^dp mod p in Montgomery form, m2 = cq^dq mod q) from cp, cq in Montgomery form,
/// the two exponentiations interleaved on IFMA. An `Ifma` variant of W-word `ModExp`s exists
/// only for W-limb primes (L = W), so the slice conversions cannot fail; if they did, the
/// portable path runs.
#[allow(clippy::too_many_arguments)]
fn ifma_halves<const L: usize, const W: usize, const LL: usize, const Z: usize>(
    ifma: &[ModExp<W, LL, Z>; 2],
    p: &Field<L>,
    q: &Field<L>,
    cp: &[u64; L],
    cq: &[u64; L],
    dp: &[u64; L],
    dq: &[u64; L],
) -> (Zeroizing<[u64; L]>, Zeroizing<[u64; L]>) {
    let bases = [Zeroizing::new(p.retrieve(cp)), Zeroizing::new(q.retrieve(cq))];
    let (mut m1, mut m2) = (Zeroizing::new([0u64; L]), Zeroizing::new([0u64; L]));
    if let (Some(bp), Some(bq), Some(ep), Some(eq), Ok(o1), Ok(o2)) = (
        as_w::<L, W>(&bases[0]),
        as_w::<L, W>(&bases[1]),
        as_w::<L, W>(dp),
        as_w::<L, W>(dq),
        <&mut [u64; W]>::try_from(&mut m1[..]),
        <&mut [u64; W]>::try_from(&mut m2[..]),
    ) {
        ModExp::pow2([&ifma[0], &ifma[1]], [bp, bq], [ep, eq], [o1, o2]);
        return (Zeroizing::new(p.to_mont(&m1)), m2);
    }
    (Zeroizing::new(p.pow(cp, dp)), Zeroizing::new(q.retrieve(&q.pow(cq, dq))))
}

/// An L-limb number as W limbs, if L = W.
fn as_w<const L: usize, const W: usize>(x: &[u64; L]) -> Option<&[u64; W]> {
    x[..].try_into().ok()
}
