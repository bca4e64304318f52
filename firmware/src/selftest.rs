//! Known-answer tests of every algorithm the card runs, and of the DRBG, at power-up and on
//! request. A failure puts the card in its error state (the caller's job).
//!
//! Vectors: SM3 and SM4 from GB/T 32905 / 32907 (SM3 also through the multi-buffer kernel);
//! SM2 signature verification and decryption from GB/T 32918.5 (key 3945208F…; decryption
//! also as a batch, through the eight-lane kernel); SM4-GCM from RFC 8998 A.1; HMAC-SM3 checked against
//! OpenSSL 3; ECDSA P-256 from RFC 6979 A.2.5; RSA-2048 PKCS#1 v1.5 with SHA-256 over "abc"
//! with a fixed test key, signature made by OpenSSL 3 (deterministic, so compared byte for
//! byte); Hash_DRBG from NIST CAVP (SHA-256, the same code the card runs with SM3).

use alloc::vec::Vec;
use rsa::pkcs8::DecodePrivateKey;

use crate::alg::{self, sm2_pke::Layout};
use crate::drbg::HashDrbg;

/// Hex to bytes for the constant vectors below (spaces ignored).
fn h(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s
        .bytes()
        .filter(|b| b.is_ascii_hexdigit())
        .map(|b| match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            _ => b - b'A' + 10,
        })
        .collect();
    digits.chunks(2).map(|p| p[0] << 4 | p.get(1).copied().unwrap_or(0)).collect()
}

const SM2_D: &str = "3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8";
const RSA_KEY: &[u8] = include_bytes!("selftest/rsa2048_kat.pk8.der");
const RSA_SIG_ABC: &[u8] = include_bytes!("selftest/rsa2048_kat_abc.sig");

fn check(ok: bool, what: &'static str) -> Result<(), &'static str> {
    if ok { Ok(()) } else { Err(what) }
}

fn sm3_sm4() -> Result<(), &'static str> {
    let abc = h("66c7f0f4 62eeedd9 d1f2d46b dc10e4e2 4167c487 5cf2f7a2 297da02b 8f4ba8e0");
    check(alg::sm3::sm3(b"abc").to_vec() == abc, "self-test: SM3 known answer failed")?;
    // The multi-buffer SM3 (the DRBG's hashgen, batch digests) on this CPU's backend: "abc"
    // split between prefix and message, in several lanes at once.
    let mut many = [[0u8; 32]; gmhsm_sm3x::MIN_MULTI + 1];
    gmhsm_sm3x::digest_many(b"a", &[&b"bc"[..]; gmhsm_sm3x::MIN_MULTI + 1], &mut many);
    check(many.iter().all(|d| d[..] == abc[..]), "self-test: multi-buffer SM3 known answer failed")?;
    let hmac = alg::sm3::hmac_sm3(
        &h("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"),
        b"The quick brown fox jumps over the lazy dog",
    )
    .map_err(|_| "self-test: HMAC-SM3 failed")?;
    check(hmac.to_vec() == h(HMAC_SM3_FOX), "self-test: HMAC-SM3 known answer failed")?;
    let k = h("0123456789abcdeffedcba9876543210");
    let ecb = alg::sm4::crypt(&k, alg::sm4::Mode::Ecb, alg::sm4::Direction::Encrypt, alg::sm4::Padding::None, &k)
        .map_err(|_| "self-test: SM4 failed")?;
    check(ecb.to_vec() == h("681edf34d206965e86b3e94f536e4246"), "self-test: SM4 known answer failed")?;
    let p = h("aaaaaaaaaaaaaaaabbbbbbbbbbbbbbbbccccccccccccccccdddddddddddddddd\
               eeeeeeeeeeeeeeeeffffffffffffffffeeeeeeeeeeeeeeeeaaaaaaaaaaaaaaaa");
    let gcm =
        alg::sm4::gcm_encrypt(&k, &h("00001234567800000000ABCD"), &h("FEEDFACEDEADBEEFFEEDFACEDEADBEEFABADDAD2"), &p)
            .map_err(|_| "self-test: SM4-GCM failed")?;
    check(
        gcm == h("17F399F08C67D5EE19D0DC9969C4BB7D5FD46FD3756489069157B282BB200735\
                  D82710CA5C22F0CCFA7CBF93D496AC15A56834CBCF98C397B4024A2691233B8D\
                  83DE3541E4C2B58177E065A9BF7B62EC"),
        "self-test: SM4-GCM known answer failed",
    )
}

/// HMAC-SM3(key 00..1f, "The quick brown fox jumps over the lazy dog"), from OpenSSL 3.
const HMAC_SM3_FOX: &str = "be1c9ca286f325f95cf8d9020e4242747d60faa7069d1e9758a28597c712eb46";

