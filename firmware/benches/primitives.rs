//! One-core throughput of the card's primitives: SM2 (crate path and `sm2_fast`), SM3, SM4,
//! RSA (the card's CRT path and the crate's), ECDSA P-256. `scripts/bench-primitives.sh` runs this and OpenSSL side by side;
//! docs/benchmarks.md has the table and how to read it.
//!
//! Randomness is the card's SM3 Hash_DRBG (`gmhsm_firmware::drbg::HashDrbg`) seeded with a
//! fixed string, so its cost is inside every number that draws random bytes.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use gmhsm_firmware::alg::sm2_fast::{self, BaseTable, FastSigner, FastVerifier, NoncePool};
use gmhsm_firmware::alg::{ecdsa, ecdsa_fast, rsa, sm2, sm2_pke, sm3, sm4};
use gmhsm_firmware::drbg::HashDrbg;
use rand_core::{TryCryptoRng, TryRng};

/// Signatures per pool batch in the steady-state benchmark.
const BATCH: usize = 32;
const MSG: [u8; 32] = [0x5a; 32];

/// The card's DRBG core as a `TryCryptoRng`, reseeded from a fixed string when due.
struct Drbg(HashDrbg<::sm3::Sm3>);

impl Drbg {
    fn new() -> Self {
        Drbg(HashDrbg::new(b"bench entropy, not secret......", b"nonce", b"gmhsm bench"))
    }
}

impl TryRng for Drbg {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut b = [0; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut b = [0; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        if self.0.needs_reseed() {
            self.0.reseed(b"bench reseed", b"");
        }
        self.0.generate(dst, b"").expect("bench DRBG request within limits");
        Ok(())
    }
}
impl TryCryptoRng for Drbg {}

fn sm2_sign(c: &mut Criterion) {
    let mut rng = Drbg::new();
    let sk = sm2::generate(&mut rng).unwrap();
    let table = Arc::new(BaseTable::new());
    let signer = FastSigner::new(&sk, table.clone()).unwrap();
    let mut g = c.benchmark_group("sm2_sign");
    g.bench_function("crate", |b| b.iter(|| sm2::sign(&mut rng, &sk, sm2::DEFAULT_ID, black_box(&MSG)).unwrap()));
    g.bench_function("fast_no_pool", |b| b.iter(|| signer.sign(&mut rng, sm2::DEFAULT_ID, black_box(&MSG)).unwrap()));
    // Steady state with the pool, refill cost included: one batch refill and BATCH
    // signatures per iteration; divide by BATCH for the per-signature time.
    let mut pool = NoncePool::new(table.clone(), BATCH);
    g.bench_function(BenchmarkId::new("fast_pool_refill_plus_signs", BATCH), |b| {
        b.iter(|| {
            pool.refill(&mut rng, BATCH).unwrap();
            for _ in 0..BATCH {
                black_box(signer.sign_pooled(&mut pool, &mut rng, sm2::DEFAULT_ID, black_box(&MSG)).unwrap());
            }
        })
    });
    // Latency of one signature when the pool has a pair (refill outside the timing).
    g.bench_function("fast_pool_hit", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(BATCH as u64) as usize;
                pool.clear();
                pool.refill(&mut rng, n).unwrap();
                let start = std::time::Instant::now();
                for _ in 0..n {
                    black_box(signer.sign_pooled(&mut pool, &mut rng, sm2::DEFAULT_ID, black_box(&MSG)).unwrap());
                }
                total += start.elapsed();
                left -= n as u64;
            }
            total
        })
    });
    g.bench_function(BenchmarkId::new("pool_refill", BATCH), |b| {
        b.iter(|| {
            pool.refill(&mut rng, BATCH).unwrap();
            pool.clear();
        })
    });
    // The same two rows with the portable four-lane refill (what a CPU without AVX-512 IFMA
    // runs), beside the IFMA kernel's in the same run.
    let portable = Arc::new(BaseTable::new_portable());
    let portable_signer = FastSigner::new(&sk, portable.clone()).unwrap();
    let mut portable_pool = NoncePool::new(portable, BATCH);
    g.bench_function(BenchmarkId::new("fast_pool_refill_plus_signs_portable", BATCH), |b| {
        b.iter(|| {
            portable_pool.refill(&mut rng, BATCH).unwrap();
            for _ in 0..BATCH {
                black_box(
                    portable_signer
                        .sign_pooled(&mut portable_pool, &mut rng, sm2::DEFAULT_ID, black_box(&MSG))
                        .unwrap(),
                );
            }
        })
    });
    g.bench_function(BenchmarkId::new("pool_refill_portable", BATCH), |b| {
        b.iter(|| {
            portable_pool.refill(&mut rng, BATCH).unwrap();
            portable_pool.clear();
        })
    });
    g.bench_function("fast_signer_setup", |b| b.iter(|| FastSigner::new(black_box(&sk), table.clone()).unwrap()));
    g.finish();
}

