//! The fast private operation against the `rsa` crate's on the draft-irtf-cfrg-rsa-guidance
//! keys (2048, 2049, 3072, 4096 bits), the card's self-test key and a generated key: raw
//! results on random and edge inputs, blinded and not; signatures; OAEP; PKCS#1 v1.5
//! decryption with implicit rejection against the draft's Appendix B vectors; the fault check.

use super::*;
use crate::alg::testrng::{CounterRng, FailingRng, h};
use ::rsa::pkcs8::DecodePrivateKey;
use rand_core::TryRng;

const K2048: &[u8] = include_bytes!("testdata/k2048.pk8.der");
const K2049: &[u8] = include_bytes!("testdata/k2049.pk8.der");
const K3072: &[u8] = include_bytes!("testdata/k3072.pk8.der");
const K4096: &[u8] = include_bytes!("testdata/k4096.pk8.der");
const SELFTEST: &[u8] = include_bytes!("../../selftest/rsa2048_kat.pk8.der");
const IMPLICIT_REJECTION: &str = include_str!("testdata/implicit_rejection.txt");

fn load(der: &[u8]) -> RsaKey {
    RsaKey::new(PrivateKey::from_pkcs8_der(der).unwrap())
}

fn keys() -> [RsaKey; 4] {
    [load(K2048), load(SELFTEST), load(K3072), load(K4096)]
}

/// The crate's unblinded RSADP on k bytes.
fn crate_private(key: &RsaKey, input: &[u8]) -> Vec<u8> {
    let c = operand(key.public_key(), input).unwrap();
    let m = rsa_decrypt_and_check::<CounterRng>(key.private_key(), None, &c).unwrap();
    fixed_width(&m, key.size()).to_vec()
}

/// Random values below n (top byte cleared), and 0, 1, 2, n − 1, p, q, the first k − 1
/// bytes all ones.
fn inputs(key: &RsaKey, rng: &mut CounterRng) -> Vec<Vec<u8>> {
    let k = key.size();
    let mut v = Vec::new();
    for _ in 0..3 {
        let mut x = alloc::vec![0u8; k];
        rng.try_fill_bytes(&mut x[1..]).unwrap();
        v.push(x);
    }
    for small in [0u8, 1, 2] {
        let mut x = alloc::vec![0u8; k];
        x[k - 1] = small;
        v.push(x);
    }
    let mut n1 = key.public_key().n().as_ref().to_be_bytes().to_vec();
    let last = n1.len() - 1;
    n1[last] -= 1; // n is odd
    v.push(n1[n1.len() - k..].to_vec());
    for prime in key.private_key().primes() {
        v.push(fixed_width(prime.as_ref(), k).to_vec());
    }
    let mut ones = alloc::vec![0xffu8; k];
    ones[0] = 0;
    v.push(ones);
    v
}

#[test]
fn private_op_agrees_with_the_crate() {
    let mut rng = CounterRng::new(b"crt agree");
    for key in keys() {
        assert!(key.is_fast(), "{key:?}");
        for x in inputs(&key, &mut rng) {
            let want = crate_private(&key, &x);
            assert_eq!(&private_op(&mut rng, &key, &x).unwrap()[..], &want[..]);
            // Unblinded, straight through the CRT engine.
            let mut out = alloc::vec![0u8; key.size()];
            match &key.engine {
                Engine::Crt2048(c) => c.private_op::<CounterRng>(None, key.public_key(), &x, &mut out),
                Engine::Crt3072(c) => c.private_op::<CounterRng>(None, key.public_key(), &x, &mut out),
                Engine::Crt4096(c) => c.private_op::<CounterRng>(None, key.public_key(), &x, &mut out),
                Engine::Crate => unreachable!(),
            }
            .unwrap();
            assert_eq!(out, want);
        }
    }
}

/// Whether this CPU runs the IFMA path, saying loudly when it does not (then the tests below
/// cover the portable path only). `GMHSM_REQUIRE_IFMA=1` makes that a failure.
fn ifma_here() -> bool {
    extern crate std;
    let here = gmhsm_ifma::is_available();
    if !here {
        std::eprintln!("!!! no AVX-512 IFMA on this CPU: the RSA IFMA path is NOT TESTED here !!!");
        assert!(std::env::var_os("GMHSM_REQUIRE_IFMA").is_none(), "GMHSM_REQUIRE_IFMA set but no IFMA");
    }
    here
}

