//! The operations the load generator drives, each as a wire request (for the appliance) and
//! as the raw in-process primitive (the limit for the full path).

use gmhsm_client::{CipherMech, Client, ClientError, KeyAlg, KeyRef, Mechanism, Request, Sm4Mode};
use gmhsm_firmware::alg;
use gmhsm_proto::Label;

/// An operation to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Op {
    Ping,
    Sm2Sign,
    /// SM2 signatures `--batch` at a time (`SignBatch`), counted per signature.
    Sm2SignBatch,
    Sm2Verify,
    Sm2Encrypt,
    Sm2Decrypt,
    /// SM2 decryptions `--batch` at a time, at most 32 (`DecryptBatch`: the card computes
    /// their \[dB\]C1 eight at a time on AVX-512 IFMA), counted per decryption.
    Sm2DecryptBatch,
    Sm2Keygen,
    /// A fresh SM2 key pair returned to the caller, its private key wrapped under an SM4 KEK
    /// (`GenerateKeyPair`, SDF_GenerateKeyPair_ECC): nothing stored.
    Sm2Keypair,
    Rsa2048Sign,
    EcdsaSign,
    /// ECDSA P-256 signatures `--batch` at a time (`SignBatch`), counted per signature.
    EcdsaSignBatch,
    Sm4Cbc64,
    Sm4Cbc64k,
    Sm4Gcm64,
    Sm4Gcm64k,
    Random,
}

pub const ALL: &[Op] = &[
    Op::Ping,
    Op::Sm2Sign,
    Op::Sm2SignBatch,
    Op::Sm2Verify,
    Op::Sm2Encrypt,
    Op::Sm2Decrypt,
    Op::Sm2DecryptBatch,
    Op::Sm2Keygen,
    Op::Sm2Keypair,
    Op::Rsa2048Sign,
    Op::EcdsaSign,
    Op::EcdsaSignBatch,
    Op::Sm4Cbc64,
    Op::Sm4Cbc64k,
    Op::Sm4Gcm64,
    Op::Sm4Gcm64k,
    Op::Random,
];

fn label(s: &str) -> Label {
    Label::try_from(s).unwrap_or_default()
}

/// Bytes of payload an operation moves (for MB/s), 0 when it is counted in operations.
pub fn payload(op: Op) -> usize {
    match op {
        Op::Sm4Cbc64 | Op::Sm4Gcm64 => 64,
        Op::Sm4Cbc64k | Op::Sm4Gcm64k => 65536,
        _ => 0,
    }
}

/// Keys the benchmark uses, created once if missing.
pub fn setup(client: &mut Client) -> Result<Vec<u8>, ClientError> {
    for (l, alg) in [
        ("bench-sm2", KeyAlg::Sm2),
        ("bench-rsa", KeyAlg::Rsa2048),
        ("bench-p256", KeyAlg::EcdsaP256),
        ("bench-sm4", KeyAlg::Sm4),
    ] {
        match client.generate_key(l, alg) {
            Ok(_) | Err(ClientError::Status(gmhsm_client::Status::KeyExists)) => {}
            Err(e) => return Err(e),
        }
    }
    // An SM2 signature and ciphertext to verify / decrypt.
    client.sign("bench-sm2", Mechanism::sm2_default(), &[7u8; 32])
}

/// Operations one request of `op` performs: `batch` for the batch operations, else 1.
pub fn per_request(op: Op, batch: usize) -> usize {
    match op {
        Op::Sm2SignBatch | Op::EcdsaSignBatch => batch,
        Op::Sm2DecryptBatch => batch.min(gmhsm_client::MAX_DECRYPT_BATCH),
        _ => 1,
    }
}