fn sm2_verify(c: &mut Criterion) {
    let mut rng = Drbg::new();
    let sk = sm2::generate(&mut rng).unwrap();
    let pk = sk.public_key();
    let table = Arc::new(BaseTable::new());
    let verifier = FastVerifier::new(&pk, table.clone()).unwrap();
    let sig = sm2::sign(&mut rng, &sk, sm2::DEFAULT_ID, &MSG).unwrap();
    let mut g = c.benchmark_group("sm2_verify");
    g.bench_function("crate", |b| b.iter(|| sm2::verify(&pk, sm2::DEFAULT_ID, black_box(&MSG), &sig).unwrap()));
    g.bench_function("fast", |b| {
        b.iter(|| sm2_fast::verify(&table, &pk, sm2::DEFAULT_ID, black_box(&MSG), &sig).unwrap())
    });
    g.bench_function("fast_verifier_per_key_table", |b| {
        b.iter(|| verifier.verify(sm2::DEFAULT_ID, black_box(&MSG), &sig).unwrap())
    });
    g.bench_function("fast_verifier_setup", |b| b.iter(|| FastVerifier::new(black_box(&pk), table.clone()).unwrap()));
    g.finish();
}

fn sm2_other(c: &mut Criterion) {
    let mut rng = Drbg::new();
    let sk = sm2::generate(&mut rng).unwrap();
    let pk = sk.public_key();
    let ct = sm2_pke::encrypt(&mut rng, &pk, &MSG, sm2_pke::Layout::C1C3C2).unwrap();
    let mut g = c.benchmark_group("sm2");
    // A key pair: the scalar and its public point (as keys::generate needs for the SPKI).
    g.bench_function("keygen", |b| b.iter(|| sm2::generate(&mut rng).unwrap().public_key()));
    // As the card encrypts: C1 = [k]G through its fixed-base table; and without it.
    let table = BaseTable::new();
    g.bench_function("encrypt_32", |b| {
        b.iter(|| {
            sm2_fast::pke::encrypt(Some(&table), &mut rng, &pk, black_box(&MSG), sm2_pke::Layout::C1C3C2).unwrap()
        })
    });
    // To a key the card encrypts to often: [k]PB through the key's own table as well.
    let key_table = BaseTable::for_point(pk.as_affine());
    g.bench_function("encrypt_32_key_table", |b| {
        b.iter(|| {
            sm2_fast::pke::encrypt_with(
                Some(&table),
                Some(&key_table),
                &mut rng,
                &pk,
                black_box(&MSG),
                sm2_pke::Layout::C1C3C2,
            )
            .unwrap()
        })
    });
    g.bench_function("encrypt_32_no_table", |b| {
        b.iter(|| sm2_pke::encrypt(&mut rng, &pk, black_box(&MSG), sm2_pke::Layout::C1C3C2).unwrap())
    });
    g.bench_function("decrypt_32", |b| {
        b.iter(|| sm2_pke::decrypt(&sk, black_box(&ct), sm2_pke::Layout::C1C3C2).unwrap())
    });
    g.finish();
    // A DecryptBatch's work: [dB]C1 eight at a time on IFMA (per-decryption time: Elements).
    let mut g = c.benchmark_group("sm2_decrypt_batch");
    for n in [8usize, 32] {
        let cts: Vec<Vec<u8>> =
            (0..n).map(|_| sm2_pke::encrypt(&mut rng, &pk, &MSG, sm2_pke::Layout::C1C3C2).unwrap()).collect();
        let refs: Vec<&[u8]> = cts.iter().map(|c| &c[..]).collect();
        g.throughput(criterion::Throughput::Elements(n as u64));
        g.bench_function(BenchmarkId::new("decrypt_32_many", n), |b| {
            b.iter(|| sm2_fast::pke::decrypt_many(&sk, black_box(&refs), sm2_pke::Layout::C1C3C2))
        });
    }
    g.finish();
    let mut g = c.benchmark_group("sm2");
    // The `sm2` crate's implementation, side by side (the card's before it had its own).
    g.bench_function("encrypt_32_crate", |b| {
        b.iter(|| sm2_pke::crate_encrypt(&mut rng, &pk, black_box(&MSG), sm2_pke::Layout::C1C3C2).unwrap())
    });
    g.bench_function("decrypt_32_crate", |b| {
        b.iter(|| sm2_pke::crate_decrypt(&sk, black_box(&ct), sm2_pke::Layout::C1C3C2).unwrap())
    });
    g.finish();
}

