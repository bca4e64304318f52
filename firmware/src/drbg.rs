//! Hash_DRBG (NIST SP 800-90A §10.1.1) over any 256-bit digest; with SM3 it is the GM/T 0105
//! SM3 DRBG that every key and nonce of the card comes from.
//!
//! Written by hand because no crate implements Hash_DRBG with SM3. The structure is the SP
//! 800-90A one with seedlen = 440 bits; the same code instantiated with SHA-256 is checked
//! against the NIST CAVP Hash_DRBG vectors, and with SM3 against self-consistency properties.
//!
//! Hashgen's output blocks are hashes of V, V + 1, V + 2, … — independent of each other — so
//! they go [`LANES`] at a time through [`DigestEach`]: for SM3 the multi-buffer hashing of
//! `gmhsm-sm3x` (sixteen messages per pass on AVX-512; one or two blocks, as a short request
//! or the last group has, are hashed one at a time), which makes the card's nonce draws
//! (32 bytes per nonce, a batch per request) several times cheaper. The output is the same
//! bytes either way (tested).

use sm3::digest::Digest;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// seedlen for 256-bit hashes (SP 800-90A Table 2): 440 bits.
pub const SEED_LEN: usize = 55;
/// Most bytes one `generate` call may return (2^19 bits).
pub const MAX_REQUEST: usize = 1 << 16;
/// Generate calls between reseeds (GM/T 0105 allows at most 2^20).
pub const RESEED_INTERVAL: u64 = 1 << 20;

/// Hashgen blocks hashed together (one pass of the multi-buffer SM3).
pub const LANES: usize = 16;

/// A 256-bit digest that can hash many independent messages at once. The default hashes
/// them one after the other.
pub trait DigestEach: Digest {
    /// `out[i] = H(msgs[i])` for every i (`msgs` and `out` have the same length).
    fn digest_each(msgs: &[&[u8]], out: &mut [[u8; 32]]) {
        for (m, o) in msgs.iter().zip(out.iter_mut()) {
            o.copy_from_slice(&Self::digest(m));
        }
    }
}

/// SM3 through the multi-buffer kernel (AVX-512 when the CPU has it, else one at a time).
impl DigestEach for sm3::Sm3 {
    fn digest_each(msgs: &[&[u8]], out: &mut [[u8; 32]]) {
        gmhsm_sm3x::digest_many(&[], msgs, out);
    }
}

/// SHA-256 one at a time (the power-on self-test's CAVP vector).
impl DigestEach for sha2::Sha256 {}

/// Why the DRBG returned nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrbgError {
    /// The reseed interval is reached: reseed with fresh entropy first.
    ReseedRequired,
    /// More than [`MAX_REQUEST`] bytes requested.
    RequestTooLarge,
}

impl core::fmt::Display for DrbgError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            DrbgError::ReseedRequired => "drbg: reseed required",
            DrbgError::RequestTooLarge => "drbg: request too large",
        })
    }
}

impl core::error::Error for DrbgError {}

/// Hash_DRBG state. `V` and `C` are secret; dropping zeroizes them.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct HashDrbg<D: DigestEach> {
    v: [u8; SEED_LEN],
    c: [u8; SEED_LEN],
    reseed_counter: u64,
    #[zeroize(skip)]
    _d: core::marker::PhantomData<D>,
}

impl<D: DigestEach> core::fmt::Debug for HashDrbg<D> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("HashDrbg").field("reseed_counter", &self.reseed_counter).finish_non_exhaustive()
    }
}

/// Hash_df (SP 800-90A §10.3.1): derive `out.len()` bytes from the concatenated inputs.
fn hash_df<D: Digest>(inputs: &[&[u8]], out: &mut [u8]) {
    let bits = (out.len() as u32) * 8;
    let mut counter: u8 = 1;
    for chunk in out.chunks_mut(<D as Digest>::output_size()) {
        let mut h = D::new();
        h.update([counter]);
        h.update(bits.to_be_bytes());
        for i in inputs {
            h.update(i);
        }
        let d = h.finalize();
        chunk.copy_from_slice(&d[..chunk.len()]);
        counter = counter.wrapping_add(1);
    }
}