/// The request for one operation (`batch` messages for the batch operations); `n` makes
/// key-generation labels unique.
pub fn request(op: Op, sig: &[u8], ct: &[u8], n: u64, batch: usize) -> Request {
    let data = vec![0x5au8; payload(op).max(32)];
    let sm4 = |_pkcs7: bool| KeyRef::Label(label("bench-sm4"));
    let batch_of = |key: &str, mechanism: Mechanism| Request::SignBatch {
        label: label(key),
        mechanism,
        messages: (0..batch).map(|i| gmhsm_client::ByteBuf::from(vec![i as u8; 32])).collect(),
    };
    match op {
        Op::Ping => Request::Ping,
        Op::Sm2Sign => {
            Request::Sign { label: label("bench-sm2"), mechanism: Mechanism::sm2_default(), message: vec![7; 32] }
        }
        Op::Sm2SignBatch => batch_of("bench-sm2", Mechanism::sm2_default()),
        Op::EcdsaSignBatch => batch_of("bench-p256", Mechanism::EcdsaP256Sha256),
        Op::Sm2Verify => Request::Verify {
            label: label("bench-sm2"),
            mechanism: Mechanism::sm2_default(),
            message: vec![7; 32],
            signature: sig.to_vec(),
        },
        Op::Sm2Encrypt => Request::Encrypt {
            key: KeyRef::Label(label("bench-sm2")),
            mechanism: CipherMech::Sm2 { layout: gmhsm_client::Sm2Layout::C1C3C2 },
            data: vec![1; 32],
        },
        Op::Sm2Decrypt => Request::Decrypt {
            key: KeyRef::Label(label("bench-sm2")),
            mechanism: CipherMech::Sm2 { layout: gmhsm_client::Sm2Layout::C1C3C2 },
            data: ct.to_vec(),
        },
        Op::Sm2DecryptBatch => Request::DecryptBatch {
            label: label("bench-sm2"),
            mechanism: CipherMech::Sm2 { layout: gmhsm_client::Sm2Layout::C1C3C2 },
            ciphertexts: vec![gmhsm_client::ByteBuf::from(ct.to_vec()); per_request(op, batch)],
        },
        Op::Sm2Keygen => Request::GenerateKey {
            label: label(&format!("bench-kg-{n}")),
            alg: KeyAlg::Sm2,
            caps: gmhsm_client::Capabilities::DEFAULT,
            domains: 0,
        },
        Op::Sm2Keypair => Request::GenerateKeyPair {
            alg: KeyAlg::Sm2,
            protection: gmhsm_client::KeyPairProtection::Wrapped { kek: label("bench-sm4") },
        },
        Op::Rsa2048Sign => {
            Request::Sign { label: label("bench-rsa"), mechanism: Mechanism::RsaPkcs1v15Sha256, message: vec![7; 32] }
        }
        Op::EcdsaSign => {
            Request::Sign { label: label("bench-p256"), mechanism: Mechanism::EcdsaP256Sha256, message: vec![7; 32] }
        }
        Op::Sm4Cbc64 | Op::Sm4Cbc64k => Request::Encrypt {
            key: sm4(false),
            // The card draws the IV (a caller's IV needs the CALLER_IV capability).
            mechanism: CipherMech::Sm4 { mode: Sm4Mode::CbcCardIv, pkcs7: false },
            data,
        },
        Op::Sm4Gcm64 | Op::Sm4Gcm64k => {
            Request::Encrypt { key: sm4(false), mechanism: CipherMech::Sm4GcmCardNonce { aad: Vec::new() }, data }
        }
        Op::Random => Request::GenerateRandom { len: 32 },
    }
}

/// An RNG for the in-process reference (the host's getrandom; the card uses its own DRBG).
pub struct HostRng;

impl rand_core::TryRng for HostRng {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        getrandom::fill(dst).unwrap_or_else(|_| dst.fill(0x42));
        Ok(())
    }
}

impl rand_core::TryCryptoRng for HostRng {}

/// The raw primitive, in-process: a closure running one call, and the operations a call
/// makes (`batch` signatures for `Sm2SignBatch`, as the card makes them; else one).
pub fn raw(op: Op, batch: usize) -> Option<(Box<dyn FnMut()>, u64)> {
    if op == Op::Sm2SignBatch {
        return raw_sm2_batch(batch).map(|f| (f, batch as u64));
    }
    if op == Op::Sm2DecryptBatch {
        let n = per_request(op, batch);
        return raw_sm2_decrypt_batch(n).map(|f| (f, n as u64));
    }
    raw_one(op).map(|f| (f, 1))
}

