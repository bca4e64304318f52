//! Tests of the fast SM2 path against the `sm2` crate path and GB/T 32918.5.

use alloc::collections::BTreeSet;
use alloc::vec::Vec;

use super::*;
use crate::alg::sm2::{self as slow, signature_from_bytes};
use crate::alg::testrng::{CounterRng, FailingRng, FixedRng, h};
use ::sm2::ProjectivePoint;
use ::sm2::elliptic_curve::point::AffineCoordinates;

// GB/T 32918.5-2017 Appendix A signature example (the same as in `alg::sm2`), with its k.
const D: &str = "3945208F 7B2144B1 3F36E38A C6D39F95 88939369 2860B51A 42FB81EF 4DF7C5B8";
const K: &str = "59276E27 D506861A 16680F3A D9C02DCC EF3CC1FA 3CDBE4CE 6D54B80D EAC1BC21";
const R: &str = "F5A03B06 48D2C463 0EEAC513 E1BB81A1 5944DA38 27D5B741 43AC7EAC EEE720B3";
const S: &str = "B1B6AA29 DF212FD8 763182BC 0D421CA1 BB9038FD 1F7F42D4 840B69C4 85BBC1AA";

fn table() -> Arc<BaseTable> {
    Arc::new(BaseTable::new())
}

#[test]
fn gbt32918_5_example_with_the_standards_k() {
    let t = table();
    let sk = slow::secret_from_bytes(&h(D)).unwrap();
    let signer = FastSigner::new(&sk, t.clone()).unwrap();
    assert_eq!(signer.public_key(), &sk.public_key());
    let mut rng = FixedRng(alloc::vec![h(K)]);
    let sig = signer.sign(&mut rng, DEFAULT_ID, b"message digest").unwrap();
    assert_eq!(sig.to_bytes().to_vec(), [h(R), h(S)].concat());
    // The same k through the pool's batch path.
    let mut pool = NoncePool::new(t.clone(), 4);
    assert_eq!(pool.refill(&mut FixedRng(alloc::vec![h(K)]), 1), Ok(1));
    let sig2 = signer.sign_pooled(&mut pool, &mut FailingRng, DEFAULT_ID, b"message digest").unwrap();
    assert_eq!(sig2, sig);
    slow::verify(signer.public_key(), DEFAULT_ID, b"message digest", &sig).unwrap();
    verify(&t, signer.public_key(), DEFAULT_ID, b"message digest", &sig).unwrap();
}

#[test]
fn signatures_verify_with_the_crate_for_random_keys_messages_and_binary_ids() {
    let t = table();
    let mut rng = CounterRng::new(b"sm2_fast random");
    let mut pool = NoncePool::new(t.clone(), 16);
    for i in 0..24usize {
        let sk = slow::generate(&mut rng).unwrap();
        let signer = FastSigner::new(&sk, t.clone()).unwrap();
        assert_eq!(signer.public_key(), &sk.public_key());
        let msg: Vec<u8> = (0..i * 7).map(|j| (j * 31 + i) as u8).collect();
        let id: Vec<u8> = match i % 3 {
            0 => DEFAULT_ID.to_vec(),
            1 => alloc::vec![0x00, 0xff, 0x80, i as u8],
            _ => Vec::new(),
        };
        if pool.is_empty() {
            pool.refill(&mut rng, 5).unwrap();
        }
        let pooled = signer.sign_pooled(&mut pool, &mut rng, &id, &msg).unwrap();
        let fresh = signer.sign(&mut rng, &id, &msg).unwrap();
        for sig in [pooled, fresh] {
            slow::verify(&sk.public_key(), &id, &msg, &sig).unwrap();
            verify(&t, &sk.public_key(), &id, &msg, &sig).unwrap();
        }
        // Digest signing agrees with the slow path's digest.
        let e = slow::message_digest(&id, &sk.public_key(), &msg).unwrap();
        assert_eq!(signer.digest(&id, &msg).unwrap(), e);
        let sig = signer.sign_digest_pooled(&mut pool, &mut rng, &e).unwrap();
        slow::verify_digest(&sk.public_key(), &e, &sig).unwrap();
        let sig = signer.sign_digest(&mut rng, &e).unwrap();
        slow::verify_digest(&sk.public_key(), &e, &sig).unwrap();
    }
}

#[test]
fn each_pool_pair_is_used_once() {
    let t = table();
    let mut rng = CounterRng::new(b"sm2_fast once");
    let sk = slow::generate(&mut rng).unwrap();
    let signer = FastSigner::new(&sk, t.clone()).unwrap();
    let mut pool = NoncePool::new(t, 32);
    assert_eq!(pool.refill(&mut rng, 32), Ok(32));
    assert_eq!(pool.refill(&mut rng, 32), Ok(0), "a full pool takes no more");
    // Same message each time: r = e + x1 differs iff the nonce differs.
    let mut rs = BTreeSet::new();
    for left in (0..32).rev() {
        let sig = signer.sign_pooled(&mut pool, &mut FailingRng, DEFAULT_ID, b"same").unwrap();
        assert_eq!(pool.len(), left);
        assert!(rs.insert(sig.r_bytes().to_vec()), "a nonce was used twice");
    }
    // Empty: the next signature needs the RNG and says so when it fails.
    assert_eq!(signer.sign_pooled(&mut pool, &mut FailingRng, DEFAULT_ID, b"same").err(), Some(AlgError::Rng));
    let sig = signer.sign_pooled(&mut pool, &mut rng, DEFAULT_ID, b"same").unwrap();
    assert!(rs.insert(sig.r_bytes().to_vec()));
}