/// `acc = (acc + x) mod 2^(8·SEED_LEN)`, big-endian, `x` right-aligned.
fn add_into(acc: &mut [u8; SEED_LEN], x: &[u8]) {
    let mut carry = 0u16;
    let mut xi = x.iter().rev();
    for a in acc.iter_mut().rev() {
        let s = *a as u16 + *xi.next().unwrap_or(&0) as u16 + carry;
        *a = s as u8;
        carry = s >> 8;
    }
}

impl<D: DigestEach> HashDrbg<D> {
    /// Instantiate (§10.1.1.2) from entropy input, a nonce and a personalization string.
    pub fn new(entropy: &[u8], nonce: &[u8], personalization: &[u8]) -> Self {
        let mut s = Self { v: [0; SEED_LEN], c: [0; SEED_LEN], reseed_counter: 1, _d: Default::default() };
        hash_df::<D>(&[entropy, nonce, personalization], &mut s.v);
        let v = s.v;
        hash_df::<D>(&[&[0u8], &v], &mut s.c);
        s
    }

    /// Reseed (§10.1.1.3).
    pub fn reseed(&mut self, entropy: &[u8], additional: &[u8]) {
        let old_v = self.v;
        hash_df::<D>(&[&[1u8], &old_v, entropy, additional], &mut self.v);
        let v = self.v;
        hash_df::<D>(&[&[0u8], &v], &mut self.c);
        self.reseed_counter = 1;
    }

    /// `true` when the next `generate` would fail with [`DrbgError::ReseedRequired`].
    pub fn needs_reseed(&self) -> bool {
        self.reseed_counter > RESEED_INTERVAL
    }

