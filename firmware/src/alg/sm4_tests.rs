//! Known-answer and streaming tests for [`super`] (SM4 modes and MACs).

use super::*;
use crate::alg::testrng::h;
use gmhsm_sm4::cipher::{BlockCipherEncrypt, KeyInit};

const K: &str = "0123456789abcdeffedcba9876543210";
const IV: &str = "000102030405060708090a0b0c0d0e0f";
const P: &str = "aaaaaaaaaaaaaaaabbbbbbbbbbbbbbbbccccccccccccccccdddddddddddddddd\
                 eeeeeeeeeeeeeeeeffffffffffffffffeeeeeeeeeeeeeeeeaaaaaaaaaaaaaaaa";

fn iv() -> [u8; 16] {
    h(IV).try_into().unwrap()
}

// GB/T 32907-2016 Appendix A, example 1: key = plaintext = 0123…3210.
#[test]
fn gbt32907_single_block() {
    let ct = crypt(&h(K), Mode::Ecb, Direction::Encrypt, Padding::None, &h(K)).unwrap();
    assert_eq!(ct.to_vec(), h("681edf34d206965e86b3e94f536e4246"));
    let pt = crypt(&h(K), Mode::Ecb, Direction::Decrypt, Padding::None, &ct).unwrap();
    assert_eq!(pt.to_vec(), h(K));
}

// GB/T 32907-2016 Appendix A, example 2: the same block encrypted 1,000,000 times
// (about a second in a debug build, with dependencies at opt-level 2).
#[test]
fn gbt32907_million_iterations() {
    let cipher = Sm4::new_from_slice(&h(K)).unwrap();
    let mut block = Array::try_from(h(K).as_slice()).unwrap();
    for _ in 0..1_000_000 {
        cipher.encrypt_block(&mut block);
    }
    assert_eq!(block.to_vec(), h("595298c7c6fd271f0402f804c33d3f66"));
}

// Mode vectors computed with `openssl enc -sm4-{cbc,cfb,ofb,ctr} -nopad` (OpenSSL 3.0) and
// re-checked live by tests/openssl_interop.rs.
#[test]
fn mode_vectors() {
    let cases = [
        (
            Mode::Cbc(iv()),
            "9554bcddf2d371452bffd93df8d461872360664050b1ae28e3e25ab2539ededbec17435cee4d9e7c413b774acf6ad121aa16d86ff8e97ed458e1746bfa7bb74c",
        ),
        (
            Mode::Cfb(iv()),
            "ac3236cb970cc20791364c395a1342d12f1d1c833abb135086a6faa42f167242f3732f033642fd4ecdd75a9e634b92c34cf22ab0e7e259fb77ddd11f2dfc090f",
        ),
        (
            Mode::Ofb(iv()),
            "ac3236cb970cc20791364c395a1342d13f238e807b4f96b1bc82314900fe35fdb5a976a661e7e9c6cf11fbd9db4fa11dd9fca62b960785d5515ea02068945185",
        ),
        (
            Mode::Ctr(iv()),
            "ac3236cb970cc20791364c395a1342d1a3cbc1878c6f30cd074cce385cdd70c7f234bc0e24c11980fd1286310ce37b922a46b894bee4feb79a3822940c935405",
        ),
    ];
    for (mode, want) in cases {
        let ct = crypt(&h(K), mode, Direction::Encrypt, Padding::None, &h(P)).unwrap();
        assert_eq!(ct.to_vec(), h(want));
        assert_eq!(crypt(&h(K), mode, Direction::Decrypt, Padding::None, &ct).unwrap().to_vec(), h(P));
    }
    // 37 bytes with PKCS#7 (`openssl enc -sm4-cbc`, padding on by default).
    let ct = crypt(&h(K), Mode::Cbc(iv()), Direction::Encrypt, Padding::Pkcs7, &h(P)[..37]).unwrap();
    assert_eq!(
        ct.to_vec(),
        h("9554bcddf2d371452bffd93df8d461872360664050b1ae28e3e25ab2539ededb43fb82c21157da8f6ee5aba99fed2080")
    );
}

