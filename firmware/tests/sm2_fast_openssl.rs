//! Cross-checks `alg::sm2_fast` against the OpenSSL 3 command line: signatures from
//! `FastSigner` (fresh and pooled nonces) verify in `openssl pkeyutl`, and OpenSSL's
//! signatures verify in `sm2_fast::verify`. `openssl` must be on PATH: without it these tests
//! fail (never skip).

use std::sync::Arc;

use ::sm2::pkcs8::{EncodePrivateKey, EncodePublicKey};
use ::sm3::Digest as _;
use gmhsm_firmware::alg::sm2;
use gmhsm_firmware::alg::sm2_fast::{self, BaseTable, FastSigner, FastVerifier, NoncePool};
#[path = "support/openssl.rs"]
mod support;
use support::{TestRng, openssl, pem};

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