#[test]
fn refill_draws_from_the_rng_and_reports_its_failure() {
    let t = table();
    let mut pool = NoncePool::new(t.clone(), 8);
    assert_eq!(pool.refill(&mut FailingRng, 8), Err(AlgError::Rng));
    assert!(pool.is_empty());
    // Two pools from the same seed get the same pairs; another seed, other pairs.
    let mut other = NoncePool::new(t.clone(), 8);
    let mut third = NoncePool::new(t, 8);
    pool.refill(&mut CounterRng::new(b"a"), 3).unwrap();
    other.refill(&mut CounterRng::new(b"a"), 3).unwrap();
    third.refill(&mut CounterRng::new(b"b"), 3).unwrap();
    let (a, b, c) = (pool.take().unwrap(), other.take().unwrap(), third.take().unwrap());
    assert_eq!(a.x1(), b.x1());
    assert_ne!(a.x1(), c.x1());
    // The standard's k, replayed, is the k in the pool.
    let mut p = NoncePool::new(Arc::new(BaseTable::new()), 1);
    p.refill(&mut FixedRng(alloc::vec![h(K)]), 1).unwrap();
    assert_eq!(p.take().unwrap().expose_k().to_repr().to_vec(), h(K));
    assert!(p.take().is_none());
    assert_eq!(
        FastSigner::new(&slow::secret_from_bytes(&h(D)).unwrap(), Arc::new(BaseTable::new()))
            .unwrap()
            .sign(&mut FailingRng, DEFAULT_ID, b"m")
            .err(),
        Some(AlgError::Rng)
    );
}

#[test]
fn batch_x1_equals_the_plain_generator_multiplication() {
    let t = table();
    let mut rng = CounterRng::new(b"sm2_fast batch");
    let mut pool = NoncePool::new(t.clone(), 33);
    assert_eq!(pool.refill(&mut rng, 33), Ok(33));
    let mut n = 0;
    while let Some(nonce) = pool.take() {
        let k = nonce.expose_k();
        let x = (ProjectivePoint::GENERATOR * k).to_affine().x();
        assert_eq!(nonce.x1(), <Scalar as Reduce<FieldBytes>>::reduce(&x));
        n += 1;
    }
    assert_eq!(n, 33);
    // The single-nonce path agrees too.
    let nonce = Nonce::generate(&t, &mut rng).unwrap();
    let x = (ProjectivePoint::GENERATOR * nonce.expose_k()).to_affine().x();
    assert_eq!(nonce.x1(), <Scalar as Reduce<FieldBytes>>::reduce(&x));
}

/// (public key, ID, message, signature bytes).
type Case = (PublicKey, Vec<u8>, Vec<u8>, Vec<u8>);

#[test]
fn fast_verify_agrees_with_the_crate_on_valid_and_tampered_input() {
    let t = table();
    let mut rng = CounterRng::new(b"sm2_fast verify");
    let other = slow::generate(&mut rng).unwrap().public_key();
    for i in 0..16u8 {
        let sk = slow::generate(&mut rng).unwrap();
        let pk = sk.public_key();
        let msg = [i; 40];
        let sig = slow::sign(&mut rng, &sk, DEFAULT_ID, &msg).unwrap();
        let bytes = sig.to_bytes();
        let mut cases: Vec<Case> = alloc::vec![
            (pk, DEFAULT_ID.to_vec(), msg.to_vec(), bytes.to_vec()),
            (other, DEFAULT_ID.to_vec(), msg.to_vec(), bytes.to_vec()),
            (pk, b"1234567812345679".to_vec(), msg.to_vec(), bytes.to_vec()),
        ];
        let mut m = msg.to_vec();
        m[usize::from(i) % 40] ^= 1 << (i % 8);
        cases.push((pk, DEFAULT_ID.to_vec(), m, bytes.to_vec()));
        for flip in [0usize, 31, 32, 63] {
            let mut b = bytes.to_vec();
            b[flip] ^= 1 << (i % 8);
            cases.push((pk, DEFAULT_ID.to_vec(), msg.to_vec(), b));
        }
        // s' = n − s style edge: r and s swapped.
        cases.push((pk, DEFAULT_ID.to_vec(), msg.to_vec(), [&bytes[32..], &bytes[..32]].concat()));
        let verifier = FastVerifier::new(&pk, t.clone()).unwrap();
        for (n, (pk, id, msg, sigb)) in cases.iter().enumerate() {
            let Ok(sig) = signature_from_bytes(sigb) else { continue };
            let crate_ok = slow::verify(pk, id, msg, &sig).is_ok();
            let fast_ok = verify(&t, pk, id, msg, &sig).is_ok();
            assert_eq!(crate_ok, fast_ok, "case {n} of round {i}");
            if pk == verifier.public_key() {
                assert_eq!(verifier.verify(id, msg, &sig).is_ok(), crate_ok, "case {n} of round {i}");
            }
            assert_eq!(crate_ok, n == 0, "case {n} of round {i}");
        }
    }
}

#[test]
fn rejects_d_equal_to_n_minus_one() {
    let d = -Scalar::ONE;
    let sk = SecretKey::from_bytes(&d.to_repr()).unwrap();
    assert_eq!(FastSigner::new(&sk, table()).err(), Some(AlgError::InvalidKey));
}
