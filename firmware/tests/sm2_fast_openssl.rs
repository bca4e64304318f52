//! Cross-checks `alg::sm2_fast` against the OpenSSL 3 command line: signatures from
//! `FastSigner` (fresh and pooled nonces) verify in `openssl pkeyutl`, and OpenSSL's
//! signatures verify in `sm2_fast::verify`. `openssl` must be on PATH: without it these tests
//! fail (never skip).

use std::process::Command;
use std::sync::Arc;

use ::sm2::pkcs8::{EncodePrivateKey, EncodePublicKey};
use ::sm3::Digest as _;
use gmhsm_firmware::alg::sm2;
use gmhsm_firmware::alg::sm2_fast::{self, BaseTable, FastSigner, FastVerifier, NoncePool};
use rand_core::{TryCryptoRng, TryRng};

/// Counter-mode SM3 test RNG from a fixed seed (deterministic runs).
struct TestRng(u64, [u8; 32]);

impl TryRng for TestRng {
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
        for chunk in dst.chunks_mut(32) {
            let mut h = ::sm3::Sm3::new();
            h.update(self.1);
            h.update(self.0.to_be_bytes());
            self.0 += 1;
            chunk.copy_from_slice(&h.finalize()[..chunk.len()]);
        }
        Ok(())
    }
}
impl TryCryptoRng for TestRng {}

fn openssl(args: &[&str]) -> Vec<u8> {
    let out = match Command::new("openssl").args(args).output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "`openssl` is not on PATH: this interop test needs the OpenSSL 3 command line (apt-get install openssl)"
        ),
        Err(e) => panic!("cannot run openssl: {e}"),
    };
    assert!(out.status.success(), "openssl {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    out.stdout
}

fn pem(label: &str, der: &[u8]) -> Vec<u8> {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::new();
    for c in der.chunks(3) {
        let n = (c[0] as u32) << 16 | (*c.get(1).unwrap_or(&0) as u32) << 8 | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            b64.push(if i <= c.len() { T[(n >> (18 - 6 * i) & 63) as usize] as char } else { '=' });
        }
    }
    let mut s = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        s.push_str(std::str::from_utf8(line).unwrap());
        s.push('\n');
    }
    s.push_str(&format!("-----END {label}-----\n"));
    s.into_bytes()
}

#[test]
fn fast_signatures_both_ways_with_openssl() {
    let dir = std::env::temp_dir().join(format!("gmhsm-sm2fast-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = |name: &str| -> String { dir.join(name).to_string_lossy().into_owned() };
    let write = |name: &str, data: &[u8]| -> String {
        std::fs::write(dir.join(name), data).unwrap();
        path(name)
    };
    let distid = "distid:1234567812345678";
    let table = Arc::new(BaseTable::new());
    let mut pool = NoncePool::new(table.clone(), 8);
    let mut rng = TestRng(0, ::sm3::Sm3::digest(b"sm2_fast openssl").into());
    pool.refill(&mut rng, 8).unwrap();

    for round in 0..3 {
        let sk = sm2::generate(&mut rng).unwrap();
        let pk = sk.public_key();
        let signer = FastSigner::new(&sk, table.clone()).unwrap();
        let key = write("key.pem", &pem("PRIVATE KEY", sk.to_pkcs8_der().unwrap().as_bytes()));
        let public = write("pub.pem", &pem("PUBLIC KEY", pk.to_public_key_der().unwrap().as_bytes()));
        let text = format!("round {round}: message signed by sm2_fast");
        let msg = write("msg", text.as_bytes());

        // Ours → OpenSSL, fresh and pooled nonces.
        let fresh = signer.sign(&mut rng, sm2::DEFAULT_ID, text.as_bytes()).unwrap();
        let pooled = signer.sign_pooled(&mut pool, &mut rng, sm2::DEFAULT_ID, text.as_bytes()).unwrap();
        for sig in [fresh, pooled] {
            let sigfile = write("sig.der", &sig.to_der().to_vec());
            let out = openssl(&[
                "pkeyutl", "-verify", "-pubin", "-inkey", &public, "-rawin", "-digest", "sm3", "-pkeyopt", distid,
                "-in", &msg, "-sigfile", &sigfile,
            ]);
            assert!(String::from_utf8_lossy(&out).contains("Signature Verified Successfully"));
        }

        // OpenSSL → ours (fast verifier and the crate path).
        let theirs = path("theirs.der");
        openssl(&[
            "pkeyutl", "-sign", "-inkey", &key, "-rawin", "-digest", "sm3", "-pkeyopt", distid, "-in", &msg, "-out",
            &theirs,
        ]);
        let sig = sm2::signature_from_bytes(&std::fs::read(&theirs).unwrap()).unwrap();
        sm2_fast::verify(&table, &pk, sm2::DEFAULT_ID, text.as_bytes(), &sig).unwrap();
        let verifier = FastVerifier::new(&pk, table.clone()).unwrap();
        verifier.verify(sm2::DEFAULT_ID, text.as_bytes(), &sig).unwrap();
        assert!(verifier.verify(sm2::DEFAULT_ID, b"other message", &sig).is_err());
        sm2::verify(&pk, sm2::DEFAULT_ID, text.as_bytes(), &sig).unwrap();
        assert!(sm2_fast::verify(&table, &pk, b"another id", text.as_bytes(), &sig).is_err());
    }
    let _ = std::fs::remove_dir_all(&dir);
}