fn symmetric(c: &mut Criterion) {
    let key = [0x11u8; 16];
    let iv = [0x22u8; 16];
    let mut g = c.benchmark_group("sm3");
    let mib = vec![0xa5u8; 1 << 20];
    g.throughput(Throughput::Bytes(mib.len() as u64));
    g.bench_function("1MiB", |b| b.iter(|| sm3::sm3(black_box(&mib))));
    // The digests of a 64-message SignBatch: SM3(Z ‖ M) sixteen at a time (gmhsm-sm3x).
    let z = [0x5au8; 32];
    let msgs = vec![[7u8; 32]; 64];
    let refs: Vec<&[u8]> = msgs.iter().map(|m| &m[..]).collect();
    let mut out = vec![[0u8; 32]; 64];
    g.throughput(Throughput::Elements(64));
    g.bench_function("many_64x32_prefixed", |b| b.iter(|| gmhsm_sm3x::digest_many(&z, black_box(&refs), &mut out)));
    g.finish();
    for (name, len) in [("64B", 64usize), ("64KiB", 64 << 10)] {
        let data = vec![0x3cu8; len];
        let mut g = c.benchmark_group("sm4");
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_function(format!("cbc_encrypt_{name}"), |b| {
            b.iter(|| {
                sm4::crypt(&key, sm4::Mode::Cbc(iv), sm4::Direction::Encrypt, sm4::Padding::None, black_box(&data))
                    .unwrap()
            })
        });
        g.bench_function(format!("gcm_encrypt_{name}"), |b| {
            b.iter(|| sm4::gcm_encrypt(&key, &iv[..12], b"", black_box(&data)).unwrap())
        });
        g.finish();
    }
}

/// Fixed RSA-3072 / 4096 keys (draft-irtf-cfrg-rsa-guidance test keys): generating them here
/// would take seconds.
const RSA3072: &[u8] = include_bytes!("../src/alg/rsa/testdata/k3072.pk8.der");
const RSA4096: &[u8] = include_bytes!("../src/alg/rsa/testdata/k4096.pk8.der");