/// Feed `data` through a context in uneven pieces and collect everything.
fn streamed(mode: Mode, dir: Direction, padding: Padding, data: &[u8]) -> Result<Vec<u8>, AlgError> {
    let mut ctx = Sm4Ctx::new(&h(K), mode, dir, padding)?;
    let mut out = Vec::new();
    let mut rest = data;
    for size in [0usize, 1, 15, 16, 17, 3, 32].iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (now, later) = rest.split_at((*size).min(rest.len()));
        out.extend_from_slice(&ctx.update(now));
        rest = later;
    }
    out.extend_from_slice(&ctx.finalize()?);
    Ok(out)
}

#[test]
fn streaming_matches_one_shot_in_every_mode() {
    let data: Vec<u8> = (0..=255u8).cycle().take(301).collect();
    let aligned = &data[..288];
    let modes = [Mode::Ecb, Mode::Cbc(iv()), Mode::Cfb(iv()), Mode::Ofb(iv()), Mode::Ctr(iv())];
    for mode in modes {
        let block_mode = matches!(mode, Mode::Ecb | Mode::Cbc(_));
        let mut variants = alloc::vec![(Padding::None, aligned)];
        if block_mode {
            variants.push((Padding::Pkcs7, &data[..]));
            variants.push((Padding::Pkcs7, aligned));
        } else {
            variants.push((Padding::None, &data[..]));
        }
        for (padding, msg) in variants {
            let one = crypt(&h(K), mode, Direction::Encrypt, padding, msg).unwrap();
            let many = streamed(mode, Direction::Encrypt, padding, msg).unwrap();
            assert_eq!(one.to_vec(), many);
            let back = streamed(mode, Direction::Decrypt, padding, &many).unwrap();
            assert_eq!(back, msg);
            let back = crypt(&h(K), mode, Direction::Decrypt, padding, &one).unwrap();
            assert_eq!(back.to_vec(), msg);
        }
    }
}

#[test]
fn padding_and_length_errors() {
    let k = h(K);
    // Partial block without padding.
    assert_eq!(
        crypt(&k, Mode::Cbc(iv()), Direction::Encrypt, Padding::None, &[0; 17]).err(),
        Some(AlgError::InvalidInput)
    );
    assert_eq!(crypt(&k, Mode::Ecb, Direction::Decrypt, Padding::None, &[0; 15]).err(), Some(AlgError::InvalidInput));
    // Padding where the mode has none, bad key length.
    assert_eq!(
        Sm4Ctx::new(&k, Mode::Ctr(iv()), Direction::Encrypt, Padding::Pkcs7).err(),
        Some(AlgError::InvalidInput)
    );
    assert_eq!(Sm4Ctx::new(&k[..15], Mode::Ecb, Direction::Encrypt, Padding::None).err(), Some(AlgError::InvalidKey));
    // Bad PKCS#7 on decryption: a block decrypting to garbage, and a truncated ciphertext.
    let ct = crypt(&k, Mode::Cbc(iv()), Direction::Encrypt, Padding::Pkcs7, b"twelve bytes").unwrap();
    // A different IV changes every decrypted byte, the padding included.
    let wrong_iv = Mode::Cbc([0x55; 16]);
    assert_eq!(crypt(&k, wrong_iv, Direction::Decrypt, Padding::Pkcs7, &ct).err(), Some(AlgError::DecryptFailed));
    assert_eq!(crypt(&k, Mode::Ecb, Direction::Decrypt, Padding::Pkcs7, &[]).err(), Some(AlgError::DecryptFailed));
    // Padding check itself.
    let mut block = [3u8; 16];
    assert_eq!(pkcs7_unpad(&block), Ok(13));
    block[14] = 2;
    assert_eq!(pkcs7_unpad(&block), Err(AlgError::DecryptFailed));
    assert_eq!(pkcs7_unpad(&[0u8; 16]), Err(AlgError::DecryptFailed));
    assert_eq!(pkcs7_unpad(&[17u8; 16]), Err(AlgError::DecryptFailed));
    assert_eq!(pkcs7_unpad(&[16u8; 16]), Ok(0));
}