    /// Generate (§10.1.1.4): fill `out`.
    pub fn generate(&mut self, out: &mut [u8], additional: &[u8]) -> Result<(), DrbgError> {
        if out.len() > MAX_REQUEST {
            return Err(DrbgError::RequestTooLarge);
        }
        if self.needs_reseed() {
            return Err(DrbgError::ReseedRequired);
        }
        if !additional.is_empty() {
            let w = D::new().chain_update([2u8]).chain_update(self.v).chain_update(additional).finalize();
            add_into(&mut self.v, &w);
        }
        // Hashgen (§10.1.1.4 step 3): block i of the output is H(V + i), LANES at a time.
        let mut data = [[0u8; SEED_LEN]; LANES];
        let mut hashes = [[0u8; 32]; LANES];
        let mut next = self.v;
        for group in out.chunks_mut(32 * LANES) {
            let n = group.len().div_ceil(32);
            for d in data.iter_mut().take(n) {
                *d = next;
                add_into(&mut next, &[1]);
            }
            let msgs: [&[u8]; LANES] = core::array::from_fn(|i| &data[i][..]);
            D::digest_each(&msgs[..n], &mut hashes[..n]);
            for (chunk, h) in group.chunks_mut(32).zip(hashes.iter()) {
                chunk.copy_from_slice(&h[..chunk.len()]);
            }
        }
        data.zeroize();
        hashes.zeroize();
        next.zeroize();
        let h = D::new().chain_update([3u8]).chain_update(self.v).finalize();
        let c = self.c;
        add_into(&mut self.v, &h);
        add_into(&mut self.v, &c);
        add_into(&mut self.v, &self.reseed_counter.to_be_bytes());
        self.reseed_counter += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_into_carries_and_wraps() {
        let mut a = [0xffu8; SEED_LEN];
        add_into(&mut a, &[1]);
        assert_eq!(a, [0u8; SEED_LEN]);
        let mut b = [0u8; SEED_LEN];
        b[SEED_LEN - 1] = 0xff;
        add_into(&mut b, &[0x01, 0x01]);
        assert_eq!(&b[SEED_LEN - 3..], &[0, 2, 0]);
    }

    #[test]
    fn deterministic_and_input_sensitive() {
        let mut a = HashDrbg::<sm3::Sm3>::new(&[7; 32], &[1; 16], b"p");
        let mut b = HashDrbg::<sm3::Sm3>::new(&[7; 32], &[1; 16], b"p");
        let mut c = HashDrbg::<sm3::Sm3>::new(&[7; 32], &[1; 16], b"q");
        let (mut x, mut y, mut z) = ([0u8; 100], [0u8; 100], [0u8; 100]);
        a.generate(&mut x, &[]).unwrap();
        b.generate(&mut y, &[]).unwrap();
        c.generate(&mut z, &[]).unwrap();
        assert_eq!(x, y);
        assert_ne!(x, z);
        // Successive outputs differ; reseeding changes the stream.
        let mut x2 = [0u8; 100];
        a.generate(&mut x2, &[]).unwrap();
        assert_ne!(x, x2);
        b.reseed(&[9; 32], &[]);
        let mut y2 = [0u8; 100];
        b.generate(&mut y2, &[]).unwrap();
        assert_ne!(x2, y2);
    }

    /// NIST CAVP Hash_DRBG.rsp, [SHA-256], PredictionResistance = False, with personalization
    /// string and reseed: instantiate, reseed, generate twice, compare the second output.
    #[test]
    fn nist_cavp_sha256_vector() {
        let h = |s: &str| hex::decode(s).unwrap();
        let mut d = HashDrbg::<sha2::Sha256>::new(
            &h("b87bb4de5c148d964fc0cb612d69295671780b4270fe32bf389b6f49488efe13"),
            &h("27eb37a0c695c4ee3c9b70b7f6b33492"),
            &h("52321406ac8a9c266b1f8d811bb871269e5824b59a0234f01d358193523bbb7c"),
        );
        d.reseed(&h("7638267f534c4e6ee22cc6ca6ed824fd5d3d387c00b89dd791eb5ac9766385b8"), &[]);
        let mut got = [0u8; 128];
        d.generate(&mut got, &[]).unwrap();
        d.generate(&mut got, &[]).unwrap();
        let expect = h("de01c061651bab3cef2fc4ea89a56b6e86e74b2e9fd11ed671c97c813778a06a\
2c1f41b41e754a5257750c6bde9601da9d67d8d9564f4a8538b92516a2dacc496dee257b85393f2a01ad59aa3257f1b6\
da9566e3706d2d6d4a26e511b0c64d7dc223acb24827178afa43ca8d5a66f983d6929dc61564c4c14fc32d85765a23f7");
        assert_eq!(got.as_slice(), expect.as_slice());
    }

    /// The hashgen of a long request (blocks hashed sixteen at a time) returns the bytes of
    /// §10.1.1.4 computed one block at a time: H(V), H(V + 1), …, cut to the length asked.
    #[test]
    fn grouped_hashgen_matches_one_block_at_a_time() {
        for len in [1, 31, 32, 33, 32 * LANES - 1, 32 * LANES, 32 * LANES + 1, 1000, 4096] {
            let mut d = HashDrbg::<sm3::Sm3>::new(&[3; 32], &[4; 16], b"grouped");
            let mut v = d.v;
            let mut want = alloc::vec::Vec::new();
            while want.len() < len {
                want.extend_from_slice(&sm3::Sm3::digest(v));
                add_into(&mut v, &[1]);
            }
            want.truncate(len);
            let mut got = alloc::vec![0u8; len];
            d.generate(&mut got, &[]).unwrap();
            assert_eq!(got, want, "{len} bytes");
        }
    }

    #[test]
    fn refuses_after_reseed_interval() {
        let mut d = HashDrbg::<sm3::Sm3>::new(&[7; 32], &[], &[]);
        d.reseed_counter = RESEED_INTERVAL + 1;
        assert_eq!(d.generate(&mut [0; 8], &[]), Err(DrbgError::ReseedRequired));
        d.reseed(&[1; 32], &[]);
        assert!(d.generate(&mut [0; 8], &[]).is_ok());
        assert_eq!(d.generate(&mut [0; MAX_REQUEST + 1], &[]), Err(DrbgError::RequestTooLarge));
    }
}