/// The card's `SignBatch` for an SM2 key, in-process: the batch's digests hashed together
/// (`FastSigner::digests`), then each signed with a pooled nonce (refill cost included), as
/// `Sm2Fast::sign_many` does, DER included.
fn raw_sm2_batch(batch: usize) -> Option<Box<dyn FnMut()>> {
    let sm2 = alg::sm2::generate(&mut HostRng).ok()?;
    let table = std::sync::Arc::new(alg::sm2_fast::BaseTable::new());
    let signer = alg::sm2_fast::FastSigner::new(&sm2, table.clone()).ok()?;
    let mut pool = alg::sm2_fast::NoncePool::new(table, 1024);
    let msgs = vec![[7u8; 32]; batch];
    Some(Box::new(move || {
        let refs: Vec<&[u8]> = msgs.iter().map(|m| &m[..]).collect();
        let Ok(digests) = signer.digests(alg::sm2::DEFAULT_ID, &refs) else { return };
        for e in &digests {
            if pool.is_empty() {
                let _ = pool.refill(&mut HostRng, 32);
            }
            if let Ok(sig) = signer.sign_digest_pooled(&mut pool, &mut HostRng, e) {
                std::hint::black_box(alg::dersig::encode(&sig.r_bytes().into(), &sig.s_bytes().into()));
            }
        }
    }))
}

/// The card's `DecryptBatch` for an SM2 key, in-process: `n` ciphertexts of 32 bytes through
/// `sm2_fast::pke::decrypt_many`.
fn raw_sm2_decrypt_batch(n: usize) -> Option<Box<dyn FnMut()>> {
    let sm2 = alg::sm2::generate(&mut HostRng).ok()?;
    let ct = alg::sm2_pke::encrypt(&mut HostRng, &sm2.public_key(), &[1; 32], alg::sm2_pke::Layout::C1C3C2).ok()?;
    Some(Box::new(move || {
        let cts = vec![&ct[..]; n];
        let out = alg::sm2_fast::pke::decrypt_many(&sm2, &cts, alg::sm2_pke::Layout::C1C3C2);
        assert!(out.iter().all(|r| r.is_ok()), "the reference failed to decrypt");
    }))
}

