//! SM2 public-key encryption (GB/T 32918.4) on the fast arithmetic: \[k\]G through the card's
//! fixed-base table, \[k\]PB through the key's own table when the card keeps one (keys that
//! encrypt often), else, like \[dB\]C1, by the constant-time windowed multiplication of
//! `varbase`, SM3 for the KDF and C3. Ciphertexts are byte-identical to
//! [`crate::alg::sm2_pke`]'s (the `sm2` crate's), which the tests check with the standard's
//! example and both directions on random inputs; the layouts are converted by
//! [`crate::alg::sm2_pke::convert`].
//!
//! Decryption fails opaquely ([`AlgError::DecryptFailed`]) for every bad input: a C1 that
//! does not decode to a point of the curve, a KDF output of zeros, a wrong C3 (compared in
//! constant time), truncation.

use ::sm2::elliptic_curve::Generate;
use ::sm2::elliptic_curve::subtle::ConstantTimeEq;
use ::sm2::{AffinePoint, NonZeroScalar, PublicKey, SecretKey};
use ::sm3::{Digest, Sm3};
use alloc::vec::Vec;
use rand_core::TryCryptoRng;
use zeroize::{Zeroize, Zeroizing};

use super::table::from_crate;
use super::{BaseTable, varbase};
use crate::alg::AlgError;
use crate::alg::sm2_pke::{Layout, MAX_PLAINTEXT, convert};

/// Encryptions tried before giving up (a retry needs an all-zero KDF output: probability
/// 2^−256 per byte block; reaching the bound means the RNG is broken).
const MAX_TRIES: usize = 8;

/// Encrypt `msg` (1 to [`MAX_PLAINTEXT`] bytes) to `public` with a nonce from `rng`; \[k\]G
/// through `table` when given, else by the windowed multiplication.
pub fn encrypt<R: TryCryptoRng + ?Sized>(
    table: Option<&BaseTable>,
    rng: &mut R,
    public: &PublicKey,
    msg: &[u8],
    layout: Layout,
) -> Result<Vec<u8>, AlgError> {
    encrypt_with(table, None, rng, public, msg, layout)
}

/// [`encrypt`] with, besides `table` for \[k\]G, the public key's own table (`public_table`,
/// built by [`BaseTable::for_point`] from `public`) for \[k\]PB: two table multiplications and
/// no doubling, for a key that encrypts often. The same constant-time comb as for G (k is
/// secret); the same ciphertexts.
pub fn encrypt_with<R: TryCryptoRng + ?Sized>(
    table: Option<&BaseTable>,
    public_table: Option<&BaseTable>,
    rng: &mut R,
    public: &PublicKey,
    msg: &[u8],
    layout: Layout,
) -> Result<Vec<u8>, AlgError> {
    if msg.is_empty() || msg.len() > MAX_PLAINTEXT {
        return Err(AlgError::InvalidInput);
    }
    let pb = from_crate(public.as_affine());
    for _ in 0..MAX_TRIES {
        let k = NonZeroScalar::try_generate_from_rng(rng).map_err(|_| AlgError::Rng)?;
        // A1–A4: C1 = [k]G; (x2, y2) = [k]PB (h = 1: [h]PB is PB, never the identity).
        let c1 = match table {
            Some(t) => t.mul(&k),
            None => varbase::mul(&from_crate(&AffinePoint::GENERATOR), &k),
        };
        let (x1, y1) = c1.to_affine_bytes().ok_or(AlgError::Rng)?;
        let shared = match public_table {
            Some(t) => t.mul(&k),
            None => varbase::mul(&pb, &k),
        };
        let shared = shared.to_affine_bytes().ok_or(AlgError::InvalidKey)?;
        let shared = Zeroizing::new(shared);
        // A5: t = KDF(x2 ‖ y2, klen), all zero → another k.
        let mut c2 = Zeroizing::new(alloc::vec![0u8; msg.len()]);
        crate::alg::sm3::kdf(&[&shared.0, &shared.1], &mut c2)?;
        if c2.iter().all(|&b| b == 0) {
            continue;
        }
        // A6–A7: C2 = M ⊕ t, C3 = SM3(x2 ‖ M ‖ y2).
        c2.iter_mut().zip(msg).for_each(|(t, m)| *t ^= m);
        let c3 = Sm3::new().chain_update(shared.0).chain_update(msg).chain_update(shared.1).finalize();
        let mut out = Vec::with_capacity(97 + msg.len());
        out.push(4);
        out.extend_from_slice(&x1);
        out.extend_from_slice(&y1);
        out.extend_from_slice(&c3);
        out.extend_from_slice(&c2);
        return match layout {
            Layout::C1C3C2 => Ok(out),
            other => convert(&out, Layout::C1C3C2, other),
        };
    }
    Err(AlgError::Rng)
}

