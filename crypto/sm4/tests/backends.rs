//! Every backend against the GB/T 32907 examples and against the RustCrypto `sm4` crate, and
//! through the mode crates the card uses.

use aes_gcm::aead::consts::U12;
use aes_gcm::aead::{Aead, Payload};
use cipher::array::Array;
use cipher::common::{InnerInit, InnerIvInit};
use cipher::{
    BlockCipherDecrypt, BlockCipherEncrypt, BlockModeDecrypt, BlockModeEncrypt, KeyInit, KeyIvInit, StreamCipher,
};
use gmhsm_sm4::{Backend, Sm4};

const K: [u8; 16] = hex_literal("0123456789abcdeffedcba9876543210");

const fn hex_literal(s: &str) -> [u8; 16] {
    let b = s.as_bytes();
    let mut out = [0u8; 16];
    let mut i = 0;
    while i < 16 {
        out[i] = nib(b[2 * i]) << 4 | nib(b[2 * i + 1]);
        i += 1;
    }
    out
}

const fn nib(c: u8) -> u8 {
    if c <= b'9' { c - b'0' } else { c - b'a' + 10 }
}

/// The backends this CPU runs, each as a constructor.
fn backends() -> Vec<Backend> {
    let v: Vec<Backend> = Backend::ALL.into_iter().filter(|b| b.is_available()).collect();
    assert!(v.contains(&Backend::Portable));
    eprintln!("backends on this CPU: {v:?}");
    v
}

fn cipher(key: &[u8; 16], b: Backend) -> Sm4 {
    Sm4::new_with_backend(&Array::from(*key), b).expect("available backend")
}

/// xorshift64*: deterministic test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn fill(&mut self, b: &mut [u8]) {
        for c in b.chunks_mut(8) {
            let r = self.next().to_le_bytes();
            c.copy_from_slice(&r[..c.len()]);
        }
    }
}

// GB/T 32907-2016 Appendix A, example 1.
#[test]
fn gbt32907_example_1_every_backend() {
    for b in backends() {
        let c = cipher(&K, b);
        let mut block = Array::from(K);
        c.encrypt_block(&mut block);
        assert_eq!(block, Array::from(hex_literal("681edf34d206965e86b3e94f536e4246")), "{b:?}");
        c.decrypt_block(&mut block);
        assert_eq!(block, Array::from(K), "{b:?}");
    }
}

// GB/T 32907-2016 Appendix A, example 2: 1,000,000 encryptions of the same block. The
// portable backend takes several seconds in a debug build, so it runs its share in release
// only (the other backends check all 1,000,000 always).
#[test]
fn gbt32907_example_2_every_backend() {
    for b in backends() {
        if b == Backend::Portable && cfg!(debug_assertions) {
            continue;
        }
        let c = cipher(&K, b);
        let mut block = Array::from(K);
        for _ in 0..1_000_000 {
            c.encrypt_block(&mut block);
        }
        assert_eq!(block, Array::from(hex_literal("595298c7c6fd271f0402f804c33d3f66")), "{b:?}");
    }
}

/// Random keys and every batch length from 1 to 70 blocks, each backend against `sm4`.
#[test]
fn matches_sm4_crate_on_random_inputs() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for b in backends() {
        for len in (1..=70).chain([127, 128, 129, 257]) {
            let mut key = [0u8; 16];
            rng.fill(&mut key);
            let mut data = vec![Array::<u8, _>::default(); len];
            for blk in data.iter_mut() {
                rng.fill(blk);
            }
            let theirs = sm4::Sm4::new(&Array::from(key));
            let ours = cipher(&key, b);

            let mut want = data.clone();
            theirs.encrypt_blocks(&mut want);
            let mut got = data.clone();
            ours.encrypt_blocks(&mut got);
            assert_eq!(got, want, "{b:?} encrypt {len} blocks");
            // One at a time as well (the serial path).
            let mut one = data.clone();
            for blk in one.iter_mut() {
                ours.encrypt_block(blk);
            }
            assert_eq!(one, want, "{b:?} encrypt_block x{len}");

            ours.decrypt_blocks(&mut got);
            assert_eq!(got, data, "{b:?} decrypt {len} blocks");
        }
    }
}