/// One operation of the raw primitive, in-process.
fn raw_one(op: Op) -> Option<Box<dyn FnMut()>> {
    let mut rng = HostRng;
    let sm2 = alg::sm2::generate(&mut rng).ok()?;
    let sm2_pub = sm2.public_key();
    let msg = [7u8; 32];
    let sig = alg::sm2::sign(&mut rng, &sm2, alg::sm2::DEFAULT_ID, &msg).ok()?;
    let ct = alg::sm2_pke::encrypt(&mut rng, &sm2_pub, &[1; 32], alg::sm2_pke::Layout::C1C3C2).ok()?;
    let key = [9u8; 16];
    let data = vec![0x5au8; payload(op).max(32)];
    Some(match op {
        Op::Ping => return None,
        // The card's own SM2 path: a cached signer and a pool refilled in batches of 32
        // (refill cost included), and the fast verification the card uses.
        Op::Sm2Sign | Op::Sm2SignBatch => {
            let table = std::sync::Arc::new(alg::sm2_fast::BaseTable::new());
            let signer = alg::sm2_fast::FastSigner::new(&sm2, table.clone()).ok()?;
            let mut pool = alg::sm2_fast::NoncePool::new(table, 1024);
            Box::new(move || {
                if pool.is_empty() {
                    let _ = pool.refill(&mut HostRng, 32);
                }
                let _ = signer.sign_pooled(&mut pool, &mut HostRng, alg::sm2::DEFAULT_ID, &msg);
            })
        }
        // As the card verifies with a key it has seen often: through the key's own table
        // (built once, not counted), Z and SM3 per call.
        Op::Sm2Verify => {
            let table = std::sync::Arc::new(alg::sm2_fast::BaseTable::new());
            let verifier = alg::sm2_fast::FastVerifier::new(&sm2_pub, table).ok()?;
            Box::new(move || {
                let _ = verifier.verify(alg::sm2::DEFAULT_ID, &msg, &sig);
            })
        }
        // As the card encrypts to a key it uses often: C1 = [k]G through its fixed-base table,
        // [k]PB through the key's own (built once, not counted).
        Op::Sm2Encrypt => {
            let table = alg::sm2_fast::BaseTable::new();
            let key_table = alg::sm2_fast::BaseTable::for_point(sm2_pub.as_affine());
            Box::new(move || {
                let _ = alg::sm2_fast::pke::encrypt_with(
                    Some(&table),
                    Some(&key_table),
                    &mut HostRng,
                    &sm2_pub,
                    &[1; 32],
                    alg::sm2_pke::Layout::C1C3C2,
                );
            })
        }
        // Handled by `raw` (a batch per call).
        Op::Sm2DecryptBatch => return None,
        Op::Sm2Decrypt => Box::new(move || {
            let _ = alg::sm2_pke::decrypt(&sm2, &ct, alg::sm2_pke::Layout::C1C3C2);
        }),
        // Key generation as the card does it (key pair and its SPKI), without the store.
        Op::Sm2Keygen => Box::new(move || {
            let r = gmhsm_firmware::keys::generate(KeyAlg::Sm2, &mut HostRng);
            assert!(r.is_ok(), "SM2 key generation failed in the reference");
        }),
        // The card's path for `GenerateKeyPair`: (d, [d]G) from a pool refilled in batches of
        // 32 through the fixed-base table (refill cost included), SPKI and PKCS#8, then
        // SM4-GCM under the KEK with a fresh nonce.
        Op::Sm2Keypair => {
            let table = alg::sm2_fast::BaseTable::new();
            let mut pool = alg::sm2_fast::pairs::PairPool::new(32);
            Box::new(move || {
                let kp = alg::sm2_fast::pairs::take(&mut pool, &table, &mut HostRng, 32)
                    .expect("SM2 key pair generation failed in the reference");
                let pair = gmhsm_firmware::hsm::keypair::sm2_pair_from(kp);
                let pair = pair.expect("SM2 key pair generation failed in the reference");
                let mut nonce = [0u8; 12];
                getrandom::fill(&mut nonce).unwrap_or_default();
                let _ = alg::sm4::gcm_encrypt(&key, &nonce, &pair.spki_der, &pair.pkcs8);
            })
        }
        Op::Rsa2048Sign => {
            let k = alg::rsa::generate(&mut rng, 2048).ok()?;
            Box::new(move || {
                let _ = alg::rsa::sign_pkcs1v15_sha256(&mut HostRng, &k, &msg);
            })
        }
        // As the card signs: the key prepared once at load, a pool of (k⁻¹, r) refilled in
        // batches of 32 (refill cost included).
        Op::EcdsaSign | Op::EcdsaSignBatch => {
            let k = alg::ecdsa::SigningKey::from(&alg::ecdsa::generate(&mut rng).ok()?);
            let table = alg::ecdsa_fast::P256Table::new();
            let mut pool = alg::ecdsa_fast::EcdsaPool::new(1024);
            Box::new(move || {
                if pool.is_empty() {
                    let _ = alg::ecdsa_fast::refill(&mut pool, &table, &mut HostRng, 32);
                }
                let _ = alg::ecdsa_fast::sign_pooled(&k, &mut pool, &table, &mut HostRng, &msg, 32);
            })
        }
        Op::Sm4Cbc64 | Op::Sm4Cbc64k => Box::new(move || {
            let _ = alg::sm4::crypt(
                &key,
                alg::sm4::Mode::Cbc([0; 16]),
                alg::sm4::Direction::Encrypt,
                alg::sm4::Padding::None,
                &data,
            );
        }),
        Op::Sm4Gcm64 | Op::Sm4Gcm64k => Box::new(move || {
            let _ = alg::sm4::gcm_encrypt(&key, &[1; 12], &[], &data);
        }),
        Op::Random => return None,
    })
}

/// The OpenSSL 3 command-line reference for an operation: (args to `openssl speed`, the
/// line-matching word, what the number means).
pub fn openssl_speed(op: Op) -> Option<(&'static [&'static str], &'static str)> {
    match op {
        Op::Sm2Sign | Op::Sm2SignBatch | Op::Sm2Verify => Some((&["speed", "-seconds", "2", "sm2"], "SM2")),
        Op::Rsa2048Sign => Some((&["speed", "-seconds", "2", "rsa2048"], "rsa 2048")),
        Op::EcdsaSign | Op::EcdsaSignBatch => Some((&["speed", "-seconds", "2", "ecdsap256"], "256 bits ecdsa")),
        Op::Sm4Cbc64 | Op::Sm4Cbc64k => {
            Some((&["speed", "-seconds", "2", "-evp", "sm4-cbc", "-bytes", "65536"], "SM4-CBC"))
        }
        _ => None,
    }
}

pub fn decrypt_input(client: &mut Client) -> Result<Vec<u8>, ClientError> {
    client.encrypt(
        KeyRef::Label(label("bench-sm2")),
        CipherMech::Sm2 { layout: gmhsm_client::Sm2Layout::C1C3C2 },
        &[1; 32],
    )
}