/// Decrypt `ciphertext` in `layout` with `secret`.
pub fn decrypt(secret: &SecretKey, ciphertext: &[u8], layout: Layout) -> Result<Zeroizing<Vec<u8>>, AlgError> {
    decrypt_many(secret, &[ciphertext], layout).pop().unwrap_or(Err(AlgError::DecryptFailed))
}

/// A ciphertext split into C1 (checked on the curve), C3 and C2, in the C1C3C2 layout.
struct Parsed<'a> {
    c1: AffinePoint,
    c3: &'a [u8],
    c2: &'a [u8],
}

/// Steps B1–B2: the layout converted, C1 decoded as a point of the curve (the crate's SEC1
/// decoding checks the equation; with h = 1, \[h\]C1 is the identity only if C1 is, which
/// SEC1 cannot encode here).
fn parse(ct: &[u8]) -> Result<Parsed<'_>, AlgError> {
    if ct.len() < 65 + 32 + 1 || ct[0] != 4 || ct.len() - 97 > MAX_PLAINTEXT {
        return Err(AlgError::DecryptFailed);
    }
    let (c1, rest) = ct.split_at(65);
    let (c3, c2) = rest.split_at(32);
    let c1 = PublicKey::from_sec1_bytes(c1).map_err(|_| AlgError::DecryptFailed)?;
    Ok(Parsed { c1: *c1.as_affine(), c3, c2 })
}

/// Decrypt every ciphertext of `ciphertexts` (in `layout`) with `secret`, each to its own
/// outcome: one that does not decrypt fails alone, opaquely. The \[dB\]C1 of all of them are
/// computed together ([`varbase::mul_many`]: eight at a time on AVX-512 IFMA) and made affine
/// with one inversion; the rest (KDF, C3) is per ciphertext.
pub fn decrypt_many(
    secret: &SecretKey,
    ciphertexts: &[&[u8]],
    layout: Layout,
) -> Vec<Result<Zeroizing<Vec<u8>>, AlgError>> {
    let converted: Vec<Option<Vec<u8>>> = ciphertexts
        .iter()
        .map(|ct| match layout {
            Layout::C1C3C2 => None,
            other => Some(convert(ct, other, Layout::C1C3C2).unwrap_or_default()),
        })
        .collect();
    let parsed: Vec<Result<Parsed<'_>, AlgError>> =
        ciphertexts.iter().zip(&converted).map(|(ct, conv)| parse(conv.as_deref().unwrap_or(ct))).collect();
    // B3: (x2, y2) = [dB]C1 for every well-formed ciphertext.
    let points: Vec<_> = parsed.iter().filter_map(|p| p.as_ref().ok()).map(|p| from_crate(&p.c1)).collect();
    let mut d = *secret.to_nonzero_scalar();
    let mut jacobian = varbase::mul_many(&points, &d);
    d.zeroize();
    let mut shared = varbase::affine_many(&jacobian);
    jacobian.zeroize();
    let mut next = 0;
    let out = parsed
        .into_iter()
        .map(|p| {
            let p = p?;
            let s = shared.get(next).copied().flatten().ok_or(AlgError::DecryptFailed);
            next += 1;
            let s = Zeroizing::new(s?);
            finish(&s, p.c3, p.c2)
        })
        .collect();
    // The shared points (x2, y2) are secret: wiped before the vector is freed.
    for (x, y) in shared.iter_mut().flatten() {
        x.zeroize();
        y.zeroize();
    }
    out
}

