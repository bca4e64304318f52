//! The whole card board from a configuration: /dev/hwrng, a file flash, the key sealed to a
//! TPM (swtpm, started here); the firmware boots on it, keeps a key across a reboot, and
//! loses it when the TPM's copy of the master key is zeroized. Missing devices are refused
//! with the device named.

mod common;

use std::path::Path;

use gmhsm_board::config::{ApplianceConfig, FlashConfig, NoiseConfig, TamperConfig};
use gmhsm_board::tamper::TpmStore;
use gmhsm_board::{LinuxBoard, LinuxPanel};
use gmhsm_firmware::Hsm;
use gmhsm_proto::{Capabilities, KeyAlg, Label, Principal, Request};

use common::{have_hwrng, scratch, start_swtpm};

fn card_config(dir: &Path, tcti: &str) -> ApplianceConfig {
    ApplianceConfig {
        flash: FlashConfig::File {
            path: dir.join("flash.img"),
            page_size: 4096,
            page_count: 256,
            word_size: 4,
            create: true,
        },
        tamper: TamperConfig::Tpm {
            tcti: tcti.into(),
            ram_handle: 0x8101_0047,
            register_index: 0x0150_0047,
            switch: None,
        },
        ..ApplianceConfig::default()
    }
}

#[test]
fn the_firmware_boots_on_the_linux_board_and_keeps_its_keys() {
    if !have_hwrng() {
        return;
    }
    let dir = scratch("card");
    let Some(tpm) = start_swtpm(&dir.join("tpm")) else { return };
    let tcti = tpm.tcti.clone();
    let cfg = card_config(&dir, &tcti);

    let mut hsm = Hsm::boot(LinuxBoard::open(&cfg).unwrap().into_devices());
    let s = hsm.status();
    assert!(!s.initialized && s.error.is_none(), "{s:?}");
    hsm.initialize().unwrap();
    let initial = hsm.status().keys;
    let label = Label::try_from("board-test").unwrap();
    let generate = Request::GenerateKey { label, alg: KeyAlg::Sm2, caps: Capabilities::DEFAULT, domains: 0 };
    hsm.execute(&Principal::Local, 1, generate).expect("generate a key");
    let before = hsm.status();
    assert_eq!((before.keys, before.error.is_none()), (initial + 1, true), "{before:?}");
    drop(hsm);

    // Reboot: the master key unsealed from the TPM opens the flash's key records.
    let hsm = Hsm::boot(LinuxBoard::open(&cfg).unwrap().into_devices());
    let after = hsm.status();
    assert!(after.initialized && after.error.is_none(), "{after:?}");
    assert_eq!(after.keys, before.keys);
    assert!(after.boots > before.boots, "{} then {}", before.boots, after.boots);
    drop(hsm);

    // Zeroize the TPM's copy (what the tamper switch does): the card no longer runs as before.
    TpmStore::open(&tcti, 0x8101_0047, 0x0150_0047).unwrap().zeroize().unwrap();
    let hsm = Hsm::boot(LinuxBoard::open(&cfg).unwrap().into_devices());
    let zeroized = hsm.status();
    eprintln!("after zeroization: {zeroized:?}");
    let why = zeroized.error.as_deref().unwrap_or("");
    assert!(why.starts_with("device master key lost"), "{zeroized:?}");
    drop(hsm);
    drop(tpm);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn missing_devices_are_named() {
    let dir = scratch("missing");
    let base = card_config(&dir, "swtpm:host=127.0.0.1,port=1");
    let cfg =
        ApplianceConfig { noise: NoiseConfig { path: dir.join("no-hwrng"), min_entropy_bits: 4 }, ..base.clone() };
    let e = LinuxBoard::open(&cfg).err().expect("no noise source").to_string();
    assert!(e.starts_with(&format!("noise source {}", dir.join("no-hwrng").display())), "{e}");
    if Path::new("/dev/hwrng").exists() {
        let cfg = ApplianceConfig {
            flash: FlashConfig::File {
                path: dir.join("none/flash.img"),
                page_size: 4096,
                page_count: 8,
                word_size: 4,
                create: true,
            },
            ..base.clone()
        };
        let e = LinuxBoard::open(&cfg).err().expect("no flash directory").to_string();
        assert!(e.starts_with("flash ") && e.contains("none/flash.img"), "{e}");
        let e = LinuxBoard::open(&base).err().expect("no TPM").to_string();
        assert!(e.starts_with("TPM: cannot connect"), "{e}");
    }
    let e = LinuxPanel::open(&ApplianceConfig::default()).err().expect("this machine has no panel").to_string();
    assert!(e.starts_with("LCD /dev/i2c-1") || e.starts_with("keypad ") || e.starts_with("RTC "), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