fn sm2() -> Result<(), &'static str> {
    let fail = "self-test: SM2 known answer failed";
    let sk = alg::sm2::secret_from_bytes(&h(SM2_D)).map_err(|_| fail)?;
    let pk = sk.public_key();
    let sig = alg::sm2::signature_from_bytes(
        &[
            h("F5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3"),
            h("B1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA"),
        ]
        .concat(),
    )
    .map_err(|_| fail)?;
    alg::sm2::verify(&pk, alg::sm2::DEFAULT_ID, b"message digest", &sig).map_err(|_| fail)?;
    check(alg::sm2::verify(&pk, alg::sm2::DEFAULT_ID, b"message digesT", &sig).is_err(), fail)?;
    let ct = [
        h("04"),
        h("04EBFC718E8D1798620432268E77FEB6415E2EDE0E073C0F4F640ECD2E149A73"),
        h("E858F9D81E5430A57B36DAAB8F950A3C64E6EE6A63094D99283AFF767E124DF0"),
        h("59983C18F809E262923C53AEC295D30383B54E39D609D160AFCB1908D0BD8766"),
        h("21886CA989CA9C7D58087307CA93092D651EFA"),
    ]
    .concat();
    let pt = alg::sm2_pke::decrypt(&sk, &ct, Layout::C1C3C2).map_err(|_| fail)?;
    check(&pt[..] == b"encryption standard", fail)?;
    // The batch path (eight lanes of AVX-512 IFMA where the CPU has them).
    let many = alg::sm2_fast::pke::decrypt_many(&sk, &[&ct[..], &ct[..], &ct[..]], Layout::C1C3C2);
    check(many.iter().all(|p| p.as_ref().is_ok_and(|p| &p[..] == b"encryption standard")), fail)
}

fn rsa_ecdsa() -> Result<(), &'static str> {
    let fail = "self-test: RSA known answer failed";
    let key = alg::rsa::RsaKey::new(rsa::PrivateKey::from_pkcs8_der(RSA_KEY).map_err(|_| fail)?);
    // PKCS#1 v1.5 is deterministic; the RNG only feeds blinding.
    let sig = alg::rsa::sign_pkcs1v15_sha256(&mut KatRng(0), &key, b"abc").map_err(|_| fail)?;
    check(sig == RSA_SIG_ABC, fail)?;
    alg::rsa::verify_pkcs1v15_sha256(&key.to_public_key(), b"abc", RSA_SIG_ABC).map_err(|_| fail)?;
    let fail = "self-test: ECDSA P-256 known answer failed";
    let pk = alg::ecdsa::public_from_sec1(
        &[
            h("04"),
            h("60FED4BA255A9D31C961EB74C6356D68C049B8923B61FA6CE669622E60F29FB6"),
            h("7903FE1008B8BC99A41AE9E95628BC64F2F1B20C2D7E9F5177A3C294D4462299"),
        ]
        .concat(),
    )
    .map_err(|_| fail)?;
    let sig = [
        h("EFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716"),
        h("F7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8"),
    ]
    .concat();
    alg::ecdsa::verify(&pk, b"sample", &sig).map_err(|_| fail)
}

fn drbg() -> Result<(), &'static str> {
    let mut d = HashDrbg::<sha2::Sha256>::new(
        &h("b87bb4de5c148d964fc0cb612d69295671780b4270fe32bf389b6f49488efe13"),
        &h("27eb37a0c695c4ee3c9b70b7f6b33492"),
        &h("52321406ac8a9c266b1f8d811bb871269e5824b59a0234f01d358193523bbb7c"),
    );
    d.reseed(&h("7638267f534c4e6ee22cc6ca6ed824fd5d3d387c00b89dd791eb5ac9766385b8"), &[]);
    let mut got = [0u8; 128];
    let fail = "self-test: Hash_DRBG known answer failed";
    d.generate(&mut got, &[]).map_err(|_| fail)?;
    d.generate(&mut got, &[]).map_err(|_| fail)?;
    let want = h("de01c061651bab3cef2fc4ea89a56b6e86e74b2e9fd11ed671c97c813778a06a\
                  2c1f41b41e754a5257750c6bde9601da9d67d8d9564f4a8538b92516a2dacc496dee257b85393f2a01ad59aa3257f1b6\
                  da9566e3706d2d6d4a26e511b0c64d7dc223acb24827178afa43ca8d5a66f983d6929dc61564c4c14fc32d85765a23f7");
    check(got[..] == want[..], fail)
}

/// A fixed, deterministic stream (SM3 in counter mode) that only feeds RSA blinding in the
/// known-answer test; the signature does not depend on it.
struct KatRng(u32);

impl rand_core::TryRng for KatRng {
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
        for chunk in dst.chunks_mut(32) {
            self.0 += 1;
            let block = alg::sm3::sm3(&self.0.to_be_bytes());
            chunk.copy_from_slice(&block[..chunk.len()]);
        }
        Ok(())
    }
}

impl rand_core::TryCryptoRng for KatRng {}

/// Run every known-answer test; the first failure's description.
pub fn run() -> Result<(), &'static str> {
    sm3_sm4()?;
    sm2()?;
    rsa_ecdsa()?;
    drbg()
}

#[cfg(test)]
mod tests {
    /// The RSA answer is OpenSSL's signature, reproduced byte for byte.
    #[test]
    fn rsa_signature_equals_openssl() {
        use rsa::pkcs8::DecodePrivateKey;
        let key = crate::alg::rsa::RsaKey::new(rsa::PrivateKey::from_pkcs8_der(super::RSA_KEY).unwrap());
        assert!(key.is_fast());
        let sig = crate::alg::rsa::sign_pkcs1v15_sha256(&mut super::KatRng(0), &key, b"abc").unwrap();
        assert_eq!(sig, super::RSA_SIG_ABC);
        let other = crate::alg::rsa::sign_pkcs1v15_sha256(&mut super::KatRng(0), &key, b"abd").unwrap();
        assert_ne!(other, super::RSA_SIG_ABC);
    }

    #[test]
    fn known_answers_pass() {
        assert_eq!(super::run(), Ok(()));
    }
}