/// The 2048-, 3072- and 4096-bit engines pick IFMA exactly when the CPU has it.
#[test]
fn ifma_is_chosen_when_available() {
    let ifma = ifma_here();
    for key in keys() {
        match &key.engine {
            Engine::Crt2048(c) => assert_eq!(c.uses_ifma(), ifma),
            Engine::Crt3072(c) => assert_eq!(c.uses_ifma(), ifma),
            Engine::Crt4096(c) => assert_eq!(c.uses_ifma(), ifma),
            Engine::Crate => unreachable!(),
        }
    }
}

/// The forced portable path and the default (IFMA where available) path of `Crt<L, N>` agree
/// with the crate on `key`, blinded and not.
fn paths_agree<const L: usize, const N: usize>(key: &RsaKey, rng: &mut CounterRng, ifma: bool) {
    let portable = Crt::<L, N>::new_with(key.private_key(), false).unwrap();
    let default = Crt::<L, N>::new(key.private_key()).unwrap();
    assert!(!portable.uses_ifma());
    assert_eq!(default.uses_ifma(), ifma);
    for x in inputs(key, rng) {
        let want = crate_private(key, &x);
        for crt in [&portable, &default] {
            let mut out = alloc::vec![0u8; key.size()];
            crt.private_op::<CounterRng>(None, key.public_key(), &x, &mut out).unwrap();
            assert_eq!(out, want);
            crt.private_op(Some(&mut *rng), key.public_key(), &x, &mut out).unwrap();
            assert_eq!(out, want);
        }
    }
}

/// The forced portable path and the default (IFMA where available) path agree with the
/// crate, blinded and not, on the 2048-bit keys.
#[test]
fn portable_and_ifma_paths_agree() {
    let ifma = ifma_here();
    let mut rng = CounterRng::new(b"crt ifma");
    let generated = generate(&mut rng, 2048).unwrap();
    for key in [load(K2048), load(SELFTEST), generated] {
        paths_agree::<16, 32>(&key, &mut rng, ifma);
    }
}

/// The same on the 3072- and 4096-bit keys (1536- and 2048-bit primes), and a generated
/// 3072-bit one.
#[test]
fn portable_and_ifma_paths_agree_3072_4096() {
    let ifma = ifma_here();
    let mut rng = CounterRng::new(b"crt ifma big");
    let generated = generate(&mut rng, 3072).unwrap();
    for key in [load(K3072), generated] {
        paths_agree::<24, 48>(&key, &mut rng, ifma);
    }
    paths_agree::<32, 64>(&load(K4096), &mut rng, ifma);
}

#[test]
fn generated_key_is_fast_and_agrees() {
    let mut rng = CounterRng::new(b"crt generated");
    let key = generate(&mut rng, 2048).unwrap();
    assert!(key.is_fast());
    for x in inputs(&key, &mut rng) {
        assert_eq!(&private_op(&mut rng, &key, &x).unwrap()[..], &crate_private(&key, &x)[..]);
    }
}

/// More operations than one blinding pair serves: the squared pairs and the refresh.
#[test]
fn blinding_pairs_renew() {
    let mut rng = CounterRng::new(b"crt blinding");
    let key = load(SELFTEST);
    let pk = key.to_public_key();
    for _ in 0..70 {
        let mut x = alloc::vec![0u8; 256];
        rng.try_fill_bytes(&mut x[1..]).unwrap();
        let c = public_op(&pk, &x).unwrap();
        assert_eq!(&private_op(&mut rng, &key, &c).unwrap()[..], &x[..]);
    }
}

#[test]
fn other_shapes_use_the_crate() {
    let mut rng = CounterRng::new(b"crt 2049");
    let key = load(K2049);
    assert!(!key.is_fast());
    assert_eq!(alloc::format!("{key:?}"), "RsaKey { bits: 2056, engine: \"crate\", .. }");
    for x in inputs(&key, &mut rng).into_iter().take(4) {
        assert_eq!(&private_op(&mut rng, &key, &x).unwrap()[..], &crate_private(&key, &x)[..]);
    }
}

#[test]
fn rejects_bad_input_and_rng_failure() {
    let key = load(K2048);
    let mut rng = CounterRng::new(b"crt bad");
    assert_eq!(private_op(&mut rng, &key, &[0u8; 255]).err(), Some(AlgError::InvalidInput));
    assert_eq!(private_op(&mut rng, &key, &[0xffu8; 256]).err(), Some(AlgError::InvalidInput));
    let n = fixed_width(key.public_key().n().as_ref(), 256);
    assert_eq!(private_op(&mut rng, &key, &n).err(), Some(AlgError::InvalidInput));
    assert_eq!(private_op(&mut FailingRng, &key, &[0u8; 256]).err(), Some(AlgError::Rng));
    assert_eq!(alloc::format!("{key:?}"), "RsaKey { bits: 2048, engine: \"crt\", .. }");
}