#[test]
fn modes_match_sm4_crate() {
    let mut rng = Rng(7);
    for b in backends() {
        let mut key = [0u8; 16];
        let mut iv = [0u8; 16];
        rng.fill(&mut key);
        rng.fill(&mut iv);
        for len in [16usize, 64, 16 * 33, 4096] {
            let mut data = vec![0u8; len];
            rng.fill(&mut data);
            let (k, v) = (Array::from(key), Array::from(iv));

            let mut want = data.clone();
            cbc::Encryptor::<sm4::Sm4>::new(&k, &v).encrypt_blocks(Array::slice_as_chunks_mut(&mut want).0);
            let mut got = data.clone();
            let mut ours = cbc::Encryptor::<Sm4>::inner_iv_init(cipher(&key, b), &v);
            ours.encrypt_blocks(Array::slice_as_chunks_mut(&mut got).0);
            assert_eq!(got, want, "{b:?} cbc enc {len}");
            cbc::Decryptor::<Sm4>::inner_iv_init(cipher(&key, b), &v)
                .decrypt_blocks(Array::slice_as_chunks_mut(&mut got).0);
            assert_eq!(got, data, "{b:?} cbc dec {len}");

            let mut want = data.clone();
            ecb::Encryptor::<sm4::Sm4>::new(&k).encrypt_blocks(Array::slice_as_chunks_mut(&mut want).0);
            let mut got = data.clone();
            ecb::Encryptor::<Sm4>::inner_init(cipher(&key, b)).encrypt_blocks(Array::slice_as_chunks_mut(&mut got).0);
            assert_eq!(got, want, "{b:?} ecb {len}");

            for cut in [len, len - 5] {
                let mut want = data[..cut].to_vec();
                ctr::Ctr128BE::<sm4::Sm4>::new(&k, &v).apply_keystream(&mut want);
                let mut got = data[..cut].to_vec();
                ctr::Ctr128BE::<Sm4>::from_core(ctr::CtrCore::inner_iv_init(cipher(&key, b), &v))
                    .apply_keystream(&mut got);
                assert_eq!(got, want, "{b:?} ctr {cut}");

                let mut want = data[..cut].to_vec();
                cfb_mode::BufEncryptor::<sm4::Sm4>::new(&k, &v).encrypt(&mut want);
                let mut got = data[..cut].to_vec();
                cfb_mode::BufEncryptor::<Sm4>::inner_iv_init(cipher(&key, b), &v).encrypt(&mut got);
                assert_eq!(got, want, "{b:?} cfb {cut}");

                let mut want = data[..cut].to_vec();
                ofb::Ofb::<sm4::Sm4>::new(&k, &v).apply_keystream(&mut want);
                let mut got = data[..cut].to_vec();
                ofb::Ofb::<Sm4>::from_core(ofb::OfbCore::inner_iv_init(cipher(&key, b), &v)).apply_keystream(&mut got);
                assert_eq!(got, want, "{b:?} ofb {cut}");

                use cmac::Mac;
                let want =
                    <cmac::Cmac<sm4::Sm4> as KeyInit>::new(&k).chain_update(&data[..cut]).finalize().into_bytes();
                let mut mac = <cmac::Cmac<Sm4> as InnerInit>::inner_init(cipher(&key, b));
                mac.update(&data[..cut]);
                assert_eq!(mac.finalize().into_bytes(), want, "{b:?} cmac {cut}");

                let nonce = Array::from([9u8; 12]);
                let payload = || Payload { msg: &data[..cut], aad: b"header" };
                let want = aes_gcm::AesGcm::<sm4::Sm4, U12>::new(&k).encrypt(&nonce, payload()).unwrap();
                let ours = aes_gcm::AesGcm::<Sm4, U12>::from(cipher(&key, b));
                let got = ours.encrypt(&nonce, payload()).unwrap();
                assert_eq!(got, want, "{b:?} gcm {cut}");
                let back = ours.decrypt(&nonce, Payload { msg: &got, aad: b"header" }).unwrap();
                assert_eq!(back, &data[..cut], "{b:?} gcm open {cut}");
            }
        }
    }
}

// RFC 8998 Appendix A.1 (SM4-GCM), through the default (detected) backend.
#[test]
fn rfc8998_gcm_vector() {
    let h = |s: &str| hex::decode(s).unwrap();
    let key = Array::try_from(h("0123456789ABCDEFFEDCBA9876543210").as_slice()).unwrap();
    let nonce = Array::try_from(h("00001234567800000000ABCD").as_slice()).unwrap();
    let aad = h("FEEDFACEDEADBEEFFEEDFACEDEADBEEFABADDAD2");
    let pt = h("AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBBCCCCCCCCCCCCCCCCDDDDDDDDDDDDDDDD\
                EEEEEEEEEEEEEEEEFFFFFFFFFFFFFFFFEEEEEEEEEEEEEEEEAAAAAAAAAAAAAAAA");
    let want = h("17F399F08C67D5EE19D0DC9969C4BB7D5FD46FD3756489069157B282BB200735\
                  D82710CA5C22F0CCFA7CBF93D496AC15A56834CBCF98C397B4024A2691233B8D\
                  83DE3541E4C2B58177E065A9BF7B62EC");
    let gcm = aes_gcm::AesGcm::<Sm4, U12>::new(&key);
    assert_eq!(gcm.encrypt(&nonce, Payload { msg: &pt, aad: &aad }).unwrap(), want);
}

#[test]
fn debug_shows_no_key() {
    let c = cipher(&K, Backend::Portable);
    let s = format!("{c:?}");
    assert_eq!(s, "Sm4 { backend: Portable, .. }");
}

#[test]
fn unavailable_backend_is_none_and_detect_is_available() {
    assert!(Backend::detect().is_available());
    for b in Backend::ALL {
        assert_eq!(Sm4::new_with_backend(&Array::from(K), b).is_some(), b.is_available());
    }
    let c = <Sm4 as KeyInit>::new(&Array::from(K));
    assert_eq!(c.backend(), Backend::detect());
}

#[test]
fn zeroize_on_drop_is_implemented() {
    fn needs<T: zeroize::ZeroizeOnDrop>() {}
    needs::<Sm4>();
    needs::<aes_gcm::AesGcm<Sm4, U12>>();
}
