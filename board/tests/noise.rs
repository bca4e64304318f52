//! The hardware RNG backend against the real /dev/hwrng, its raw samples into the card's own
//! health tests and entropy start-up (gmhsm-firmware).

mod common;

use std::path::Path;

use gmhsm_board::noise::HwRng;
use gmhsm_firmware::entropy::{EntropySource, HealthTests};
use gmhsm_platform::NoiseSource;

const DEV: &str = "/dev/hwrng";

fn open() -> Option<HwRng> {
    if !Path::new(DEV).exists() {
        eprintln!("NOT TESTED: no /dev/hwrng");
        assert!(
            std::env::var_os("GMHSM_REQUIRE_HWRNG").is_none(),
            "GMHSM_REQUIRE_HWRNG is set but there is no /dev/hwrng"
        );
        return None;
    }
    let current = std::fs::read_to_string("/sys/class/misc/hw_random/rng_current").unwrap_or_default();
    eprintln!("/dev/hwrng: {}", current.trim());
    Some(HwRng::open(Path::new(DEV), 4).expect("open /dev/hwrng (as root)"))
}

#[test]
fn raw_samples_pass_the_cards_health_tests() {
    let Some(mut rng) = open() else { return };
    assert_eq!(rng.min_entropy_bits(), 4);
    let mut samples = vec![0u8; 64 * 1024];
    rng.fill_raw(&mut samples).unwrap();
    let mut counts = [0u32; 256];
    for &s in &samples {
        counts[usize::from(s)] += 1;
    }
    assert!(counts.iter().all(|&c| c > 0), "every byte value appears in 64 KiB");
    assert!(counts.iter().all(|&c| c < 512), "no value dominates: {:?}", counts.iter().max());
    let mut tests = HealthTests::new(rng.min_entropy_bits());
    tests.feed(&samples).expect("health tests on raw /dev/hwrng samples");
    // Two reads differ (the device is not replaying a buffer).
    let (mut a, mut b) = ([0u8; 64], [0u8; 64]);
    rng.fill_raw(&mut a).unwrap();
    rng.fill_raw(&mut b).unwrap();
    assert_ne!(a, b);
}

#[test]
fn the_cards_entropy_start_up_runs_on_it() {
    let Some(rng) = open() else { return };
    let mut source = EntropySource::new(rng);
    source.startup().expect("entropy start-up on /dev/hwrng");
    let mut seed = [0u8; 48];
    source.seed(&mut seed).expect("seed from /dev/hwrng");
    assert_ne!(seed, [0u8; 48]);
}

#[test]
fn a_missing_device_is_a_clear_error() {
    let e = HwRng::open(Path::new("/dev/hwrng-gmhsm-absent"), 4).err().expect("no such device");
    assert!(e.to_string().starts_with("noise source /dev/hwrng-gmhsm-absent: "), "{e}");
    // A device that gives no samples is refused at open, not at the card's first request.
    let e = HwRng::open(Path::new("/dev/null"), 4).err().expect("/dev/null gives nothing");
    assert!(e.to_string().contains("delivers no samples"), "{e}");
}
