//! Cross-checks the algorithm layer against the OpenSSL 3 command line: signatures and
//! ciphertexts made here are accepted by OpenSSL and the reverse; symmetric outputs are
//! byte-identical. `openssl` must be on PATH: without it these tests fail (never skip).

use std::path::PathBuf;

use gmhsm_firmware::alg::{ecdsa, rsa, sm2, sm2_pke, sm3, sm4};
#[path = "support/openssl.rs"]
mod support;
use rand_core::TryRng as _;
use support::{TestRng, openssl, pem};

/// A scratch directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("gmhsm-interop-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Scratch(dir)
    }
    fn file(&self, name: &str, contents: &[u8]) -> String {
        let p = self.0.join(name);
        std::fs::write(&p, contents).expect("write temp file");
        p.to_string_lossy().into_owned()
    }
    fn path(&self, name: &str) -> String {
        self.0.join(name).to_string_lossy().into_owned()
    }
    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.0.join(name)).expect("read temp file")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &[u8]) -> Vec<u8> {
    let s: String = String::from_utf8_lossy(s).trim().to_string();
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

#[test]
fn openssl_is_version_3() {
    let v = String::from_utf8(openssl(&["version"])).unwrap();
    assert!(v.starts_with("OpenSSL 3."), "need OpenSSL 3, found {v}");
}

#[test]
fn sm2_signatures_both_ways() {
    use ::sm2::pkcs8::{EncodePrivateKey, EncodePublicKey};
    let dir = Scratch::new("sm2sig");
    let mut rng = TestRng::new(b"interop sm2 sig");
    let sk = sm2::generate(&mut rng).unwrap();
    let pk = sk.public_key();
    let key = dir.file("key.pem", &pem("PRIVATE KEY", sk.to_pkcs8_der().unwrap().as_bytes()));
    let public = dir.file("pub.pem", &pem("PUBLIC KEY", pk.to_public_key_der().unwrap().as_bytes()));
    let msg = dir.file("msg", b"message digest for OpenSSL");
    let distid = "distid:1234567812345678";

    // Ours → OpenSSL.
    let sig = sm2::sign(&mut rng, &sk, sm2::DEFAULT_ID, b"message digest for OpenSSL").unwrap();
    let sigfile = dir.file("sig.der", &sig.to_der().to_vec());
    let out = openssl(&[
        "pkeyutl", "-verify", "-pubin", "-inkey", &public, "-rawin", "-digest", "sm3", "-pkeyopt", distid, "-in", &msg,
        "-sigfile", &sigfile,
    ]);
    assert!(String::from_utf8_lossy(&out).contains("Signature Verified Successfully"));

    // OpenSSL → ours.
    let theirs = dir.path("theirs.der");
    openssl(&[
        "pkeyutl", "-sign", "-inkey", &key, "-rawin", "-digest", "sm3", "-pkeyopt", distid, "-in", &msg, "-out",
        &theirs,
    ]);
    let sig = sm2::signature_from_bytes(&dir.read("theirs.der")).unwrap();
    sm2::verify(&pk, sm2::DEFAULT_ID, b"message digest for OpenSSL", &sig).unwrap();
    assert!(sm2::verify(&pk, b"another id", b"message digest for OpenSSL", &sig).is_err());
}

#[test]
fn sm2_der_encryption_both_ways() {
    use ::sm2::pkcs8::{EncodePrivateKey, EncodePublicKey};
    let dir = Scratch::new("sm2enc");
    let mut rng = TestRng::new(b"interop sm2 enc");
    let sk = sm2::generate(&mut rng).unwrap();
    let key = dir.file("key.pem", &pem("PRIVATE KEY", sk.to_pkcs8_der().unwrap().as_bytes()));
    let public = dir.file("pub.pem", &pem("PUBLIC KEY", sk.public_key().to_public_key_der().unwrap().as_bytes()));
    let msg = b"encryption standard, but longer than one KDF block of thirty-two bytes";

    let ct = sm2_pke::encrypt(&mut rng, &sk.public_key(), msg, sm2_pke::Layout::Der).unwrap();
    let ctfile = dir.file("ct.der", &ct);
    assert_eq!(openssl(&["pkeyutl", "-decrypt", "-inkey", &key, "-in", &ctfile]), msg);

    let msgfile = dir.file("msg", msg);
    let theirs = dir.path("theirs.der");
    openssl(&["pkeyutl", "-encrypt", "-pubin", "-inkey", &public, "-in", &msgfile, "-out", &theirs]);
    let pt = sm2_pke::decrypt(&sk, &dir.read("theirs.der"), sm2_pke::Layout::Der).unwrap();
    assert_eq!(&pt[..], msg);
}

#[test]
fn rsa_signatures_and_oaep_both_ways() {
    use ::rsa::pkcs8::{EncodePrivateKey, EncodePublicKey};
    let dir = Scratch::new("rsa");
    let mut rng = TestRng::new(b"interop rsa");
    let sk = rsa::generate(&mut rng, 2048).unwrap();
    let pk = sk.to_public_key();
    let key = dir.file("key.pem", &pem("PRIVATE KEY", sk.to_pkcs8_der().unwrap().as_bytes()));
    let public = dir.file("pub.pem", &pem("PUBLIC KEY", pk.to_public_key_der().unwrap().as_bytes()));
    let msg = b"RSA interop message";
    let msgfile = dir.file("msg", msg);

    // PKCS#1 v1.5: deterministic, so OpenSSL's signature is byte-identical to ours.
    let ours = rsa::sign_pkcs1v15_sha256(&mut rng, &sk, msg).unwrap();
    let sigfile = dir.file("sig", &ours);
    openssl(&["dgst", "-sha256", "-verify", &public, "-signature", &sigfile, &msgfile]);
    let theirs = openssl(&["dgst", "-sha256", "-sign", &key, &msgfile]);
    assert_eq!(theirs, ours);
    rsa::verify_pkcs1v15_sha256(&pk, msg, &theirs).unwrap();

    // PSS with SHA-256, salt = digest length.
    let pss = ["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:32", "-sigopt", "rsa_mgf1_md:sha256"];
    let ours = rsa::sign_pss(&mut rng, &sk, rsa::PssHash::Sha256, msg).unwrap();
    let sigfile = dir.file("pss", &ours);
    let mut args = vec!["dgst", "-sha256"];
    args.extend(pss);
    args.extend(["-verify", &public, "-signature", &sigfile, &msgfile]);
    openssl(&args);
    let mut args = vec!["dgst", "-sha256"];
    args.extend(pss);
    args.extend(["-sign", &key, &msgfile]);
    let theirs = openssl(&args);
    rsa::verify_pss(&pk, rsa::PssHash::Sha256, msg, &theirs).unwrap();

    // OAEP with SHA-256 and MGF1-SHA-256.
    let oaep =
        ["-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:sha256", "-pkeyopt", "rsa_mgf1_md:sha256"];
    let ct = rsa::encrypt_oaep_sha256(&mut rng, &pk, msg).unwrap();
    let ctfile = dir.file("ct", &ct);
    let mut args = vec!["pkeyutl", "-decrypt", "-inkey", &key, "-in", &ctfile];
    args.extend(oaep);
    assert_eq!(openssl(&args), msg);
    let mut args = vec!["pkeyutl", "-encrypt", "-pubin", "-inkey", &public, "-in", &msgfile];
    args.extend(oaep);
    let theirs = openssl(&args);
    assert_eq!(&rsa::decrypt_oaep_sha256(&mut rng, &sk, &theirs).unwrap()[..], msg);

    // Raw operations = `openssl pkeyutl -decrypt` / `-encrypt` with rsa_padding_mode:none.
    let mut em = vec![0u8; 256];
    em[1..].iter_mut().enumerate().for_each(|(i, b)| *b = (i * 7) as u8);
    let emfile = dir.file("em", &em);
    let raw = ["-pkeyopt", "rsa_padding_mode:none"];
    let mut args = vec!["pkeyutl", "-decrypt", "-inkey", &key, "-in", &emfile];
    args.extend(raw);
    let theirs = openssl(&args);
    assert_eq!(&rsa::private_op(&mut rng, &sk, &em).unwrap()[..], &theirs[..]);
    let mut args = vec!["pkeyutl", "-encrypt", "-pubin", "-inkey", &public, "-in", &emfile];
    args.extend(raw);
    assert_eq!(openssl(&args), rsa::public_op(&pk, &em).unwrap());
    assert_eq!(rsa::public_op(&pk, &theirs).unwrap(), em);
}

#[test]
fn ecdsa_p256_both_ways() {
    use ::p256::pkcs8::{EncodePrivateKey, EncodePublicKey};
    let dir = Scratch::new("p256");
    let mut rng = TestRng::new(b"interop p256");
    let sk = ecdsa::generate(&mut rng).unwrap();
    let pk = sk.public_key();
    let key = dir.file("key.pem", &pem("PRIVATE KEY", sk.to_pkcs8_der().unwrap().as_bytes()));
    let public = dir.file("pub.pem", &pem("PUBLIC KEY", pk.to_public_key_der().unwrap().as_bytes()));
    let msg = b"ECDSA interop message";
    let msgfile = dir.file("msg", msg);
    let sig = dir.file("sig", &ecdsa::sign(&mut rng, &sk, msg).unwrap());
    openssl(&["dgst", "-sha256", "-verify", &public, "-signature", &sig, &msgfile]);
    let theirs = openssl(&["dgst", "-sha256", "-sign", &key, &msgfile]);
    ecdsa::verify(&pk, msg, &theirs).unwrap();
}

#[test]
fn sm4_modes_cmac_and_hmac_sm3_are_byte_identical() {
    let dir = Scratch::new("sym");
    let mut rng = TestRng::new(b"interop sym");
    let mut key = [0u8; 16];
    let mut iv = [0u8; 16];
    let mut data = vec![0u8; 100];
    rng.try_fill_bytes(&mut key).unwrap();
    rng.try_fill_bytes(&mut iv).unwrap();
    rng.try_fill_bytes(&mut data).unwrap();
    let (k, i) = (hex(&key), hex(&iv));
    let file = dir.file("data", &data);
    let aligned = dir.file("aligned", &data[..96]);
    use sm4::{Direction::Encrypt, Mode, Padding};
    let cases: [(&str, Mode, Padding, &str, &[u8]); 6] = [
        ("-sm4-cbc", Mode::Cbc(iv), Padding::Pkcs7, &file, &data),
        ("-sm4-ecb", Mode::Ecb, Padding::Pkcs7, &file, &data),
        ("-sm4-ctr", Mode::Ctr(iv), Padding::None, &file, &data),
        ("-sm4-cfb", Mode::Cfb(iv), Padding::None, &file, &data),
        ("-sm4-ofb", Mode::Ofb(iv), Padding::None, &file, &data),
        ("-sm4-cbc", Mode::Cbc(iv), Padding::None, &aligned, &data[..96]),
    ];
    for (name, mode, padding, input, plain) in cases {
        let mut args = vec!["enc", name, "-K", &k, "-in", input];
        if !matches!(mode, Mode::Ecb) {
            args.extend(["-iv", &i]);
        }
        if padding == Padding::None {
            args.push("-nopad");
        }
        let theirs = openssl(&args);
        let ours = sm4::crypt(&key, mode, Encrypt, padding, plain).unwrap();
        assert_eq!(theirs, ours.to_vec(), "{name} {padding:?}");
    }

    let theirs = openssl(&["mac", "-cipher", "SM4-CBC", "-macopt", &format!("hexkey:{k}"), "-in", &file, "CMAC"]);
    let mut cmac = sm4::Sm4CmacCtx::new(&key).unwrap();
    cmac.update(&data);
    assert_eq!(unhex(&theirs), cmac.finalize());

    let hkey = &data[..40];
    let theirs = openssl(&["mac", "-digest", "SM3", "-macopt", &format!("hexkey:{}", hex(hkey)), "-in", &file, "HMAC"]);
    assert_eq!(unhex(&theirs), sm3::hmac_sm3(hkey, &data).unwrap());
    // The unit test's fixed HMAC-SM3 vector, re-derived by OpenSSL.
    let key32: Vec<u8> = (0u8..32).collect();
    let fox = dir.file("fox", b"The quick brown fox jumps over the lazy dog");
    let theirs =
        openssl(&["mac", "-digest", "SM3", "-macopt", &format!("hexkey:{}", hex(&key32)), "-in", &fox, "HMAC"]);
    assert_eq!(hex(&unhex(&theirs)), "be1c9ca286f325f95cf8d9020e4242747d60faa7069d1e9758a28597c712eb46");
    let digest = openssl(&["dgst", "-sm3", "-r", &file]);
    assert_eq!(unhex(&digest[..64]), sm3::sm3(&data));
}