/// Steps B4–B6 given (x2, y2): M = C2 ⊕ KDF(x2 ‖ y2), and C3 checked in constant time.
fn finish(shared: &([u8; 32], [u8; 32]), c3: &[u8], c2: &[u8]) -> Result<Zeroizing<Vec<u8>>, AlgError> {
    // B4–B5: t = KDF(x2 ‖ y2, klen), not all zero; M = C2 ⊕ t.
    let mut m = Zeroizing::new(alloc::vec![0u8; c2.len()]);
    crate::alg::sm3::kdf(&[&shared.0, &shared.1], &mut m).map_err(|_| AlgError::DecryptFailed)?;
    if m.iter().all(|&b| b == 0) {
        return Err(AlgError::DecryptFailed);
    }
    m.iter_mut().zip(c2).for_each(|(t, c)| *t ^= c);
    // B6: u = SM3(x2 ‖ M ‖ y2) = C3, in constant time.
    let u = Sm3::new().chain_update(shared.0).chain_update(&m[..]).chain_update(shared.1).finalize();
    if !bool::from(u.as_slice().ct_eq(c3)) {
        return Err(AlgError::DecryptFailed);
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alg::sm2::secret_from_bytes;
    use crate::alg::sm2_pke;
    use crate::alg::testrng::{CounterRng, FixedRng, h};

    #[test]
    fn standard_example_and_agreement_with_the_crate() {
        let table = BaseTable::new();
        // GB/T 32918.5 encryption example (see sm2_pke's tests).
        let sk = secret_from_bytes(&h("3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8")).unwrap();
        let k = h("59276E27D506861A16680F3AD9C02DCCEF3CC1FA3CDBE4CE6D54B80DEAC1BC21");
        let msg = b"encryption standard";
        for layout in [Layout::C1C3C2, Layout::C1C2C3, Layout::Der] {
            let ours =
                encrypt(Some(&table), &mut FixedRng(alloc::vec![k.clone()]), &sk.public_key(), msg, layout).unwrap();
            let theirs =
                sm2_pke::crate_encrypt(&mut FixedRng(alloc::vec![k.clone()]), &sk.public_key(), msg, layout).unwrap();
            assert_eq!(ours, theirs, "{layout:?}");
            assert_eq!(&decrypt(&sk, &ours, layout).unwrap()[..], msg);
            // Through the key's own table: the same ciphertext for the same k.
            let pt = BaseTable::for_point(sk.public_key().as_affine());
            let fast = encrypt_with(
                Some(&table),
                Some(&pt),
                &mut FixedRng(alloc::vec![k.clone()]),
                &sk.public_key(),
                msg,
                layout,
            )
            .unwrap();
            assert_eq!(fast, theirs, "{layout:?} with the key's table");
        }
        let mut rng = CounterRng::new(b"fast pke");
        for len in [1usize, 31, 32, 33, 200] {
            let sk = crate::alg::sm2::generate(&mut rng).unwrap();
            let msg: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let ct = encrypt(None, &mut rng, &sk.public_key(), &msg, Layout::C1C3C2).unwrap();
            assert_eq!(&sm2_pke::crate_decrypt(&sk, &ct, Layout::C1C3C2).unwrap()[..], &msg[..]);
            let ct = sm2_pke::crate_encrypt(&mut rng, &sk.public_key(), &msg, Layout::Der).unwrap();
            assert_eq!(&decrypt(&sk, &ct, Layout::Der).unwrap()[..], &msg[..]);
            let pt = BaseTable::for_point(sk.public_key().as_affine());
            let ct = encrypt_with(Some(&table), Some(&pt), &mut rng, &sk.public_key(), &msg, Layout::C1C3C2).unwrap();
            assert_eq!(&sm2_pke::crate_decrypt(&sk, &ct, Layout::C1C3C2).unwrap()[..], &msg[..]);
        }
    }

    #[test]
    fn bad_ciphertexts_fail_opaquely() {
        let table = BaseTable::new();
        let mut rng = CounterRng::new(b"fast pke bad");
        let sk = crate::alg::sm2::generate(&mut rng).unwrap();
        let other = crate::alg::sm2::generate(&mut rng).unwrap();
        let ct = encrypt(Some(&table), &mut rng, &sk.public_key(), &[7u8; 40], Layout::C1C3C2).unwrap();
        let failed = Err(AlgError::DecryptFailed);
        assert_eq!(decrypt(&other, &ct, Layout::C1C3C2).map(|m| m.to_vec()), failed);
        for i in [1usize, 40, 65, 80, ct.len() - 1] {
            let mut bad = ct.clone();
            bad[i] ^= 1;
            assert_eq!(decrypt(&sk, &bad, Layout::C1C3C2).map(|m| m.to_vec()), failed, "byte {i}");
        }
        for len in [0, 1, 64, 97] {
            assert_eq!(decrypt(&sk, &ct[..len], Layout::C1C3C2).map(|m| m.to_vec()), failed, "length {len}");
        }
        assert_eq!(decrypt(&sk, &ct, Layout::Der).map(|m| m.to_vec()), failed);
        assert_eq!(encrypt(Some(&table), &mut rng, &sk.public_key(), b"", Layout::C1C3C2), Err(AlgError::InvalidInput));
    }

    /// A batch decrypts every ciphertext as one-at-a-time decryption does, across lane groups
    /// (1, 3, 8, 9 and 17 ciphertexts), in every layout, each failure alone and in its place.
    #[test]
    fn batches_decrypt_each_ciphertext_to_its_own_outcome() {
        let table = BaseTable::new();
        let mut rng = CounterRng::new(b"fast pke many");
        let sk = crate::alg::sm2::generate(&mut rng).unwrap();
        let other = crate::alg::sm2::generate(&mut rng).unwrap();
        for layout in [Layout::C1C3C2, Layout::C1C2C3, Layout::Der] {
            for n in [1usize, 3, 8, 9, 17] {
                let msgs: Vec<Vec<u8>> = (0..n).map(|i| alloc::vec![i as u8 + 1; 1 + i * 7]).collect();
                let mut cts: Vec<Vec<u8>> = msgs
                    .iter()
                    .map(|m| encrypt(Some(&table), &mut rng, &sk.public_key(), m, layout).unwrap())
                    .collect();
                // Every third ciphertext is spoilt: one for another key, one with a flipped C3
                // bit, one truncated.
                let mut want: Vec<Result<Vec<u8>, AlgError>> = msgs.iter().cloned().map(Ok).collect();
                for i in (1..n).step_by(3) {
                    cts[i] = match i % 9 {
                        1 => encrypt(Some(&table), &mut rng, &other.public_key(), &msgs[i], layout).unwrap(),
                        4 => cts[i][..cts[i].len() - 1].to_vec(),
                        _ => {
                            let mut c = cts[i].clone();
                            let last = c.len() - 1;
                            c[last] ^= 1;
                            c
                        }
                    };
                    want[i] = Err(AlgError::DecryptFailed);
                }
                let refs: Vec<&[u8]> = cts.iter().map(|c| &c[..]).collect();
                let got: Vec<Result<Vec<u8>, AlgError>> =
                    decrypt_many(&sk, &refs, layout).into_iter().map(|r| r.map(|m| m.to_vec())).collect();
                assert_eq!(got, want, "{layout:?}, {n} ciphertexts");
                let one: Vec<Result<Vec<u8>, AlgError>> =
                    refs.iter().map(|c| decrypt(&sk, c, layout).map(|m| m.to_vec())).collect();
                assert_eq!(one, want, "{layout:?}, one at a time");
            }
        }
        assert!(decrypt_many(&sk, &[], Layout::C1C3C2).is_empty());
    }
}