fn others(c: &mut Criterion) {
    use ::rsa::pkcs8::DecodePrivateKey;
    let mut rng = Drbg::new();
    let rsa_key = rsa::generate(&mut rng, 2048).unwrap();
    // The same key on the portable exponentiation: IFMA is refused while it is set up.
    gmhsm_ifma::set_enabled(false);
    let rsa_portable = rsa::RsaKey::new(rsa_key.private_key().clone());
    gmhsm_ifma::set_enabled(true);
    let rsa3072 = rsa::RsaKey::new(rsa::PrivateKey::from_pkcs8_der(RSA3072).unwrap());
    let rsa4096 = rsa::RsaKey::new(rsa::PrivateKey::from_pkcs8_der(RSA4096).unwrap());
    let p256 = ecdsa::generate(&mut rng).unwrap();
    let mut g = c.benchmark_group("other");
    // RSA: the card's path (alg::rsa::RsaKey, fixed-size CRT, blinded, checked; on AVX-512
    // IFMA where the CPU has it), the same forced portable, and the `rsa` crate's own
    // (blinded, checked) side by side.
    g.bench_function("rsa2048_sign_pkcs1v15_sha256", |b| {
        b.iter(|| rsa::sign_pkcs1v15_sha256(&mut rng, &rsa_key, black_box(&MSG)).unwrap())
    });
    g.bench_function("rsa2048_sign_portable", |b| {
        b.iter(|| rsa::sign_pkcs1v15_sha256(&mut rng, &rsa_portable, black_box(&MSG)).unwrap())
    });
    g.bench_function("rsa2048_sign_crate", |b| {
        b.iter(|| rsa_key.private_key().pkcs1v15_sign_with_rng::<sha2::Sha256, _>(&mut rng, black_box(&MSG)).unwrap())
    });
    g.bench_function("rsa2048_sign_pss_sha256", |b| {
        b.iter(|| rsa::sign_pss(&mut rng, &rsa_key, rsa::PssHash::Sha256, black_box(&MSG)).unwrap())
    });
    g.bench_function("rsa3072_sign_pkcs1v15_sha256", |b| {
        b.iter(|| rsa::sign_pkcs1v15_sha256(&mut rng, &rsa3072, black_box(&MSG)).unwrap())
    });
    g.bench_function("rsa4096_sign_pkcs1v15_sha256", |b| {
        b.iter(|| rsa::sign_pkcs1v15_sha256(&mut rng, &rsa4096, black_box(&MSG)).unwrap())
    });
    let public = rsa_key.to_public_key();
    let ct = rsa::encrypt_pkcs1v15(&mut rng, &public, &MSG).unwrap();
    g.bench_function("rsa2048_decrypt_pkcs1v15", |b| {
        b.iter(|| rsa::decrypt_pkcs1v15(&mut rng, &rsa_key, black_box(&ct)).unwrap())
    });
    let ct = rsa::encrypt_oaep_sha256(&mut rng, &public, &MSG).unwrap();
    g.bench_function("rsa2048_decrypt_oaep_sha256", |b| {
        b.iter(|| rsa::decrypt_oaep_sha256(&mut rng, &rsa_key, black_box(&ct)).unwrap())
    });
    g.bench_function("rsa2048_key_setup", |b| b.iter(|| rsa::RsaKey::new(black_box(rsa_key.private_key().clone()))));
    // As the card signs: the key prepared once (its public point derived at load).
    let p256_key = ecdsa::SigningKey::from(&p256);
    g.bench_function("ecdsa_p256_sign", |b| b.iter(|| ecdsa::sign_with(&mut rng, &p256_key, black_box(&MSG)).unwrap()));
    // The card's pooled path: one batch refill and BATCH signatures per iteration, with the
    // IFMA comb (where the CPU has it) and with the crate's fixed-base multiplication.
    for (name, table) in [("ifma", ecdsa_fast::P256Table::new()), ("portable", ecdsa_fast::P256Table::portable())] {
        let mut pool = ecdsa_fast::EcdsaPool::new(BATCH);
        g.bench_function(BenchmarkId::new(format!("ecdsa_p256_pool_refill_plus_signs_{name}"), BATCH), |b| {
            b.iter(|| {
                ecdsa_fast::refill(&mut pool, &table, &mut rng, BATCH).unwrap();
                for _ in 0..BATCH {
                    black_box(
                        ecdsa_fast::sign_pooled(&p256_key, &mut pool, &table, &mut rng, black_box(&MSG), BATCH)
                            .unwrap(),
                    );
                }
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);
    targets = sm2_sign, sm2_verify, sm2_other, symmetric, others
}
criterion_main!(benches, micro_benches);

fn micro(c: &mut Criterion) {
    use ::sm2::elliptic_curve::{Field, Group};
    use ::sm2::{AffinePoint, ProjectivePoint, Scalar};
    let mut rng = Drbg::new();
    let a = Scalar::try_random(&mut rng).unwrap();
    let b = Scalar::try_random(&mut rng).unwrap();
    let p = ProjectivePoint::GENERATOR * a;
    let q = ProjectivePoint::GENERATOR * b;
    let qa: AffinePoint = q.to_affine();
    let mut g = c.benchmark_group("micro");
    g.bench_function("scalar_mul", |bn| bn.iter(|| black_box(a) * black_box(b)));
    g.bench_function("scalar_invert", |bn| bn.iter(|| black_box(a).invert()));
    g.bench_function("point_add", |bn| bn.iter(|| black_box(p) + black_box(q)));
    g.bench_function("point_add_mixed", |bn| bn.iter(|| black_box(p) + black_box(qa)));
    g.bench_function("point_double", |bn| bn.iter(|| black_box(p).double()));
    g.bench_function("to_affine", |bn| bn.iter(|| black_box(p).to_affine()));
    g.finish();
}
criterion_group!(micro_benches, micro);