// RFC 8998 Appendix A.1: SM4-GCM.
#[test]
fn rfc8998_gcm() {
    let nonce = h("00001234567800000000ABCD");
    let aad = h("FEEDFACEDEADBEEFFEEDFACEDEADBEEFABADDAD2");
    let want = h("17F399F08C67D5EE19D0DC9969C4BB7D5FD46FD3756489069157B282BB200735\
                  D82710CA5C22F0CCFA7CBF93D496AC15A56834CBCF98C397B4024A2691233B8D\
                  83DE3541E4C2B58177E065A9BF7B62EC");
    let sealed = gcm_encrypt(&h(K), &nonce, &aad, &h(P)).unwrap();
    assert_eq!(sealed, want);
    // In pieces, through the context.
    let mut ctx = Sm4GcmCtx::new(&h(K), &nonce, &aad, Direction::Decrypt).unwrap();
    for piece in want.chunks(7) {
        assert!(ctx.update(piece).unwrap().is_empty());
    }
    assert_eq!(ctx.finalize().unwrap().to_vec(), h(P));
    for i in [0, 63, 64, 79] {
        let mut bad = want.clone();
        bad[i] ^= 1;
        assert_eq!(gcm_decrypt(&h(K), &nonce, &aad, &bad).err(), Some(AlgError::DecryptFailed));
    }
    assert_eq!(gcm_decrypt(&h(K), &nonce, b"other aad", &want).err(), Some(AlgError::DecryptFailed));
    assert_eq!(gcm_decrypt(&h(K), &nonce, &aad, &want[..15]).err(), Some(AlgError::DecryptFailed));
    assert_eq!(Sm4GcmCtx::new(&h(K), &[0; 16], &aad, Direction::Encrypt).err(), Some(AlgError::InvalidInput));
}

// CMAC tags computed with `openssl mac -cipher SM4-CBC -macopt hexkey:… CMAC` (OpenSSL 3.0),
// re-checked live by tests/openssl_interop.rs.
#[test]
fn cmac_vectors_and_streaming() {
    for (msg, want) in [
        (&h(P)[..], "BD2F7AA62126532F8AFF6A1845D406D2"),
        (&h(P)[..37], "08FC098536CB83BF15473B7406CF1801"),
        (&[][..], "29E154322E5C7BD8EE6A25BA549B24BC"),
    ] {
        let mut ctx = Sm4CmacCtx::new(&h(K)).unwrap();
        for piece in msg.chunks(5) {
            ctx.update(piece);
        }
        assert_eq!(ctx.clone().finalize().to_vec(), h(want));
        assert!(ctx.clone().verify(&h(want)).is_ok());
        assert!(ctx.clone().verify(&h(want)[..8]).is_ok());
        assert_eq!(ctx.verify(&[0; 16]), Err(AlgError::VerifyFailed));
    }
}

