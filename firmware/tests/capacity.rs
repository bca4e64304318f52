//! Capacity and cost of the key store on the simulator's default flash (2048 pages of
//! 4 KiB): 1024 SM2 key pairs, 4096 SM4 KEKs and 1024 RSA-2048 key records fit, the card
//! keeps working, and the flash work per key generation does not grow with the number of
//! keys.
//!
//! SM2 and SM4 keys are generated through `Hsm::execute`. RSA-2048 generation costs about a
//! second per key in a debug build, so the 1024 RSA records are byte-for-byte copies of one
//! real generated record stored under new labels: they take the space real ones take (which
//! is what this test measures), though they do not unwrap (the AEAD binds the label). They are
//! written as the card writes them (tagged and pinned with keys derived from the DMK, which
//! the test reads from its tamper RAM): the card accepts no record it did not write.

mod common;

use common::*;
use gmhsm_firmware::Hsm;
use gmhsm_platform::*;
use gmhsm_proto::*;

fn default_flash() -> RamFlash {
    // The simulator's default geometry (sim DEFAULT_GEOMETRY).
    let g = FlashGeometry { page_size: 4096, page_count: 2048, word_size: 4 };
    RamFlash::new(g, 1)
}

fn boot_counting(flash: RamFlash, t: &TestTamper, seed: u64) -> Hsm<TestBoard> {
    Hsm::boot(Devices { noise: TestNoise { x: seed, stuck: false }, flash, tamper: t.clone(), clock: TestClock })
}

fn generate(hsm: &mut Hsm<TestBoard>, name: &str, alg: KeyAlg) {
    let r = hsm.execute(
        &app(1),
        1,
        Request::GenerateKey { label: label(name), alg, caps: Capabilities::DEFAULT, domains: 0 },
    );
    assert!(matches!(r, Ok(Response::KeyGenerated { .. })), "{name}: {r:?}");
}

/// Average words written per SM4 key generation over `n` generations.
fn cost(hsm: &mut Hsm<TestBoard>, written: &FlashProbe, prefix: &str, n: usize) -> f64 {
    let before = written.counts().written_words;
    for i in 0..n {
        generate(hsm, &format!("{prefix}{i}"), KeyAlg::Sm4);
    }
    (written.counts().written_words - before) as f64 / n as f64
}

#[test]
fn default_flash_holds_the_required_key_counts_at_constant_cost() {
    let t = tamper();
    let flash = default_flash();
    let written = flash.probe();
    let mut hsm = boot_counting(flash, &t, 21);
    hsm.initialize().unwrap();
    // One application owns every key here: registered with a quota that allows them (the
    // default, `AppQuota::DEFAULT`, stops an application at 1024 keys).
    let quota = AppQuota { max_keys: 8192, max_bytes: u32::MAX };
    let register = Request::RegisterApplication {
        cert_sha256: [1; 32],
        name: "capacity".try_into().unwrap(),
        domains: 1,
        caps: Capabilities::ALL,
        quota: Some(quota),
    };
    assert_eq!(hsm.execute(&Principal::Local, 1, register), Ok(Response::Done));
    generate(&mut hsm, "rsa-template", KeyAlg::Rsa2048);
    let early = cost(&mut hsm, &written, "early-", 50);
    for i in 0..1024 {
        generate(&mut hsm, &format!("sm2-{i}"), KeyAlg::Sm2);
    }
    for i in 0..4096 - 50 {
        generate(&mut hsm, &format!("kek-{i}"), KeyAlg::Sm4);
    }

    // 1024 RSA-2048 records of real size, written straight to the store.
    let flash = hsm.into_flash().unwrap();
    let mut store = gmhsm_firmware::store::Store::open(flash).unwrap();
    let dmk: [u8; 32] = t.ram()[8..40].try_into().unwrap();
    let mut keys = gmhsm_firmware::integrity::Integrity::new(&dmk);
    let mut ram = t.clone();
    keys.verify(&store, &mut ram).unwrap();
    let template = keys.get(&store, b"k:rsa-template").unwrap().unwrap();
    assert!(template.len() > 1500, "an RSA-2048 record is about 1.6 KB ({} bytes)", template.len());
    for i in 0..1024 {
        keys.put(&mut store, &mut ram, format!("k:rsa-{i}").as_bytes(), Some(&template)).unwrap();
    }
    let free = store.free_bytes();
    let flash = store.into_flash();

    let mut hsm = boot_counting(flash, &t, 22);
    let st = hsm.status();
    assert_eq!(st.error, None);
    assert!(st.keys as usize >= 1024 + 4096 + 1024 + 2, "{} keys", st.keys);
    // Still working at full capacity: sign with an SM2 key, and the cost of a key
    // generation is what it was with a nearly empty store.
    let sig = hsm.execute(
        &app(1),
        1,
        Request::Sign { label: label("sm2-1000"), mechanism: Mechanism::sm2_default(), message: b"m".to_vec() },
    );
    assert!(matches!(sig, Ok(Response::Signature(_))));
    let late = cost(&mut hsm, &written, "late-", 50);
    println!(
        "flash words written per SM4 key generation: {early:.1} with few keys, {late:.1} with 6150; {free} bytes free"
    );
    assert!(late <= early * 1.5 + 8.0, "cost grew from {early:.1} to {late:.1} words");
}
