//! appliance.toml: the example equals the defaults, and bad files are refused clearly.

use std::path::PathBuf;

use gmhsm_board::config::{ApplianceConfig, FlashConfig, LcdGeometry, TamperConfig};

const EXAMPLE: &str = include_str!("../appliance.example.toml");

#[test]
fn the_example_equals_the_defaults_and_an_empty_file() {
    let example = ApplianceConfig::parse(EXAMPLE, "appliance.example.toml").unwrap();
    assert_eq!(example, ApplianceConfig::default());
    assert_eq!(ApplianceConfig::parse("", "empty").unwrap(), ApplianceConfig::default());
}

#[test]
fn other_backends_and_partial_tables() {
    let cfg = ApplianceConfig::parse(
        r#"
        [flash]
        backend = "mtd"
        path = "/dev/mtd3"
        [tamper]
        backend = "nvmem"
        path = "/sys/bus/nvmem/devices/rtc-ds1307-0/nvmem"
        offset = 8
        [lcd]
        geometry = "16x2"
        "#,
        "t",
    )
    .unwrap();
    assert_eq!(cfg.flash, FlashConfig::Mtd { path: PathBuf::from("/dev/mtd3"), word_size: 4 });
    assert_eq!(
        cfg.tamper,
        TamperConfig::Nvmem {
            path: PathBuf::from("/sys/bus/nvmem/devices/rtc-ds1307-0/nvmem"),
            offset: 8,
            switch: None
        }
    );
    assert_eq!(cfg.lcd.geometry, LcdGeometry::Lcd16x2);
    assert_eq!(cfg.lcd.address, 0x27);
    assert_eq!(cfg.noise, ApplianceConfig::default().noise);
}

#[test]
fn bad_files_are_refused_with_the_reason() {
    for (text, want) in [
        ("[noise]\npaht = \"/dev/hwrng\"", "unknown field `paht`"),
        ("[nosie]\n", "unknown field `nosie`"),
        ("[flash]\nbackend = \"nand\"\npath = \"/x\"", "unknown variant `nand`"),
        ("[flash]\nbackend = \"file\"", "missing field `path`"),
        ("[flash]\nbackend = \"file\"\npath = \"/x\"\nsize = 3", "unknown field `size`"),
        ("[flash]\nbackend = \"file\"\npath = \"/x\"\npage_size = 512", "multiple of 4096"),
        ("[flash]\nbackend = \"file\"\npath = \"/x\"\nword_size = 3", "flash.word_size = 3"),
        ("[flash]\nbackend = \"file\"\npath = \"/x\"\npage_count = 2", "at least 4 pages"),
        ("[noise]\nmin_entropy_bits = 9", "min_entropy_bits = 9"),
        ("[tamper]\nbackend = \"tpm\"\nram_handle = 0x01000000", "not a persistent handle"),
        ("[tamper]\nbackend = \"tpm\"\nregister_index = 0x81000000", "not an NV index"),
        ("[tamper.switch]\nline = 3", "missing field `backend`"),
        ("[tamper]\nbackend = \"tpm\"\n[tamper.switch]\nedge = \"up\"", "unknown variant `up`"),
        ("[lcd]\naddress = 200", "not a 7-bit I2C address"),
        ("[lcd]\ngeometry = \"40x2\"", "unknown variant `40x2`"),
        ("[keypad\n", "line 1: invalid table header; expected"),
        ("[noise]\n\n[flash]\nbackend = \"file\"\npath = 3", "line 3: invalid type: integer `3`, expected path string"),
    ] {
        let e = ApplianceConfig::parse(text, "appliance.toml").err().unwrap_or_else(|| panic!("accepted {text:?}"));
        let msg = e.to_string();
        assert!(msg.starts_with("appliance configuration: appliance.toml: "), "{msg}");
        assert!(msg.contains(want), "{text:?}: {msg} (wanted {want:?})");
    }
    let e = ApplianceConfig::load(std::path::Path::new("/nonexistent/gmhsm/appliance.toml")).err().unwrap();
    assert!(e.to_string().contains("cannot read /nonexistent/gmhsm/appliance.toml"), "{e}");
}