#[test]
fn cbc_mac_is_last_cbc_block() {
    let data = h(P);
    let ct = crypt(&h(K), Mode::Cbc([0; 16]), Direction::Encrypt, Padding::None, &data).unwrap();
    let mut mac = Sm4CbcMacCtx::new(&h(K)).unwrap();
    mac.update(&data[..5]);
    mac.update(&data[5..]);
    assert_eq!(mac.finalize().unwrap()[..], ct[ct.len() - 16..]);
    let mut mac = Sm4CbcMacCtx::new(&h(K)).unwrap();
    mac.update(&data);
    assert!(mac.verify(&ct[ct.len() - 16..]).is_ok());
    // An IV is the zero-IV MAC of the message with the IV folded into its first block.
    let with_iv = crypt(&h(K), Mode::Cbc(iv()), Direction::Encrypt, Padding::None, &data).unwrap();
    let mut folded = data.clone();
    folded.iter_mut().zip(iv()).for_each(|(b, v)| *b ^= v);
    let mut mac = Sm4CbcMacCtx::new(&h(K)).unwrap();
    mac.update(&folded);
    assert_eq!(mac.finalize().unwrap()[..], with_iv[with_iv.len() - 16..]);
    let mut partial = Sm4CbcMacCtx::new(&h(K)).unwrap();
    partial.update(&data[..20]);
    assert_eq!(partial.finalize().err(), Some(AlgError::InvalidInput));
    let empty = Sm4CbcMacCtx::new(&h(K)).unwrap();
    assert_eq!(empty.finalize().err(), Some(AlgError::InvalidInput));
}

/// With the IV in the data, encryption writes the IV first and decryption reads it from
/// there, fed whole or a byte at a time; the result is that of the mode with the IV given.
#[test]
fn iv_in_data_round_trips() {
    let msg = &h(P)[..37];
    for (mode, padding) in [
        (Mode::Cbc(iv()), Padding::Pkcs7),
        (Mode::Cfb(iv()), Padding::None),
        (Mode::Ofb(iv()), Padding::None),
        (Mode::Ctr(iv()), Padding::None),
    ] {
        let given = crypt(&h(K), mode, Direction::Encrypt, padding, msg).unwrap();
        let placed = crypt_placed(&h(K), mode, Direction::Encrypt, padding, IvPlace::InData, msg).unwrap();
        assert_eq!(&placed[..16], &iv()[..]);
        assert_eq!(&placed[16..], &given[..]);
        let other = mode.with_iv([0xee; 16]);
        let back = crypt_placed(&h(K), other, Direction::Decrypt, padding, IvPlace::InData, &placed).unwrap();
        assert_eq!(&back[..], msg);
        let mut ctx = Sm4Ctx::placed(&h(K), other, Direction::Decrypt, padding, IvPlace::InData).unwrap();
        let mut out = Vec::new();
        for b in placed.iter() {
            out.extend_from_slice(&ctx.update(&[*b]));
        }
        out.extend_from_slice(&ctx.finalize().unwrap());
        assert_eq!(&out[..], msg);
        let short = crypt_placed(&h(K), other, Direction::Decrypt, padding, IvPlace::InData, &placed[..15]);
        assert_eq!(short.err(), Some(AlgError::InvalidInput));
    }
    let ecb = Sm4Ctx::placed(&h(K), Mode::Ecb, Direction::Encrypt, Padding::None, IvPlace::InData);
    assert_eq!(ecb.err(), Some(AlgError::InvalidInput));

    let nonce = [7u8; GCM_NONCE_LEN];
    let mut enc = Sm4GcmCtx::placed(&h(K), &nonce, b"aad", Direction::Encrypt, IvPlace::InData).unwrap();
    enc.update(msg).unwrap();
    let sealed = enc.finalize().unwrap();
    assert_eq!(&sealed[..12], &nonce);
    assert_eq!(&sealed[12..], &gcm_encrypt(&h(K), &nonce, b"aad", msg).unwrap()[..]);
    let mut dec = Sm4GcmCtx::placed(&h(K), &[0; 12], b"aad", Direction::Decrypt, IvPlace::InData).unwrap();
    dec.update(&sealed).unwrap();
    assert_eq!(&dec.finalize().unwrap()[..], msg);
    let mut dec = Sm4GcmCtx::placed(&h(K), &[0; 12], b"aad", Direction::Decrypt, IvPlace::InData).unwrap();
    dec.update(&sealed[..11]).unwrap();
    assert_eq!(dec.finalize().err(), Some(AlgError::DecryptFailed));
}