#[test]
fn fault_is_caught_by_re_encryption() {
    let mut key = load(K2048);
    let Engine::Crt2048(c) = &mut key.engine else { panic!("not the CRT engine") };
    c.corrupt_dp();
    let mut rng = CounterRng::new(b"crt fault");
    let mut x = alloc::vec![0u8; 256];
    x[1..].fill(0x42);
    assert_eq!(private_op(&mut rng, &key, &x).err(), Some(AlgError::DecryptFailed));
    assert_eq!(sign_pkcs1v15_sha256(&mut rng, &key, b"m").err(), Some(AlgError::Rng));
    // The same on the forced portable path (the default one is IFMA where available).
    let mut portable = Crt::<16, 32>::new_with(key.private_key(), false).unwrap();
    portable.corrupt_dp();
    let mut out = alloc::vec![0u8; 256];
    assert_eq!(portable.private_op(Some(&mut rng), key.public_key(), &x, &mut out), Err(CrtError::Fault));
}

#[test]
fn signatures_match_the_crate_and_verify() {
    let mut rng = CounterRng::new(b"crt sign");
    for key in keys() {
        let pk = key.to_public_key();
        let ours = sign_pkcs1v15_sha256(&mut rng, &key, b"message").unwrap();
        let theirs = key.private_key().pkcs1v15_sign_with_rng::<Sha256, _>(&mut rng, b"message").unwrap();
        assert_eq!(ours, theirs);
        for hash in [PssHash::Sha256, PssHash::Sm3] {
            let sig = sign_pss(&mut rng, &key, hash, b"message").unwrap();
            assert_eq!(sig.len(), key.size());
            verify_pss(&pk, hash, b"message", &sig).unwrap();
            assert!(verify_pss(&pk, hash, b"messagf", &sig).is_err());
        }
    }
}

#[test]
fn oaep_and_pkcs1v15_decrypt_what_the_crate_encrypts() {
    let mut rng = CounterRng::new(b"crt decrypt");
    for key in keys() {
        let pk = key.to_public_key();
        let k = key.size();
        for len in [0, 1, 32, k - 66] {
            let msg = alloc::vec![0x5a; len];
            let ct = encrypt_oaep_sha256(&mut rng, &pk, &msg).unwrap();
            assert_eq!(&decrypt_oaep_sha256(&mut rng, &key, &ct).unwrap()[..], &msg[..]);
            let mut bad = ct.clone();
            bad[k / 2] ^= 4;
            assert_eq!(decrypt_oaep_sha256(&mut rng, &key, &bad).err(), Some(AlgError::DecryptFailed));
            let ct = encrypt_pkcs1v15(&mut rng, &pk, &msg[..len.min(k - 11)]).unwrap();
            assert_eq!(&decrypt_pkcs1v15(&mut rng, &key, &ct).unwrap()[..], &msg[..len.min(k - 11)]);
        }
        // Random ciphertexts are almost all malformed: the synthetic message is the crate's.
        for _ in 0..3 {
            let mut ct = alloc::vec![0u8; k];
            rng.try_fill_bytes(&mut ct[1..]).unwrap();
            let theirs = key.private_key().pkcs1v15_decrypt(&ct).unwrap();
            assert_eq!(&decrypt_pkcs1v15(&mut rng, &key, &ct).unwrap()[..], &theirs[..]);
        }
        assert_eq!(decrypt_pkcs1v15(&mut rng, &key, &[0; 10]).err(), Some(AlgError::DecryptFailed));
        assert_eq!(decrypt_oaep_sha256(&mut rng, &key, &[0; 10]).err(), Some(AlgError::DecryptFailed));
    }
}

/// draft-irtf-cfrg-rsa-guidance-10 Appendix B: valid and malformed ciphertexts, with the
/// message (real or synthetic) every conforming implementation returns.
#[test]
fn implicit_rejection_vectors() {
    let mut rng = CounterRng::new(b"crt vectors");
    let keys = [("k2048", load(K2048)), ("k2049", load(K2049)), ("k3072", load(K3072)), ("k4096", load(K4096))];
    let mut count = 0;
    for line in IMPLICIT_REJECTION.lines().filter(|l| !l.starts_with('#')) {
        let f: Vec<&str> = line.split(' ').collect();
        let (_, key) = keys.iter().find(|(name, _)| *name == f[1]).unwrap();
        let want = if f[4] == "-" { Vec::new() } else { h(f[4]) };
        let got = decrypt_pkcs1v15(&mut rng, key, &h(f[3])).unwrap();
        assert_eq!(&got[..], &want[..], "{}", f[0]);
        count += 1;
    }
    assert_eq!(count, 48);
}
